"""Scoring one case: expected calls x parsed reply -> a result with a typed failure reason. Pure.

Failure reasons, the first that applies, in this order:

    expected calls                      expected []  (no tool)
    1. backend_error  no reply          1. backend_error
    2. invalid_json   malformed reply   2. invalid_json     malformed reply
    3. missing_call   fewer tools       3. unexpected_call  a valid call
       extra_call     more tools
       wrong_tool     other tools
    4. schema_error   a call fails its tool's JSON Schema
    5. param_mismatch:<param>   no assignment of calls to expected calls passes every matcher

Tools are compared as multisets; calls are matched to expected calls in any order by an exact
assignment (every permutation within a tool; n is tiny), never greedy first-fit.
"""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from harness.backends.options import flag
from harness.tasks.tool_call.cases import Case, ExpectedCall
from harness.tasks.tool_call.parse import Call, Outcome, ParsedReply, parse_reply
from harness.tasks.tool_call.parse_native import parse_native
from harness.tasks.tool_call.profiles import DEFAULT, Profile
from harness.tasks.tool_call.tools import Catalogue

REASONS = (
    "backend_error", "invalid_json", "unexpected_call", "missing_call", "extra_call",
    "wrong_tool", "schema_error", "param_mismatch",
)


@dataclass(frozen=True)
class CaseResult:
    case: Case
    response: str | None
    outcome: Outcome | None  # None: the backend gave no reply
    parsed: ParsedReply
    tools_right: bool
    valid_json: bool
    schema_valid: bool
    passed: bool
    reason: str | None
    details: tuple[str, ...] = ()
    error: str | None = None
    latency_s: float | None = None
    usage: dict[str, Any] | None = field(default=None)
    truncated: bool = False
    # How the reply was obtained (set by the run, not by scoring): requests sent, faults on the way, and
    # whether a secret in the reply was replaced by ***.
    attempts: int = 1
    faults: tuple[str, ...] = ()
    redacted: bool = False
    # Decoded under the reply grammar; a malformed reply that the budget did not cut off then means the grammar was
    # not enforced (a server that ignored it): said so, not counted silently as the model's own fault.
    constrained: bool = False
    constraint_violated: bool = False


def _schema_problems(calls: Sequence[Call], catalogue: Catalogue, profile: Profile) -> list[str]:
    problems = []
    for i, call in enumerate(calls):
        tool = catalogue.get(call.tool)
        if tool is None:
            problems.append(f"call {i + 1}: unknown tool {call.tool!r}")
            continue
        problems += [f"call {i + 1} {call.tool}: {e}" for e in tool.schema_errors(call.params, profile.strict_integers, profile.enums)]
    return problems


def _failed_params(expected: ExpectedCall, call: Call, profile: Profile) -> list[str]:
    """Names of the expected params this call does not satisfy, in the case's order."""
    return [
        name for name, matcher in expected.params.items()
        if not matcher.check(name in call.params, call.params.get(name), profile.fold)
    ]


def _best_assignment(expected: Sequence[ExpectedCall], calls: Sequence[Call],
                     profile: Profile) -> list[tuple[ExpectedCall, Call, list[str]]]:
    """The pairing of expected calls to calls (same tool) with the fewest failed matchers, in expected order."""
    chosen: dict[int, tuple[ExpectedCall, Call, list[str]]] = {}
    for tool in dict.fromkeys(e.tool for e in expected):
        exp = [i for i, e in enumerate(expected) if e.tool == tool]
        got = [c for c in calls if c.tool == tool]
        cost = [[_failed_params(expected[i], c, profile) for c in got] for i in exp]
        best = min(
            itertools.permutations(range(len(got))),
            key=lambda perm: sum(len(cost[k][j]) for k, j in enumerate(perm)),
        )
        for k, j in enumerate(best):
            chosen[exp[k]] = (expected[exp[k]], got[j], cost[k][j])
    return [chosen[i] for i in sorted(chosen)]


def _tool_reason(expected: Counter, got: Counter) -> str | None:
    if got == expected:
        return None
    if all(got[t] <= n for t, n in expected.items()) and set(got) <= set(expected):
        return "missing_call"
    if all(got[t] >= n for t, n in expected.items()):
        return "extra_call"
    return "wrong_tool"


def score(
    case: Case,
    response: str | None,
    catalogue: Catalogue,
    *,
    error: str | None = None,
    latency_s: float | None = None,
    usage: dict[str, Any] | None = None,
    truncated: bool = False,
    reply_format: str = "fenced",
    profile: Profile = DEFAULT,
) -> CaseResult:
    """Score one reply (or a backend failure, when `response` is None) against its case. A `truncated`
    reply (cut off at the token limit) is scored as it is; the failure details say it was cut off.
    `profile` changes only the rules it names (harness.tasks.tool_call.profiles); the default is the contract's."""
    tools = case.catalogue(catalogue)
    text = response if response is not None else ""
    # The parser is the format's; from here on the scorer never knows which format produced a call.
    parsed = parse_native(text, tools.names) if reply_format == "native" else parse_reply(text)
    if (profile.undecodable_is_no_call and not case.expected and not parsed.calls
            and not any(b.decoded for b in parsed.invalid)):
        parsed = ParsedReply(n_blocks=parsed.n_blocks)  # the profile reads an attempt that never decoded as no call
    outcome: Outcome | None = parsed.outcome if response is not None else None
    schema_problems = _schema_problems(parsed.calls, tools, profile)
    valid_json = outcome in ("call", "malformed") and not parsed.invalid
    schema_valid = bool(parsed.calls) and not schema_problems
    expected_tools = Counter(e.tool for e in case.expected)
    got_tools = Counter(c.tool for c in parsed.calls)
    if case.expected:
        tools_right = response is not None and got_tools == expected_tools
    else:
        tools_right = outcome == "abstention"

    reason, details = _reason(case, response, error, parsed, expected_tools, got_tools, schema_problems, profile)
    if truncated and reason is not None:
        details = [f"truncated: the reply was cut off at the token limit (raise {flag('max_new_tokens')})", *details]
    return CaseResult(
        case=case, response=response, outcome=outcome, parsed=parsed, tools_right=tools_right,
        valid_json=valid_json, schema_valid=schema_valid, passed=reason is None, reason=reason,
        details=tuple(details), error=error, latency_s=latency_s, usage=usage, truncated=truncated,
    )


def _reason(
    case: Case,
    response: str | None,
    error: str | None,
    parsed: ParsedReply,
    expected_tools: Counter,
    got_tools: Counter,
    schema_problems: list[str],
    profile: Profile,
) -> tuple[str | None, list[str]]:
    if response is None:
        return "backend_error", [error or "the backend returned no reply"]
    if parsed.invalid:
        return "invalid_json", [f"block {b.index + 1}: {b.reason}" for b in parsed.invalid]
    if not case.expected:
        if parsed.calls:
            return "unexpected_call", [f"called {', '.join(got_tools)} where no tool was expected"]
        return None, []
    tool_reason = _tool_reason(expected_tools, got_tools)
    if tool_reason:
        got = ", ".join(sorted(got_tools.elements())) or "no call"
        return tool_reason, [f"expected tools {', '.join(sorted(expected_tools.elements()))}; got {got}"]
    if schema_problems:
        return "schema_error", schema_problems
    for exp, call, failed in _best_assignment(case.expected, parsed.calls, profile):
        if failed:
            details = [
                f"{exp.tool}.{name}: expected {exp.params[name].describe()}, got "
                + (repr(call.params[name]) if name in call.params else "no such param")
                for name in failed
            ]
            return f"param_mismatch:{failed[0]}", details
    return None, []
