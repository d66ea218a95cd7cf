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
    own_tools = true             # no suite catalogue: every case brings its own `tools` (public benchmarks)
    [metrics]
    disambiguation_tools = ["createTask", "createCalendarEvent"]   # contrastive cases that count
    [scoring]
    profiles = ["bfcl"]          # named scoring profiles reported beside the default (harness.tasks.tool_call.profiles)

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

from harness.backends.options import flag
from harness.tasks.tool_call.profiles import PROFILES
from harness.tasks.tool_call.prompt import PROMPTS, read_template
from harness.tasks.tool_call.tools import DEFAULT_TOOLS_PATH, Catalogue, load_catalogue

SUITE_TOOLS = "tools.json"
SUITE_SETTINGS = "suite.toml"
# The catalogue of a suite whose cases each bring their own tools (`[cases] own_tools = true`): none.
PER_CASE = Catalogue(tools=(), description="each case brings its own tools", source="")
ASSISTANT_DISAMBIGUATION = frozenset({"createTask", "createCalendarEvent"})  # docs/contract.md


REPLY_FORMATS = ("fenced", "native")


@dataclass(frozen=True)
class Suite:
    catalogue: Catalogue
    disambiguation_tools: frozenset[str] | None  # None: every contrastive case counts
    templates: Mapping[str, str]  # reply format -> the system prompt template for it
    reply_format: str = "fenced"  # fenced json blocks (the contract's), or the model's native tool-call JSON
    system_messages: bool = False  # cases may open with their own system message (after the suite's prompt)
    profiles: tuple[str, ...] = ()  # scoring profiles reported beside the default one
    task: str = "tool_call"  # `[task] kind`: a registered task (harness.core.task: tool_call, program, ...)

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
            raise SuiteError(f"{flag('tools')} {tools}: no such file")
        return load_catalogue(path)
    return load_catalogue(DEFAULT_TOOLS_PATH)


def resolve_suite(case_paths: Sequence[Path] = (), tools: str | Path | None = None,
                  reply_format: str | None = None, profiles: Sequence[str] = ()) -> Suite:
    """The run's suite: its catalogue (`resolve_catalogue`) and its settings (`suite.toml` beside the case
    files); `reply_format`, when given, overrides the suite's; `profiles` are added to the suite's."""
    found = _suite_file(case_paths, SUITE_SETTINGS, "settings")
    settings = _read_settings(found) if found else {}
    if settings.get("cases", {}).get("own_tools", False) is True:
        if tools is not None or _suite_file(case_paths, SUITE_TOOLS, "tool catalogues"):
            raise SuiteError(f"{found}: cases.own_tools: every case brings its own tools, so the suite takes no "
                             f"catalogue (a {SUITE_TOOLS} beside it or {flag('tools')})")
        catalogue = PER_CASE
    else:
        catalogue = resolve_catalogue(case_paths, tools)
    suite = _resolve_settings(found, settings, catalogue)
    task = settings.get("task", {}).get("kind", "tool_call")
    from harness.core.task import task_kinds

    if task not in task_kinds():
        raise SuiteError(f"{found}: task.kind: one of {', '.join(task_kinds())}; got {task!r}")
    suite = dataclasses.replace(suite, task=task)
    fmt = reply_format or suite.reply_format
    if fmt not in REPLY_FORMATS:
        raise SuiteError(f"reply format {fmt!r}: one of {', '.join(REPLY_FORMATS)}")
    return dataclasses.replace(suite, reply_format=fmt, profiles=_profiles([*suite.profiles, *profiles], flag("profile")))


def _profiles(names: Sequence[str], where: str) -> tuple[str, ...]:
    """Named profiles other than the default, each once; an unknown name is refused, naming the known ones."""
    extra = [n for n in PROFILES if n != "default"]
    for name in names:
        if name not in PROFILES:
            raise SuiteError(f"{where}: no scoring profile {name!r}; known: {', '.join(extra)}")
    return tuple(n for n in dict.fromkeys(names) if n != "default")


def _read_settings(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # TOMLDecodeError is a ValueError
        raise SuiteError(f"{path}: cannot read the suite settings: {exc}") from exc


def _resolve_settings(found: Path | None, settings: dict, catalogue: Catalogue) -> Suite:
    assistant = bool(catalogue.source) and Path(catalogue.source).resolve() == DEFAULT_TOOLS_PATH.resolve()
    templates = _templates("assistant" if assistant else "default")
    fmt, declared, system_messages, profiles = "fenced", None, False, ()
    if found:
        path = found
        try:
            for name, file in settings.get("prompt", {}).items():
                if name not in REPLY_FORMATS:
                    raise SuiteError(f"{path}: prompt.{name}: a template per reply format ({', '.join(REPLY_FORMATS)})")
                templates[name] = read_template(path.parent / file)
        except (OSError, ValueError) as exc:  # a template that cannot be read or is not one
            raise SuiteError(f"{path}: cannot read the suite settings: {exc}") from exc
        fmt = settings.get("reply", {}).get("format", "fenced")
        declared = settings.get("metrics", {}).get("disambiguation_tools")
        system_messages = settings.get("cases", {}).get("system_messages", False) is True
        named = settings.get("scoring", {}).get("profiles", [])
        if not isinstance(named, list) or not all(isinstance(n, str) for n in named):
            raise SuiteError(f"{path}: scoring.profiles: a list of profile names")
        profiles = _profiles(named, f"{path}: scoring.profiles")
        if declared is not None:
            unknown = [t for t in declared if t not in catalogue] if isinstance(declared, list) else [declared]
            if unknown or not declared:
                raise SuiteError(f"{path}: metrics.disambiguation_tools: a non-empty list of the catalogue's tools; "
                                 f"not in it: {unknown}")
    disambiguation = frozenset(declared) if declared else ASSISTANT_DISAMBIGUATION if assistant else None
    return Suite(catalogue, disambiguation, templates, fmt, system_messages, profiles)
