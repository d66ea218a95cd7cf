"""Program cases, replies and rules. Pure: no model, no I/O beyond reading a case file.

A case file is JSON Lines, one request per line:

    {"id": "p-3-hyp", "task": "program", "request": {"days_per_week": 3, "goal": "hypertrophy",
     "split": ["Full Body", "Upper", "Lower"], "user": {"weight_kg": 80, "age": 30},
     "exercises": {"Chest": ["Bench Press", ...], "Back": [...], ..., "Calves": [...]}}}

`split` and `user` are optional; `split`, when given, names each day in order (as many as days_per_week). The
reply is one JSON program, fenced (```json) or bare:

    {"name": ..., "days": [{"day_number": 1, "name": "Upper", "focus": ..., "muscle_groups": [...],
      "exercises": [{"name": "Bench Press", "sets": 4, "reps": "8-10", "rest_seconds": 120}, ...]}, ...]}

Each rule is scored on its own and named when it fails (RULES, in order); a case passes when all pass.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from harness import jsonl
from harness import schema as jschema
from harness.casefile import CaseFileError, Problem
from harness.escape import has_control
from harness.fenced import iter_blocks

UPPER = ("Chest", "Back", "Shoulders", "Biceps", "Triceps")
LOWER = ("Legs", "Quads", "Hamstrings", "Glutes", "Calves")
GROUPS = UPPER + LOWER
GOALS = ("hypertrophy", "strength", "endurance", "general_fitness", "fat_loss")
RULES = ("json_valid", "schema_valid", "day_count", "exercises_available", "body_regions", "split_followed", "volumes")
SCHEMA = json.loads((resources.files("harness") / "spec" / "program.schema.json").read_text(encoding="utf-8"))
_VALIDATOR = jschema.validator(SCHEMA)
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


@dataclass(frozen=True)
class ProgramCase:
    id: str
    days_per_week: int
    goal: str
    exercises: Mapping[str, tuple[str, ...]]  # muscle group -> exercise names available
    split: tuple[str, ...] | None = None
    user: Mapping[str, Any] | None = None
    source: str = ""
    line: int = 0

    @property
    def request(self) -> dict[str, Any]:
        out: dict[str, Any] = {"days_per_week": self.days_per_week, "goal": self.goal,
                               "exercises": {g: list(v) for g, v in self.exercises.items()}}
        if self.split:
            out["split"] = list(self.split)
        if self.user:
            out["user"] = dict(self.user)
        return out

    def group_of(self, exercise: str) -> str | None:
        """The muscle group whose list holds this exercise (names compared case-insensitively)."""
        key = exercise.strip().casefold()
        return next((g for g, names in self.exercises.items() if any(n.casefold() == key for n in names)), None)


def program_name(case: ProgramCase) -> str:
    """The name a generated program gets: "4-Day Fat Loss Program"."""
    return f"{case.days_per_week}-Day {case.goal.replace('_', ' ').title()} Program"


def load_program_file(path: str | Path) -> list[ProgramCase]:
    """Every case of a program case file; CaseFileError lists every problem as file:line: field: why."""
    path = Path(path)
    problems: list[Problem] = []
    cases: list[ProgramCase] = []
    seen: set[str] = set()
    try:
        lines = jsonl.split_lines(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CaseFileError([Problem(str(path), 0, "file", str(exc))]) from None
    for n, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        bad = lambda fld, why, n=n: problems.append(Problem(str(path), n, fld, why))  # noqa: E731
        try:
            raw = jsonl.loads(text)
        except jsonl.JsonValueError as exc:
            bad("line", str(exc))
            continue
        case = _case(raw, bad, str(path), n)
        if case is not None:
            if case.id in seen:
                bad("id", f"{case.id!r} is used twice")
            seen.add(case.id)
            cases.append(case)
    if problems:
        raise CaseFileError(problems)
    if not cases:
        raise CaseFileError([Problem(str(path), 0, "file", "no cases")])
    return cases


def _case(raw: Any, bad: Any, source: str, line: int) -> ProgramCase | None:
    if not isinstance(raw, dict):
        bad("line", "a case is a JSON object")
        return None
    ok = True

    def fail(fld: str, why: str) -> None:
        nonlocal ok
        ok = False
        bad(fld, why)

    if not isinstance(raw.get("id"), str) or not raw["id"]:
        fail("id", "a non-empty string")
    elif has_control(raw["id"]):
        fail("id", "must not hold control characters or line breaks (it is a test id shown on terminals)")
    if raw.get("task") != "program":
        fail("task", 'must be "program"')
    req = raw.get("request")
    if not isinstance(req, dict):
        fail("request", "an object with days_per_week, goal and exercises")
        return None
    days = req.get("days_per_week")
    if not isinstance(days, int) or isinstance(days, bool) or not 3 <= days <= 6:
        fail("request.days_per_week", f"an integer from 3 to 6; got {days!r}")
    if req.get("goal") not in GOALS:
        fail("request.goal", f"one of {', '.join(GOALS)}; got {req.get('goal')!r}")
    exercises = req.get("exercises")
    if not isinstance(exercises, dict) or not exercises:
        fail("request.exercises", "an object of muscle group -> list of exercise names")
        exercises = {}
    for group, names in exercises.items():
        if group not in GROUPS:
            fail(f"request.exercises.{group}", f"not a muscle group; use {', '.join(GROUPS)}")
        elif not isinstance(names, list) or not all(isinstance(x, str) and x.strip() for x in names):
            fail(f"request.exercises.{group}", "a list of exercise names")
    split = req.get("split")
    if split is not None and (not isinstance(split, list) or not all(isinstance(s, str) and s.strip() for s in split)
                              or (isinstance(days, int) and len(split) != days)):
        fail("request.split", f"a list of {days} day names (one per day)")
    user = req.get("user")
    if user is not None and not isinstance(user, dict):
        fail("request.user", "an object (weight_kg, age)")
    if not ok:
        return None
    return ProgramCase(id=raw["id"], days_per_week=days, goal=req["goal"],
                       exercises={g: tuple(v) for g, v in exercises.items()}, split=tuple(split) if split else None,
                       user=user, source=source, line=line)


def first_json(text: Any, openers: str = "{") -> tuple[Any, str | None]:
    """(the first JSON value of a reply, None) or (None, why there is none): the content of its first closed
    ```json block (read as harness.fenced reads blocks), else the text from the first of `openers`. Never raises."""
    if not isinstance(text, str):
        return None, "no reply"
    body = next((content for content, closed in iter_blocks(text) if closed), None)
    if body is None:
        starts = [i for i in (text.find(c) for c in openers) if i >= 0]
        body = text[min(starts):] if starts else ""
    if not body.strip():
        return None, "no JSON object in the reply"
    try:
        value, _ = jsonl.raw_decode(body.strip())
    except jsonl.JsonValueError as exc:
        return None, f"not JSON: {str(exc)[:120]}"
    return value, None


def parse_program(text: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the program object, None) or (None, why it is not one). Reads a ```json block when there is one, else the
    reply from its first `{`. Never raises."""
    obj, why = first_json(text)
    if why is not None:
        return None, why
    if not isinstance(obj, dict):
        return None, f"JSON {type(obj).__name__}, not a program object"
    return obj, None


def schema_errors(program: Any) -> list[str]:
    """Every way `program` breaks the program schema (empty when it is a program)."""
    return [e.message for e in _VALIDATOR.iter_errors(program)]


def day_region(day: Mapping[str, Any]) -> str:
    """upper, lower or full: by the day's muscle groups when it lists them, else by its name."""
    groups = {g.strip().title() for g in day.get("muscle_groups") or [] if isinstance(g, str)}
    if groups:
        if groups <= set(UPPER):
            return "upper"
        if groups <= set(LOWER):
            return "lower"
        return "full"
    name = str(day.get("name", "")).lower()
    if "full" in name:
        return "full"
    if any(w in name for w in ("upper", "push", "pull", "chest", "back", "arm", "shoulder")):
        return "upper"
    if any(w in name for w in ("lower", "leg", "quad", "hamstring", "glute", "calf", "calves")):
        return "lower"
    return "full"


def _reps_ok(reps: Any) -> bool:
    if isinstance(reps, int) and not isinstance(reps, bool):
        return reps >= 1
    m = _RANGE.match(reps) if isinstance(reps, str) else None
    return bool(m) and 1 <= int(m.group(1)) <= int(m.group(2))


@dataclass(frozen=True)
class ProgramResult:
    case: ProgramCase
    response: str | None
    rules: Mapping[str, bool | None]  # rule -> passed (None: not judged, a rule before it failed)
    failures: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    error: str | None = None  # the backend gave no reply

    @property
    def passed(self) -> bool:
        return self.response is not None and all(v is True for v in self.rules.values())

    @property
    def reason(self) -> str | None:
        if self.response is None:
            return "backend_error"
        return next((r for r in RULES if self.rules.get(r) is False), None)


def score_program(case: ProgramCase, response: str | None, error: str | None = None) -> ProgramResult:
    """Every rule for one reply. Rules after an invalid JSON or schema are not judged (None): nothing to read."""
    if response is None:
        return ProgramResult(case, None, {r: None for r in RULES}, {}, error or "no reply")
    rules: dict[str, bool | None] = {r: None for r in RULES}
    why: dict[str, list[str]] = {}
    program, problem = parse_program(response)
    rules["json_valid"] = program is not None
    if program is None:
        return ProgramResult(case, response, rules, {"json_valid": (problem or "",)})
    problems = schema_errors(program)
    rules["schema_valid"] = not problems
    if problems:
        return ProgramResult(case, response, rules, {"schema_valid": tuple(problems[:5])})
    days = program["days"]
    numbers = [d["day_number"] for d in days]
    why["day_count"] = ([f"{len(days)} days for days_per_week {case.days_per_week}"] if len(days) != case.days_per_week
                        else []) + ([f"day numbers {numbers}, not 1..{len(days)}"] if numbers != list(range(1, len(days) + 1)) else [])
    why["exercises_available"] = [f"day {d['day_number']}: {e['name']!r} is not in the available list"
                                  for d in days for e in d["exercises"] if case.group_of(e["name"]) is None]
    regions = []
    for d in days:
        region = day_region(d)
        allowed = UPPER if region == "upper" else LOWER if region == "lower" else GROUPS
        regions += [f"day {d['day_number']} ({d['name']}, {region} body): {e['name']!r} is a {case.group_of(e['name'])} "
                    "exercise" for e in d["exercises"] if case.group_of(e["name"]) not in (*allowed, None)]
    why["body_regions"] = regions
    if case.split:
        names = [d["name"].strip().casefold() for d in days]
        why["split_followed"] = ([] if names == [s.strip().casefold() for s in case.split]
                                 else [f"day names {[d['name'] for d in days]}, requested {list(case.split)}"])
    else:
        why["split_followed"] = []
    volumes = []
    for d in days:
        n = len(d["exercises"])
        if not 3 <= n <= 8:
            volumes.append(f"day {d['day_number']}: {n} exercises (3-8)")
        names = [e["name"].strip().casefold() for e in d["exercises"]]
        volumes += [f"day {d['day_number']}: {x!r} twice" for x in sorted({x for x in names if names.count(x) > 1})]
        for e in d["exercises"]:
            if not 1 <= e["sets"] <= 6:
                volumes.append(f"day {d['day_number']} {e['name']}: sets {e['sets']} (1-6)")
            if not _reps_ok(e["reps"]):
                volumes.append(f"day {d['day_number']} {e['name']}: reps {e['reps']!r} (an integer or 'a-b', a <= b)")
            if not 30 <= e["rest_seconds"] <= 300:
                volumes.append(f"day {d['day_number']} {e['name']}: rest {e['rest_seconds']} s (30-300)")
    why["volumes"] = volumes
    for rule in RULES[2:]:
        rules[rule] = not why[rule]
    return ProgramResult(case, response, rules, {r: tuple(v) for r, v in why.items() if v})
