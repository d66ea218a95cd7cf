"""sha256 of files and of model folders, cached by (path, size, mtime) so a 6 GB base model is hashed once."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Iterable

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
_CACHE = Path(os.environ.get("TOOLCALL_HASH_CACHE", Path.home() / ".cache" / "toolcall-harness" / "sha256.json"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = _load_cache()
    if key in cache:
        return cache[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    digest = h.hexdigest()
    if stat.st_size > 16 << 20:  # only worth remembering for big files
        cache[key] = digest
        _save_cache(cache)
    return digest


def sha256_files(paths: Iterable[Path], root: Path) -> str:
    """One digest over several files: each file's relative name and digest, in name order."""
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda p: p.relative_to(root).as_posix()):
        h.update(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def weights_sha256(folder: str | Path) -> str | None:
    """A digest of a model folder's weight files; None when it holds none."""
    root = Path(folder)
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES]
    return sha256_files(files, root) if files else None


def safetensors_header(path: str | Path) -> dict[str, tuple[list[int], str]]:
    """{tensor name: (shape, dtype)} from a .safetensors file's JSON header, without loading any tensor.
    Raises ValueError for a file that is not safetensors."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if size <= 0 or size > 100 * 2**20:
            raise ValueError(f"{path}: not a safetensors file (header length {size})")
        header = json.loads(f.read(size))
    return {k: (list(v["shape"]), str(v["dtype"])) for k, v in header.items() if k != "__metadata__"}


def model_weights_sha256(model: str) -> str:
    """The weights digest of a model folder, or of a hub id already in the local cache. When it cannot be
    computed the value says why (`unavailable: ...`) and a warning is raised: a fingerprint must never lose
    the base model's identity silently."""
    folder = Path(model)
    try:
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            try:
                folder = Path(snapshot_download(model, local_files_only=True))
            except Exception as exc:  # the hub library raises several types for "not cached"
                return _unavailable(f"{model} is not a folder and not in the local hub cache ({type(exc).__name__})")
        digest = weights_sha256(folder)
    except OSError as exc:
        return _unavailable(f"cannot read the weights of {model}: {exc}")
    return digest or _unavailable(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) in {folder}")


def _unavailable(reason: str) -> str:
    warnings.warn(f"base model weights hash unavailable: {reason}", UserWarning, stacklevel=3)
    return f"unavailable: {reason}"


def _load_cache() -> dict[str, str]:
    try:
        return json.loads(_CACHE.read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict[str, str]) -> None:
    try:
        _CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = _CACHE.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, _CACHE)
    except OSError:
        pass  # a cache that cannot be written only costs time
