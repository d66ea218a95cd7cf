"""BFCL (Berkeley Function-Calling Leaderboard) data -> a suite this harness runs.

    python -m harness bfcl import BFCL_v4_simple_python.json [possible_answer/BFCL_v4_simple_python.json] \
        --out suites/bfcl-simple

Each BFCL entry becomes a case with its own functions (BFCL gives every entry its own), its id as the case
id, and expected calls from the answer file: a parameter's list of acceptable values becomes a plain value
or `any_of`, an acceptable object becomes a per-key `fields` matcher (BFCL matches objects key by key), and
BFCL's "" entry ("this optional parameter may be left out") becomes `{"present": false}`; a parameter the
function defines but the answer does not name must be left out (BFCL fails it as unexpected).
BFCL's parameter types become JSON Schema (`dict` -> object with `additionalProperties: false`, `float` ->
number, `tuple` -> array, `any` -> no type). Irrelevance entries have no answer and expect no call.
An entry this harness cannot express exactly is left out and listed with its reason in the suite's
README, never silently approximated: a list of objects, a multi-turn or relevance entry, or an expectation
the converted schema refuses (BFCL's answers sometimes allow `null` or a value outside the enum it declares).

The suite's `suite.toml` asks for the native reply format and the `bfcl` scoring profile, so every run shows
BFCL's figures beside this harness's stricter default ones.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness import jsonl
from harness.suite import resolve_suite
from harness.tasks.tool_call.cases import CaseFileError, load_case_file

TYPES = {"dict": "object", "float": "number", "tuple": "array", "integer": "integer", "string": "string",
         "boolean": "boolean", "array": "array", "number": "number", "object": "object"}


class Unsupported(ValueError):
    """An entry this harness cannot express exactly."""


def json_schema(bfcl: Any) -> Any:
    """BFCL's parameter schema as JSON Schema (draft 2020-12)."""
    if not isinstance(bfcl, dict):
        return bfcl
    out: dict[str, Any] = {}
    for key, value in bfcl.items():
        if key == "type":
            if value != "any":
                if value not in TYPES:
                    raise Unsupported(f"parameter type {value!r}")
                out["type"] = TYPES[value]
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: json_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out["items"] = json_schema(value)
        elif key in ("description", "enum", "required", "default"):
            out[key] = value
    if out.get("type") == "object" and "properties" in out:
        out["additionalProperties"] = False  # BFCL fails a parameter beyond the listed ones
    return out


def _value(value: Any) -> Any:
    """One acceptable value as a matcher: an object matched key by key, anything else as it is."""
    if isinstance(value, dict):
        if not value:
            raise Unsupported("an acceptable value is an empty object")
        return {"fields": {k: _matcher(v if isinstance(v, list) else [v]) for k, v in value.items()}}
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        raise Unsupported("an acceptable value is a list of objects")
    return value


def _matcher(values: list[Any]) -> Any:
    optional = "" in values
    options: list[Any] = [_value(v) for v in values if v != ""]
    alternatives = options + ([{"present": False}] if optional else [])
    if not alternatives:
        raise Unsupported("a parameter with no acceptable value")
    return alternatives[0] if len(alternatives) == 1 else {"any_of": alternatives}


def category(entry_id: str) -> str:
    """This harness's category for a BFCL id: irrelevance -> no_tool, parallel -> multi_tool, else single."""
    if "irrelevance" in entry_id:
        return "no_tool"
    if "relevance" in entry_id:
        raise Unsupported("a relevance entry (any call passes; no expectation here says that)")
    return "multi_tool" if "parallel" in entry_id else "single"


def to_case(entry: dict[str, Any], answer: dict[str, Any] | None) -> dict[str, Any]:
    """One BFCL entry (and its possible answer) as a case line; raises Unsupported."""
    turns = entry["question"]
    if len(turns) != 1:
        raise Unsupported("a multi-turn entry")
    kind = category(entry["id"])
    tools = [{"type": "function", "function": {"name": f["name"], "description": f.get("description", ""),
                                               "parameters": json_schema(f.get("parameters", {"type": "dict"}))}}
             for f in entry["function"]]
    expected = []
    if kind != "no_tool":
        if answer is None:
            raise Unsupported("no possible answer for it")
        defined = {t["function"]["name"]: t["function"]["parameters"].get("properties", {}) for t in tools}
        for call in answer["ground_truth"]:
            (name, params), = call.items()
            matchers = {p: _matcher(v) for p, v in params.items()}
            # BFCL fails a parameter the answer does not name, even one the function defines.
            matchers.update({p: {"present": False} for p in defined.get(name, {}) if p not in params})
            expected.append({"tool": name, "params": matchers})
    return {"id": entry["id"], "category": kind, "messages": [dict(m) for m in turns[0]], "tools": tools,
            "expected": expected}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return jsonl.read_records(path)


def import_suite(data: Path, answers: Path | None, out: Path) -> dict[str, Any]:
    """Write `out` as a suite (cases.jsonl, suite.toml, README.md); returns what was kept and left out."""
    by_id = {a["id"]: a for a in _read_jsonl(answers)} if answers else {}
    cases, left_out = [], {}
    for entry in _read_jsonl(data):
        try:
            cases.append(to_case(entry, by_id.get(entry["id"])))
        except Unsupported as exc:
            left_out[entry["id"]] = str(exc)
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite.toml").write_text(
        "# A BFCL suite: every case brings its own functions; live entries their system message.\n"
        "[cases]\nsystem_messages = true\nown_tools = true\n\n[reply]\nformat = \"native\"\n\n"
        "# BFCL's own checking rules, reported beside this harness's default figures.\n"
        "[scoring]\nprofiles = [\"bfcl\"]\n", encoding="utf-8")
    path = out / "cases.jsonl"
    # Expectations the converted schemas refuse (an answer of another type) are left out, named, and the rest kept.
    suite = resolve_suite([out])
    while True:
        path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
        try:
            load_case_file(path, suite.catalogue, system_messages=True)
            break
        except CaseFileError as exc:
            bad = {p.line for p in exc.problems}
            for line in sorted(bad, reverse=True):
                case = cases.pop(line - 1)
                left_out[case["id"]] = next(f"{p.field}: {p.message}" for p in exc.problems if p.line == line)
            if not cases:
                break
    notes = "".join(f"- `{i}`: {why}\n" for i, why in sorted(left_out.items()))
    (out / "README.md").write_text(
        f"# BFCL suite from {data.name}\n\nImported by `python -m harness bfcl import` from the Berkeley Function-Calling "
        f"Leaderboard data (github.com/ShishirPatil/gorilla, berkeley-function-call-leaderboard; Apache License 2.0).\n"
        f"Answers: {answers.name if answers else 'none (irrelevance entries expect no call)'}.\n\n"
        f"{len(cases)} cases kept, {len(left_out)} left out" + (":\n\n" + notes if notes else ".\n"), encoding="utf-8")
    return {"kept": len(cases), "left_out": left_out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness bfcl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("import", help="a BFCL data file (and its possible_answer file) -> a suite folder")
    p.add_argument("data", type=Path)
    p.add_argument("answers", type=Path, nargs="?")
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    report = import_suite(args.data, args.answers, args.out)
    print(f"{args.out}: {report['kept']} cases, {len(report['left_out'])} left out (see {args.out / 'README.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
