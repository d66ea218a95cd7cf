"""The run summary (docs/contract.md) and its terminal table. Pure."""
from __future__ import annotations

import json
import textwrap
from collections import Counter
from typing import Any, Mapping, Sequence

from harness import __version__
from harness.gate import Threshold, evaluate
from harness.report import FORMAT_VERSION
from harness.tasks.tool_call.match import CaseResult
from harness.tasks.tool_call.metrics import RATE_KEYS, by_category, confusion, incomplete_pairs, latency, rates_block


def build_summary(
    results: Sequence[CaseResult],
    *,
    run_id: str,
    model: str,
    fingerprint: Mapping[str, Any],
    thresholds: Mapping[str, Threshold],
    disambiguation_tools: frozenset[str] | None,
    gate_on: str = "point",
    measures_latency: bool = True,
) -> dict[str, Any]:
    """A run's summary: what it evaluated, its figures, the gate's verdict."""
    summary: dict[str, Any] = {"format_version": FORMAT_VERSION, "harness_version": __version__, "run_id": run_id,
                               "model": model, "model_fingerprint": dict(fingerprint),
                               **figures(results, disambiguation_tools, measures_latency=measures_latency)}
    summary["gate"] = evaluate(summary, thresholds, gate_on)
    return summary


def figures(results: Sequence[CaseResult], disambiguation_tools: frozenset[str] | None, *,
            measures_latency: bool = True) -> dict[str, Any]:
    """The tool-call figures of a set of results: every rate a top-level key, counts, intervals, breakdowns."""
    overall = rates_block(results, disambiguation_tools)
    summary: dict[str, Any] = {"n_cases": overall["n_cases"], **{k: overall[k] for k in RATE_KEYS}}
    if measures_latency:
        summary.update(latency(results))
    summary["n_passed"] = sum(r.passed for r in results)
    summary["incomplete_pairs"] = incomplete_pairs(results)
    summary["reasons"] = _reason_counts(results)
    summary["counts"] = overall["counts"]
    summary["intervals"] = overall["intervals"]
    summary["by_category"] = by_category(results, disambiguation_tools)
    summary["confusion"] = confusion(results)
    usage = [r.usage for r in results if r.usage]
    if usage:
        summary["total_tokens"] = {
            k: sum(u.get(k, 0) for u in usage if isinstance(u.get(k, 0), (int, float)))
            for k in sorted({k for u in usage for k in u})
        }
    summary["retries"] = sum(r.attempts - 1 for r in results)
    if any(r.constrained for r in results):  # --th-decoding constrained: replies outside the grammar, if any
        summary["constraint_violations"] = sum(r.constraint_violated for r in results)
    summary["fault_kinds"] = dict(sorted(Counter(f for r in results for f in r.faults).items()))
    return summary


def _reason_counts(results: Sequence[CaseResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        if r.reason:
            counts[r.reason] = counts.get(r.reason, 0) + 1
    return dict(sorted(counts.items()))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def format_table(summary: Mapping[str, Any]) -> list[str]:
    """A compact metrics table: value, n/d, 95 % Wilson interval, threshold and its verdict."""
    gate = summary["gate"]
    failed = {f["metric"] for f in gate["failures"]}
    rows = [("metric", "value", "n/d", "95% CI", "threshold", "")]
    for key in RATE_KEYS + ("latency_p50_s", "latency_p95_s"):
        if key not in summary:
            continue
        value = summary[key]
        count = summary["counts"].get(key)
        interval = summary["intervals"].get(key)
        t = gate["thresholds"].get(key)
        verdict = "" if t is None else ("n/a" if value is None else ("FAIL" if key in failed else "ok"))
        rows.append(
            (
                key,
                _fmt(value),
                f"{count['passed']}/{count['of']}" if count else "",
                f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "",
                f"{t['op']} {t['value']:g}" if t else "",
                verdict,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return lines


def format_profiles(summary: Mapping[str, Any]) -> list[str]:
    """One line per named scoring profile: its case pass rate beside the default one, and per category."""
    lines = []
    for name, block in summary.get("profiles", {}).items():
        count = block["counts"]["case_pass_rate"]
        cats = ", ".join(f"{c} {_fmt(v)}" for c, v in block["by_category"].items())
        lines.append(f"profile {name}: case_pass_rate {_fmt(block['case_pass_rate'])} ({count['passed']}/{count['of']}; "
                     f"default {_fmt(summary['case_pass_rate'])}) -- by category: {cats}")
    return lines


def format_failure(result: CaseResult) -> str:
    """A short domain diff: reason, expected calls, what was parsed, and the raw reply."""
    case = result.case
    # pytest's short summary shows "FAILED <node id> - <first line>", cut to the terminal width: reason first.
    head = f"{result.reason}: case {case.id} ({case.category}{', pair ' + case.pair if case.pair else ''}) failed"
    lines = [head] + [f"  {d}" for d in result.details]
    lines.append("expected:")
    lines += [f"  {e.describe()}" for e in case.expected] or ["  no tool call (plain-text answer)"]
    lines.append(f"got ({result.outcome or 'no reply'}):")
    lines += [f"  {json.dumps(c.to_json(), ensure_ascii=False)}" for c in result.parsed.calls] or ["  no valid call"]
    if result.redacted:
        lines.append("note: the reply held a secret (an API token or account id), replaced by *** before scoring")
    if result.response is not None:
        lines.append("reply:")
        lines.append(textwrap.indent(result.response or "(empty)", "  | ", lambda _: True))
    return "\n".join(lines)
