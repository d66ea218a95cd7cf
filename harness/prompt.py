"""The ONE system-prompt builder. Training data imports it too, so train and eval prompts are byte-identical."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from harness.cases import Case
from harness.tools import Catalogue

REPLY_FORMAT = """\
## Reply format
When a tool fits the request, reply with one short sentence saying what you will do, then one fenced json block per call, exactly like this:

```json
{"tool": "createTask", "params": {"title": "Call John", "dueDate": "2026-02-25", "priority": "medium"}}
```

- Use only the tools above, only their params, and every required param.
- Write dates as YYYY-MM-DD and date-times as YYYY-MM-DDTHH:MM, resolved against the current date and time.
- To change, complete or remove an existing task or event, use its id from earlier in the conversation.
- When two things are asked, write two blocks.
- When no tool fits (small talk, thanks, questions about what you can do, facts these tools cannot give, or a request too vague to act on), answer in plain text with no json block."""

# The model family's own tool-call form (Llama 3.x): the reply is the JSON call and nothing else.
NATIVE_REPLY_FORMAT = """## Reply format
When a tool fits the request, reply with only a JSON object for the call, with its name and its parameters, exactly like this:
{"name": "createTask", "parameters": {"title": "Call John", "dueDate": "2026-02-25", "priority": "medium"}}

- Use only the tools above, only their params, and every required param.
- Write dates as YYYY-MM-DD and date-times as YYYY-MM-DDTHH:MM, resolved against the current date and time.
- To change, complete or remove an existing task or event, use its id from earlier in the conversation.
- When two things are asked, reply with a JSON list of the two call objects.
- When no tool fits (small talk, thanks, questions about what you can do, facts these tools cannot give, or a request too vague to act on), answer in plain text, with no JSON."""
REPLY_FORMATS = {"fenced": REPLY_FORMAT, "native": NATIVE_REPLY_FORMAT}


def time_zone_name(now: datetime) -> str:
    offset = now.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return "UTC"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def build_system_prompt(now: datetime, catalogue: Catalogue, reply_format: str = "fenced") -> str:
    """The system prompt for a conversation happening at `now` (aware datetime), listing `catalogue`, asking
    for replies in `reply_format` (the contract's fenced blocks unless a suite says native)."""
    lines = [
        "You are a personal assistant. You act for the user by calling tools.",
        "",
        f"Current date and time: {now.strftime('%A')}, {now.strftime('%Y-%m-%d %H:%M')} "
        f"(time zone: {time_zone_name(now)}).",
        "",
        "## Tools",
        _tools_section(catalogue),
    ]
    return "\n".join(lines) + REPLY_FORMATS[reply_format]


_SECTIONS: dict[int, tuple[Catalogue, str]] = {}


def _tools_section(catalogue: Catalogue) -> str:
    """Each tool's summary and schema; rendered once per catalogue (a 10k-case run builds 10k prompts)."""
    hit = _SECTIONS.get(id(catalogue))
    if hit is not None and hit[0] is catalogue:
        return hit[1]
    lines = []
    for tool in catalogue.tools:
        schema = json.dumps(tool.params_schema, separators=(",", ":"), ensure_ascii=False)
        lines += [f"### {tool.name}", tool.summary, f"params (JSON Schema): {schema}", ""]
    _SECTIONS[id(catalogue)] = (catalogue, "\n".join(lines))
    return _SECTIONS[id(catalogue)][1]


def build_messages(case: Case, catalogue: Catalogue, reply_format: str = "fenced") -> list[dict[str, str]]:
    """The full message list a backend sees: the system prompt first, then the case's conversation."""
    return [{"role": "system", "content": build_system_prompt(case.now, case.catalogue(catalogue), reply_format)}] + [
        dict(m) for m in case.messages
    ]

