"""pytest wiring: case files -> one Item per case -> scored -> report + gate. Only wiring lives here.

With `--model`, pytest collects case files (`--cases`, positional paths, or `golden/`) instead of
the unit tests; each case is one test whose id is the case id. The session's exit status is the
gate's verdict, not "did every case pass" (use `--strict` for that).
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from harness import __version__, escape
from harness.backends import BackendError, BackendOptions, specs
from harness.backends.options import Option, first_problem, flag, flag_prefix
from harness.backends.registry import all_options
from harness.cases import CaseFileError, Problem
from harness.core.engine import Run
from harness.core.task import Task, get_task, thresholds
from harness.gate import GATE_ON, Threshold
from harness.program.run import STRATEGIES
from harness.report import RunFolderError, check_run_folder, new_run_id
from harness.suite import REPLY_FORMATS, Suite, resolve_suite
from harness.summary import format_profiles, format_table

# Every flag but --model carries this prefix, so it cannot collide with another plugin's (pytest-profiling owns
# --profile; --seed, --device, --repeat and --shard are names other plugins use or may use).
PREFIX = "--th-"
# The old unprefixed spellings, kept for one release as deprecated aliases (old -> new); --profile is not among
# them: it is the clash, so it went at once (--th-profile).
DEPRECATED: dict[str, str] = {}
GONE = {"--profile": "--th-profile"}
DEST = "th_"


def _add(group: Any, name: str, **kwargs: Any) -> None:
    """Add `--th-<name>` (dest `th_<name>`) and, unless it is gone, the deprecated `--<name>` beside it."""
    old, new = "--" + name.replace("_", "-"), PREFIX + name.replace("_", "-")
    if old not in GONE:
        DEPRECATED[old] = new
    group.addoption(new, *(() if old in GONE else (old,)), dest=DEST + name, **kwargs)


def _opt(config: pytest.Config, name: str) -> Any:
    """The value of the harness option `name` (its dest is namespaced too: pytest-profiling's is `profile`)."""
    return config.getoption(DEST + name)


class CaseFailed(Exception):
    """A scored case that did not pass; carries the result for repr_failure."""

    def __init__(self, result: Any) -> None:
        super().__init__(result.reason)
        self.result = result


@dataclass
class HarnessSession:
    """What one pytest session of the harness holds (in config.stash): the run and the pytest-only bits."""

    run: Run  # the engine's run of the suite's task (harness.core.task)
    case_paths: list[Path]
    strict: bool
    failure_details: int | None  # None: every failure, through pytest's own report
    seen_ids: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # case file -> why it was refused
    in_files: dict[str, int] = field(default_factory=dict)  # case file -> how many cases it holds
    stops: list[tuple[str, str]] = field(default_factory=list)  # (title, message or traceback) of what stopped the run

    @property
    def task(self) -> Task:
        return self.run.task


RUN = pytest.StashKey[HarnessSession]()
DEFAULT_FAILURE_DETAILS = 10


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("toolcall", f"tool-calling golden suite (runs only with --model; every other flag is {PREFIX}...)")
    group.addoption("--model", default=None, metavar="BACKEND",
                    help=f"evaluate this backend on the case files: {', '.join(sorted(specs()))}. "
                         "Without it, case files are not run (plain pytest runs the unit tests).")
    _add(group, "cases", action="append", default=[], metavar="PATH",
         help="case file or folder of *.jsonl (repeatable; default: golden/, or positional paths)")
    _add(group, "reply_format", default=None, choices=REPLY_FORMATS,
         help="how replies carry calls: fenced json blocks (the default), or the model's native JSON "
              "({\"name\", \"parameters\"}); default: the suite's (suite.toml [reply] format)")
    _add(group, "strategy", default=None, choices=STRATEGIES,
         help="program suites (suite.toml [task] kind = \"program\"): how each program is asked for: direct (default), "
              "few-shot, chain, hybrid, or template (no model: then --model may be left out). python -m harness "
              "program --strategy all compares them")
    _add(group, "profile", action="append", default=[], metavar="NAME",
         help="also score the replies under this named profile and show its figures beside the default ones: bfcl "
              "(BFCL's checker rules; see docs/contract.md). Repeatable; a suite's suite.toml [scoring] profiles adds "
              "its own")
    _add(group, "tools", default=None, metavar="FILE",
         help="the tool catalogue (an OpenAI function-tools list) when the case files' folder has no tools.json "
              "(default: the assistant suite's)")
    for option in all_options():  # each backend's own table (harness.backends.options); the chosen one reads its own
        _add(group, option.name, **option.argparse_kwargs())
    _add(group, "reports_dir", default="reports", metavar="DIR",
         help="where reports/<run-id>/ and reports/latest/ go (default: reports)")
    _add(group, "run_id", default=None, help="name of the run folder (default: UTC time + model)")
    _add(group, "resume", default=None, metavar="RUN_ID",
         help="continue that run: keep its replies, ask the backend only for cases with none")
    _add(group, "threshold", action="append", default=[], metavar="METRIC=VALUE",
         help="override a gate threshold: metric=0.95 (default direction), metric>=0.8, latency_p95_s<3, metric=off "
              "(repeatable)")
    _add(group, "thresholds_file", default=None, metavar="TOML",
         help="thresholds from a TOML file ([thresholds] metric = 0.95 or \">= 0.8\" or \"off\")")
    _add(group, "failure_details", default=str(DEFAULT_FAILURE_DETAILS), metavar="N|all",
         help=f"show the full diff (expected, got, reply) of the first N failed cases (default: "
              f"{DEFAULT_FAILURE_DETAILS}); every failed case's id and reason is listed either way. 'all', or an "
              "explicit --tb, gives pytest's own failure report for every case")
    _add(group, "max_unanswered", type=int, default=0, metavar="N",
         help="cases the backend may leave without a reply (after its retries) before the run counts as incomplete "
              "and fails the gate (default: 0)")
    _add(group, "compare_to", default=None, metavar="REPORT_DIR",
         help="after the run, compare it with that run (python -m harness compare REPORT_DIR <this run>)")
    _add(group, "repeat", type=int, default=1, metavar="N",
         help="ask every case N times: the first reply is the verdict; the summary adds pass^N (every repeat "
              "passed) and the cases whose replies differ (at temperature 0: a backend finding)")
    _add(group, "shard", default=None, metavar="I/N",
         help="run only shard I of N of the selected cases (a deterministic split, for several machines); join the "
              "shards' reports with: python -m harness merge REPORT_DIR... --out DIR")
    _add(group, "gate_on", default="point", choices=GATE_ON,
         help="judge '>' thresholds on the point estimate (default) or the 95%% Wilson lower bound")
    # `--strict` is pytest's own flag (strict mode); the harness reads it too: with it, any failed
    # case fails the run even when the gate passes.


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


def _thresholds(config: pytest.Config, task: Task) -> dict[str, Threshold]:
    try:
        return thresholds(task, _opt(config, "threshold"), _opt(config, "thresholds_file"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _failure_details(config: pytest.Config) -> int | None:
    """How many failed cases get a full diff from the harness. pytest's own failure report looks up each
    failure's teardown sections among all reports (quadratic: minutes at 10,000 cases), so unless the user
    asks for it (`--failure-details all`, or any explicit `--tb`), it is off and the harness shows the first
    N diffs itself; the short summary still lists every failed case with its reason."""
    raw = str(_opt(config, "failure_details")).strip().lower()
    if raw == "all" or config.option.tbstyle != "auto":
        return None
    try:
        n = int(raw)
        if n < 0:
            raise ValueError
    except ValueError:
        raise pytest.UsageError(f"{flag('failure_details')} {raw!r}: a number >= 0, or all") from None
    config.option.tbstyle = "no"
    return n


def _check_numbers(config: pytest.Config) -> None:
    """A number below its option's minimum is a usage error before anything runs, not a crash in every case."""
    checked = [*all_options(), Option("max_unanswered", "", int, minimum=0)]
    problem = first_problem(checked, {o.name: _opt(config, o.name) for o in checked})
    if problem:
        raise pytest.UsageError(problem)


def _warn_deprecated(config: pytest.Config) -> None:
    """An old unprefixed flag still works for this release, with a warning that names its new spelling."""
    used = sorted({arg.split("=", 1)[0] for arg in config.invocation_params.args if isinstance(arg, str)}
                  & set(DEPRECATED))
    for old in used:
        config.issue_config_time_warning(pytest.PytestDeprecationWarning(
            f"{old} is deprecated and goes in the next release: use {DEPRECATED[old]}"), stacklevel=2)


PREFIXED = pytest.StashKey[contextlib.ExitStack]()


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


def _backend_options(config: pytest.Config) -> BackendOptions:
    """Every backend flag's value; the chosen backend reads its own."""
    return BackendOptions({option.name: _opt(config, option.name) for option in all_options()})


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


def _no_op() -> None:
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """A case has no fixtures, so its setup and teardown are empty: report them without running pytest's
    per-phase machinery (capture, logging and warning wrappers), which costs more than scoring a case.
    Every plugin still sees the usual logstart, setup/call/teardown reports and logfinish (terminal, JUnit
    XML, --lf, -x); the backend decides itself when its output must reach the terminal."""
    if not isinstance(item, CaseItem):
        return None
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for when in ("setup", "call", "teardown"):
        if when == "call":
            call = pytest.CallInfo.from_call(item.runtest, when, reraise=(pytest.exit.Exception, KeyboardInterrupt))
            report = ihook.pytest_runtest_makereport(item=item, call=call)
            if report.failed and call.excinfo is not None and not isinstance(call.excinfo.value, CaseFailed):
                stopped = isinstance(call.excinfo.value, BackendError)
                title = f"{'backend stopped the run at' if stopped else 'crashed:'} {item.nodeid}"
                item.config.stash[RUN].stops.append((title, str(report.longrepr)))
        else:  # nothing ran: an empty passed report, as pytest would make it
            report = pytest.TestReport.from_item_and_call(item, pytest.CallInfo.from_call(_no_op, when))
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


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


def _shard(config: pytest.Config) -> tuple[int, int] | None:
    raw = _opt(config, "shard")
    if raw is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", raw)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise pytest.UsageError(f"{flag('shard')} {raw!r}: write I/N with 1 <= I <= N, e.g. {flag('shard')} 2/4")
    return int(m.group(1)), int(m.group(2))


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


class CaseFileNode(pytest.File):
    """One JSONL case file; loaded whole and validated before any case runs."""

    def collect(self) -> Iterator["CaseItem"]:
        hs = self.config.stash[RUN]
        try:
            path, sha256, cases = self._load(hs.run)
            clashes = [
                Problem(str(self.path), c.line, "id", f"id {c.id!r} is also in {hs.seen_ids[c.id]}")
                for c in cases if c.id in hs.seen_ids
            ]
            if clashes:
                raise CaseFileError(clashes)
        except CaseFileError as exc:
            hs.refused[str(self.path)] = str(exc)
            raise
        hs.run.case_files[path] = sha256
        hs.in_files[path] = len(cases)
        for case in cases:
            hs.seen_ids[case.id] = f"{case.source}:{case.line}"
            yield CaseItem.from_parent(self, name=case.id, case=case)

    def _load(self, run: Run) -> tuple[str, str, Sequence[Any]]:
        """This file's cases as the run's task reads them, and the path and sha256 its report names the file by."""
        return run.task.load_cases(self.path, run.suite)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CaseFileError):
            return escape.terminal(str(excinfo.value))
        return super().repr_failure(excinfo)  # a Collector's takes no style (pytest 8 and 9)


class CaseItem(pytest.Item):
    """One golden case; passes when the reply matches every expectation."""

    def __init__(self, *, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        try:
            result = self.config.stash[RUN].run.result_for(self.case)
        except BackendError as exc:
            self.session.shouldstop = f"backend error: {exc}"
            raise
        except Exception as exc:  # a crash: shown with its traceback, and the run stops (incomplete)
            self.session.shouldstop = f"backend crashed: {type(exc).__name__}: {exc}"
            raise
        if not result.passed:
            raise CaseFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CaseFailed):
            return escape.terminal(self.config.stash[RUN].task.describe_failure(excinfo.value.result))
        if isinstance(excinfo.value, BackendError):
            return escape.terminal(f"backend error (the run stops): {excinfo.value}")
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        case = self.case
        kind = getattr(case, "category", None) or getattr(case, "goal", None)
        return self.path, case.line - 1, f"case {case.id}" + (f" [{kind}]" if kind else "")
