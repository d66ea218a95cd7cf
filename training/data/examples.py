"""One training example: a chat `messages` list (the harness's system prompt first) plus where it came from.

Replies are written in exactly the format the harness parses, from the same catalogue and the same
system-prompt builder, so training and evaluation cannot drift apart.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping, Sequence

from harness.isotime import parse_now
from harness.suite import Suite
from harness.suite import resolve_suite as assistant_suite
from harness.tasks.tool_call.parse import fence
from harness.tasks.tool_call.prompt import build_system_prompt

KINDS = ("single", "contrastive", "no_tool", "multi_turn", "multi_tool", "general")

# One acknowledgement per tool: a short sentence before the block(s), as the plan's format shows.
ACK = {
    "createTask": "I'll add that to your tasks.",
    "createCalendarEvent": "I'll put that on your calendar.",
    "getWeather": "I'll check the weather.",
    "sendEmail": "I'll send that email.",
    "listTasks": "I'll look up your tasks.",
    "updateTask": "I'll update that task.",
    "completeTask": "I'll mark that task as done.",
    "deleteTask": "I'll delete that task.",
    "updateCalendarEvent": "I'll update that event.",
    "deleteCalendarEvent": "I'll remove that event from your calendar.",
}
MULTI_ACK = "I'll take care of both."


def call(tool: str, **params: Any) -> dict[str, Any]:
    """A call with its params in the schema's order (stable text, whatever order the caller used)."""
    order = list(assistant_suite().catalogue.get(tool).params_schema.get("properties", {}))
    return {"tool": tool, "params": {k: params[k] for k in sorted(params, key=order.index)}}


def reply(*calls: Mapping[str, Any], ack: str | None = None) -> str:
    """The assistant's text for one or more calls: a sentence, then one fenced json block per call."""
    ack = ack or (ACK[calls[0]["tool"]] if len(calls) == 1 else MULTI_ACK)
    return ack + "\n\n" + "\n\n".join(fence(c) for c in calls)


def tool_result(tool: str, result: Mapping[str, Any]) -> str:
    """A `tool` turn's content, in docs/contract.md's shape."""
    return json.dumps({"tool": tool, "result": result}, ensure_ascii=False)


def make_example(
    turns: Sequence[tuple[str, str]],
    *,
    now: datetime,
    kind: str,
    source: str,
    group: str,
    suite: Suite | None = None,
) -> dict[str, Any]:
    """An example from (role, content) turns; the system prompt is the harness's for `now` and `suite` (the
    assistant suite, whose generator this module serves, unless another is given)."""
    suite = suite or assistant_suite()
    messages = [{"role": "system", "content": build_system_prompt(now, suite.catalogue, suite.template)}]
    messages += [{"role": role, "content": content} for role, content in turns]
    example = {"messages": messages, "now": now.isoformat().replace("+00:00", "Z"), "kind": kind,
               "source": source, "group": group}
    if suite.reply_format == "native":
        # Native tool calling: the chat template renders the tools too, at training exactly as at evaluation.
        example["tools"] = suite.catalogue.to_function_tools()
    return example


def example_now(example: Mapping[str, Any]) -> datetime:
    return parse_now(example["now"])

