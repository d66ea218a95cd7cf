"""python -m deploy {check,export,upload,list,verify}: each step prints what it checked and exits 1 at
the first failure, with the fix."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deploy.check import CONFIG, MAX_RANK, WEIGHTS, CheckFailed, export, run_checks
from deploy.cloudflare import CloudflareAPI, is_lora_capable
from harness import escape
from harness.backends.base import BackendError, BackendOptions
from harness.backends.http import RetryPolicy
from harness.backends.registry import create_backend
from harness.backends.remote import CLOUDFLARE_API
from harness.core.engine import evaluate
from harness.report import atomic_write_text
from harness.suite import Suite, resolve_suite
from harness.tasks.tool_call.cases import CATEGORIES, Case
from harness.tasks.tool_call.match import CaseResult
from harness.tasks.tool_call.metrics import rates_block
from harness.tasks.tool_call.task import ToolCallTask

FINETUNE_LIMIT = 100
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (0 attempts or -5 probes is a usage error, not a crash later)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def echo(text: str = "") -> None:
    """One line of deploy's output: what the server named (finetunes, errors) cannot draw on the terminal."""
    print(escape.terminal(text), flush=True)


def cmd_check(args: argparse.Namespace) -> int:
    echo(f"checking {args.adapter} for {args.cf_model}")
    return 0 if run_checks(Path(args.adapter), args.cf_model, echo, max_rank=args.max_rank, force_base=args.force_base) else 1


def cmd_export(args: argparse.Namespace) -> int:
    echo(f"exporting {args.adapter} -> {args.out} for {args.cf_model}")
    try:
        manifest = export(Path(args.adapter), Path(args.out), args.cf_model, max_rank=args.max_rank,
                          force_base=args.force_base)
    except CheckFailed as failed:
        echo(f"  FAIL  {failed.name}: {failed.problem}\n        fix: {failed.fix}")
        return 1
    run_checks(Path(args.out), args.cf_model, echo, max_rank=args.max_rank, force_base=args.force_base)
    echo(f"bundle: {args.out} (model_type {manifest['model_type']}, adapter sha256 {manifest['adapter_sha256'][:16]}…)")
    return 0


def _api(args: argparse.Namespace) -> CloudflareAPI:
    return CloudflareAPI.from_env(api_base=args.cf_api_base, retry=RetryPolicy(max_attempts=args.max_attempts))


def preflight(api: CloudflareAPI, cf_model: str) -> str | None:
    """The plan's Day-1 check against the live catalog: None when the model takes LoRA adapters, else why not."""
    models = api.search_models(cf_model.split("/")[-1])
    match = next((m for m in models if m.get("name") == cf_model), None)
    if match is None:
        return f"{cf_model} is not in the account's model catalog"
    if not is_lora_capable(match):
        capable = sorted(m.get("name", "?") for m in api.search_models("") if is_lora_capable(m))
        return (f"the catalog does not mark {cf_model} as LoRA-capable, so an adapter would not be applied; "
                f"LoRA-capable models: {', '.join(capable) or 'none listed'} (retrain on one of their bases)")
    return None


def cmd_upload(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    echo(f"uploading {bundle} as {args.name!r} for {args.cf_model}")
    if not run_checks(bundle, args.cf_model, echo, max_rank=args.max_rank, force_base=args.force_base):
        return 1
    api = _api(args)
    try:
        why = preflight(api, args.cf_model)
        if why:
            echo(f"  FAIL  catalog: {why}")
            return 1
        echo(f"  ok    catalog: {args.cf_model} supports LoRA")
        existing = api.list_finetunes()
        if any(f.get("name") == args.name for f in existing):
            echo(f"  FAIL  name: a finetune named {args.name!r} exists and finetunes cannot be updated\n"
                 f"        fix: upload under a new name (e.g. {args.name}-v2)")
            return 1
        if len(existing) >= FINETUNE_LIMIT:
            echo(f"  FAIL  limit: the account has {len(existing)} finetunes (limit {FINETUNE_LIMIT})")
            return 1
        note = f" (warning: {len(existing)} of {FINETUNE_LIMIT} finetunes used)" if len(existing) >= FINETUNE_LIMIT - 10 else ""
        echo(f"  ok    name: {args.name!r} is free{note}")
        created = api.create_finetune(args.cf_model, args.name, args.description)
        record: dict[str, Any] = {"finetune_id": created["id"], "name": args.name, "model": args.cf_model, "uploaded": []}
        if created.get("recovered_after"):
            record["recovered_after"] = created["recovered_after"]
            echo(f"  ok    created finetune {created['id']} (the create's reply was lost: {created['recovered_after']}; "
                 "found it by name instead of creating a second one)")
        else:
            echo(f"  ok    created finetune {created['id']}")
        atomic_write_text(bundle / "upload.json", json.dumps({**record, "status": "created, uploading"}, indent=2) + "\n")
        for name in (WEIGHTS, CONFIG):
            try:
                api.upload_asset(created["id"], bundle / name)
            except BackendError as exc:
                record["status"] = f"incomplete: {name} failed: {exc}"
                atomic_write_text(bundle / "upload.json", json.dumps(record, indent=2) + "\n")
                echo(f"  FAIL  upload {name}: {exc}\n        finetune {created['id']} ({args.name}) exists without all "
                     f"its files and cannot be completed or updated; recorded in {bundle / 'upload.json'}; "
                     f"upload again under a new name")
                return 1
            record["uploaded"].append(name)
            echo(f"  ok    uploaded {name}")
        record["status"] = "complete"
        atomic_write_text(bundle / "upload.json", json.dumps(record, indent=2) + "\n")
    except BackendError as exc:
        echo(f"  FAIL  Cloudflare: {exc}")
        return 1
    finally:
        api.close()
    echo(f"done: finetune {record['finetune_id']}; verify with: python -m deploy verify --cf-model={args.cf_model} --lora {args.name}")
    echo(f"wrangler equivalent: npx wrangler ai finetune create {args.cf_model} {args.name} {bundle}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    api = _api(args)
    try:
        finetunes = api.list_finetunes()
    except BackendError as exc:
        echo(f"FAIL: {exc}")
        return 1
    finally:
        api.close()
    echo(f"{'id':<38} {'name':<32} model")
    for f in finetunes:
        echo(f"{str(f.get('id', '?')):<38} {str(f.get('name', '?')):<32} {f.get('model', '?')}")
    echo(f"{len(finetunes)} finetune(s) of {FINETUNE_LIMIT}")
    return 0


def probe_cases(path: Path, n: int, suite: Suite) -> list[Case]:
    """n cases spread over the categories (the first of each, then in file order), loaded as a run of the
    suite loads them."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    cases = [c for f in files for c in ToolCallTask().load_cases(f, suite)[2]]
    firsts = [next(c for c in cases if c.category == cat) for cat in CATEGORIES if any(c.category == cat for c in cases)]
    rest = [c for c in cases if c not in firsts]
    return (firsts + rest)[:n]


def cmd_verify(args: argparse.Namespace) -> int:
    suite = resolve_suite([Path(args.cases)])
    cases = probe_cases(Path(args.cases), args.probes, suite)
    # The same factory as `pytest --model=cloudflare-base/-lora`: credentials from the environment, same options.
    options = BackendOptions({"cf_model": args.cf_model, "lora": args.lora, "cf_api_base": args.cf_api_base,
                              "raw": args.raw, "max_new_tokens": args.max_new_tokens, "max_attempts": args.max_attempts})
    echo(f"verifying {args.lora!r} on {args.cf_model} with {len(cases)} probe cases")
    try:
        # both sides through the engine: the same requests and scorer as any run of the suite
        base, _ = evaluate(suite, create_backend("cloudflare-base", options), cases)
        lora, _ = evaluate(suite, create_backend("cloudflare-lora", options), cases)
    except BackendError as exc:
        echo(f"  FAIL  Cloudflare: {exc}")
        return 1
    failed = _unanswered({"base": base, "LoRA": lora}, len(cases))
    if failed:
        echo(f"  FAIL  {failed}\n        fix: a probe the adapter never answered proves nothing; see the server's "
             "message above")
        return 1
    differ = [c.id for c, b, lo in zip(cases, base, lora) if b.response != lo.response]
    sides = {"cloudflare-base": base, "cloudflare-lora": lora}
    local_failed = None
    if args.local_adapter:
        from harness.backends.local import GenerationSettings, LocalBackend

        local = LocalBackend(None, args.local_adapter, settings=GenerationSettings(max_new_tokens=args.max_new_tokens))
        local_results, _ = evaluate(suite, local, cases)
        local_failed = _unanswered({"local adapter": local_results}, len(cases))
        sides["local-adapter"] = local_results
    keys = ("case_pass_rate", "tool_selection_accuracy", "valid_json_rate", "no_tool_accuracy")
    echo(f"  {'metric':<26}" + "".join(f"{name:>17}" for name in sides))
    blocks = {name: rates_block(results, suite.disambiguation_tools) for name, results in sides.items()}
    for k in keys:
        echo(f"  {k:<26}" + "".join(f"{'—' if b[k] is None else format(b[k], '.3f'):>17}" for b in blocks.values()))
    if local_failed:
        echo(f"  FAIL  local vs deployed parity not measured: {local_failed}")
        return 1
    if "local-adapter" in sides:
        parity = [r.case.id for r, d in zip(sides["local-adapter"], sides["cloudflare-lora"]) if r.passed != d.passed]
        echo(f"  local vs deployed: {len(cases) - len(parity)}/{len(cases)} cases decided alike"
             + (f"; differ: {', '.join(parity)}" if parity else ""))
    if not differ:
        echo(f"  FAIL  every LoRA reply equals the base model's reply on all {len(cases)} probes: the adapter is "
             "probably not applied\n        fix: check the finetune's files (python -m deploy list), the model it was "
             "created for, and that --lora names it")
        return 1
    echo(f"  ok    the adapter changes {len(differ)}/{len(cases)} replies ({', '.join(differ[:8])})")
    return 0


def _unanswered(sides: dict[str, list[CaseResult]], asked: int) -> str | None:
    """Why the probes cannot be compared (a side with an error, or fewer replies than probes), or None.
    A failed request has no text, and "no text != base text" must never count as the adapter working."""
    for side, replies in sides.items():
        errors = [r.error or "no reply text" for r in replies if r.response is None]
        answered = len(replies) - len(errors)
        if errors or answered < asked:
            first = f": {errors[0]}" if errors else ""
            return f"{side} answered {answered}/{asked} probes{first}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def with_model(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cf-model", required=True, help="the Workers AI model, e.g. @cf/meta/llama-3.2-3b-instruct")
        p.add_argument("--max-rank", type=positive_int, default=MAX_RANK, help=f"Cloudflare's rank limit (default {MAX_RANK})")
        p.add_argument("--force-base", action="store_true", help="accept a base model not in the known table")

    def with_api(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cf-api-base", default=None, help=f"API base (default {CLOUDFLARE_API})")
        p.add_argument("--max-attempts", type=positive_int, default=RetryPolicy.max_attempts, help="per request, retries included")

    p = sub.add_parser("check", help="offline: is this folder an adapter Cloudflare accepts?")
    p.add_argument("adapter")
    with_model(p)
    p.set_defaults(run=cmd_check)
    p = sub.add_parser("export", help="offline: adapter-only bundle with model_type added, checked, with a manifest")
    p.add_argument("adapter")
    p.add_argument("--out", required=True)
    with_model(p)
    p.set_defaults(run=cmd_export)
    p = sub.add_parser("upload", help="catalog preflight, name check, create the finetune, upload both files")
    p.add_argument("bundle")
    p.add_argument("--name", required=True)
    p.add_argument("--description", default="tool-calling LoRA adapter")
    with_model(p)
    with_api(p)
    p.set_defaults(run=cmd_upload)
    p = sub.add_parser("list", help="the account's finetunes")
    with_api(p)
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("verify", help="probe base vs LoRA on the live endpoint; fail when the adapter changes nothing")
    p.add_argument("--cf-model", required=True)
    p.add_argument("--lora", required=True)
    p.add_argument("--cases", default=str(GOLDEN), help="case file or folder for the probes (default: golden/)")
    p.add_argument("--probes", type=positive_int, default=8)
    p.add_argument("--raw", action="store_true", help="send the Llama 3 template rendered here (see the README)")
    p.add_argument("--max-new-tokens", type=positive_int, default=384)
    p.add_argument("--local-adapter", help="also run this adapter locally and report parity")
    with_api(p)
    p.set_defaults(run=cmd_verify)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BackendError as exc:
        echo(f"FAIL: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
