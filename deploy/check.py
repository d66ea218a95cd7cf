"""Offline checks of an adapter folder against Cloudflare Workers AI's LoRA rules, and the export bundle.

Fail closed: the first failed check stops, and says how to fix it. The rules (docs/platform-notes.md): a LoRA
adapter, not a merged model; `adapter_model.safetensors` + `adapter_config.json`, named exactly;
`peft_type` LORA; rank <= 32; `model_type` in the config (llama, mistral, gemma; PEFT does not
write it); a base model that is the Cloudflare model's; under 300 MB.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from harness import jsonl
from harness.hashing import safetensors_header, sha256_file
from harness.report import atomic_write_text, honour_umask

MAX_RANK = 32
MAX_BYTES = 300 * 1000 * 1000
MODEL_TYPES = ("llama", "mistral", "gemma")
WEIGHTS, CONFIG = "adapter_model.safetensors", "adapter_config.json"
FULL_WEIGHTS = re.compile(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)$|\.gguf$")

# Hugging Face base model (its last path part, lower case) -> (Cloudflare model, model_type).
BASE_MODELS: dict[str, tuple[tuple[str, ...], str]] = {
    "llama-3.2-3b-instruct": (("@cf/meta/llama-3.2-3b-instruct",), "llama"),
    "llama-3.2-1b-instruct": (("@cf/meta/llama-3.2-1b-instruct",), "llama"),
    "llama-3.1-8b-instruct": (("@cf/meta/llama-3.1-8b-instruct", "@cf/meta/llama-3.1-8b-instruct-fast"), "llama"),
    "meta-llama-3.1-8b-instruct": (("@cf/meta/llama-3.1-8b-instruct", "@cf/meta/llama-3.1-8b-instruct-fast"), "llama"),
    "mistral-7b-instruct-v0.2": (("@cf/mistral/mistral-7b-instruct-v0.2-lora",), "mistral"),
    "mistral-small-3.1-24b-instruct-2503": (("@cf/mistralai/mistral-small-3.1-24b-instruct",), "mistral"),
    "gemma-2b-it": (("@cf/google/gemma-2b-it-lora",), "gemma"),
    "gemma-7b-it": (("@cf/google/gemma-7b-it-lora",), "gemma"),
    "gemma-3-12b-it": (("@cf/google/gemma-3-12b-it",), "gemma"),
}


# Bases Workers AI serves no model for (the project's own small real model among them): named, not "unknown".
NOT_ON_CLOUDFLARE = {"smollm2-135m-instruct": "SmolLM2-135M-Instruct", "smollm2-135m": "SmolLM2-135M-Instruct"}


class CheckFailed(Exception):
    def __init__(self, name: str, problem: str, fix: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name, self.problem, self.fix = name, problem, fix


@dataclass(frozen=True)
class Passed:
    name: str
    detail: str


def _packaged_model(base: Any) -> str | None:
    """The packaged model (harness.models) a local base folder was converted from, by its provenance.json."""
    if not isinstance(base, str) or not base:
        return None
    from harness.models import read_provenance

    found = read_provenance(Path(base))  # None for a hub id or a folder without one
    return str(found.get("model")) if found else None


def base_key(base: str | None) -> str:
    return (base or "").rstrip("/").split("/")[-1].lower()


def expected_model_type(base: str | None, cf_model: str) -> str | None:
    """The model_type Cloudflare wants, from the base model table or the Cloudflare model's family."""
    entry = BASE_MODELS.get(base_key(base))
    if entry:
        return entry[1]
    family = cf_model.split("/")[-1].lower()
    return next((t for t in MODEL_TYPES if family.startswith(t)), None)


def checks(folder: Path, cf_model: str, *, max_rank: int = MAX_RANK, force_base: bool = False,
           require_model_type: bool = True) -> Iterator[Passed]:
    """Yield each passed check; raise CheckFailed at the first failure."""
    if not folder.is_dir():
        raise CheckFailed("folder", f"{folder} does not exist", "point at the adapter folder training wrote")
    names = {p.name for p in folder.iterdir() if p.is_file()}
    full = sorted(n for n in names if FULL_WEIGHTS.search(n))
    if full:
        raise CheckFailed("adapter, not a merged model", f"full model weights found: {', '.join(full)}",
                          "export the adapter only: save the PEFT model (model.save_pretrained) without merging; "
                          "Cloudflare applies the adapter to its own hosted base model")
    if CONFIG not in names:
        raise CheckFailed("adapter_config.json", "missing", "save the adapter with PEFT's save_pretrained, which writes it")
    if WEIGHTS not in names:
        other = sorted(n for n in names if n.startswith("adapter_model"))
        raise CheckFailed("adapter_model.safetensors", f"missing{' (found ' + ', '.join(other) + ')' if other else ''}",
                          "save with safe_serialization=True; the file must be named exactly adapter_model.safetensors")
    yield Passed("files", f"{CONFIG} and {WEIGHTS}, no full model weights")
    size = sum((folder / n).stat().st_size for n in (WEIGHTS, CONFIG))
    if size >= MAX_BYTES:
        raise CheckFailed("size", f"{size / 1e6:.1f} MB, the limit is {MAX_BYTES / 1e6:.0f} MB",
                          "lower the rank or target fewer modules")
    yield Passed("size", f"{size / 1e6:.2f} MB < {MAX_BYTES / 1e6:.0f} MB")
    config = _read_json(folder / CONFIG, folder)
    if config is None:
        raise CheckFailed(CONFIG, "missing", "save the adapter with PEFT's save_pretrained, which writes it")
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise CheckFailed("peft_type", f"{config.get('peft_type')!r}, not LORA", "Cloudflare serves LoRA adapters only")
    r = config.get("r")
    if not isinstance(r, int) or r < 1 or r > max_rank:
        raise CheckFailed("rank", f"r = {r}, the limit is {max_rank}", f"retrain with --lora-r {min(16, max_rank)}")
    yield Passed("LoRA", f"peft_type LORA, r {r} <= {max_rank}, alpha {config.get('lora_alpha')}")
    base = config.get("base_model_name_or_path")
    packaged = _packaged_model(base)
    if base_key(base) in NOT_ON_CLOUDFLARE or packaged:
        raise CheckFailed("base model", f"the adapter was trained on {base!r} "
                          f"({packaged or NOT_ON_CLOUDFLARE[base_key(base)]}), "
                          f"which Workers AI does not serve, so it cannot be applied to {cf_model}",
                          "evaluate it locally (pytest --model=local-adapter) or serve it with vLLM/llama.cpp; "
                          "for Workers AI train on a LoRA-capable Cloudflare model's base")
    entry = BASE_MODELS.get(base_key(base))
    if entry and cf_model not in entry[0]:
        raise CheckFailed("base model", f"the adapter was trained on {base!r}, which is {' or '.join(entry[0])} on "
                          f"Cloudflare, not {cf_model}", "pass the matching --cf-model, or retrain on the right base")
    if not entry and not force_base:
        raise CheckFailed("base model", f"{base!r} is not in the table of bases known to match a Cloudflare model",
                          "check that it is the same model as --cf-model, then pass --force-base")
    yield Passed("base model", f"{base} -> {cf_model}" + ("" if entry else " (forced)"))
    model_type = config.get("model_type")
    want = expected_model_type(base, cf_model)
    if model_type is None and require_model_type:
        raise CheckFailed("model_type", "adapter_config.json has no model_type (PEFT does not write it)",
                          "run `python -m deploy export`, which adds it")
    if model_type is not None and model_type not in MODEL_TYPES:
        raise CheckFailed("model_type", f"{model_type!r} is not one of {', '.join(MODEL_TYPES)}", "use the base's family")
    if model_type is not None and want and model_type != want:
        raise CheckFailed("model_type", f"{model_type!r}, but {cf_model} is a {want} model", f"set model_type to {want}")
    if model_type is not None:
        yield Passed("model_type", model_type)
    yield Passed("tensors", _check_tensors(folder / WEIGHTS, config))


def _read_json(path: Path, folder: Path) -> dict[str, Any] | None:
    """A JSON object file of the adapter folder (None when absent); a link out of the folder, a file that is not
    strict JSON, or JSON that is not an object is a CheckFailed naming the file."""
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() and folder.resolve() not in path.resolve().parents:
        raise CheckFailed(path.name, f"{path} is a link to {path.resolve()}, outside the adapter folder",
                          "copy the real file into the adapter folder")
    try:
        value = jsonl.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, jsonl.JsonValueError) as exc:
        raise CheckFailed(path.name, f"not readable as JSON ({exc})", f"re-write {path.name}") from None
    if not isinstance(value, dict):
        raise CheckFailed(path.name, f"a JSON {type(value).__name__}, not an object", f"re-write {path.name}")
    return value


def _check_tensors(path: Path, config: dict[str, Any]) -> str:
    try:
        info = safetensors_header(path)
    except (OSError, ValueError) as exc:
        raise CheckFailed("safetensors", f"unreadable: {exc}", "re-save the adapter") from None
    r = config["r"]
    targets = config.get("target_modules")
    lora = {k: v for k, v in info.items() if ".lora_A." in k or ".lora_B." in k}
    other = sorted(set(info) - set(lora))
    if not lora or other:
        raise CheckFailed("tensors", f"{len(other)} tensor(s) that are not LoRA matrices (e.g. {other[:2]})" if other
                          else "no lora_A / lora_B tensors", "export an unmerged, unquantized LoRA adapter")
    for key, (shape, dtype) in lora.items():
        if dtype not in ("F32", "F16", "BF16"):
            raise CheckFailed("tensors", f"{key} is {dtype}: a quantized export", "save the LoRA weights in 16/32-bit")
        if len(shape) != 2 or 0 in shape:
            raise CheckFailed("tensors", f"{key} has shape {shape}: a LoRA matrix is 2-D with no empty dimension",
                              "re-save the adapter")
        rank = shape[0] if ".lora_A." in key else shape[1]
        if rank != r:
            raise CheckFailed("tensors", f"{key} has shape {shape}, which does not match r = {r}", "re-save the adapter")
        module = key.split(".lora_")[0].removeprefix("base_model.model.")
        if isinstance(targets, list) and not any(module == t or module.endswith("." + t) for t in targets):
            raise CheckFailed("tensors", f"{key} adapts {module!r}, which target_modules does not name", "re-save the adapter")
    return f"{len(lora)} LoRA matrices, every one rank {r}, all in target_modules"


def run_checks(folder: Path, cf_model: str, echo: Callable[[str], None], **kwargs: Any) -> bool:
    """Print each check; on the first failure print it with its fix and return False."""
    try:
        for passed in checks(folder, cf_model, **kwargs):
            echo(f"  ok    {passed.name}: {passed.detail}")
    except CheckFailed as failed:
        echo(f"  FAIL  {failed.name}: {failed.problem}\n        fix: {failed.fix}")
        return False
    return True


def _refuse_links(folder: Path, out: Path) -> None:
    """A bundle is made of the adapter's own files, written into --out itself: a weights or config file that
    links outside the adapter folder, or an --out entry that is a link (writing would follow it out of the
    folder), is refused, naming the link."""
    root = folder.resolve()
    for name in (WEIGHTS, CONFIG):
        src = folder / name
        if src.is_symlink() and root not in src.resolve().parents:
            raise CheckFailed("files", f"{src} is a link to {src.resolve()}, outside the adapter folder",
                              "copy the real file into the adapter folder")
    if out.is_symlink():
        raise CheckFailed("files", f"--out {out} is a link to {out.resolve()}", "give a real folder")
    for name in (WEIGHTS, CONFIG, "manifest.json"):
        if (out / name).is_symlink():
            raise CheckFailed("files", f"{out / name} is a link to {(out / name).resolve()}; export will not write "
                                       "through it", "remove the link or export into an empty folder")


BUNDLE_FILES = (WEIGHTS, CONFIG, "manifest.json")


def export(folder: Path, out: Path, cf_model: str, **kwargs: Any) -> dict[str, Any]:
    """Write the adapter-only bundle with model_type added (every other field kept) and a manifest. Everything
    is read and checked first (the adapter, its config, job.json), the bundle is written into a temporary folder
    beside `out` and checked there, and only then renamed into place: a failure never leaves a half bundle."""
    list(checks(folder, cf_model, require_model_type=False, **kwargs))
    config = _read_json(folder / CONFIG, folder) or {}
    config.setdefault("model_type", expected_model_type(config.get("base_model_name_or_path"), cf_model))
    if config["model_type"] is None:
        raise CheckFailed("model_type", f"cannot tell the family of {cf_model}", "add model_type to adapter_config.json")
    job_path = folder / "job.json"
    job = _read_json(job_path, folder)
    _refuse_links(folder, out)
    if out.exists() and (not out.is_dir() or any(p.name not in BUNDLE_FILES for p in out.iterdir())):
        raise CheckFailed("files", f"--out {out} exists and holds more than a bundle", "export into a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    try:
        manifest = _write_bundle(folder, stage, config, job, job_path, cf_model)
        list(checks(stage, cf_model, **kwargs))  # the bundle itself must pass every check
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(stage, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, out)
        honour_umask(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return manifest


def _write_bundle(folder: Path, out: Path, config: dict[str, Any], job: dict[str, Any] | None, job_path: Path,
                  cf_model: str) -> dict[str, Any]:
    shutil.copyfile(folder / WEIGHTS, out / WEIGHTS)
    atomic_write_text(out / CONFIG, json.dumps(config, indent=2) + "\n")
    manifest = {
        "format_version": 1,
        "cf_model": cf_model,
        "base_model": config.get("base_model_name_or_path"),
        "model_type": config["model_type"],
        "r": config.get("r"), "lora_alpha": config.get("lora_alpha"), "target_modules": config.get("target_modules"),
        "files": {n: {"sha256": sha256_file(out / n), "bytes": (out / n).stat().st_size} for n in (WEIGHTS, CONFIG)},
        "adapter_sha256": sha256_file(out / WEIGHTS),  # the same hash the local backend's fingerprint shows
        "source": str(folder),
        "training_job_sha256": sha256_file(job_path) if job is not None else None,
        "training_job": job.get("provenance") if job is not None else None,
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
