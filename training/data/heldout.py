"""A data split as a case file, so the harness scores the adapter on held-out training-style examples too.

    python -m training.data cases --data data/v1 --split holdout --out reports/holdout.jsonl

The golden suite is the measure; the held-out split says how far the adapter generalises within the data's own
distribution. A large gap between the two is shown, never tuned away. Each example becomes one case: the turns
before the final assistant reply are the case's messages (the harness adds the system prompt for the example's
`now`), and the final reply's calls are the expected calls. Expected values are matched by the rule a golden
case writer follows: dates and times by value, enums, numbers, ids and booleans exactly, and free text only where
the user's own words hold it, ids exactly where an earlier tool result gave them (a subject the data invented is
not something a model can be scored on, so it is left out of the expected call; the schema still checks it).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from harness.isotime import parse_date, parse_datetime
from harness.tasks.tool_call.parse import parse_reply
from harness.tasks.tool_call.tools import Catalogue

KIND_TO_CATEGORY = {"single": "single", "contrastive": "contrastive", "no_tool": "no_tool", "general": "no_tool",
                    "multi_tool": "multi_tool", "multi_turn": "multi_turn"}


class NotACase(ValueError):
    """An example that cannot be a case (no final assistant reply, or a reply that is not a valid call set)."""


def matcher_for(value: Any, schema: Mapping[str, Any], user_text: str, tool_text: str) -> Any | None:
    """The matcher for one expected value, or None where the value cannot be scored (free text the data invented)."""
    if parse_date(value) is not None:
        return {"date": value}
    if parse_datetime(value) is not None:
        return {"datetime": value}
    if isinstance(value, str) and "enum" not in schema:
        if value in tool_text:
            return value  # an id an earlier tool result gave: exactly
        return {"contains": value} if value.casefold() in user_text.casefold() else None
    return value


def example_to_case(example: Mapping[str, Any], catalogue: Catalogue, case_id: str) -> dict[str, Any]:
    """One training example as a case line (a dict in the golden case format)."""
    messages = [m for m in example["messages"] if m["role"] != "system"]
    if not messages or messages[-1]["role"] != "assistant":
        raise NotACase("the example does not end with an assistant reply")
    turns, final = messages[:-1], messages[-1]["content"]
    parsed = parse_reply(final)
    if parsed.outcome == "malformed":
        raise NotACase("its final reply holds a block that is not a valid call")
    user_text = "\n".join(m["content"] for m in turns if m["role"] == "user")
    tool_text = "\n".join(m["content"] for m in turns if m["role"] == "tool")
    expected = []
    for call in parsed.calls:
        tool = catalogue.get(call.tool)
        if tool is None:
            raise NotACase(f"its final reply calls {call.tool!r}, which the catalogue does not have")
        params = {}
        for name, value in call.params.items():
            schema = tool.param_schema(name) if name in tool.param_names else {}
            matcher = matcher_for(value, schema, user_text, tool_text)
            if matcher is not None:
                params[name] = matcher
        expected.append({"tool": call.tool, "params": params})
    category = KIND_TO_CATEGORY.get(str(example.get("kind")), "multi_tool" if len(expected) > 1 else "single")
    if not expected:
        category = "no_tool"
    case: dict[str, Any] = {"id": case_id, "category": category, "messages": turns, "expected": expected}
    if example.get("now"):
        case["now"] = example["now"]
    if example.get("group"):
        case["source"] = f"data group {example['group']}"
    return case


def split_to_cases(examples: Iterable[Mapping[str, Any]], catalogue: Catalogue, prefix: str,
                   limit: int | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """(cases, the reasons examples were left out); ids are `<prefix>-<n>` in the split's order."""
    cases: list[dict[str, Any]] = []
    skipped: list[str] = []
    for n, example in enumerate(examples, start=1):
        if limit is not None and len(cases) >= limit:
            break
        try:
            cases.append(example_to_case(example, catalogue, f"{prefix}-{n:04d}"))
        except NotACase as exc:
            skipped.append(f"example {n}: {exc}")
    return cases, skipped


def spread(examples: Sequence[Mapping[str, Any]], n: int) -> list[Mapping[str, Any]]:
    """Up to n examples, in the split's order: each kind keeps its share of the split (largest remainders), and
    within a kind the phrasing groups take turns, so a subset holds as many different phrasings as it can (a
    subset taken by position repeats the few groups that hold most examples)."""
    if n >= len(examples):
        return list(examples)
    kinds: dict[Any, dict[Any, list[int]]] = {}
    for i, ex in enumerate(examples):
        kinds.setdefault(ex.get("kind"), {}).setdefault(ex.get("group", i), []).append(i)
    sizes = {k: sum(map(len, groups.values())) for k, groups in kinds.items()}
    exact = {k: n * size / len(examples) for k, size in sizes.items()}
    quota = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: quota[k] - exact[k])[:n - sum(quota.values())]:
        quota[k] += 1
    chosen: list[int] = []
    for k, groups in kinds.items():
        queues = list(groups.values())
        taken = 0
        for turn in range(max(map(len, queues))):
            for q in queues:
                if taken < quota[k] and turn < len(q):
                    chosen.append(q[turn])
                    taken += 1
    return [examples[i] for i in sorted(chosen)]
