"""The engine: one run of any task over a suite -> backend -> scores -> report. No pytest in here.

`drive` is the only loop that asks a backend for a suite: each case's steps (harness.core.task) run side by side,
every case's next request of a round in one batch, each reply bound to its case by key. `Run` adds the lifecycle
every task shares: the run folder, each scored case appended to the partial file the moment it is scored, resume
(only the cases without a reply are asked again), repeats, shards, the gate (an incomplete run fails it) and
reports/latest. `evaluate` is the one-call form for code that wants figures and no report (deploy verify, the
benchmarks). The pytest plugin drives a Run case by case; `training.train --eval-golden` and the program command
line call run_all.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Mapping, Sequence

from harness import __version__
from harness.backends import Backend, BackendError, BackendOptions, Reply, ask, create_backend
from harness.backends.options import flag
from harness.core.records import RUN_INFO, load_prior_records
from harness.core.task import Task, get_task
from harness.gate import Threshold
from harness.gate import evaluate as gate
from harness.report import FORMAT_VERSION, RunWriter, atomic_write_text
from harness.stats import wilson

# The keys a run adds to its backend's fingerprint besides the task's own (Task.fingerprint).
RUN_FINGERPRINT_KEYS = ("harness_version", "case_files")


def drive(task: Task, suite: Any, jobs: Sequence[tuple[str, Any]], backend: Backend | None,
          on_result: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
    """Every job's (key, case) steps to its result, by key. A round sends each unfinished job's next request in
    one batch; `on_result(key, result)` sees each result as soon as its last reply arrives (before the batch ends).
    A BackendError stops the drive: the results already reported stay with the caller."""
    running, asking, done = {}, {}, {}

    def advance(key: str, reply: Reply | None) -> None:
        try:
            request = running[key].send(reply)  # None starts the generator
        except StopIteration as stop:
            done[key] = stop.value
            del running[key]
            if on_result is not None:
                on_result(key, stop.value)
            return
        asking[key] = dataclasses.replace(request, key=key)

    answered: set[str] = set()  # this round's keys whose reply has been sent on

    def on_reply(reply: Reply) -> None:
        if reply.key not in answered:
            answered.add(reply.key)  # type: ignore[arg-type]
            advance(reply.key, reply)  # type: ignore[arg-type]

    for key, case in jobs:
        running[key] = task.steps(case, suite)
        advance(key, None)
    while asking:
        if backend is None:
            raise BackendError(f"the {task.kind} task asked a model, and this run has no backend")
        batch = list(asking.values())
        asking.clear()
        answered.clear()
        for reply in ask(backend, batch, on_reply):
            on_reply(reply)
    return done


def first_requests(task: Task, suite: Any, cases: Sequence[Any]) -> list[Any]:
    """The first request each case's steps send, keyed by case id (a benchmark's baseline that calls the model
    directly renders exactly these)."""
    out = []
    for case in cases:
        steps = task.steps(case, suite)
        out.append(dataclasses.replace(next(steps), key=case.id))
        steps.close()
    return out


def evaluate(suite: Any, backend: Backend | None, cases: Sequence[Any], task: Task | None = None,
             chunk: int | None = None) -> tuple[list[Any], dict[str, Any]]:
    """The results (in case order) and the task's figures for `cases` asked of `backend`, without a report
    folder; in chunks of the backend's batch size (or `chunk`)."""
    task = task or get_task(suite.task)
    size = chunk or (backend.batch_size if backend else None) or len(cases) or 1
    results: dict[str, Any] = {}
    for start in range(0, len(cases), size):
        part = cases[start:start + size]
        results.update(drive(task, suite, [(c.id, c) for c in part], backend))
    ordered = [results[c.id] for c in cases]
    return ordered, task.summarize(ordered, suite, backend)


@dataclass
class Run:
    task: Task
    model: str | None
    options: BackendOptions | None
    thresholds: dict[str, Threshold]
    reports_dir: Path
    run_id: str
    suite: Any  # the task's suite, resolved at the edge (harness.suite.resolve_suite), never defaulted here
    gate_on: str = "point"
    resume: bool = False
    output_visible: Callable[[], ContextManager[Any]] = contextlib.nullcontext
    backend: Backend | None = None
    writer: RunWriter | None = None
    case_files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    planned: list[Any] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None
    summary: dict[str, Any] | None = None
    progress: Any = None
    model_fingerprint: dict[str, Any] | None = None
    # Which cases of the case files this run covers: {"expression", "n_selected", "n_in_files", "whole_files"};
    # None: every case of the files. Only a run over whole case files replaces reports/latest.
    selection: dict[str, Any] | None = None
    refused_files: list[str] = field(default_factory=list)  # case files refused at load (the run is incomplete)
    max_unanswered: int = 0  # cases the backend may leave without a reply before the run counts as incomplete
    kept: list[dict[str, Any]] = field(default_factory=list)  # a resumed run's records outside this selection
    latest_replaced: bool = False  # set by finish()
    # A shard of a run split across machines (--shard i/n): {"index", "count", "expression", "n_selected"}, the
    # last two describing the selection before sharding; `python -m harness merge` joins the shards.
    shard: dict[str, Any] | None = None
    # --repeat N: every case is asked N times; the first reply is the case's verdict, and every repeat is scored
    # too (pass^N, and the cases whose replies differ: at temperature 0 a finding about the backend).
    repeat: int = 1
    repeats: dict[str, list[Any]] = field(default_factory=dict)

    def start(self, cases: Sequence[Any], backend: Backend | None = None) -> None:
        """Create the backend (unless given, or the task asks no model), the run folder, and re-score a resumed
        run's records."""
        self.planned = list(cases)
        if self.task.asks_model():
            problem = self.task.backend_problem(self.model) if backend is None else None
            if problem:
                raise BackendError(problem)
            with self.output_visible():
                self.backend = backend or create_backend(self.model, self.options)  # type: ignore[arg-type]
        run_dir = self.reports_dir / self.run_id
        records: dict[str, dict[str, Any]] = {}
        self.model_fingerprint = self.fingerprint()
        info = {"format_version": FORMAT_VERSION, "run_id": self.run_id, "task": self.task.kind, "model": self.model,
                **self.task.settings(), "model_fingerprint": self.model_fingerprint, "gate_on": self.gate_on,
                "max_unanswered": self.max_unanswered}
        if self.shard is not None:
            info["shard"] = {**self.shard, "case_ids": [c.id for c in self.planned]}
        if self.resume:
            records = self._check_resumable(run_dir, info)
            planned = {c.id for c in self.planned}
            # A resume over a subset (-k, --lf) keeps every record it is not asked about, untouched.
            self.kept = [r for i, r in records.items() if i not in planned]
        # Every earlier record stays in the partial file until this run has written its own.
        self.writer = RunWriter(self.reports_dir, self.run_id, keep=records.values(), resume=self.resume)
        atomic_write_text(run_dir / RUN_INFO, json.dumps(info, indent=2) + "\n")
        for case in self.planned:
            if case.id in records:
                result = self.task.from_record(case, records[case.id], self.suite)
                if result is not None:
                    self.add(case, result)
        todo = sum(c.id not in self.results for c in self.planned)
        if self.backend is not None and self.backend.shows_progress and todo:
            from tqdm import tqdm

            with self.output_visible():
                self.progress = tqdm(total=todo, desc=f"{self.model} replies", unit="case", leave=False)

    def _check_resumable(self, run_dir: Path, info: dict[str, Any]) -> dict[str, dict[str, Any]]:
        if not (run_dir / RUN_INFO).is_file():
            raise BackendError(f"{flag('resume')} {self.run_id}: no run there ({run_dir / RUN_INFO} is missing)")
        before = json.loads((run_dir / RUN_INFO).read_text(encoding="utf-8"))
        if before.get("model_fingerprint") != info["model_fingerprint"]:
            raise BackendError(
                f"{flag('resume')} {self.run_id}: that run evaluated a different model or case file "
                f"(fingerprints differ); start a new run instead"
            )
        return load_prior_records(run_dir)

    def fingerprint(self) -> dict[str, Any]:
        """The backend's fingerprint and what the run (RUN_FINGERPRINT_KEYS) and the task add to it."""
        fp = self.backend.fingerprint() if self.backend else {"backend": self.model or "none (no model asked)"}
        return {**fp, "harness_version": __version__,
                "case_files": [{"path": p, "sha256": h} for p, h in self.case_files.items()],
                **self.task.fingerprint(self.suite)}

    def add(self, case: Any, result: Any, again: Sequence[Any] = ()) -> Any:
        """Record `case`'s result (and its repeats' results): in memory, and at once in the partial file."""
        self.results[case.id] = result
        if again:
            self.repeats[case.id] = [result, *again]
        assert self.writer is not None
        self.writer.add(self._case_record(result))
        if self.progress is not None:
            with self.output_visible():
                self.progress.update(1)
        return result

    def _case_record(self, result: Any) -> dict[str, Any]:
        """cases.jsonl's line for a result (the task's), with its repeats."""
        record = {"format_version": FORMAT_VERSION, **self.task.record(result, self.suite)}
        if result.case.id in self.repeats:
            every = self.repeats[result.case.id]
            record["repeats"] = {"passed": [r.passed for r in every], "responses": [r.response for r in every],
                                 "responses_differ": len({r.response for r in every}) > 1}
        return record

    def result_for(self, case: Any) -> Any:
        """The scored result for `case`; asks for it together with the next chunk of pending cases (the
        backend's batch size, or all of them)."""
        if case.id not in self.results and self.stopped:
            raise BackendError(self.stopped)
        if case.id not in self.results:
            pending = [c for c in self.planned if c.id not in self.results]
            start = next((i for i, c in enumerate(pending) if c.id == case.id), 0)
            size = (self.backend.batch_size if self.backend else None) or len(pending)
            chunk = pending[start:start + size] or [case]
            n = self.repeat
            # Each ask has its own key (the case id, then `id#2`, `id#3` for repeats); a reply is found by it.
            jobs = {(c.id if k == 0 else f"{c.id}#{k + 1}"): (c, k) for c in chunk for k in range(n)}
            arrived: dict[str, dict[int, Any]] = {}

            def on_result(key: str, result: Any) -> None:
                c, k = jobs[key]
                got = arrived.setdefault(c.id, {})
                got[k] = result
                if len(got) == n and c.id not in self.results:
                    self.add(c, got[0], [got[r] for r in range(1, n)])

            try:
                with self.output_visible():
                    drive(self.task, self.suite, [(key, c) for key, (c, _) in jobs.items()], self.backend, on_result)
            except BackendError as exc:
                # Results that were scored before the failure are kept; the cases after it stop the run.
                self.stopped = str(exc)
            except Exception as exc:
                # A crash (a bug, a broken device, a backend whose replies do not match its requests) is not a
                # model reply: stop, keep the traceback.
                self.stopped = f"backend crashed: {type(exc).__name__}: {exc}"
                raise
        if case.id not in self.results:
            raise BackendError(self.stopped or f"no reply for {case.id}")
        return self.results[case.id]

    def discard(self) -> None:
        """A run that got no reply at all (refused files, interrupted before the first case) leaves nothing."""
        if self.progress is not None:
            self.progress.close()
        if self.writer is not None:
            self.writer.close()
            if not self.resume:
                self.writer.remove()
        if self.backend is not None:
            self.backend.close()

    def run_all(self) -> list[Any]:
        """Score every planned case (outside pytest); a BackendError stops early, keeping what was scored."""
        with contextlib.suppress(BackendError):
            for case in self.planned:
                self.result_for(case)
        return [self.results[c.id] for c in self.planned if c.id in self.results]

    def _incomplete(self, n_scored: int, unanswered: list[str]) -> list[dict[str, str]]:
        """Why this run is incomplete, as gate failures (none: it is complete)."""
        why: list[dict[str, str]] = []
        if len(unanswered) > self.max_unanswered:
            why.append({"metric": "n_unanswered", "message": (
                f"incomplete run: {len(unanswered)} case(s) unanswered by the backend (allowed: {self.max_unanswered}, "
                f"{flag('max_unanswered')}); first: {', '.join(unanswered[:5])}")})
        if n_scored < len(self.planned):
            message = f"incomplete run: {n_scored} of {len(self.planned)} cases scored"
            if self.stopped:
                message += f" (backend stopped: {self.stopped}); rerun with {flag('resume')} {self.run_id}"
            why.append({"metric": "n_cases", "message": message})
        if self.kept:
            why.append({"metric": "n_cases", "message": (
                f"incomplete run: resumed over a subset; {len(self.kept)} case(s) of run {self.run_id} were not "
                f"selected (kept in cases.jsonl, not scored here): resume without -k/--lf/node ids to finish it")})
        if self.refused_files:
            why.append({"metric": "case_files", "message": (
                f"incomplete run: {len(self.refused_files)} case file(s) refused: {', '.join(self.refused_files)}")})
        return why

    def _repeat_block(self, ordered: Sequence[Any]) -> dict[str, Any]:
        """pass^N (every repeat passed), the pass rate of each repeat, and the cases answered differently."""
        every = [self.repeats[r.case.id] for r in ordered if r.case.id in self.repeats]
        all_passed = sum(all(x.passed for x in rs) for rs in every)
        unstable = [rs[0].case.id for rs in every if len({x.response for x in rs}) > 1]
        return {"n": self.repeat, "pass_all_rate": all_passed / len(every) if every else None,
                "counts": {"passed": all_passed, "of": len(every)}, "interval": wilson(all_passed, len(every)),
                "pass_rate_per_repeat": [sum(rs[i].passed for rs in every) / len(every) for i in range(self.repeat)]
                if every else [], "unstable": unstable}

    def finish(self) -> dict[str, Any]:
        """Write summary.json and cases.jsonl (and reports/latest/); the gate fails an incomplete run."""
        ordered = [self.results[c.id] for c in self.planned if c.id in self.results]
        summary: dict[str, Any] = {"format_version": FORMAT_VERSION, "harness_version": __version__,
                                   "run_id": self.run_id, "task": self.task.kind, "model": self.model,
                                   "model_fingerprint": self.model_fingerprint or self.fingerprint(),
                                   **self.task.summarize(ordered, self.suite, self.backend)}
        summary["n_planned"] = len(self.planned)
        selection = self.selection or {"expression": None, "n_selected": len(self.planned),
                                       "n_in_files": len(self.planned), "whole_files": True}
        summary["selection"] = selection
        if self.shard is not None:
            summary["shard"] = {"index": self.shard["index"], "count": self.shard["count"]}
        if self.repeat > 1:
            summary["repeat"] = self._repeat_block(ordered)
        summary["refused_files"] = list(self.refused_files)
        unanswered = [r.case.id for r in ordered if r.response is None]
        summary["n_unanswered"] = len(unanswered)
        if self.kept:
            summary["kept_from_earlier"] = len(self.kept)
        summary["gate"] = gate(summary, self.thresholds, self.gate_on)
        # a task's own reasons its figures cannot stand (a constraint the server ignored)
        incomplete = self._incomplete(len(ordered), unanswered) + list(summary.pop("run_problems", ()))
        summary["complete"] = not incomplete
        if incomplete:
            summary["gate"]["passed"] = False
            summary["gate"]["failures"] += incomplete
        if self.progress is not None:
            self.progress.close()
        assert self.writer is not None
        # Only a run over whole case files stands for them in reports/latest/.
        self.latest_replaced = selection["whole_files"] and not self.refused_files and not self.kept
        self.writer.finish(summary, [*(self._case_record(r) for r in ordered), *self.kept], replace_latest=self.latest_replaced)
        if self.backend:
            self.backend.close()
        self.summary = summary
        return summary

    def summary_lines(self) -> list[str] | None:
        """The task's terminal table of the finished run (None: the harness's default table)."""
        assert self.summary is not None
        return self.task.summary_lines(self.summary)


def record_results(run: Run, cases: Sequence[Any], records: Mapping[str, Mapping[str, Any]]) -> None:
    """Add earlier records of `cases` to a started run, each scored again by the run's task (merge)."""
    for case in cases:
        if case.id in records:
            scorer = getattr(run.task, "from_shard", run.task.from_record)
            result = scorer(case, records[case.id], run.suite)
            if result is not None:
                run.add(case, result)
