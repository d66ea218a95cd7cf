"""Zero-tolerance validation of training examples, with the harness's own parser, schemas and prompt."""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness import jsonl
from harness.isotime import parse_date, parse_datetime, parse_now
from harness.suite import Suite
from harness.tasks.tool_call.parse import ParsedReply, parse_reply
from harness.tasks.tool_call.parse_native import parse_native
from harness.tasks.tool_call.prompt import build_system_prompt
from harness.tasks.tool_call.tools import Catalogue
from training.data.examples import KINDS

ROLES = ("system", "user", "assistant", "tool")
PLAIN_KINDS = ("no_tool", "general")
# Which params hold dates: a date or date-time, or a date-time only.
DATE_OR_DATETIME = ("dueDate", "dueBefore", "date")
DATETIME_ONLY = ("startTime", "endTime")


def _date_problem(name: str, value: Any) -> str | None:
    if name in DATETIME_ONLY and parse_datetime(value) is None:
        return f"{name} {value!r} is not an ISO 8601 date-time (YYYY-MM-DDTHH:MM)"
    if name in DATE_OR_DATETIME and parse_date(value) is None and parse_datetime(value) is None:
        return f"{name} {value!r} is not an ISO 8601 date or date-time"
    return None


def parse_in(suite: Suite | None, content: str) -> ParsedReply:
    """An assistant turn read in the suite's reply format (fenced without a suite: the assistant suite's)."""
    if suite is not None and suite.reply_format == "native":
        return parse_native(content, suite.catalogue.names)
    return parse_reply(content)


def final_calls(ex: Mapping[str, Any], suite: Suite | None = None) -> tuple:
    """The calls of an example's final reply."""
    return parse_in(suite, ex["messages"][-1]["content"]).calls


def validate_example(ex: Any, suite: Suite) -> list[str]:
    """Every rule this example breaks against `suite`'s catalogue and prompt (empty when it is fit to train on)."""
    catalogue = suite.catalogue
    if not isinstance(ex, dict):
        return ["not a JSON object"]
    problems: list[str] = []
    kind = ex.get("kind")
    if kind not in KINDS:
        problems.append(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    try:
        now = parse_now(ex.get("now", ""))
    except (ValueError, TypeError):
        return problems + [f"now {ex.get('now')!r} is not an ISO 8601 date-time"]
    messages = ex.get("messages")
    if not isinstance(messages, list) or len(messages) < 3:
        return problems + ["messages must be a list: system, then the conversation, ending with the assistant"]
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return problems + [f"messages[{i}]: needs a role ({', '.join(ROLES)}) and string content"]
    if messages[0]["role"] != "system" or messages[0]["content"] != build_system_prompt(now, catalogue, suite.template):
        problems.append("messages[0]: the system prompt is not byte-identical to the harness's for this 'now'")
    if suite.reply_format == "native" and ex.get("tools") != catalogue.to_function_tools():
        problems.append("tools: a native-format example carries the suite's tools (the template renders them)")
    if any(m["role"] == "system" for m in messages[1:]):
        problems.append("only the first message may be the system prompt")
    if messages[-1]["role"] != "assistant":
        problems.append("the last message must be the assistant's reply (the training target)")
    users = [(i, m) for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        problems.append("no user turn: an example answers what a user asked")
    for i, m in users:
        if not m["content"].strip():
            problems.append(f"messages[{i}] (user): empty")
        elif _looks_like_a_call(m["content"], suite):
            problems.append(f"messages[{i}] (user): holds a tool call; calls belong in assistant turns")
    seen_results: list[str] = []
    pending: list[str] = []  # the tools called by the latest assistant turn that no tool result has answered yet
    for i, m in enumerate(messages[1:], start=1):
        if m["role"] == "tool":
            problems += _tool_turn_problems(i, m["content"], pending)
            seen_results.append(m["content"])
        elif m["role"] == "assistant":
            problems += _assistant_problems(i, m["content"], suite, seen_results, now)
            pending = [c.tool for c in parse_in(suite, m["content"]).calls]
        elif m["role"] == "user":
            pending = []
    final = parse_in(suite, messages[-1]["content"]) if messages[-1]["role"] == "assistant" else None
    if final is not None and kind in PLAIN_KINDS and (final.outcome != "abstention"
                                                      or _looks_like_a_call(messages[-1]["content"], suite)):
        problems.append(f"kind {kind}: the final reply must be plain text with no call (in any format)")
    if final is not None and kind in KINDS and kind not in PLAIN_KINDS and final.outcome != "call":
        problems.append(f"kind {kind}: the final reply must call a tool")
    if final is not None and final.outcome == "call":
        n = len(final.calls)
        if kind in ONE_CALL_KINDS and n != 1:
            problems.append(f"kind {kind}: the final reply must make exactly one call, not {n}")
        if kind == "multi_tool" and n < 2:
            problems.append(f"kind multi_tool: the final reply must make two or more calls, not {n}")
    return problems


ONE_CALL_KINDS = ("single", "contrastive")
_ANY_FENCE = re.compile(r"```\s*json", re.IGNORECASE)


def _looks_like_a_call(content: str, suite: Suite) -> bool:
    """A call in any format the harness or a model might write: a fenced json block in any letter case, or the
    native `{"name": ...}` JSON (which a fenced-format scorer would not count, so plain text could hide one)."""
    if _ANY_FENCE.search(content):
        return True
    return parse_native(content, suite.catalogue.names).outcome != "abstention" or parse_reply(content).n_blocks > 0


def _tool_turn_problems(i: int, content: str, pending: list[str]) -> list[str]:
    """A tool result must be JSON `{"tool", "result"}` and answer a call the assistant just made, by that tool's
    name (each call answered once); `pending` loses the call it answers."""
    try:
        obj = jsonl.loads(content)
    except ValueError:
        return [f"messages[{i}] (tool): content is not JSON"]
    if not isinstance(obj, dict) or not isinstance(obj.get("tool"), str) or "result" not in obj:
        return [f"messages[{i}] (tool): content must be {{\"tool\": ..., \"result\": ...}}"]
    if not pending:
        return [f"messages[{i}] (tool): a result of {obj['tool']!r} with no call before it"]
    if obj["tool"] not in pending:
        return [f"messages[{i}] (tool): a result of {obj['tool']!r}, but the call before it was "
                f"{' and '.join(map(repr, pending))}"]
    pending.remove(obj["tool"])
    return []


def _time_problems(tool: str, params: Mapping[str, Any], now: datetime) -> list[str]:
    """Dates that cannot be meant: a due date, a date or a start/end more than a day before the example's `now`,
    and an end before its start."""
    problems = []
    for name in ("dueDate", "date", "startTime", "endTime"):
        value = params.get(name)
        day = _day(value)
        if day is not None and day < now.date() - timedelta(days=1):
            problems.append(f"{tool}.{name} {value!r} is before the example's now ({now.date().isoformat()})")
    start, end = parse_datetime(params.get("startTime")), parse_datetime(params.get("endTime"))
    if start is not None and end is not None and end.local < start.local:
        problems.append(f"{tool}.endTime {params['endTime']!r} is before its startTime {params['startTime']!r}")
    return problems


def _day(value: Any) -> date | None:
    stamp = parse_datetime(value)
    return stamp.local.date() if stamp is not None else parse_date(value)


def _assistant_problems(i: int, content: str, suite: Suite, results: list[str], now: datetime) -> list[str]:
    catalogue: Catalogue = suite.catalogue
    parsed = parse_in(suite, content)
    at = f"messages[{i}] (assistant)"
    problems = [f"{at}: call {b.index + 1}: {b.reason}" for b in parsed.invalid]
    for call in parsed.calls:
        tool = catalogue.get(call.tool)
        if tool is None:
            problems.append(f"{at}: unknown tool {call.tool!r}")
            continue
        problems += [f"{at}: {call.tool} params: {e}" for e in tool.schema_errors(call.params)]
        problems += [f"{at}: {why}" for why in _time_problems(call.tool, call.params, now)]
        for name, value in call.params.items():
            bad_date = _date_problem(name, value)
            if bad_date:
                problems.append(f"{at}: {call.tool}.{bad_date}")
            if name.endswith("Id") and isinstance(value, str) and not any(json.dumps(value) in r for r in results):
                problems.append(f"{at}: {call.tool}.{name} {value!r} appears in no earlier tool result")
    if suite.reply_format == "fenced" and parsed.outcome == "call" and not content.split("```json")[0].strip():
        problems.append(f"{at}: say what you will do in a sentence before the json block")
    return problems


def validate_records(records: Iterable[tuple[int, Any]], path: str, suite: Suite) -> list[str]:
    """`file:line: problem` for every bad record."""
    return [
        f"{path}:{line}: {p}"
        for line, ex in records
        for p in ([ex] if isinstance(ex, str) else validate_example(ex, suite))
    ]


def read_jsonl(path: str | Path) -> list[tuple[int, Any]]:
    """(line number, parsed record) per non-blank line; a line that is not JSON becomes its error string."""
    out: list[tuple[int, Any]] = []
    for lineno, line in jsonl.iter_lines(path):
        try:
            out.append((lineno, jsonl.loads(line)))
        except jsonl.JsonValueError as exc:
            out.append((lineno, str(exc)))
    return out


def read_examples(path: str | Path) -> list[Any]:
    """The records of a JSONL file; ValueError naming `file:line` at the first line that is not JSON."""
    records = read_jsonl(path)
    bad = next((f"{path}:{line}: {rec}" for line, rec in records if isinstance(rec, str)), None)
    if bad:
        raise ValueError(bad)
    return [rec for _, rec in records]


def validate_file(path: str | Path, suite: Suite) -> list[str]:
    return validate_records(read_jsonl(path), str(path), suite)


def check_examples(examples: Iterable[Mapping[str, Any]], where: str, suite: Suite) -> None:
    """Raise ValueError listing every bad example (used by build before it writes anything)."""
    problems = validate_records(list(enumerate(examples, start=1)), where, suite)
    if problems:
        raise ValueError(f"{len(problems)} problem(s) in {where}:\n" + "\n".join(problems[:30]))
