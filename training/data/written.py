"""A training set for any suite, from examples a person wrote for their own tools.

    python -m training.data build --suite suites/orders --examples orders-examples.jsonl --out data/orders

An examples file is JSON Lines, one conversation per line, the conversation in the case-file form (roles
`user`, `assistant`, `tool`; earlier assistant turns already in the suite's reply format):

    {"messages": [{"role": "user", "content": "Where is order A-17?"}],
     "calls": [{"tool": "lookupOrder", "params": {"orderId": "A-17"}}], "say": "I'll look that order up."}
    {"messages": [{"role": "user", "content": "Thanks, that's all."}], "reply": "Glad to help."}

The answer to train on is `calls` (one or more) or `reply` (plain text: no tool fits). It is written in the
suite's reply format: fenced, `say` (default "I'll use <tool>.") then one json block per call; native, the
call object (a list for several). Optional: `now` (default the contract's date), `group` (variants of one
example share a group, so a split never separates them; default: the line), `kind` (default: no_tool for a
reply, multi_turn when the conversation has an assistant turn, multi_tool for several calls, else single).
The system prompt is the suite's; every example is checked with the harness's parser and the tools' schemas
(`python -m training.data validate --suite`) before anything is written, and the split drops near-copies of
the suite's own case prompts: the suite is the measure, never the target.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.isotime import parse_now
from harness.suite import Suite
from harness.tasks.tool_call.cases import DEFAULT_NOW
from harness.tasks.tool_call.parse import fence
from training.data.examples import KINDS, make_example
from training.data.validate import read_jsonl


class ExamplesError(ValueError):
    """An examples file that cannot be read as written; every problem as `file:line: field: why`."""


def render_answer(calls: Sequence[Mapping[str, Any]], say: str | None, reply_format: str) -> str:
    """The assistant's answer in the reply format the suite evaluates."""
    if reply_format == "native":
        objs = [{"name": c["tool"], "parameters": c["params"]} for c in calls]
        return json.dumps(objs[0] if len(objs) == 1 else objs, ensure_ascii=False)
    sentence = say or (f"I'll use {calls[0]['tool']}." if len(calls) == 1 else "I'll make these calls.")
    return sentence + "\n\n" + "\n\n".join(fence({"tool": c["tool"], "params": c["params"]}) for c in calls)


def _kind(rec: Mapping[str, Any]) -> str:
    if "reply" in rec:
        return "no_tool"
    if any(m.get("role") == "assistant" for m in rec["messages"]):
        return "multi_turn"
    return "multi_tool" if len(rec["calls"]) > 1 else "single"


def _problems(rec: Any) -> list[str]:
    """What keeps a record from being rendered (the rendered example is validated afterwards)."""
    if not isinstance(rec, dict):
        return [f": {rec}" if isinstance(rec, str) else ": not a JSON object"]
    why = []
    messages = rec.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant", "tool") and isinstance(m.get("content"), str)
            for m in messages):
        why.append(": messages: a non-empty list of {role: user|assistant|tool, content: string}")
    elif messages[-1]["role"] == "assistant":
        why.append(": messages: the conversation ends before the answer (its last turn is the assistant's)")
    if ("calls" in rec) == ("reply" in rec):
        why.append(": calls / reply: exactly one of them (calls to make, or a plain-text reply)")
    elif "calls" in rec and (not isinstance(rec["calls"], list) or not rec["calls"] or not all(
            isinstance(c, dict) and isinstance(c.get("tool"), str) and isinstance(c.get("params"), dict)
            for c in rec["calls"])):
        why.append(": calls: a non-empty list of {tool, params}")
    elif "reply" in rec and not (isinstance(rec["reply"], str) and rec["reply"].strip()):
        why.append(": reply: non-empty text")
    if "kind" in rec and rec["kind"] not in KINDS:
        why.append(f": kind: one of {', '.join(KINDS)}")
    for key in ("say", "group", "now"):
        if key in rec and not isinstance(rec[key], str):
            why.append(f": {key}: a string")
    return why


def read_examples(path: str | Path, suite: Suite) -> list[dict[str, Any]]:
    """The file's examples rendered for `suite` (system prompt, reply format); ExamplesError lists every bad line."""
    if not suite.catalogue.tools:
        raise ExamplesError(f"{path}: the suite has no catalogue of its own (its cases bring their tools); written "
                            "examples are for a suite with a tools.json")
    out, problems = [], []
    for line, rec in read_jsonl(path):
        why = _problems(rec)
        if not why:
            try:
                now = parse_now(rec.get("now", DEFAULT_NOW))
            except ValueError:
                why = [f": now: not an ISO 8601 date-time: {rec['now']!r}"]
        if why:
            problems += [f"{path}:{line}{w}" for w in why]
            continue
        answer = rec["reply"] if "reply" in rec else render_answer(rec["calls"], rec.get("say"), suite.reply_format)
        turns = [(m["role"], m["content"]) for m in rec["messages"]] + [("assistant", answer)]
        out.append(make_example(turns, now=now, kind=rec.get("kind") or _kind(rec), source=f"written:{Path(path).name}",
                                group=rec.get("group") or f"{Path(path).name}/{line}", suite=suite))
    if problems:
        raise ExamplesError("\n".join(problems))
    return out
