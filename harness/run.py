"""One evaluation run: cases -> prompt -> backend -> score -> report. No pytest in here.

The pytest plugin drives it case by case; training's `--eval-golden` can drive it directly. Every
scored case is appended to the run's partial file the moment its reply arrives, and `resume`
re-asks only the cases that have no reply yet.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

from harness import __version__, jsonl
from harness.backends import Backend, BackendError, BackendOptions, Reply, Request, ask, create_backend
from harness.backends.options import flag
from harness.cases import Case
from harness.gate import Threshold
from harness.hashing import sha256_file
from harness.match import CaseResult, score
from harness.metrics import by_category, rates_block, wilson
from harness.profiles import PROFILES
from harness.prompt import build_messages
from harness.report import FORMAT_VERSION, PARTIAL, RunWriter, atomic_write_text, case_record
from harness.suite import Suite
from harness.summary import build_summary
from harness.tools import Catalogue

RUN_INFO = "run.json"
# The keys a run adds to its backend's fingerprint (the rest is the backend's own).
RUN_FINGERPRINT_KEYS = ("harness_version", "case_files", "tools_sha256", "reply_format", "tools_path")


def load_prior_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    """A run's case records so far, by id (cases.jsonl, then its partial file, the later line winning)."""
    records: dict[str, dict[str, Any]] = {}
    for name in ("cases.jsonl", PARTIAL):
        path = run_dir / name
        if not path.is_file():
            continue
        for line in jsonl.split_lines(path.read_text(encoding="utf-8")):
            try:
                rec = jsonl.loads(line, jsonl.RECORD_DEPTH)
            except ValueError:
                continue  # a line cut off when the run was killed
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                if isinstance(rec.get("response"), str) or rec["id"] not in records:
                    records[rec["id"]] = rec  # a reply is never replaced by a later failed request
    return records


def reply_from_record(rec: dict[str, Any], missing: str = "no reply recorded") -> Reply:
    """The reply a case record holds; a record without one gives a failed reply with its error (`missing` when
    it names none)."""
    text = rec["response"] if isinstance(rec.get("response"), str) else None
    return Reply(text=text, latency_s=rec.get("latency_s"), usage=rec.get("usage"),
                 error=None if text is not None else rec.get("error") or missing,
                 truncated=rec.get("truncated") is True, redacted=rec.get("redacted") is True,
                 attempts=rec.get("attempts") or 1, faults=tuple(rec.get("faults") or ()))


def case_request(case: Case, suite: Suite, key: str = "") -> Request:
    """The request a run of `suite` sends for `case`: the suite's prompt and, in the native format, the case's
    functions (the one place that knows "native => send the tools"; deploy verify asks through it too)."""
    native = suite.reply_format == "native"
    return Request(case.id, tuple(build_messages(case, suite.catalogue, suite.template)), case.now,
                   tools=tuple(case.catalogue(suite.catalogue).to_function_tools()) if native else None, key=key)


def score_reply(case: Case, reply: Reply, suite: Suite, profile: str = "default") -> CaseResult:
    """`reply` scored for `case` as a run of `suite` scores it (its catalogue and reply format)."""
    return dataclasses.replace(
        score(case, reply.text, suite.catalogue, error=reply.error, latency_s=reply.latency_s,
              usage=dict(reply.usage) if reply.usage else None, truncated=reply.truncated,
              reply_format=suite.reply_format, profile=PROFILES[profile]),
        attempts=reply.attempts, faults=tuple(reply.faults), redacted=reply.redacted,
    )


@dataclass
class EvalRun:
    model: str
    options: BackendOptions
    thresholds: dict[str, Threshold]
    reports_dir: Path
    run_id: str
    suite: Suite  # resolved at the edge (harness.suite.resolve_suite), never defaulted here
    gate_on: str = "point"
    resume: bool = False
    output_visible: Callable[[], ContextManager[Any]] = contextlib.nullcontext
    backend: Backend | None = None
    writer: RunWriter | None = None
    case_files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    planned: list[Case] = field(default_factory=list)
    results: dict[str, CaseResult] = field(default_factory=dict)
    # The same replies scored under each of the suite's named profiles (harness.profiles), by case id.
    profile_results: dict[str, dict[str, CaseResult]] = field(default_factory=dict)
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
    repeats: dict[str, list[CaseResult]] = field(default_factory=dict)

    @property
    def catalogue(self) -> Catalogue:
        return self.suite.catalogue

    def start(self, cases: Sequence[Case], backend: Backend | None = None) -> None:
        """Create the backend (unless given), the run folder, and re-score a resumed run's replies."""
        self.planned = list(cases)
        with self.output_visible():
            self.backend = backend or create_backend(self.model, self.options)
        run_dir = self.reports_dir / self.run_id
        prior: dict[str, Reply] = {}
        records: dict[str, dict[str, Any]] = {}
        self.model_fingerprint = self.fingerprint()
        info = {"format_version": FORMAT_VERSION, "run_id": self.run_id, "model": self.model,
                "model_fingerprint": self.model_fingerprint, "gate_on": self.gate_on, "max_unanswered": self.max_unanswered}
        if self.shard is not None:
            info["shard"] = {**self.shard, "case_ids": [c.id for c in self.planned]}
        if self.resume:
            records = self._check_resumable(run_dir, info)
            prior = {i: reply_from_record(r) for i, r in records.items() if isinstance(r.get("response"), str)}
            planned = {c.id for c in self.planned}
            # A resume over a subset (-k, --lf) keeps every reply it is not asked about, untouched.
            self.kept = [r for i, r in records.items() if i not in planned]
        # Every earlier record stays in the partial file until this run has written its own.
        self.writer = RunWriter(self.reports_dir, self.run_id, keep=records.values(), resume=self.resume)
        atomic_write_text(run_dir / RUN_INFO, json.dumps(info, indent=2) + "\n")
        for case in self.planned:
            if case.id in prior:
                self._record(case, prior[case.id])
        todo = sum(c.id not in self.results for c in self.planned)
        if self.backend.shows_progress and todo:
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
        """The backend's fingerprint and what the run adds to it (RUN_FINGERPRINT_KEYS)."""
        fp = self.backend.fingerprint() if self.backend else {"backend": self.model}
        added = {
            "harness_version": __version__,
            "case_files": [{"path": p, "sha256": h} for p, h in self.case_files.items()],
            "tools_sha256": sha256_file(self.catalogue.source) if self.catalogue.source else None,  # None: per case
            "reply_format": self.suite.reply_format,
            "tools_path": self.catalogue.source or None,
        }
        assert set(added) == set(RUN_FINGERPRINT_KEYS)
        return {**fp, **added}

    def _score(self, case: Case, reply: Reply, profile: str = "default") -> CaseResult:
        return score_reply(case, reply, self.suite, profile)

    def _record(self, case: Case, reply: Reply, again: Sequence[Reply] = ()) -> CaseResult:
        result = self.results[case.id] = self._score(case, reply)
        for name in self.suite.profiles:
            self.profile_results.setdefault(name, {})[case.id] = self._score(case, reply, name)
        if again:
            self.repeats[case.id] = [result, *(self._score(case, r) for r in again)]
        assert self.writer is not None
        self.writer.add(self._case_record(result))
        if self.progress is not None:
            with self.output_visible():
                self.progress.update(1)
        return result

    def _case_record(self, result: CaseResult) -> dict[str, Any]:
        """cases.jsonl's line for a result, with its verdict under each named profile and its repeats."""
        record = case_record(result)
        if result.case.id in self.repeats:
            every = self.repeats[result.case.id]
            record["repeats"] = {"passed": [r.passed for r in every], "responses": [r.response for r in every],
                                 "responses_differ": len({r.response for r in every}) > 1}
        for name in self.suite.profiles:
            other = self.profile_results[name][result.case.id]
            record.setdefault("profiles", {})[name] = {"passed": other.passed, "reason": other.reason,
                                                       "details": list(other.details)}
        return record

    def result_for(self, case: Case) -> CaseResult:
        """The scored result for `case`; asks the backend for it together with the next chunk of
        pending cases (the backend's batch size, or all of them)."""
        if case.id not in self.results and self.stopped:
            raise BackendError(self.stopped)
        if case.id not in self.results:
            assert self.backend is not None
            pending = [c for c in self.planned if c.id not in self.results]
            start = next((i for i, c in enumerate(pending) if c.id == case.id), 0)
            chunk = pending[start:start + (self.backend.batch_size or len(pending))] or [case]
            n = self.repeat
            # Each ask has its own key (the case id, then `id#2`, `id#3` for repeats); a reply is found by it.
            asks: dict[str, tuple[Case, int]] = {}
            requests = []
            for c in chunk:
                for k in range(n):
                    key = c.id if k == 0 else f"{c.id}#{k + 1}"
                    asks[key] = (c, k)
                    requests.append(case_request(c, self.suite, key))
            arrived: dict[str, dict[int, Reply]] = {}

            def on_reply(reply: Reply) -> None:
                case, k = asks[reply.key]
                got = arrived.setdefault(case.id, {})
                got[k] = reply
                if len(got) == n and case.id not in self.results:
                    self._record(case, got[0], [got[r] for r in range(1, n)])

            try:
                with self.output_visible():
                    replies = ask(self.backend, requests, on_reply)
            except BackendError as exc:
                # Replies that arrived before the failure are kept; the cases after it stop the run.
                self.stopped = str(exc)
                replies = []
            except Exception as exc:
                # A crash (a bug, a broken device, a backend whose replies do not match its requests) is not a
                # model reply: stop, keep the traceback.
                self.stopped = f"backend crashed: {type(exc).__name__}: {exc}"
                raise
            for reply in replies:
                on_reply(reply)
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

    def run_all(self) -> list[CaseResult]:
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

    def _repeat_block(self, ordered: Sequence[CaseResult]) -> dict[str, Any]:
        """pass^N (every repeat passed), the pass rate of each repeat, and the cases answered differently."""
        every = [self.repeats[r.case.id] for r in ordered if r.case.id in self.repeats]
        all_passed = sum(all(x.passed for x in rs) for rs in every)
        unstable = [rs[0].case.id for rs in every if len({x.response for x in rs}) > 1]
        return {"n": self.repeat, "pass_all_rate": all_passed / len(every) if every else None,
                "counts": {"passed": all_passed, "of": len(every)}, "interval": wilson(all_passed, len(every)),
                "pass_rate_per_repeat": [sum(rs[i].passed for rs in every) / len(every) for i in range(self.repeat)]
                if every else [], "unstable": unstable}

    def _profile_block(self, name: str) -> dict[str, Any]:
        """A named profile's figures over the same replies: every rate, and the case pass rate per category."""
        scored = self.profile_results.get(name, {})
        results = [scored[c.id] for c in self.planned if c.id in scored]
        block = rates_block(results, self.suite.disambiguation_tools)
        block["by_category"] = {c: rates["case_pass_rate"]
                                for c, rates in by_category(results, self.suite.disambiguation_tools).items()}
        block["about"] = PROFILES[name].about
        return block

    def finish(self) -> dict[str, Any]:
        """Write summary.json and cases.jsonl (and reports/latest/); the gate fails an incomplete run."""
        ordered = [self.results[c.id] for c in self.planned if c.id in self.results]
        summary = build_summary(
            ordered, run_id=self.run_id, model=self.model, fingerprint=self.model_fingerprint or self.fingerprint(),
            thresholds=self.thresholds, gate_on=self.gate_on, disambiguation_tools=self.suite.disambiguation_tools,
            measures_latency=bool(self.backend and self.backend.measures_latency),
        )
        selection = self.selection or {"expression": None, "n_selected": len(self.planned),
                                       "n_in_files": len(self.planned), "whole_files": True}
        summary["selection"] = selection
        if self.shard is not None:
            summary["shard"] = {"index": self.shard["index"], "count": self.shard["count"]}
        summary["profiles"] = {name: self._profile_block(name) for name in self.suite.profiles}
        if self.repeat > 1:
            summary["repeat"] = self._repeat_block(ordered)
        summary["refused_files"] = list(self.refused_files)
        unanswered = [r.case.id for r in ordered if r.response is None]
        summary["n_unanswered"] = len(unanswered)
        if self.backend is not None and self.backend.measures_latency:
            summary["latency_conditions"] = self.backend.latency_conditions()
        if self.kept:
            summary["kept_from_earlier"] = len(self.kept)
        incomplete = self._incomplete(len(ordered), unanswered)
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
