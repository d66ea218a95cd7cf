"""The one JSON and JSONL reader for untrusted files (case files, replay files, run records, data sets).

Lines are split on "\\n" only: the writers keep non-ASCII raw (`ensure_ascii=False`), so U+2028, U+2029 and
U+0085 may stand inside a JSON string, and `str.splitlines()` would cut a record there. A value is refused, never
half-read, when it is not strict JSON: `NaN` / `Infinity` (a case can never match them and a writer cannot write
them back), nesting deeper than MAX_DEPTH (the scorer and the schema validator recurse), or an integer longer than
Python's digit limit. Every refusal is a `JsonValueError` with a short reason, never a RecursionError or a
bare ValueError from deep inside the decoder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

MAX_DEPTH = 64  # arrays/objects inside each other; tool params and program replies need a handful
RECORD_DEPTH = MAX_DEPTH + 16  # a run's own records wrap a reply's parsed calls in a few more levels


class JsonValueError(ValueError):
    """A text that is not a strict, reasonably shaped JSON value; `str()` is the reason, for file:line messages."""


def _refuse_constant(name: str) -> Any:
    raise JsonValueError(f"{name} is not JSON (write a number or null)")


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply arrays and objects nest in `value` (0 for a scalar), counted without recursion; stops
    counting past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (list, dict)):
            if level > deepest:
                deepest = level
                if deepest > limit:
                    return deepest
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def check_value(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """`value` when it nests at most `max_depth` levels, else JsonValueError."""
    if depth(value, max_depth) > max_depth:
        raise JsonValueError(f"nested more than {max_depth} levels deep")
    return value


def loads(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """Strict `json.loads`: JsonValueError for anything that is not JSON or not a value this harness can hold."""
    return check_value(_strict(json.loads, text, parse_constant=_refuse_constant), max_depth)


def raw_decode(text: str, pos: int = 0) -> tuple[Any, int]:
    """Strict `JSONDecoder.raw_decode` (the first value at `pos`, and where it ends), refusing as `loads` does."""
    value, end = _strict(_DECODER.raw_decode, text, pos)
    return check_value(value), end


def _strict(decode: Any, *args: Any, **kwargs: Any) -> Any:
    """`decode(*args)` with every way the decoder can fail turned into one JsonValueError with a short reason."""
    try:
        return decode(*args, **kwargs)
    except JsonValueError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise JsonValueError("nested too deeply") from None
    except ValueError as exc:  # e.g. an integer beyond the interpreter's digit limit
        raise JsonValueError(f"not a usable JSON value ({str(exc).split(';')[0][:120]})") from None


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def split_lines(text: str) -> list[str]:
    """JSONL lines: split on "\\n" only (a "\\r" before it is dropped), never inside a JSON string."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, line) of a UTF-8 JSONL file, blank lines skipped."""
    text = Path(path).read_text(encoding="utf-8")
    for lineno, line in enumerate(split_lines(text), start=1):
        if line.strip():
            yield lineno, line


def read_records(path: str | Path, max_depth: int = MAX_DEPTH) -> list[Any]:
    """Every value of a JSONL file, or JsonValueError naming `file:line: why` at the first bad one."""
    out = []
    for lineno, line in iter_lines(path):
        try:
            out.append(loads(line, max_depth))
        except JsonValueError as exc:
            raise JsonValueError(f"{path}:{lineno}: {exc}") from None
    return out


def dumps(value: Any, **kwargs: Any) -> str:
    """`json.dumps` that never writes a non-JSON number (NaN, Infinity): it raises instead."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, **kwargs)
