"""pytest wiring: case files -> one Item per case -> scored -> report + gate. Only wiring lives here.

With `--model`, pytest collects case files (`--cases`, positional paths, or `golden/`) instead of
the unit tests; each case is one test whose id is the case id. The session's exit status is the
gate's verdict, not "did every case pass" (use `--strict` for that).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness import __version__
from harness.backends import REGISTRY, Backend, BackendError, BackendOptions, Request, create_backend
from harness.cases import Case, CaseFileError, Problem, load_case_file
from harness.gate import GATE_ON, Threshold, load_threshold_file, parse_threshold, resolve_thresholds
from harness.match import CaseResult, score
from harness.prompt import build_messages
from harness.report import RunWriter, case_record, new_run_id
from harness.summary import build_summary, format_table
from harness.tools import Catalogue, load_catalogue

# Backend options that the plugin passes through to whichever backend is chosen.
BACKEND_OPTIONS = (
    "replies", "base_model", "adapter", "device", "dtype", "load_in_4bit", "batch_size", "max_new_tokens",
    "allow_base_mismatch",
)


class CaseFailed(Exception):
    """A scored case that did not pass; carries the result for repr_failure."""

    def __init__(self, result: CaseResult) -> None:
        super().__init__(result.reason)
        self.result = result


@dataclass
class HarnessRun:
    """Everything one pytest session of the harness holds; kept in config.stash."""

    model: str
    case_paths: list[Path]
    thresholds: dict[str, Threshold]
    gate_on: str
    strict: bool
    reports_dir: Path
    run_id: str
    options: BackendOptions
    catalogue: Catalogue = field(default_factory=load_catalogue)
    backend: Backend | None = None
    writer: RunWriter | None = None
    case_files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    seen_ids: dict[str, str] = field(default_factory=dict)
    capture: Any = None  # pytest's capture manager, to show the progress bar through capturing
    progress: Any = None
    results: dict[str, CaseResult] = field(default_factory=dict)
    planned: list[Case] = field(default_factory=list)
    stopped: str | None = None
    summary: dict[str, Any] | None = None

    def start(self, cases: list[Case]) -> None:
        self.planned = cases
        with self.output_visible():
            self.backend = create_backend(self.model, self.options)
        self.writer = RunWriter(self.reports_dir, self.run_id)
        if self.backend.name != "replay":
            from tqdm import tqdm

            with self.output_visible():
                self.progress = tqdm(total=len(cases), desc=f"{self.model} replies", unit="case", leave=False)

    def output_visible(self) -> Any:
        """Let the backend's progress and messages reach the terminal through pytest's capturing."""
        if self.capture is None:
            return contextlib.nullcontext()
        return self.capture.global_and_fixture_disabled()

    def fingerprint(self) -> dict[str, Any]:
        fp = self.backend.fingerprint() if self.backend else {"backend": self.model}
        return {
            **fp,
            "harness_version": __version__,
            "case_files": [{"path": p, "sha256": h} for p, h in self.case_files.items()],
            "tools_sha256": _sha256_file(Path(self.catalogue.source)),
        }

    def result_for(self, case: Case) -> CaseResult:
        """The scored result for `case`, generating and scoring the next chunk of pending cases
        with it. Every scored case is appended to the run's partial file at once, so a run that
        dies midway keeps what it got."""
        if case.id not in self.results:
            assert self.backend is not None and self.writer is not None
            pending = [c for c in self.planned if c.id not in self.results]
            start = next((i for i, c in enumerate(pending) if c.id == case.id), 0)
            chunk = pending[start:start + (self.backend.batch_size or len(pending))] or [case]
            requests = [Request(c.id, tuple(build_messages(c, self.catalogue)), c.now) for c in chunk]
            try:
                with self.output_visible():
                    replies = self.backend.generate(requests)
            except BackendError as exc:
                self.stopped = str(exc)
                raise
            if len(replies) != len(chunk):
                raise BackendError(f"backend {self.model} returned {len(replies)} replies for {len(chunk)} requests")
            for c, reply in zip(chunk, replies):
                result = score(
                    c, reply.text, self.catalogue, error=reply.error, latency_s=reply.latency_s,
                    usage=dict(reply.usage) if reply.usage else None,
                )
                self.results[c.id] = result
                self.writer.add(case_record(result))
            if self.progress is not None:
                with self.output_visible():
                    self.progress.update(len(chunk))
        return self.results[case.id]

    def finish(self) -> dict[str, Any]:
        ordered = [self.results[c.id] for c in self.planned if c.id in self.results]
        summary = build_summary(
            ordered, run_id=self.run_id, model=self.model, fingerprint=self.fingerprint(),
            thresholds=self.thresholds, gate_on=self.gate_on,
            measures_latency=bool(self.backend and self.backend.measures_latency),
        )
        if len(ordered) < len(self.planned):
            why = f"incomplete run: {len(ordered)} of {len(self.planned)} cases scored"
            if self.stopped:
                why += f" (backend stopped: {self.stopped})"
            summary["complete"] = False
            summary["gate"]["passed"] = False
            summary["gate"]["failures"].append({"metric": "n_cases", "message": why})
        else:
            summary["complete"] = True
        if self.progress is not None:
            self.progress.close()
        assert self.writer is not None
        self.writer.finish(summary, (case_record(r) for r in ordered))
        if self.backend:
            self.backend.close()
        self.summary = summary
        return summary


RUN = pytest.StashKey[HarnessRun]()


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("toolcall", "tool-calling golden suite (runs only with --model)")
    group.addoption("--model", default=None, metavar="BACKEND",
                    help=f"evaluate this backend on the case files: {', '.join(sorted(REGISTRY))}. "
                         "Without it, case files are not run (plain pytest runs the unit tests).")
    group.addoption("--cases", action="append", default=[], metavar="PATH",
                    help="case file or folder of *.jsonl (repeatable; default: golden/, or positional paths)")
    group.addoption("--replies", default=None, metavar="FILE",
                    help="replay backend: recorded replies, one {id, response, latency_s?} JSON line per case")
    group.addoption("--base-model", default=None, metavar="ID_OR_DIR",
                    help="local backends: base model folder or cached hub id (local-adapter: default from adapter_config.json)")
    group.addoption("--adapter", default=None, metavar="DIR", help="local-adapter: the LoRA adapter folder")
    group.addoption("--device", default=None, help="local backends: cuda, cuda:1, cpu (default: cuda when available)")
    group.addoption("--dtype", default=None, help="local backends: float32, bfloat16, float16 (default: bf16 on CUDA, fp32 on CPU)")
    group.addoption("--load-in-4bit", action="store_true", default=False,
                    help="local backends: load the base model in 4-bit NF4 (CUDA + bitsandbytes)")
    group.addoption("--allow-base-mismatch", action="store_true", default=False,
                    help="local-adapter: accept a --base-model whose name differs from the adapter's base (shapes are still checked)")
    group.addoption("--batch-size", type=int, default=None, help="local backends: prompts per generate call (default: 8)")
    group.addoption("--max-new-tokens", type=int, default=None, help="reply length limit in tokens (default: 384)")
    group.addoption("--reports-dir", default="reports", metavar="DIR",
                    help="where reports/<run-id>/ and reports/latest/ go (default: reports)")
    group.addoption("--run-id", default=None, help="name of the run folder (default: UTC time + model)")
    group.addoption("--threshold", action="append", default=[], metavar="METRIC=VALUE",
                    help="override a gate threshold: metric=0.95 (default direction), metric>=0.8, "
                         "latency_p95_s<3, metric=off (repeatable)")
    group.addoption("--thresholds-file", default=None, metavar="TOML",
                    help="thresholds from a TOML file ([thresholds] metric = 0.95 or \">= 0.8\" or \"off\")")
    group.addoption("--gate-on", default="point", choices=GATE_ON,
                    help="judge '>' thresholds on the point estimate (default) or the 95%% Wilson lower bound")
    # `--strict` is pytest's own flag (strict mode); the harness reads it too: with it, any failed
    # case fails the run even when the gate passes.


def _case_paths(config: pytest.Config) -> list[Path]:
    given = config.getoption("cases") or []
    if not given and config.args_source == pytest.Config.ArgsSource.ARGS:
        given = list(config.args)
    if not given:
        # The invocation dir first: pytest picks its rootdir from any path-like argument
        # (`--adapter /some/dir` included), so the rootdir is not a reliable anchor here.
        candidates = [Path(config.invocation_params.dir) / "golden", config.rootpath / "golden"]
        default = next((c for c in candidates if c.is_dir()), None)
        if default is None:
            raise pytest.UsageError("no golden/ folder here: run from the project root or pass --cases FILE_OR_DIR")
        given = [str(default)]
    paths = []
    for raw in given:
        path = Path(raw.split("::")[0])
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
        if not path.exists():
            raise pytest.UsageError(f"case file or folder not found: {raw}")
        paths.append(path)
    return paths


def pytest_configure(config: pytest.Config) -> None:
    model = config.getoption("model")
    if not model:
        return
    if model not in REGISTRY:
        raise pytest.UsageError(f"unknown --model {model!r}; known: {', '.join(sorted(REGISTRY))}")
    try:
        overrides: dict[str, Threshold | None] = {}
        if config.getoption("thresholds_file"):
            overrides.update(load_threshold_file(config.getoption("thresholds_file")))
        for spec in config.getoption("threshold"):
            name, threshold = parse_threshold(spec)
            overrides[name] = threshold
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    paths = _case_paths(config)
    reports_dir = Path(config.getoption("reports_dir"))
    if not reports_dir.is_absolute():
        reports_dir = Path(config.invocation_params.dir) / reports_dir
    config.stash[RUN] = HarnessRun(
        model=model,
        case_paths=paths,
        thresholds=resolve_thresholds(overrides),
        gate_on=config.getoption("gate_on"),
        strict=config.getoption("strict"),
        reports_dir=reports_dir,
        run_id=config.getoption("run_id") or new_run_id(model),
        options=BackendOptions({k: config.getoption(k) for k in BACKEND_OPTIONS}),
    )
    # Collect the case files instead of the unit tests.
    config.args[:] = [str(p) for p in paths]


def _in_scope(run: HarnessRun, file_path: Path) -> bool:
    return any(file_path == p or (p.is_dir() and p in file_path.parents) for p in run.case_paths)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    run = parent.config.stash.get(RUN, None)
    if run is not None and file_path.suffix == ".jsonl" and _in_scope(run, file_path):
        return CaseFileNode.from_parent(parent, path=file_path)
    return None


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash.get(RUN, None)
    if run is None:
        return []
    return [
        f"toolcall-harness {__version__}: model={run.model}, gate on {run.gate_on}"
        f"{', strict' if run.strict else ''}, run id {run.run_id}",
        "thresholds: " + "; ".join(str(t) for t in run.thresholds.values()),
    ]


def pytest_collection_finish(session: pytest.Session) -> None:
    run = session.config.stash.get(RUN, None)
    if run is None or session.config.option.collectonly:
        return
    cases = [item.case for item in session.items if isinstance(item, CaseItem)]
    if not cases:
        return
    run.capture = session.config.pluginmanager.get_plugin("capturemanager")
    try:
        run.start(cases)
    except BackendError as exc:
        raise pytest.UsageError(str(exc)) from None
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"backend: {run.backend.describe()}")
        for path, sha in run.case_files.items():
            reporter.write_line(f"case file: {path} (sha256 {sha[:12]}, {sum(c.source == path for c in cases)} cases)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash.get(RUN, None)
    if run is None or run.writer is None:
        return
    if not run.results:
        run.writer.close()
        return
    summary = run.finish()
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        any_failed = any(not r.passed for r in run.results.values())
        ok = summary["gate"]["passed"] and not (run.strict and any_failed)
        session.exitstatus = pytest.ExitCode.OK if ok else pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    if run is None or run.summary is None:
        return
    summary = run.summary
    tr = terminalreporter
    tr.section(f"golden suite: {run.model} ({summary['n_passed']}/{summary['n_cases']} cases passed)")
    for line in format_table(summary):
        tr.write_line(line)
    if summary["reasons"]:
        tr.write_line("failure reasons: " + ", ".join(f"{k} {v}" for k, v in summary["reasons"].items()))
    gate = summary["gate"]
    for failure in gate["failures"]:
        tr.write_line(f"  gate failure: {failure['message']}", red=True)
    for skipped in gate["skipped"]:
        tr.write_line(f"  not gated: {skipped['metric']}: {skipped['why']}")
    verdict = "PASSED" if gate["passed"] else "FAILED"
    note = ""
    if gate["passed"] and summary["n_passed"] < summary["n_cases"]:
        note = " (single cases failed; the exit status follows the gate" + (", but --strict is on)" if run.strict else "; add --strict to fail on any case)")
    tr.write_line(f"gate ({run.gate_on}): {verdict}{note}", green=gate["passed"], red=not gate["passed"], bold=True)
    tr.write_line(f"report: {run.writer.dir / 'summary.json'} (also {run.reports_dir / 'latest'})")


class CaseFileNode(pytest.File):
    """One JSONL case file; loaded whole and validated before any case runs."""

    def collect(self) -> Iterator["CaseItem"]:
        run = self.config.stash[RUN]
        case_file = load_case_file(self.path, run.catalogue)
        clashes = [
            Problem(str(self.path), c.line, "id", f"id {c.id!r} is also in {run.seen_ids[c.id]}")
            for c in case_file.cases if c.id in run.seen_ids
        ]
        if clashes:
            raise CaseFileError(clashes)
        run.case_files[case_file.path] = case_file.sha256
        for case in case_file.cases:
            run.seen_ids[case.id] = f"{case.source}:{case.line}"
            yield CaseItem.from_parent(self, name=case.id, case=case)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CaseFileError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)


class CaseItem(pytest.Item):
    """One golden case; passes when the reply matches every expectation."""

    def __init__(self, *, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        try:
            result = self.config.stash[RUN].result_for(self.case)
        except BackendError as exc:
            self.session.shouldstop = f"backend error: {exc}"
            raise
        if not result.passed:
            raise CaseFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CaseFailed):
            return format_failure(excinfo.value.result)
        if isinstance(excinfo.value, BackendError):
            return f"backend error (the run stops): {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.case.line - 1, f"case {self.case.id} [{self.case.category}]"


def format_failure(result: CaseResult) -> str:
    """A short domain diff: reason, expected calls, what was parsed, and the raw reply."""
    case = result.case
    head = f"case {case.id} ({case.category}{', pair ' + case.pair if case.pair else ''}) failed: {result.reason}"
    lines = [head] + [f"  {d}" for d in result.details]
    lines.append("expected:")
    lines += [f"  {e.describe()}" for e in case.expected] or ["  no tool call (plain-text answer)"]
    lines.append(f"got ({result.outcome or 'no reply'}):")
    lines += [f"  {json.dumps(c.to_json(), ensure_ascii=False)}" for c in result.parsed.calls] or ["  no valid call"]
    if result.response is not None:
        lines.append("reply:")
        lines.append(textwrap.indent(result.response or "(empty)", "  | ", lambda _: True))
    return "\n".join(lines)
