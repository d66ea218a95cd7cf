"""What the session writes on the terminal: the header, failed cases, the task's table, the gate's verdict."""
from __future__ import annotations

from typing import Any

import pytest

from harness import __version__, escape
from harness.backends.options import flag
from harness.core.engine import Run
from harness.pytest_plugin.options import _opt
from harness.pytest_plugin.state import RUN
from harness.tasks.tool_call.summary import format_profiles, format_table

# Every flag but --model carries this prefix, so it cannot collide with another plugin's (pytest-profiling owns
# --profile; --seed, --device, --repeat and --shard are names other plugins use or may use).


def pytest_report_header(config: pytest.Config) -> list[str]:
    hs = config.stash.get(RUN, None)
    if hs is None:
        return []
    run = hs.run
    resumed = run.resume
    task = "" if run.task.kind == "tool_call" else f", {run.task.kind} task" + "".join(
        f", {k} {v}" for k, v in run.task.settings().items())
    return [
        f"toolcall-harness {__version__}: model={run.model or 'none'}{task}, gate on {run.gate_on}"
        f"{', strict' if hs.strict else ''}, run id {run.run_id}{' (resumed)' if resumed else ''}",
        "thresholds: " + "; ".join(str(t) for t in run.thresholds.values()),
    ]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    hs = config.stash.get(RUN, None)
    if hs is None:
        return
    tr = terminalreporter
    if hs.failure_details is not None:  # pytest's own ERRORS/FAILURES sections are off: say it here
        for path, why in hs.refused.items():
            _section(tr, f"case file refused: {path}", red=True)
            _say(tr, why)
        for title, text in hs.stops:
            _section(tr, title, red=True)
            _say(tr, text)
    if hs.run.summary is None:
        return
    run, summary = hs.run, hs.run.summary
    failed = [run.results[c.id] for c in run.planned if c.id in run.results and not run.results[c.id].passed]
    if hs.failure_details is not None and failed:
        shown = failed[:hs.failure_details]
        _section(tr, f"failed cases ({len(failed)} of {len(run.results)}): id and reason"
                   + (f"; the first {len(shown)} in full below ({flag('failure_details')} N|all)" if shown else ""))
        width = max(len(r.case.id) for r in failed)
        for result in failed:
            _say(tr, f"  {result.case.id:<{width}}  {result.reason}")
        for result in shown:
            _sep(tr, f"{result.case.id}", red=True, bold=True)
            _say(tr, hs.task.describe_failure(result))
    lines = run.summary_lines()
    if lines is None:  # the tool-call table
        _section(tr, f"golden suite: {run.model} ({summary['n_passed']}/{summary['n_cases']} cases passed)")
        lines = format_table(summary)
    else:
        settings = "".join(f", {k} {v}" for k, v in run.task.settings().items())
        _section(tr, f"{run.task.kind} suite: {run.model or 'no model'}{settings} "
                     f"({summary['n_passed']}/{summary['n_cases']} cases passed)")
    for line in lines:
        _say(tr, line)
    conditions = {k: v for k, v in summary.get("latency_conditions", {}).items() if k != "note"}
    if conditions and summary.get("latency_p95_s") is not None:
        _say(tr, "latency measured at " + ", ".join(f"{k} {v}" for k, v in conditions.items()))
    for line in format_profiles(summary):
        _say(tr, line)
    if "repeat" in summary:
        rep = summary["repeat"]
        unstable = rep["unstable"]
        _say(tr, f"repeat {rep['n']}: pass^{rep['n']} {rep['pass_all_rate']:.3f} ({rep['counts']['passed']}/"
                      f"{rep['counts']['of']}) against pass@1 {summary['case_pass_rate']:.3f}; "
                      + (f"{len(unstable)} case(s) answered differently across repeats ({', '.join(unstable[:5])}): "
                         "at temperature 0 that is a finding about the backend" if unstable
                         else "every case answered identically each time"), red=bool(unstable))
    if summary.get("constraint_violations"):
        _say(tr, f"constraint violated: {summary['constraint_violations']} reply(ies) outside the reply grammar: the "
                 "backend did not enforce --th-decoding constrained (not the model's doing)", red=True)
    if summary["reasons"] and run.task.kind == "tool_call":
        _say(tr, "failure reasons: " + ", ".join(f"{k} {v}" for k, v in summary["reasons"].items()))
    gate = summary["gate"]
    note = ""
    if gate["passed"] and summary["n_passed"] < summary["n_cases"]:
        note = " (single cases failed; the exit status follows the gate" + (
            ", but --strict is on)" if hs.strict else "; add --strict to fail on any case)")
    note += _subset_note(summary["selection"])
    if summary.get("incomplete_pairs"):
        note += f"; {summary['incomplete_pairs']} contrastive group(s) ran only in part (not in pair_accuracy)"
    _write_gate(tr, gate, run.gate_on, note)
    reference = _opt(terminalreporter.config, "compare_to")
    if reference:
        from harness.compare import CompareError, compare_runs, format_comparison, load_run

        _section(tr, f"compared with {reference}")
        try:
            cmp = compare_runs(load_run(reference), load_run(run.writer.dir), allow_different_cases=True)
            for line in format_comparison(cmp, limit=10):
                _say(tr, line)
        except CompareError as exc:
            _say(tr, f"comparison refused: {exc}", red=True)
    _write_report_path(tr, run)


def _say(tr: Any, text: str, **markup: Any) -> None:
    """A line on the terminal: whatever came from a case, a reply or a server has its control characters
    escaped (an ANSI sequence in a reply must not draw a fake verdict)."""
    tr.write_line(escape.terminal(text), **markup)


def _section(tr: Any, title: str, **markup: Any) -> None:
    tr.section(escape.terminal(title), **markup)


def _sep(tr: Any, title: str, **markup: Any) -> None:
    tr.write_sep("_", escape.terminal(title), **markup)


def _subset_note(selection: dict[str, Any]) -> str:
    """What the verdict line adds for a run over part of its case files (nothing for whole files)."""
    if selection["whole_files"]:
        return ""
    return (f" -- on a subset: {selection['n_selected']} of {selection['n_in_files']} cases"
            f" ({selection['expression'] or 'selected by a plugin'})")


def _write_gate(tr: Any, gate: dict[str, Any], gate_on: str, note: str) -> None:
    """The gate's failures, what it could not judge, and its verdict line."""
    for failure in gate["failures"]:
        _say(tr, f"  gate failure: {failure['message']}", red=True)
    for skipped in gate["skipped"]:
        _say(tr, f"  not gated: {skipped['metric']}: {skipped['why']}")
    _say(tr, f"gate ({gate_on}): {'PASSED' if gate['passed'] else 'FAILED'}{note}", green=gate["passed"],
                  red=not gate["passed"], bold=True)


def _write_report_path(tr: Any, run: Run) -> None:
    latest = (f"also {run.reports_dir / 'latest'}" if run.latest_replaced
              else "reports/latest not replaced: not a run over whole case files")
    _say(tr, f"report: {run.writer.dir / 'summary.json'} ({latest})")

