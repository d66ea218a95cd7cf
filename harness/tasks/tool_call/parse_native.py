"""Reply text in a model family's native tool-call form -> calls. Never raises.

Llama 3.x answers a tool call with JSON, optionally after `<|python_tag|>`: `{"name": ..., "parameters": {...}}`,
several as a JSON list or as objects one after another (separated by `;`, `,` or white space). `arguments`
is read like `parameters`, as an object or as a string holding one (the OpenAI wire form).

The three outcomes hold as in the fenced format: a reply whose first character (after the tag and white
space) is `{` or `[` is a call attempt, and every object in it must be a valid call of a known function, or
the reply is malformed; any other reply is plain text, an abstention.
"""
from __future__ import annotations

import json
from typing import Any, Collection

from harness import jsonl
from harness.tasks.tool_call.parse import Call, InvalidBlock, Outcome, ParsedReply

PYTHON_TAG = "<|python_tag|>"


def _objects(text: str) -> tuple[list[Any], str | None]:
    """The JSON values in `text`, one after another; and the reason the rest could not be read, if any."""
    values: list[Any] = []
    pos = 0
    while True:
        while pos < len(text) and (text[pos].isspace() or text[pos] in ";,"):
            pos += 1
        if pos >= len(text):
            return values, None
        try:
            value, pos = jsonl.raw_decode(text, pos)
        except jsonl.JsonValueError as exc:
            return values, f"not JSON: {str(exc)[:120]}"
        values.extend(value if isinstance(value, list) else [value])


def to_call(obj: Any, known: Collection[str]) -> Call | tuple[str, bool]:
    """A Call from one native call object, or why it is not one and whether it decoded as a call object
    at all (a well-formed call of an unknown function did)."""
    if not isinstance(obj, dict):
        return f"JSON {type(obj).__name__}, not a call object", False
    name = obj.get("name")
    if not isinstance(name, str):
        return "no string 'name'", False
    args = obj["parameters"] if "parameters" in obj else obj.get("arguments", {})
    if isinstance(args, str):
        try:
            args = jsonl.loads(args)
        except jsonl.JsonValueError:
            return "arguments are not valid JSON", False
    if not isinstance(args, dict):
        return "parameters are not an object", False
    if name not in known:
        return f"no function named {name!r}", True
    return Call(tool=name, params=args)


def parse_native(text: str, known: Collection[str]) -> ParsedReply:
    """Classify a native reply as call / malformed / abstention and extract its valid calls; `known` are the
    function names a call may use (a call of another is malformed)."""
    if not isinstance(text, str):
        text = ""
    body = text.strip()
    if body.startswith(PYTHON_TAG):
        body = body[len(PYTHON_TAG):].lstrip()
    elif not body.startswith(("{", "[")):
        return ParsedReply()
    values, rest = _objects(body)
    calls: list[Call] = []
    invalid: list[InvalidBlock] = []
    for i, value in enumerate(values):
        got = to_call(value, known)
        if isinstance(got, Call):
            calls.append(got)
        else:
            reason, decoded = got
            invalid.append(InvalidBlock(index=i, content=json.dumps(value, ensure_ascii=False)[:500], reason=reason,
                                        decoded=decoded))
    if rest is not None or not values:
        invalid.append(InvalidBlock(index=len(values), content=body[:500], reason=rest or "no call object"))
    outcome: Outcome = "malformed" if invalid else "call"
    return ParsedReply(calls=tuple(calls), invalid=tuple(invalid), n_blocks=len(values) + (rest is not None),
                       outcome=outcome)
