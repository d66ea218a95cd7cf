"""What a run evaluates against, resolved once at the edge (pytest plugin, training and deploy CLIs) and
passed down: the suite's tool catalogue and its metric settings. The core never picks a default.

A suite is a folder of case files. Its catalogue is the `tools.json` beside them; without one, `--tools FILE`
names it, and without that the packaged assistant catalogue (`harness/spec/tools.json`) applies. Its settings
are an optional `suite.toml` beside them:

    [metrics]
    disambiguation_tools = ["createTask", "createCalendarEvent"]   # contrastive cases that count

Without one, the assistant catalogue keeps the contract's pair (createTask vs createCalendarEvent) and any
other catalogue counts every contrastive case.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from harness.tools import DEFAULT_TOOLS_PATH, Catalogue, load_catalogue

SUITE_TOOLS = "tools.json"
SUITE_SETTINGS = "suite.toml"
ASSISTANT_DISAMBIGUATION = frozenset({"createTask", "createCalendarEvent"})  # docs/contract.md


@dataclass(frozen=True)
class Suite:
    catalogue: Catalogue
    disambiguation_tools: frozenset[str] | None  # None: every contrastive case counts


class SuiteError(ValueError):
    """Case files whose catalogues cannot be told apart or do not exist."""


def _beside(case_path: Path, name: str) -> Path | None:
    """The file `name` of the suite a case file (or folder) belongs to, if it has one."""
    folder = case_path if case_path.is_dir() else case_path.parent
    candidate = folder / name
    return candidate if candidate.is_file() else None


def resolve_catalogue(case_paths: Sequence[Path] = (), tools: str | Path | None = None) -> Catalogue:
    """The run's catalogue: the suite's `tools.json` beside the case files, else `tools`, else the packaged one.
    Case files of suites with different catalogues cannot share a run (their scores would mean different
    things): that is refused, naming them."""
    found = {f.resolve() for f in (_beside(p, SUITE_TOOLS) for p in case_paths) if f is not None}
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


def resolve_suite(case_paths: Sequence[Path] = (), tools: str | Path | None = None) -> Suite:
    """The run's suite: its catalogue (`resolve_catalogue`) and its settings (`suite.toml` beside the case files)."""
    catalogue = resolve_catalogue(case_paths, tools)
    found = {f.resolve() for f in (_beside(p, SUITE_SETTINGS) for p in case_paths) if f is not None}
    if len(found) > 1:
        raise SuiteError("these case files belong to suites with different settings ("
                         + ", ".join(sorted(map(str, found))) + "): run each suite on its own")
    if found:
        path = found.pop()
        try:
            metrics = tomllib.loads(path.read_text(encoding="utf-8")).get("metrics", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SuiteError(f"{path}: cannot read the suite settings: {exc}") from exc
        declared = metrics.get("disambiguation_tools")
        if declared is not None:
            unknown = [t for t in declared if t not in catalogue] if isinstance(declared, list) else [declared]
            if unknown or not declared:
                raise SuiteError(f"{path}: metrics.disambiguation_tools: a non-empty list of the catalogue's tools; "
                                 f"not in it: {unknown}")
            return Suite(catalogue, frozenset(declared))
    assistant = Path(catalogue.source).resolve() == DEFAULT_TOOLS_PATH.resolve()
    return Suite(catalogue, ASSISTANT_DISAMBIGUATION if assistant else None)
