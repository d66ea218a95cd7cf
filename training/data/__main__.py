"""python -m training.data {build,validate,stats,cases}"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from harness.chat_format import date_string
from harness.suite import resolve_suite
from training.data.build import BuildConfig, build, build_written, composition
from training.data.convert import CONVERTERS
from training.data.examples import example_now
from training.data.generate import Composition
from training.data.split import SPLITS
from training.data.validate import read_examples, read_jsonl, validate_file


def _suite(args: argparse.Namespace):
    """The suite named on the command line (--suite DIR, or --tools FILE), else the assistant suite."""
    return resolve_suite([Path(args.suite)] if args.suite else [], tools=getattr(args, "tools", None))


def _build(args: argparse.Namespace) -> int:
    """The assistant suite's generated set, a set written for another suite (--suite with --examples), or the
    workout-program task's (--task program)."""
    if args.task == "program":
        from training.data.program import build_program_set

        golden = [Path(g) for g in args.golden] if args.golden else sorted(Path("suites/program").glob("*.jsonl"))
        try:
            manifest = build_program_set(Path(args.out), n=args.n, seed=args.seed, golden=golden,
                                         seed_files=[Path(f) for f in args.seed_file or ()], holdout=args.holdout,
                                         val=args.val)
        except ValueError as exc:
            print(f"build refused: {exc}", file=sys.stderr)
            return 1
        c = manifest["counts"]
        print(f"built {c['total']} program examples -> {args.out}: "
              + ", ".join(f"{k} {v['examples']}" for k, v in manifest["files"].items())
              + f"; dropped {c['decontaminated']} requests identical to golden cases; {c['seed_refused']} seed lines refused")
        for line in manifest["seed_refused"][:10]:
            print("  " + line)
        return 0
    if bool(args.suite) != bool(args.examples):
        print("build refused: --suite DIR and --examples FILE go together (the examples are written for that "
              "suite's tools)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        if args.suite:
            golden = args.golden or [str(p) for p in sorted(Path(args.suite).glob("*.jsonl"))]
            manifest = build_written(_suite(args), args.examples, Path(args.out), golden, holdout=args.holdout,
                                     val=args.val, seed=args.seed)
        else:
            converted = tuple((src, path) for src in CONVERTERS for path in getattr(args, src.replace("-", "_")) or [])
            manifest = build(BuildConfig(out=args.out, seed=args.seed, holdout=args.holdout, val=args.val,
                                         golden=tuple(args.golden or ()), converted=converted,
                                         composition=Composition(no_tool_fraction=args.no_tool_fraction,
                                                                 general_fraction=args.general_fraction)))
    except ValueError as exc:  # a suite, source file or example that is not right, named with file and line
        print(f"build refused: {exc}", file=sys.stderr)
        return 1
    counts = manifest["counts"]
    print(f"built {counts['total']} examples for {args.suite or 'the assistant suite'} in "
          f"{time.perf_counter() - started:.1f} s -> {args.out}")
    print("  " + ", ".join(f"{name} {f['examples']}" for name, f in manifest["files"].items()))
    print(f"  dropped {counts['decontaminated']} near-copies of the suite's case prompts, {counts['duplicates']} duplicates")
    for line in manifest["conversion"]:
        print("  " + line)
    _print_table(manifest["composition"], counts["total"])
    return 0


def _validate(args: argparse.Namespace) -> int:
    bad = 0
    suite = _suite(args)
    for path in args.files:
        problems = validate_file(path, suite)
        for p in problems:
            print(p)
        bad += len(problems)
        if not problems:
            print(f"{path}: {len(read_jsonl(path))} examples, all valid")
    return 1 if bad else 0


def _cases(args: argparse.Namespace) -> int:
    from harness import jsonl
    from harness.report import atomic_write_text
    from training.data.heldout import split_to_cases, spread

    path = Path(args.data) / f"{args.split}.jsonl"
    try:
        examples = read_examples(path)
    except ValueError as exc:
        print(f"cases refused: {exc}", file=sys.stderr)
        return 1
    if not examples:
        print(f"cases refused: {path}: no examples", file=sys.stderr)
        return 1
    chosen = spread(examples, args.limit) if args.limit else examples
    cases, skipped = split_to_cases(chosen, _suite(args).catalogue, args.split)
    atomic_write_text(Path(args.out), "".join(jsonl.dumps(c) + "\n" for c in cases))
    print(f"{len(cases)} cases from {path} ({len(examples)} examples{', evenly spread' if args.limit else ''}) -> {args.out}"
          + (f"; left out {len(skipped)}: {'; '.join(skipped[:3])}" if skipped else ""))
    return 0


def _print_table(comp: dict, total: int) -> None:
    width = max([18, *(len(k) for table in (comp["kinds"], comp["tools"], comp["sources"]) for k in table)])
    for title, table in (("kind", comp["kinds"]), ("tool (final reply)", comp["tools"]), ("source", comp["sources"])):
        print(f"  {title:<{width + 2}} {'n':>6} {'share':>7}")
        for key, n in table.items():
            print(f"    {key:<{width}} {n:>6} {n / total:>7.1%}")


def _stats(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    for split in SPLITS:
        examples = [ex for _, ex in read_jsonl(folder / f"{split}.jsonl")]
        if not examples:
            print(f"{split}: empty")
            continue
        if tokenizer is not None:
            lengths = [len(tokenizer.apply_chat_template(ex["messages"], tokenize=True, return_dict=False,
                                                         date_string=date_string(example_now(ex)))) for ex in examples]
            unit = "tokens"
        else:
            lengths = [sum(len(m["content"]) for m in ex["messages"]) // 4 for ex in examples]
            unit = "tokens (approx. chars/4; pass --tokenizer for exact)"
        print(f"{split}: {len(examples)} examples; length in {unit}: median {statistics.median(lengths):.0f}, "
              f"max {max(lengths)}")
        _print_table(composition(examples), len(examples))
    manifest = folder / "manifest.json"
    if manifest.is_file():
        counts = json.loads(manifest.read_text())["counts"]
        print("manifest: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data", description="Build and audit the fine-tuning data.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="generate + convert + validate + split + decontaminate, then write")
    b.add_argument("--out", default="data/v1")
    b.add_argument("--seed", type=int, default=BuildConfig.seed)
    b.add_argument("--holdout", type=float, default=BuildConfig.holdout)
    b.add_argument("--val", type=float, default=BuildConfig.val)
    b.add_argument("--no-tool-fraction", type=float, default=Composition.no_tool_fraction)
    b.add_argument("--general-fraction", type=float, default=Composition.general_fraction)
    b.add_argument("--golden", action="append",
                   help="case file to decontaminate against (default: golden/*.jsonl, or the --suite folder's)")
    b.add_argument("--task", choices=("tool_call", "program"), default="tool_call",
                   help="program: the workout-program task's data (generated requests, rule-valid programs)")
    b.add_argument("--n", type=int, default=600, help="--task program: requests to generate")
    b.add_argument("--seed-file", action="append", metavar="FILE",
                   help="--task program: the seed plan's {prompt, completion} JSONL to convert too")
    b.add_argument("--suite", metavar="DIR", help="build for this suite (its tools.json, suite.toml and case files) "
                                                  "from --examples, instead of the assistant suite's generator")
    b.add_argument("--examples", action="append", metavar="FILE",
                   help="examples written for --suite's tools (JSON Lines; see training/data/written.py)")
    for src in CONVERTERS:
        b.add_argument(f"--{src}", action="append", metavar="FILE", help=f"a local {src} file to convert")
    b.set_defaults(run=_build)
    v = sub.add_parser("validate", help="check files example by example; exit 1 on any bad example")
    v.add_argument("files", nargs="+")
    v.add_argument("--suite", metavar="DIR", help="the suite the examples were built for (default: the assistant's)")
    v.add_argument("--tools", help="the catalogue the examples call, for a suite folder without tools.json")
    v.set_defaults(run=_validate)
    s = sub.add_parser("stats", help="composition and lengths of a built set")
    s.add_argument("folder")
    s.add_argument("--tokenizer", help="a tokenizer folder for exact token lengths")
    s.set_defaults(run=_stats)
    c = sub.add_parser("cases", help="a split as a case file, to score a model on held-out data with the harness")
    c.add_argument("--data", required=True, help="a built set's folder")
    c.add_argument("--split", choices=SPLITS, default="holdout")
    c.add_argument("--out", required=True, help="the case file to write")
    c.add_argument("--limit", type=int, help="at most this many cases, taken evenly across the split")
    c.add_argument("--suite", metavar="DIR", help="the suite the examples were built for (default: the assistant's)")
    c.set_defaults(run=_cases)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
