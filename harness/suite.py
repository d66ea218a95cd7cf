"""What a run evaluates against, resolved once at the edge (pytest plugin, training and deploy CLIs) and
passed down: the suite's tool catalogue and its metric settings. The core never picks a default.

A suite is a folder of case files. Its catalogue is the `tools.json` beside them; without one, `--tools FILE`
names it, and without that the packaged assistant catalogue (`harness/spec/tools.json`) applies. Its settings
are an optional `suite.toml` beside them:

    [prompt]
    fenced = "prompt.txt"        # the system prompt template per reply format ({date} and {tools} filled in)
    [reply]
    format = "native"            # fenced (default) or native
    [cases]
    system_messages = true       # a case may open with its own system message (default false)
    [metrics]
    disambiguation_tools = ["createTask", "createCalendarEvent"]   # contrastive cases that count

Without one, the assistant catalogue keeps its own prompt and the contract's pair (createTask vs
createCalendarEvent); any other catalogue gets a neutral prompt and counts every contrastive case.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from harness.prompt import PROMPTS, read_template
from harness.tools import DEFAULT_TOOLS_PATH, Catalogue, load_catalogue

SUITE_TOOLS = "tools.json"
SUITE_SETTINGS = "suite.toml"
ASSISTANT_DISAMBIGUATION = frozenset({"createTask", "createCalendarEvent"})  # docs/contract.md


REPLY_FORMATS = ("fenced", "native")


@dataclass(frozen=True)
class Suite:
    catalogue: Catalogue
    disambiguation_tools: frozenset[str] | None  # None: every contrastive case counts
    templates: Mapping[str, str]  # reply format -> the system prompt template for it
    reply_format: str = "fenced"  # fenced json blocks (the contract's), or the model's native tool-call JSON
    system_messages: bool = False  # cases may open with their own system message (after the suite's prompt)

    @property
    def template(self) -> str:
        """The system prompt template of this suite in its reply format."""
        return self.templates[self.reply_format]


def _templates(kind: str) -> dict[str, str]:
    """The packaged templates: `assistant` (the assistant suite's own words) or `default` (neutral)."""
    return {fmt: read_template(PROMPTS / f"{kind}.{fmt}.txt") for fmt in REPLY_FORMATS}


class SuiteError(ValueError):
    """Case files whose catalogues cannot be told apart or do not exist."""


def _beside(case_path: Path, name: str) -> Path | None:
    """The file `name` of the suite a case file (or folder) belongs to, if it has one."""
    folder = case_path if case_path.is_dir() else case_path.parent
    candidate = folder / name
    return candidate if candidate.is_file() else None


def _suite_file(case_paths: Sequence[Path], name: str, what: str) -> Path | None:
    """The one file `name` beside the case files, if any; case files of suites with different ones cannot
    share a run (their scores would mean different things), which is refused, naming them."""
    found = {f.resolve() for f in (_beside(p, name) for p in case_paths) if f is not None}
    if len(found) > 1:
        raise SuiteError(f"these case files belong to suites with different {what} ("
                         + ", ".join(sorted(map(str, found))) + "): run each suite on its own")
    return found.pop() if found else None


def resolve_catalogue(case_paths: Sequence[Path] = (), tools: str | Path | None = None) -> Catalogue:
    """The run's catalogue: the suite's `tools.json` beside the case files, else `tools`, else the packaged one.
    Case files of suites with different catalogues cannot share a run."""
    found = _suite_file(case_paths, SUITE_TOOLS, "tool catalogues")
    if found:
        return load_catalogue(found)
    if tools is not None:
        path = Path(tools)
        if not path.is_file():
            raise SuiteError(f"--tools {tools}: no such file")
        return load_catalogue(path)
    return load_catalogue(DEFAULT_TOOLS_PATH)


def resolve_suite(case_paths: Sequence[Path] = (), tools: str | Path | None = None,
                  reply_format: str | None = None) -> Suite:
    """The run's suite: its catalogue (`resolve_catalogue`) and its settings (`suite.toml` beside the case
    files); `reply_format`, when given, overrides the suite's."""
    suite = _resolve_settings(case_paths, resolve_catalogue(case_paths, tools))
    fmt = reply_format or suite.reply_format
    if fmt not in REPLY_FORMATS:
        raise SuiteError(f"reply format {fmt!r}: one of {', '.join(REPLY_FORMATS)}")
    return dataclasses.replace(suite, reply_format=fmt)


def _resolve_settings(case_paths: Sequence[Path], catalogue: Catalogue) -> Suite:
    found = _suite_file(case_paths, SUITE_SETTINGS, "settings")
    assistant = Path(catalogue.source).resolve() == DEFAULT_TOOLS_PATH.resolve()
    templates = _templates("assistant" if assistant else "default")
    fmt, declared, system_messages = "fenced", None, False
    if found:
        path = found
        try:
            settings = tomllib.loads(path.read_text(encoding="utf-8"))
            for name, file in settings.get("prompt", {}).items():
                if name not in REPLY_FORMATS:
                    raise SuiteError(f"{path}: prompt.{name}: a template per reply format ({', '.join(REPLY_FORMATS)})")
                templates[name] = read_template(path.parent / file)
        except (OSError, ValueError) as exc:  # TOMLDecodeError is a ValueError, and so is a bad template
            raise SuiteError(f"{path}: cannot read the suite settings: {exc}") from exc
        fmt = settings.get("reply", {}).get("format", "fenced")
        declared = settings.get("metrics", {}).get("disambiguation_tools")
        system_messages = settings.get("cases", {}).get("system_messages", False) is True
        if declared is not None:
            unknown = [t for t in declared if t not in catalogue] if isinstance(declared, list) else [declared]
            if unknown or not declared:
                raise SuiteError(f"{path}: metrics.disambiguation_tools: a non-empty list of the catalogue's tools; "
                                 f"not in it: {unknown}")
    disambiguation = frozenset(declared) if declared else ASSISTANT_DISAMBIGUATION if assistant else None
    return Suite(catalogue, disambiguation, templates, fmt, system_messages)
