"""The tool-call task: a conversation in, one reply out, scored as a call, a malformed attempt or an abstention.

The one place that knows "native format => send the tools" (case_request) and the one that scores a reply as a
run of a suite scores it (score_reply): the engine, deploy verify and the benchmarks all come through here.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from harness.backends import Backend, Reply, Request
from harness.core.records import reply_from_record
from harness.core.task import Steps
from harness.grammar import Grammar, fenced_calls, native_calls
from harness.hashing import sha256_file
from harness.tasks.tool_call.cases import Case, load_case_file
from harness.tasks.tool_call.match import CaseResult, score
from harness.tasks.tool_call.metrics import DEFAULT_THRESHOLDS, GATEABLE, by_category, rates_block
from harness.tasks.tool_call.profiles import PROFILES
from harness.tasks.tool_call.prompt import build_messages, build_system_prompt
from harness.tasks.tool_call.summary import figures, format_failure

if TYPE_CHECKING:  # the suite is the front end's (harness.suite); a task only reads it
    from harness.suite import Suite


def case_request(case: Case, suite: Suite, key: str = "") -> Request:
    """The request a run of `suite` sends for `case`: the suite's prompt and, in the native format, the case's
    functions; with the grammar its reply must follow under constrained decoding."""
    native = suite.reply_format == "native"
    functions = case.catalogue(suite.catalogue).to_function_tools()
    return Request(case.id, tuple(build_messages(case, suite.catalogue, suite.template)), case.now,
                   tools=tuple(functions) if native else None, key=key, grammar=reply_grammar(functions, suite.reply_format))


@functools.lru_cache(maxsize=64)
def _grammar(reply_format: str, functions_json: str) -> Grammar:
    functions = json.loads(functions_json)
    return native_calls(functions) if reply_format == "native" else fenced_calls(functions)


def reply_grammar(functions: Sequence[Mapping[str, Any]], reply_format: str) -> Grammar:
    """What a reply may be in `reply_format` with these functions: a valid call (or several), or plain text."""
    return _grammar(reply_format, json.dumps(list(functions), sort_keys=True))


def score_reply(case: Case, reply: Reply, suite: Suite, profile: str = "default") -> CaseResult:
    """`reply` scored for `case` as a run of `suite` scores it (its catalogue and reply format)."""
    result = score(case, reply.text, suite.catalogue, error=reply.error, latency_s=reply.latency_s,
                   usage=dict(reply.usage) if reply.usage else None, truncated=reply.truncated,
                   reply_format=suite.reply_format, profile=PROFILES[profile])
    violated = reply.constrained and result.outcome == "malformed" and not reply.truncated
    return dataclasses.replace(result, attempts=reply.attempts, faults=tuple(reply.faults), redacted=reply.redacted,
                               constrained=reply.constrained, constraint_violated=violated)


def result_reply(result: CaseResult) -> Reply:
    """The reply a result was scored from (to score it again under another profile)."""
    return Reply(text=result.response, latency_s=result.latency_s, usage=result.usage, error=result.error,
                 truncated=result.truncated, attempts=result.attempts, faults=result.faults, redacted=result.redacted,
                 constrained=result.constrained)


def case_record(result: CaseResult) -> dict[str, Any]:
    """One line of cases.jsonl (the engine adds the format version); `id` + `response` make it a valid replay
    line too."""
    case = result.case
    return {
        "id": case.id,
        "category": case.category,
        "pair": case.pair,
        "source": f"{case.source}:{case.line}",
        "response": result.response,
        "outcome": result.outcome,
        "calls": [c.to_json() for c in result.parsed.calls],
        "invalid_blocks": [{"index": b.index, "reason": b.reason} for b in result.parsed.invalid],
        "expected": [{"tool": e.tool, "params": e.raw} for e in case.expected],
        "passed": result.passed,
        "reason": result.reason,
        "details": list(result.details),
        "tool_selection_ok": result.tools_right,
        "valid_json": result.valid_json,
        "schema_valid": result.schema_valid,
        "error": result.error,
        "latency_s": result.latency_s,
        "usage": result.usage,
        "truncated": result.truncated,
        "redacted": result.redacted,
        "attempts": result.attempts,
        "faults": list(result.faults),
        **({"constrained": True, "constraint_violated": result.constraint_violated} if result.constrained else {}),
    }



@dataclasses.dataclass(frozen=True)
class ToolCallTask:
    kind: str = "tool_call"
    gateable: tuple[str, ...] = GATEABLE
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=lambda: DEFAULT_THRESHOLDS)

    def backend_problem(self, model: str | None) -> str | None:
        return None if model else "the tool-call task needs --model"

    def asks_model(self) -> bool:
        return True

    def settings(self) -> dict[str, Any]:
        return {}

    def load_cases(self, path: Path, suite: Suite) -> tuple[str, str, list[Case]]:
        case_file = load_case_file(path, suite.catalogue, system_messages=suite.system_messages)
        return case_file.path, case_file.sha256, list(case_file.cases)

    def steps(self, case: Case, suite: Suite) -> Steps:
        reply = yield case_request(case, suite)
        return score_reply(case, reply, suite)

    def conversation_request(self, turns: Sequence[Mapping[str, str]], now: Any, suite: Suite) -> Request:
        tools = tuple(suite.catalogue.to_function_tools()) if suite.reply_format == "native" else None
        system = {"role": "system", "content": build_system_prompt(now, suite.catalogue, suite.template)}
        return Request("conversation", (system, *turns), now, tools=tools)

    def from_record(self, case: Case, record: Mapping[str, Any], suite: Suite) -> CaseResult | None:
        if not isinstance(record.get("response"), str):
            return None
        return score_reply(case, reply_from_record(dict(record)), suite)

    def from_shard(self, case: Case, record: Mapping[str, Any], suite: Suite) -> CaseResult:
        """A shard's record scored again, a failed request included (merge: the shard's verdict stands)."""
        return score_reply(case, reply_from_record(dict(record), missing="no reply in the shard"), suite)

    def _profiled(self, result: CaseResult, suite: Suite, name: str) -> CaseResult:
        return score_reply(result.case, result_reply(result), suite, name)

    def record(self, result: CaseResult, suite: Suite) -> dict[str, Any]:
        """cases.jsonl's line for a result, with its verdict under each of the suite's named profiles."""
        record = case_record(result)
        for name in suite.profiles:
            other = self._profiled(result, suite, name)
            record.setdefault("profiles", {})[name] = {"passed": other.passed, "reason": other.reason,
                                                       "details": list(other.details)}
        return record

    def summarize(self, results: Sequence[CaseResult], suite: Suite, backend: Backend | None) -> dict[str, Any]:
        measured = bool(backend and backend.measures_latency)
        summary = figures(results, suite.disambiguation_tools, measures_latency=measured)
        summary["profiles"] = {name: self._profile_block(results, suite, name) for name in suite.profiles}
        if summary.get("constraint_violations"):
            summary["run_problems"] = [{"metric": "constraint_violations", "message": (
                f"{summary['constraint_violations']} reply(ies) outside the reply grammar under constrained decoding: "
                "the backend did not enforce it, so these figures are not a constrained run's")}]
        if measured:
            assert backend is not None
            summary["latency_conditions"] = backend.latency_conditions()
        return summary

    def _profile_block(self, results: Sequence[CaseResult], suite: Suite, name: str) -> dict[str, Any]:
        """A named profile's figures over the same replies: every rate, and the case pass rate per category."""
        scored = [self._profiled(r, suite, name) for r in results]
        block = rates_block(scored, suite.disambiguation_tools)
        block["by_category"] = {c: rates["case_pass_rate"]
                                for c, rates in by_category(scored, suite.disambiguation_tools).items()}
        block["about"] = PROFILES[name].about
        return block

    def fingerprint(self, suite: Suite) -> dict[str, Any]:
        catalogue = suite.catalogue
        grammar = reply_grammar(catalogue.to_function_tools(), suite.reply_format) if catalogue.source else None
        return {"tools_sha256": sha256_file(catalogue.source) if catalogue.source else None,  # None: per case
                "reply_format": suite.reply_format, "tools_path": catalogue.source or None,
                # what --th-decoding constrained holds replies to (None: each case's own tools)
                "reply_grammar": {"sha256": grammar.sha256, "unconstrained": list(grammar.unconstrained)} if grammar else None}

    def describe_failure(self, result: CaseResult) -> str:
        return format_failure(result)

    def summary_lines(self, summary: Mapping[str, Any]) -> list[str] | None:
        return None
