"""Converters from public function-calling data sets to this format and this system prompt.

Nothing is downloaded: each converter reads a local JSONL file in its data set's own record shape.
A call maps onto one of our ten tools by its function's purpose (name) and argument names; a
record with any call that cannot map is dropped, and every drop is counted with its reason.
"""
from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from harness import jsonl
from harness.isotime import parse_date, parse_datetime, parse_now
from harness.suite import resolve_suite
from harness.tasks.tool_call.cases import DEFAULT_NOW
from training.data.examples import call, make_example, reply
from training.data.validate import validate_example

Call = tuple[str, dict[str, Any]]
NOW = parse_now(DEFAULT_NOW)  # public records carry absolute dates; the default conversation time is as good as any

# (our tool, function-name pattern, {our param: their argument names})
TOOL_MAP: tuple[tuple[str, str, dict[str, tuple[str, ...]]], ...] = (
    ("getWeather", r"weather|forecast", {"location": ("location", "city", "place", "loc"), "date": ("date", "day")}),
    ("sendEmail", r"send_?e?mail|^email", {"to": ("to", "recipient", "email", "receiver", "recipient_email", "address"),
                                          "subject": ("subject", "title"),
                                          "body": ("body", "message", "content", "text")}),
    ("createTask", r"(create|add|new)_?(task|todo|to_do|reminder)|^remind", {
        "title": ("title", "task", "name", "task_name", "reminder", "text", "description"),
        "dueDate": ("due_date", "duedate", "deadline", "due", "date"),
        "priority": ("priority",)}),
    ("createCalendarEvent", r"(create|add|schedule|book)_?(calendar_?)?(event|meeting|appointment)", {
        "summary": ("summary", "title", "event_name", "event_title", "name", "subject"),
        "startTime": ("start_time", "starttime", "start", "start_datetime", "date_time", "datetime"),
        "endTime": ("end_time", "endtime", "end", "end_datetime"),
        "location": ("location", "place", "venue")}),
    ("listTasks", r"(get|list|show)_?(my_?)?(tasks|todos|todo_list)", {}),
)


@dataclass
class ConvertReport:
    source: str
    read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def line(self) -> str:
        why = "; ".join(f"{n} {r}" for r, n in self.dropped.most_common())
        return f"{self.source}: read {self.read}, kept {self.kept}, dropped {self.read - self.kept}" + (f" ({why})" if why else "")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).replace("-", "_").replace(".", "_").lower()


def map_call(name: str, args: dict[str, Any]) -> dict[str, Any] | str:
    """Our call for their function call, or the reason it has no counterpart."""
    fn = _snake(name)
    lowered = {_snake(k): v for k, v in args.items()}
    for tool, pattern, params in TOOL_MAP:
        if not re.search(pattern, fn):
            continue
        out: dict[str, Any] = {}
        for ours, theirs in params.items():
            value = next((lowered[t] for t in theirs if t in lowered and lowered[t] not in (None, "")), None)
            if value is not None:
                out[ours] = value if isinstance(value, str) else json.dumps(value) if ours != "priority" else value
        if tool == "createTask":
            priority = str(out.get("priority", "medium")).lower()
            out["priority"] = priority if priority in ("low", "medium", "high") else "medium"
        if tool == "sendEmail" and "subject" not in out and "body" in out:
            out["subject"] = out["body"].split(".")[0][:60]
        for key in ("date", "dueDate"):
            if key in out and parse_date(out[key]) is None and parse_datetime(out[key]) is None:
                return f"{tool}.{key} is not an ISO date"
        return call(tool, **out)
    return "no tool with this purpose"


def _example(source: str, index: int, user: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    kind = "multi_tool" if len(calls) > 1 else "single"
    return make_example([("user", user.strip()), ("assistant", reply(*calls))], now=NOW, kind=kind, source=source,
                        group=f"{source}/{index}")


def _convert(source: str, records: Iterable[Any],
             extract: Callable[[Any], tuple[str, list[Call]] | str]) -> tuple[list[dict], ConvertReport]:
    report = ConvertReport(source)
    assistant = resolve_suite()  # converters map public data onto the assistant suite's tools
    out: list[dict] = []
    for i, rec in enumerate(records):
        report.read += 1
        try:
            got = extract(rec)
        except (ValueError, KeyError, TypeError, IndexError, SyntaxError) as exc:
            got = f"unreadable record ({type(exc).__name__})"
        if isinstance(got, str):
            report.dropped[got] += 1
            continue
        user, raw_calls = got
        mapped = [map_call(name, args if isinstance(args, dict) else {}) for name, args in raw_calls]
        reason = next((m for m in mapped if isinstance(m, str)), None)
        if reason or not mapped:
            report.dropped[reason or "no call"] += 1
            continue
        ex = _example(source, i, user, mapped)  # type: ignore[arg-type]
        problems = validate_example(ex, assistant)
        if problems:
            report.dropped[f"fails validation ({problems[0].split(': ', 1)[-1][:60]})"] += 1
            continue
        out.append(ex)
        report.kept += 1
    return out, report


def _args(value: Any) -> dict[str, Any]:
    """Arguments that may be a dict, a JSON string, or a JSON string of a JSON string."""
    for _ in range(2):
        if isinstance(value, str):
            value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError("arguments are not an object")
    return value


def glaive(rec: dict[str, Any]) -> tuple[str, list[Call]] | str:
    """`chat`: USER:/ASSISTANT:/FUNCTION RESPONSE: turns; `<functioncall> {"name", "arguments": '<json>'}`."""
    turns = re.split(r"(USER:|ASSISTANT:|FUNCTION RESPONSE:)", rec["chat"])
    pairs = [(turns[i], turns[i + 1].strip()) for i in range(1, len(turns) - 1, 2)]
    user = next(text for role, text in pairs if role == "USER:")
    first_reply = next(text for role, text in pairs if role == "ASSISTANT:")
    if "<functioncall>" not in first_reply:
        return "no function call"
    body = first_reply.split("<functioncall>", 1)[1].replace("<|endoftext|>", "").strip()
    name = re.search(r'"name"\s*:\s*"([^"]+)"', body).group(1)  # type: ignore[union-attr]
    quoted = re.search(r"\"arguments\"\s*:\s*'(.*)'\s*}\s*$", body, re.S)
    args = json.loads(quoted.group(1)) if quoted else _args(json.loads(body).get("arguments", {}))
    return user, [(name, args)]


def xlam(rec: dict[str, Any]) -> tuple[str, list[Call]] | str:
    """`query`, `tools` (JSON string), `answers` (JSON string of [{name, arguments}])."""
    answers = json.loads(rec["answers"]) if isinstance(rec["answers"], str) else rec["answers"]
    return rec["query"], [(a["name"], _args(a.get("arguments", {}))) for a in answers]


def hermes(rec: dict[str, Any]) -> tuple[str, list[Call]] | str:
    """ShareGPT `conversations`; calls in `<tool_call>` tags as Python-dict text."""
    conv = rec["conversations"]
    user = next(t["value"] for t in conv if t["from"] == "human")
    gpt = next(t["value"] for t in conv if t["from"] == "gpt")
    blocks = re.findall(r"<tool_call>\s*(.*?)\s*</tool_call>", gpt, re.S)
    if not blocks:
        return "no function call"
    calls = [ast.literal_eval(b) for b in blocks]
    return user, [(c["name"], _args(c.get("arguments", {}))) for c in calls]


def apigen_mt(rec: dict[str, Any]) -> tuple[str, list[Call]] | str:
    """Multi-turn `conversations` with `function_call` turns (JSON {name, arguments}): the first
    user turn and the calls that answer it."""
    conv = rec["conversations"]
    first_user = next(i for i, t in enumerate(conv) if t["from"] == "human")
    calls: list[Call] = []
    for turn in conv[first_user + 1:]:
        if turn["from"] == "function_call":
            fc = json.loads(turn["value"]) if isinstance(turn["value"], str) else turn["value"]
            calls.append((fc["name"], _args(fc.get("arguments", {}))))
        elif calls or turn["from"] == "human":
            break
    return (conv[first_user]["value"], calls) if calls else "no function call"


def hypervariance(rec: dict[str, Any]) -> tuple[str, list[Call]] | str:
    """ShareGPT with `<functioncall> {...}` in the assistant text; arguments sometimes double-encoded."""
    conv = rec["conversations"]
    user = next(t["value"] for t in conv if t["from"] == "human")
    gpt = next(t["value"] for t in conv if t["from"] == "gpt")
    if "<functioncall>" not in gpt:
        return "no function call"
    fc = json.loads(gpt.split("<functioncall>", 1)[1].replace("<|endoftext|>", "").strip())
    return user, [(fc["name"], _args(fc.get("arguments", {})))]


CONVERTERS: dict[str, Callable[[Any], tuple[str, list[Call]] | str]] = {
    "glaive": glaive, "xlam": xlam, "hermes": hermes, "apigen-mt": apigen_mt, "hypervariance": hypervariance,
}


def convert_file(source: str, path: str | Path, limit: int | None = None) -> tuple[list[dict], ConvertReport]:
    """Convert a local JSONL (or JSON array) file of the named data set."""
    if source not in CONVERTERS:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(CONVERTERS)}")
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        records = jsonl.loads(text)
    else:
        records = [jsonl.loads(line) for line in jsonl.split_lines(text) if line.strip()]
    examples, report = _convert(source, records[:limit] if limit else records, CONVERTERS[source])
    return examples, report
