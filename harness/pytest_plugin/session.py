"""One pytest session of the harness: the run is configured once (pytest_configure), the case files are
collected, sharded and started, and the gate decides the exit status."""
from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from harness.backends import BackendError, specs
from harness.backends.options import flag, flag_prefix
from harness.core.engine import Run
from harness.core.task import get_task
from harness.pytest_plugin.items import CaseFileNode, CaseItem
from harness.pytest_plugin.options import (
    PREFIX,
    _backend_options,
    _check_numbers,
    _failure_details,
    _opt,
    _shard,
    _thresholds,
    _warn_deprecated,
)
from harness.pytest_plugin.state import PREFIXED, RUN, HarnessSession
from harness.pytest_plugin.terminal import _say
from harness.report import RunFolderError, check_run_folder, new_run_id
from harness.suite import Suite, resolve_suite

# Every flag but --model carries this prefix, so it cannot collide with another plugin's (pytest-profiling owns
# --profile; --seed, --device, --repeat and --shard are names other plugins use or may use).




def _case_paths(config: pytest.Config) -> list[tuple[Path, str]]:
    """(case file or folder, the argument to collect: the path, or a node id `path::case-id`)."""
    given = list(_opt(config, "cases") or [])
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        given += list(config.args)  # positional paths and node ids add to --cases
    if not given:
        # The invocation dir first: pytest picks its rootdir from any path-like argument
        # (`--adapter /some/dir` included), so the rootdir is not a reliable anchor here.
        candidates = [Path(config.invocation_params.dir) / "golden", config.rootpath / "golden"]
        default = next((c for c in candidates if c.is_dir()), None)
        if default is None:
            raise pytest.UsageError(f"no golden/ folder here: run from the project root or pass {flag('cases')} FILE_OR_DIR")
        given = [str(default)]
    paths = []
    for raw in given:
        path_text, sep, node = raw.partition("::")
        path = Path(path_text)
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
        if not path.exists():
            raise pytest.UsageError(f"case file or folder not found: {raw}")
        paths.append((path, f"{path}{sep}{node}"))
    return paths




def pytest_configure(config: pytest.Config) -> None:
    model = config.getoption("model")
    if not model and not _opt(config, "strategy"):
        return
    # Messages from here on (the harness's, the backends') name options as this front end spells them.
    config.stash[PREFIXED] = stack = contextlib.ExitStack()
    stack.enter_context(flag_prefix(PREFIX))
    _warn_deprecated(config)
    if getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no") != "no":
        raise pytest.UsageError(  # pytest-xdist's -n: each worker would start its own backend and run folder
            f"the harness asks its backend for batches of cases in one process, so it cannot run under pytest-xdist "
            f"(-n/--dist): split a run with {flag('shard')} I/N instead (python -m harness merge joins the shards)")
    if model and model not in specs():
        raise pytest.UsageError(f"unknown --model {model!r}; known: {', '.join(sorted(specs()))}")
    _check_numbers(config)
    _shard(config)  # a malformed --shard is a usage error before anything loads
    targets = _case_paths(config)
    paths = [path for path, _ in targets]
    reports_dir = Path(_opt(config, "reports_dir"))
    if not reports_dir.is_absolute():
        reports_dir = Path(config.invocation_params.dir) / reports_dir
    try:
        suite = resolve_suite(paths, _opt(config, "tools"), _opt(config, "reply_format"),
                              _opt(config, "profile"))
    except ValueError as exc:  # SuiteError, or a catalogue file that is not one
        raise pytest.UsageError(str(exc)) from None
    run = _run(config, model, paths, reports_dir, suite)
    config.stash[RUN] = HarnessSession(run=run, case_paths=paths, strict=bool(config.getoption("strict")),
                                       failure_details=_failure_details(config))
    # Collect the case files instead of the unit tests (node ids `file::case-id` select single cases).
    config.args[:] = [arg for _, arg in targets]


# Options that set up the tool-call task's prompt and scoring; refused for another task rather than ignored.
TOOL_CALL_ONLY = ("profile", "reply_format", "tools")


def _run(config: pytest.Config, model: str | None, paths: list[Path], reports_dir: Path, suite: Suite) -> Run:
    """The engine's run of the suite's task (the program task takes --th-strategy), configured once, here."""
    strategy = _opt(config, "strategy")
    if suite.task != "program" and (strategy or not model):
        raise pytest.UsageError(f"{flag('strategy')} is for program suites; {', '.join(map(str, paths))} is a {suite.task} suite"
                                + ("" if model else "; give --model"))
    if suite.task != "tool_call":
        given = [o for o in TOOL_CALL_ONLY if _opt(config, o)]
        if given:
            raise pytest.UsageError(f"{', '.join(map(flag, given))}: not for {suite.task} suites ({paths[0]} is one)")
    try:
        task = get_task(suite.task, **({"strategy": strategy or "direct"} if suite.task == "program" else {}))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    problem = task.backend_problem(model) if task.asks_model() else None
    if problem:
        raise pytest.UsageError(problem)
    asked = model if task.asks_model() else None
    resume = _opt(config, "resume")
    label = model if suite.task == "tool_call" else "-".join(
        [suite.task, *map(str, task.settings().values()), model or "none"])
    run = Run(
        task=task,
        model=asked,
        options=_backend_options(config),
        thresholds=_thresholds(config, task),
        reports_dir=reports_dir,
        run_id=resume or _opt(config, "run_id") or new_run_id(label),
        gate_on=_opt(config, "gate_on"),
        resume=bool(resume),
        max_unanswered=_opt(config, "max_unanswered"),
        suite=suite,
        repeat=_opt(config, "repeat"),
    )
    if run.repeat < 1 or (run.repeat > 1 and resume):
        raise pytest.UsageError(f"{flag('repeat')} N: N >= 1, and a repeated run cannot be resumed (start a new one)")
    _check_run_folder(run.reports_dir, run.run_id, run.resume)
    return run


def _check_run_folder(reports_dir: Path, run_id: str, resume: bool) -> None:
    """A bad or taken run id is a usage error before any model loads."""
    try:
        check_run_folder(reports_dir, run_id, resume)
    except RunFolderError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    hs = parent.config.stash.get(RUN, None)
    if hs is None or file_path.suffix != ".jsonl":
        return None
    if any(file_path == p or (p.is_dir() and p in file_path.parents) for p in hs.case_paths):
        return CaseFileNode.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """--shard I/N: after every other selection (-k, -m, --lf, ...), keep every N-th selected case from the I-th.
    Round robin over the collection order, so the shards are the same on every machine and differ in size by
    at most one case."""
    hs = config.stash.get(RUN, None)
    shard = _shard(config)
    if hs is None or shard is None:
        return
    index, count = shard
    cases = [item for item in items if isinstance(item, CaseItem)]
    mine = {id(item) for item in cases[index - 1::count]}
    dropped = [item for item in cases if id(item) not in mine]
    hs.run.shard = {"index": index, "count": count, "expression": _selection_expression(config), "n_selected": len(cases)}
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not isinstance(item, CaseItem) or id(item) in mine]


def pytest_collection_finish(session: pytest.Session) -> None:
    hs = session.config.stash.get(RUN, None)
    if hs is None or session.config.option.collectonly:
        return
    cases = [item.case for item in session.items if isinstance(item, CaseItem)]
    run = hs.run
    n_in_files = sum(hs.in_files.values())
    run.selection = {"expression": _full_expression(session.config), "n_selected": len(cases),
                     "n_in_files": n_in_files, "whole_files": len(cases) == n_in_files}
    run.refused_files = list(hs.refused)
    if not cases or (hs.refused and not session.config.option.continue_on_collection_errors):
        return  # nothing to run, or pytest stops after collection errors: no run folder is made
    capture = session.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        run.output_visible = capture.global_and_fixture_disabled
    try:
        run.start(cases)
    except (BackendError, RunFolderError) as exc:
        raise pytest.UsageError(str(exc)) from None
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        _say(reporter, f"backend: {run.backend.describe() if run.backend else 'none (this task asks no model)'}")
        for note in run.backend.notes() if run.backend else ():
            _say(reporter, f"note: {note}")
        if run.task.kind == "tool_call":
            catalogue = run.suite.catalogue
            _say(reporter, f"tools: {catalogue.source} ({len(catalogue.names)} tools)" if catalogue.source
                                else "tools: each case brings its own")
        for path, sha in run.case_files.items():
            _say(reporter, f"case file: {path} (sha256 {sha[:12]}, {sum(c.source == path for c in cases)} cases)")
        if run.results:
            _say(reporter, f"resumed: {len(run.results)} cases already have replies")


def _selection_expression(config: pytest.Config) -> str | None:
    """The options that chose a subset of the cases, as typed (None when nothing narrowed the run)."""
    parts = []
    if config.option.keyword:
        parts.append(f"-k {config.option.keyword!r}")
    if config.option.markexpr:
        parts.append(f"-m {config.option.markexpr!r}")
    if getattr(config.option, "lf", False):
        parts.append("--lf")
    parts += [f"--deselect {d}" for d in config.option.deselect or ()]
    parts += [arg for arg in config.args if "::" in arg]
    return " ".join(parts) or None


def _full_expression(config: pytest.Config) -> str | None:
    """The selection expression with the shard, if any."""
    shard = _shard(config)
    base = _selection_expression(config)
    return " ".join(p for p in (base, f"{flag('shard')} {shard[0]}/{shard[1]}" if shard else None) if p) or None


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = config.stash.get(PREFIXED, None)
    if stack is not None:
        stack.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    hs = session.config.stash.get(RUN, None)
    if hs is None or hs.run.writer is None:
        return
    run = hs.run
    if not run.results and not run.stopped:
        run.discard()
        return
    summary = run.finish()
    # A backend that stopped the run interrupts the session; its verdict is still the gate's (failed: incomplete).
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or (
        exitstatus == pytest.ExitCode.INTERRUPTED and run.stopped
    ):
        any_failed = any(not r.passed for r in run.results.values())
        ok = summary["gate"]["passed"] and not (hs.strict and any_failed)
        session.exitstatus = pytest.ExitCode.OK if ok else pytest.ExitCode.TESTS_FAILED

