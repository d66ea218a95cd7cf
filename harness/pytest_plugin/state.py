"""What one pytest session of the harness holds, in config.stash (shared by the plugin's modules)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.core.engine import Run
from harness.core.task import Task


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

PREFIXED = pytest.StashKey[contextlib.ExitStack]()
