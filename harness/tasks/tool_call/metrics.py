"""Results -> the rates, intervals and tables of docs/contract.md. Pure."""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Callable, Iterable, Sequence

from harness.gate import THRESHOLDS_PATH, Threshold, read_default_thresholds
from harness.stats import percentile, wilson  # noqa: F401  (re-exported: the figures' intervals)
from harness.tasks.tool_call.cases import CATEGORIES
from harness.tasks.tool_call.match import CaseResult

RATE_KEYS = (
    "case_pass_rate", "tool_selection_accuracy", "valid_json_rate", "schema_valid_rate",
    "disambiguation_accuracy", "pair_accuracy", "no_tool_accuracy", "no_tool_precision",
)
GATEABLE = RATE_KEYS + ("latency_p50_s", "latency_p95_s")
# docs/contract.md's "Default thresholds", from their data file
DEFAULT_THRESHOLDS: dict[str, Threshold] = read_default_thresholds(THRESHOLDS_PATH)


def _over(results: Iterable[CaseResult], where: Callable[[CaseResult], bool], ok: Callable[[CaseResult], bool]) -> tuple[int, int]:
    chosen = [r for r in results if where(r)]
    return sum(1 for r in chosen if ok(r)), len(chosen)


def _pair_groups(results: Sequence[CaseResult]) -> tuple[list[list[CaseResult]], int]:
    """(contrastive groups all of whose members ran, how many groups ran only in part). Groups are per case
    file; a group missing a member (a subset run: -k, --lf, ...) is not a group result at all."""
    groups: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for r in results:
        if r.case.pair is not None:
            groups[(r.case.source, r.case.pair)].append(r)
    whole = [m for m in groups.values() if len(m) >= m[0].case.pair_size]
    return whole, len(groups) - len(whole)


def _pair_counts(results: Sequence[CaseResult]) -> tuple[int, int]:
    whole, _ = _pair_groups(results)
    return sum(1 for members in whole if all(m.tools_right for m in members)), len(whole)


def incomplete_pairs(results: Sequence[CaseResult]) -> int:
    """Contrastive groups of which only some members ran (left out of pair_accuracy)."""
    return _pair_groups(results)[1]


def rate_counts(results: Sequence[CaseResult], disambiguation_tools: frozenset[str] | None) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) of every rate in docs/contract.md. `disambiguation_tools` is the suite's
    setting: the contrastive cases expecting one of them make disambiguation_accuracy (None: all of them)."""
    expects_call = lambda r: bool(r.case.expected)  # noqa: E731
    disambiguates = lambda r: r.case.category == "contrastive" and (  # noqa: E731
        disambiguation_tools is None or any(e.tool in disambiguation_tools for e in r.case.expected))
    return {
        "case_pass_rate": _over(results, lambda r: True, lambda r: r.passed),
        "tool_selection_accuracy": _over(results, expects_call, lambda r: r.tools_right),
        "valid_json_rate": _over(results, expects_call, lambda r: r.valid_json),
        "schema_valid_rate": _over(results, expects_call, lambda r: r.schema_valid),
        "disambiguation_accuracy": _over(results, disambiguates, lambda r: r.tools_right),
        "pair_accuracy": _pair_counts(results),
        "no_tool_accuracy": _over(results, lambda r: r.case.category == "no_tool", lambda r: r.outcome == "abstention"),
        "no_tool_precision": _over(results, lambda r: r.outcome == "abstention", lambda r: not r.case.expected),
    }


def rates_block(results: Sequence[CaseResult], disambiguation_tools: frozenset[str] | None) -> dict[str, Any]:
    """n_cases, every rate (null on a zero denominator), its counts and its Wilson interval."""
    counts = rate_counts(results, disambiguation_tools)
    block: dict[str, Any] = {"n_cases": len(results)}
    block.update({k: (num / den if den else None) for k, (num, den) in counts.items()})
    block["counts"] = {k: {"passed": num, "of": den} for k, (num, den) in counts.items()}
    block["intervals"] = {k: wilson(num, den) for k, (num, den) in counts.items()}
    return block


def confusion(results: Sequence[CaseResult]) -> dict[str, dict[str, int]]:
    """{expected tool or "none": {outcome: count}} over cases with at most one expected call.

    Outcomes: the single tool called, "none" (abstention), "malformed", "multiple", and
    "error" for a case the backend gave no reply to.
    """
    table: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        if len(r.case.expected) > 1:
            continue
        expected = r.case.expected[0].tool if r.case.expected else "none"
        if r.outcome is None:
            got = "error"
        elif r.outcome == "abstention":
            got = "none"
        elif r.outcome == "malformed":
            got = "malformed"
        else:
            got = r.parsed.calls[0].tool if len(r.parsed.calls) == 1 else "multiple"
        table[expected][got] += 1
    return {exp: dict(sorted(row.items())) for exp, row in sorted(table.items())}


def by_category(results: Sequence[CaseResult], disambiguation_tools: frozenset[str] | None) -> dict[str, dict[str, Any]]:
    present = [c for c in CATEGORIES if any(r.case.category == c for r in results)]
    return {c: rates_block([r for r in results if r.case.category == c], disambiguation_tools) for c in present}


def latency(results: Sequence[CaseResult]) -> dict[str, float | None]:
    values = [r.latency_s for r in results if r.latency_s is not None]
    return {"latency_p50_s": percentile(values, 0.50), "latency_p95_s": percentile(values, 0.95)}
