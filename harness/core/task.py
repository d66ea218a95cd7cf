"""What a kind of task does, as the engine (harness.core.engine) sees it; tasks register by name.

A task loads nothing itself at run time: the suite (harness.suite) holds its case files and settings. The engine
asks a task, for each case, for the *steps* of that case: a generator that yields the backend requests the case
needs (one for a tool call; a chain of them for some program strategies), is sent each reply, and returns the
scored result. So the only place a request is built and a scorer called is the task, and every caller (the pytest
plugin, `training.train --eval-golden`, `deploy verify`, the benchmarks, the demo) evaluates the same way.

A result is the task's own object; the engine needs only `case.id`, `passed`, `reason` and `response`.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Generator, Mapping, Protocol, Sequence, runtime_checkable

from harness.backends import Backend, Reply, Request
from harness.gate import Threshold, load_threshold_file, parse_threshold, resolve_thresholds

# yields the next request, is sent its reply, returns the case's result
Steps = Generator[Request, Reply, Any]


@runtime_checkable
class Task(Protocol):
    kind: str                                   # suite.toml [task] kind
    gateable: tuple[str, ...]                   # summary metrics a threshold may name
    defaults: Mapping[str, Threshold]           # the gate when no threshold is given

    def asks_model(self) -> bool:
        """Whether this task, as configured, asks a model at all (the program template asks none)."""

    def backend_problem(self, model: str | None) -> str | None:
        """Why a run of this task cannot start with `model` (None: it can)."""

    def settings(self) -> dict[str, Any]:
        """How the task is configured, for run.json (the program task's strategy)."""

    def load_cases(self, path: Path, suite: Any) -> tuple[str, str, list[Any]]:
        """One case file's cases (CaseFileError: every problem as file:line: field: why), with the path and
        sha256 the report names it by."""

    def steps(self, case: Any, suite: Any) -> Steps:
        """The requests one case needs, then its scored result."""

    def conversation_request(self, turns: Sequence[Mapping[str, str]], now: Any, suite: Any) -> Request:
        """The request this task sends for a conversation's turns after the system prompt, asked at `now`
        (training's parity check: the data's prompt must be the one evaluation sends)."""

    def from_record(self, case: Any, record: Mapping[str, Any], suite: Any) -> Any | None:
        """A resumed or merged run's earlier record of `case`, scored again (None: ask the case again)."""

    def record(self, result: Any, suite: Any) -> dict[str, Any]:
        """The result's line in cases.jsonl."""

    def summarize(self, results: Sequence[Any], suite: Any, backend: Backend | None) -> dict[str, Any]:
        """The run's figures, every metric a top-level key (with `counts` and `intervals` beside them)."""

    def fingerprint(self, suite: Any) -> dict[str, Any]:
        """What the task adds to the backend's fingerprint (its prompt, reply format, tools)."""

    def describe_failure(self, result: Any) -> str:
        """A failed case's result -> the text pytest shows."""

    def summary_lines(self, summary: Mapping[str, Any]) -> list[str] | None:
        """The terminal table of a run (None: the harness's default table)."""


def thresholds(task: Task, specs: Sequence[str] = (), file: str | None = None) -> dict[str, Threshold]:
    """The task's defaults, then a thresholds file, then --threshold specs; names checked against its metrics."""
    overrides: dict[str, Threshold | None] = {}
    if file:
        overrides.update(load_threshold_file(file, task.defaults, task.gateable))
    for spec in specs:
        name, threshold = parse_threshold(spec, task.defaults, task.gateable)
        overrides[name] = threshold
    return resolve_thresholds(overrides, task.defaults)


# kind -> "module:attribute" of a zero-argument factory; imported on first use. A third task is a package and one
# line here (or register_task from its own code).
TASK_FACTORIES: dict[str, str] = {
    "tool_call": "harness.tasks.tool_call.task:ToolCallTask",
    "program": "harness.tasks.program.task:ProgramTask",
}
_registered: dict[str, Any] = {}


def register_task(kind: str, factory: Any) -> None:
    """Make `kind` a suite.toml task kind, built by `factory(**settings)`."""
    _registered[kind] = factory


def task_kinds() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*TASK_FACTORIES, *_registered]))


def get_task(kind: str, **settings: Any) -> Task:
    """The task `kind`, configured (the program task takes its strategy); ValueError for an unknown kind."""
    factory = _registered.get(kind)
    if factory is None and kind in TASK_FACTORIES:
        module, _, name = TASK_FACTORIES[kind].partition(":")
        factory = getattr(importlib.import_module(module), name)
    if factory is None:
        raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(task_kinds())}")
    return factory(**settings)
