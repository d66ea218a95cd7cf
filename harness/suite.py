"""Which tool catalogue a run uses: resolved once, at the edge (the pytest plugin), and passed down.

A suite is a folder of case files; its catalogue is the `tools.json` beside them. Without one, `--tools FILE`
names it, and without that the packaged assistant catalogue (`harness/spec/tools.json`) applies.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from harness.tools import DEFAULT_TOOLS_PATH, Catalogue, load_catalogue

SUITE_TOOLS = "tools.json"


class SuiteError(ValueError):
    """Case files whose catalogues cannot be told apart or do not exist."""


def suite_tools_file(case_path: Path) -> Path | None:
    """The `tools.json` of the suite a case file (or folder) belongs to, if it has one."""
    folder = case_path if case_path.is_dir() else case_path.parent
    candidate = folder / SUITE_TOOLS
    return candidate if candidate.is_file() else None


def resolve_catalogue(case_paths: Sequence[Path] = (), tools: str | Path | None = None) -> Catalogue:
    """The run's catalogue: the suite's `tools.json` beside the case files, else `tools`, else the packaged one.
    Case files of suites with different catalogues cannot share a run (their scores would mean different
    things): that is refused, naming them."""
    found = {f.resolve() for f in (suite_tools_file(p) for p in case_paths) if f is not None}
    if len(found) > 1:
        raise SuiteError("these case files belong to suites with different tool catalogues ("
                         + ", ".join(sorted(map(str, found))) + "): run each suite on its own")
    if found:
        return load_catalogue(found.pop())
    if tools is not None:
        path = Path(tools)
        if not path.is_file():
            raise SuiteError(f"--tools {tools}: no such file")
        return load_catalogue(path)
    return load_catalogue(DEFAULT_TOOLS_PATH)
