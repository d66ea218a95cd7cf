"""The case schema and its one loader (docs/contract.md).

A bad case file is refused whole, before anything runs, with every problem named by file, line
and field, because a half-loaded suite gives numbers that look real and are not.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from harness import jsonl
from harness.backends.options import flag
from harness.casefile import CaseFileError, Problem  # noqa: F401  (re-exported: the loaders raise them)
from harness.escape import has_control
from harness.isotime import parse_now
from harness.tasks.tool_call.matchers import Matcher, MatcherError, compile_matcher
from harness.tasks.tool_call.tools import Catalogue, catalogue_from_json

CATEGORIES = ("single", "contrastive", "no_tool", "multi_tool", "multi_turn")
ROLES = ("user", "assistant", "tool")
DEFAULT_NOW = "2026-02-24T09:00:00Z"


@dataclass(frozen=True)
class ExpectedCall:
    tool: str
    params: Mapping[str, Matcher]
    raw: Mapping[str, Any]

    def describe(self) -> str:
        inner = ", ".join(f"{k}: {m.describe()}" for k, m in self.params.items())
        return f"{self.tool}({inner})"


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    messages: tuple[Mapping[str, str], ...]
    expected: tuple[ExpectedCall, ...]
    now: datetime
    pair: str | None = None
    source: str = ""
    line: int = 0
    pair_size: int = 0  # how many cases of the file share `pair`: a group counts only when all of them ran
    tools: Catalogue | None = None  # the case's own functions (public benchmarks give each case its own)

    def catalogue(self, suite: Catalogue) -> Catalogue:
        """The tools this case is asked and scored against: its own when it brings them, else the suite's."""
        return self.tools or suite

    @property
    def expects_call(self) -> bool:
        return bool(self.expected)


@dataclass(frozen=True)
class CaseFile:
    path: str
    sha256: str
    cases: tuple[Case, ...]


def load_case_file(path: str | Path, catalogue: Catalogue, *, system_messages: bool = False) -> CaseFile:
    """Load and fully validate one JSONL case file against `catalogue`; raises CaseFileError listing every problem.
    `system_messages`: the suite lets a case open with its own system message (public benchmarks' live
    categories do); it follows the harness's system prompt."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CaseFileError([Problem(str(path), 0, "", f"cannot read: {exc.strerror or exc}")]) from exc
    problems: list[Problem] = []
    cases: list[Case] = []
    pairs: dict[str, list[int]] = defaultdict(list)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaseFileError([Problem(str(path), 0, "", f"not UTF-8: {exc}")]) from exc
    if _every_line(text, lambda row: "response" in row and "messages" not in row):
        raise CaseFileError([Problem(str(path), 0, "", "this is a replay file (lines with 'response' and no "
                                     f"'messages'), not a case file: pass it with {flag('replies')}, not {flag('cases')}")])
    if _every_line(text, lambda row: row.get("task") == "program"):
        raise CaseFileError([Problem(str(path), 0, "", "these are workout-program cases (\"task\": \"program\"), not "
                                     "tool-call cases: put the file in a folder whose suite.toml says [task] kind = "
                                     f"\"program\" and pass the folder (e.g. {flag('cases')} suites/program)")])
    for lineno, line in enumerate(jsonl.split_lines(text), start=1):
        if not line.strip():
            continue
        case = _parse_line(line, str(path), lineno, catalogue, problems, pairs, system_messages)
        if case is not None:
            cases.append(case)
    _check_across_lines(cases, pairs, str(path), problems)
    cases = [replace(c, pair_size=len(pairs[c.pair])) if c.pair else c for c in cases]
    problems.sort(key=lambda p: p.line)
    if not cases and not problems:
        problems.append(Problem(str(path), 0, "", "no cases in the file"))
    if problems:
        raise CaseFileError(problems)
    return CaseFile(path=str(path), sha256=hashlib.sha256(data).hexdigest(), cases=tuple(cases))


def _every_line(text: str, test: Any) -> bool:
    """Every line is a JSON object that passes `test` (a replay file, a file of another task's cases). A case
    file answers no at its first line, so loading does not parse the file twice."""
    seen = False
    for line in jsonl.split_lines(text):
        if not line.strip():
            continue
        try:
            row = jsonl.loads(line)
        except ValueError:
            return False
        if not isinstance(row, dict) or not test(row):
            return False
        seen = True
    return seen


def _parse_line(
    line: str, path: str, lineno: int, catalogue: Catalogue, problems: list[Problem], pairs: dict[str, list[int]],
    system_messages: bool = False,
) -> Case | None:
    def bad(field: str, message: str) -> None:
        problems.append(Problem(path, lineno, field, message))

    try:
        raw = jsonl.loads(line)
    except jsonl.JsonValueError as exc:
        bad("", str(exc))
        return None
    if not isinstance(raw, dict):
        bad("", "a case must be a JSON object")
        return None
    before = len(problems)
    for key in ("id", "category", "messages", "expected"):
        if key not in raw:
            bad(key, "required field is missing")
    case_id = raw.get("id")
    if "id" in raw and (not isinstance(case_id, str) or not case_id.strip()):
        bad("id", "must be a non-empty string")
    elif isinstance(case_id, str) and has_control(case_id):
        bad("id", "must not hold control characters or line breaks (it is a test id shown on terminals)")
    category = raw.get("category")
    if "category" in raw and category not in CATEGORIES:
        bad("category", f"unknown category {category!r}; one of {', '.join(CATEGORIES)}")
    pair = raw.get("pair")
    if pair is not None and (not isinstance(pair, str) or not pair.strip()):
        bad("pair", "must be a non-empty string when given")
    elif isinstance(pair, str) and has_control(pair):
        bad("pair", "must not hold control characters or line breaks")
    elif pair is not None:
        pairs[pair].append(lineno)
    now_text = raw.get("now", DEFAULT_NOW)
    now = None
    try:
        now = parse_now(now_text) if isinstance(now_text, str) else None
    except ValueError:
        pass
    if now is None:
        bad("now", f"not an ISO 8601 date-time: {now_text!r}")
    messages = _check_messages(raw.get("messages"), bad, system_messages) if "messages" in raw else ()
    tools, tools_ok = None, True
    if "tools" in raw:
        try:
            tools = catalogue_from_json(raw["tools"], f"{path}:{lineno}: tools")
        except ValueError as exc:
            tools_ok = False  # its expected calls cannot be checked against functions that failed to load
            bad("tools", str(exc).split(": tools: ", 1)[-1])
    elif not catalogue.tools:
        tools_ok = False
        bad("tools", "required: this suite has no catalogue of its own (suite.toml [cases] own_tools), "
                     "so every case brings its functions")
    expected = _check_expected(raw.get("expected"), tools or catalogue, bad) if "expected" in raw and tools_ok else ()
    if len(problems) > before:
        return None
    return Case(
        id=case_id, category=category, messages=messages, expected=expected, now=now,
        pair=pair, source=path, line=lineno, tools=tools,
    )


def _check_messages(messages: Any, bad, system_messages: bool = False) -> tuple[Mapping[str, str], ...]:
    if not isinstance(messages, list) or not messages:
        bad("messages", "must be a non-empty list of {role, content}")
        return ()
    out = []
    for i, msg in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(msg, dict):
            bad(at, "must be an object with role and content")
            continue
        role, content = msg.get("role"), msg.get("content")
        if role == "system" and i == 0 and system_messages:
            pass  # the suite allows a case's own system message, first
        elif role not in ROLES:
            allowed = " (a system message only first, where the suite's suite.toml allows it)" if role == "system" else ""
            bad(f"{at}.role", f"role {role!r} is not one of {', '.join(ROLES)} (the harness adds the system prompt)"
                + allowed)
        if not isinstance(content, str):
            bad(f"{at}.content", "must be a string (a tool turn holds its JSON result as a string)")
        out.append({"role": role, "content": content})
    return tuple(out)


def _check_expected(expected: Any, catalogue: Catalogue, bad) -> tuple[ExpectedCall, ...]:
    if not isinstance(expected, list):
        bad("expected", "must be a list of {tool, params} ([] means: no tool call)")
        return ()
    out = []
    for i, call in enumerate(expected):
        at = f"expected[{i}]"
        if not isinstance(call, dict):
            bad(at, "must be an object {tool, params}")
            continue
        extra = set(call) - {"tool", "params"}
        if extra:
            bad(at, f"unknown key(s) {sorted(extra)}; only tool and params")
        name = call.get("tool")
        tool = catalogue.get(name) if isinstance(name, str) else None
        if tool is None:
            bad(f"{at}.tool", f"unknown tool {name!r}; tools.json has {', '.join(catalogue.names)}")
            continue
        params = call.get("params", {})
        if not isinstance(params, dict):
            bad(f"{at}.params", "must be an object of param name -> matcher")
            continue
        compiled = {}
        for pname, raw_matcher in params.items():
            where = f"{at}.params.{pname}"
            if pname not in tool.param_names:
                bad(where, f"{name} has no param {pname!r}; it has {', '.join(sorted(tool.param_names))}")
                continue
            try:
                compiled[pname] = compile_matcher(raw_matcher)
            except MatcherError as exc:
                bad(where + exc.where, str(exc))
                continue
            for why in compiled[pname].impossible(tool.param_schema(pname), pname in tool.required):
                bad(where, why)
        out.append(ExpectedCall(tool=name, params=compiled, raw=params))
    return tuple(out)


def _check_across_lines(cases: list[Case], pairs: dict[str, list[int]], path: str, problems: list[Problem]) -> None:
    first_line: dict[str, int] = {}
    for case in cases:
        if case.id in first_line:
            problems.append(Problem(path, case.line, "id", f"duplicate id {case.id!r} (first on line {first_line[case.id]})"))
        else:
            first_line[case.id] = case.line
    for pair, lines in pairs.items():
        if len(lines) < 2:
            problems.append(Problem(path, lines[0], "pair", f"pair {pair!r} has only this case; a group needs two or more"))
