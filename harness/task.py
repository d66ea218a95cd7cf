"""The tasks the harness evaluates, side by side behind one small interface.

A task names the metrics its summary reports (the ones a threshold may hold), its default gate, and how a failed
case is shown. The tool-call scorer (harness.match, harness.metrics, harness.run) and the program rule scorer
(harness.program) each fill one in and neither imports the other; the pytest plugin and the gate see only this,
plus the run object the task makes (`start`, `result_for`, `finish`, `discard`, `summary_lines`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from harness.gate import (
    DEFAULT_THRESHOLDS,
    GATEABLE,
    PROGRAM_THRESHOLDS_PATH,
    Threshold,
    load_threshold_file,
    parse_threshold,
    read_default_thresholds,
    resolve_thresholds,
)
from harness.program.core import RULES
from harness.program.run import format_program_failure
from harness.summary import format_failure


@dataclass(frozen=True)
class Task:
    kind: str                                   # suite.toml [task] kind
    gateable: tuple[str, ...]                   # summary metrics a threshold may name
    defaults: Mapping[str, Threshold]           # the gate when no threshold is given
    describe_failure: Callable[[Any], str]      # a failed case's result -> the text pytest shows

    def thresholds(self, specs: Sequence[str] = (), file: str | None = None) -> dict[str, Threshold]:
        """The defaults, then a thresholds file, then --threshold specs; names checked against this task's metrics."""
        overrides: dict[str, Threshold | None] = {}
        if file:
            overrides.update(load_threshold_file(file, self.defaults, self.gateable))
        for spec in specs:
            name, threshold = parse_threshold(spec, self.defaults, self.gateable)
            overrides[name] = threshold
        return resolve_thresholds(overrides, self.defaults)


TASKS: dict[str, Task] = {
    "tool_call": Task("tool_call", GATEABLE, DEFAULT_THRESHOLDS, format_failure),
    "program": Task("program", ("case_pass_rate", *RULES, "latency_p50_s", "latency_p95_s"),
                    read_default_thresholds(PROGRAM_THRESHOLDS_PATH), format_program_failure),
}
