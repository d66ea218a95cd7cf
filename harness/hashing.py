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


DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def safetensors_header(path: str | Path) -> dict[str, tuple[list[int], str]]:
    """{tensor name: (shape, dtype)} from a .safetensors file's JSON header, without loading any tensor, after
    the checks the safetensors library makes: the header fits in the file, it is an object of tensors, each with
    a known dtype, a shape of non-negative integers and data offsets whose length is the shape's bytes, the
    tensors tile the data section exactly (no gap, no overlap) and the data section ends where the file does.
    Raises ValueError, saying what is wrong, for anything else."""
    file_size = Path(path).stat().st_size
    with open(path, "rb") as f:
        if file_size < 8:
            raise ValueError(f"{path}: not a safetensors file ({file_size} bytes)")
        size = int.from_bytes(f.read(8), "little")
        if size <= 0 or size > 100 * 2**20 or 8 + size > file_size:
            raise ValueError(f"{path}: not a safetensors file (header length {size}, file {file_size} bytes)")
        raw = f.read(size)
    from harness import jsonl

    try:
        header = jsonl.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, jsonl.JsonValueError) as exc:
        raise ValueError(f"{path}: the header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the header is a JSON {type(header).__name__}, not an object of tensors")
    data_bytes = file_size - 8 - size
    spans, out = [], {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: tensor {name!r}: not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise ValueError(f"{path}: tensor {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise ValueError(f"{path}: tensor {name!r}: shape {shape!r} is not a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_bytes):
            raise ValueError(f"{path}: tensor {name!r}: data offsets {offsets!r} outside the {data_bytes}-byte data "
                             "section (a truncated file, or a header that claims more than the file holds)")
        count = 1
        for d in shape:
            count *= d
        if offsets[1] - offsets[0] != count * DTYPE_BYTES[dtype]:
            raise ValueError(f"{path}: tensor {name!r}: {offsets[1] - offsets[0]} bytes for shape {shape} of {dtype}")
        spans.append((offsets[0], offsets[1], name))
        out[name] = (list(shape), str(dtype))
    end = 0
    for start, stop, name in sorted(spans):
        if start != end:
            raise ValueError(f"{path}: tensor {name!r} starts at byte {start}, not at {end} (a gap or an overlap)")
        end = stop
    if end != data_bytes:
        raise ValueError(f"{path}: the tensors cover {end} of the file's {data_bytes} data bytes")
    return out


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
