"""The collected things: a case file (loaded whole by its task, every problem named) and one item per case,
run without pytest's per-phase machinery."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from harness import escape
from harness.backends import BackendError
from harness.casefile import CaseFileError, Problem
from harness.core.engine import Run
from harness.pytest_plugin.state import RUN

# Every flag but --model carries this prefix, so it cannot collide with another plugin's (pytest-profiling owns
# --profile; --seed, --device, --repeat and --shard are names other plugins use or may use).


class CaseFailed(Exception):
    """A scored case that did not pass; carries the result for repr_failure."""

    def __init__(self, result: Any) -> None:
        super().__init__(result.reason)
        self.result = result


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

