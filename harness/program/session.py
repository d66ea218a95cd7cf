"""One program-task run: the strategy asked case by case, each record written as it is scored, then the summary
and the gate. Used by `pytest --cases suites/program` and by `python -m harness program`.

Like the tool-call run (harness.run.EvalRun), a backend that fails mid-run keeps every record it already produced
(reports/<run-id>/cases.partial.jsonl), stops the run, and the gate fails it as incomplete.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

from harness import __version__
from harness.backends import Backend, BackendError, BackendOptions, create_backend
from harness.gate import Threshold, evaluate
from harness.program.core import ProgramCase, ProgramResult
from harness.program.run import SYSTEM, model_missing, record_line, run_strategy, summarize, summary_lines
from harness.report import FORMAT_VERSION, RunWriter, atomic_write_text


@dataclass
class ProgramRun:
    model: str | None  # None: the template strategy, which asks no model
    strategy: str
    options: BackendOptions
    thresholds: dict[str, Threshold]
    reports_dir: Path
    run_id: str
    gate_on: str = "point"
    output_visible: Callable[[], ContextManager[Any]] = contextlib.nullcontext
    backend: Backend | None = None
    writer: RunWriter | None = None
    case_files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    planned: list[ProgramCase] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # case id -> run_strategy's record
    stopped: str | None = None
    summary: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    refused_files: list[str] = field(default_factory=list)
    latest_replaced: bool = False

    @property
    def results(self) -> dict[str, ProgramResult]:
        return {i: r["result"] for i, r in self.records.items()}

    def start(self, cases: Sequence[ProgramCase], backend: Backend | None = None) -> None:
        self.planned = list(cases)
        missing = model_missing(self.strategy, self.model)
        if missing:
            raise BackendError(missing)
        if self.strategy != "template":
            with self.output_visible():
                self.backend = backend or create_backend(self.model, self.options)
        self.writer = RunWriter(self.reports_dir, self.run_id)
        info = {"format_version": FORMAT_VERSION, "run_id": self.run_id, "task": "program", "model": self.model,
                "strategy": self.strategy, "model_fingerprint": self.fingerprint(), "gate_on": self.gate_on}
        atomic_write_text(self.reports_dir / self.run_id / "run.json", json.dumps(info, indent=2) + "\n")

    def fingerprint(self) -> dict[str, Any]:
        fp = self.backend.fingerprint() if self.backend else {"backend": self.model or "none (template)"}
        return {**fp, "harness_version": __version__, "task": "program", "strategy": self.strategy,
                "system_prompt_sha256": hashlib.sha256(SYSTEM.encode()).hexdigest(),
                "case_files": [{"path": p, "sha256": h} for p, h in self.case_files.items()]}

    def result_for(self, case: ProgramCase) -> ProgramResult:
        """The scored result for `case`: the next chunk of pending cases (the backend's batch size) runs together,
        each step of a chain or hybrid batched across the chunk (run_strategy)."""
        if case.id not in self.records and self.stopped:
            raise BackendError(self.stopped)
        if case.id not in self.records:
            pending = [c for c in self.planned if c.id not in self.records]
            start = next((i for i, c in enumerate(pending) if c.id == case.id), 0)
            size = (self.backend.batch_size if self.backend else None) or len(pending)
            chunk = pending[start:start + size] or [case]
            try:
                with self.output_visible():
                    records = run_strategy(chunk, self.strategy, self.backend)
            except BackendError as exc:  # records already written stay; the run stops here
                self.stopped = str(exc)
                raise
            for c, rec in zip(chunk, records):
                self.records[c.id] = rec
                assert self.writer is not None
                self.writer.add(record_line(rec))
        return self.records[case.id]["result"]

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.remove()
        if self.backend is not None:
            self.backend.close()

    def finish(self) -> dict[str, Any]:
        """summary.json (the strategy's summary, the gate's verdict, the fingerprint) and cases.jsonl."""
        ordered = [self.records[c.id] for c in self.planned if c.id in self.records]
        summary = {"format_version": FORMAT_VERSION, "harness_version": __version__, "run_id": self.run_id,
                   **summarize(ordered, self.strategy, self.model), "model_fingerprint": self.fingerprint()}
        summary["n_planned"] = len(self.planned)
        selection = self.selection or {"expression": None, "n_selected": len(self.planned),
                                       "n_in_files": len(self.planned), "whole_files": True}
        summary["selection"] = selection
        summary["gate"] = evaluate(summary, self.thresholds, self.gate_on)
        incomplete = []
        if len(ordered) < len(self.planned):
            incomplete.append({"metric": "n_cases", "message": f"incomplete run: {len(ordered)} of {len(self.planned)} "
                                                               f"cases scored"
                                                               + (f" (backend stopped: {self.stopped})" if self.stopped else "")})
        if self.refused_files:
            incomplete.append({"metric": "case_files", "message": f"incomplete run: case file(s) refused: "
                                                                  f"{', '.join(self.refused_files)}"})
        summary["complete"] = not incomplete
        if incomplete:
            summary["gate"]["passed"] = False
            summary["gate"]["failures"] += incomplete
        assert self.writer is not None
        self.latest_replaced = selection["whole_files"] and not self.refused_files
        self.writer.finish(summary, [record_line(r) for r in ordered], replace_latest=self.latest_replaced)
        if self.backend is not None:
            self.backend.close()
        self.summary = summary
        return summary

    def summary_lines(self) -> list[str]:
        assert self.summary is not None
        return summary_lines(self.summary)

    def run_all(self) -> list[ProgramResult]:
        """Score every planned case (outside pytest); a BackendError stops early, keeping what was scored."""
        with contextlib.suppress(BackendError):
            for case in self.planned:
                self.result_for(case)
        return [self.records[c.id]["result"] for c in self.planned if c.id in self.records]
