"""The param matchers of docs/contract.md, compiled once from their JSON form and then pure.

A matcher answers one question: does this param (maybe absent) satisfy the case's expectation? How two
strings are compared is the scoring profile's (`harness.tasks.tool_call.profiles`): `fold` maps each side before comparing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable, Mapping, Protocol

from harness import schema as jschema
from harness.isotime import calendar_date, is_utc, parse_date, parse_datetime
from harness.schema import Subschema

MATCHER_KEYS = ("contains", "any_of", "date", "datetime", "present", "fields")

Fold = Callable[[str], str]


def trim_casefold(text: str) -> str:
    """The contract's string comparison: trimmed, Unicode case folded."""
    return text.strip().casefold()


class MatcherError(ValueError):
    """A matcher that is not of a known form; `where` is the path inside the matcher."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


class Matcher(Protocol):
    def check(self, present: bool, value: Any, fold: Fold = trim_casefold) -> bool: ...

    def describe(self) -> str: ...

    def impossible(self, schema: Mapping[str, Any], required: bool) -> list[str]:
        """Why no value that passes the param's JSON Schema can pass this matcher (empty when one can)."""
        ...


@dataclass(frozen=True)
class Equals:
    """A plain JSON value: equal, strings trimmed and compared case-insensitively."""

    expected: Any

    def check(self, present: bool, value: Any, fold: Fold = trim_casefold) -> bool:
        return present and _json_equal(self.expected, value, fold)

    def describe(self) -> str:
        return json.dumps(self.expected, ensure_ascii=False)

    def impossible(self, schema: Mapping[str, Any], required: bool) -> list[str]:
        errors = sorted(_validator(schema).iter_errors(self.expected), key=lambda e: list(e.absolute_path))
        return [f"expected value {self.describe()} fails the param's schema: {e.message}" for e in errors]


@dataclass(frozen=True)
class Contains:
    needle: str

    def check(self, present: bool, value: Any, fold: Fold = trim_casefold) -> bool:
        return present and isinstance(value, str) and self.needle.casefold() in value.casefold()

    def describe(self) -> str:
        return f"contains {self.needle!r}"

    def impossible(self, schema: Mapping[str, Any], required: bool) -> list[str]:
        return _needs_plain_string("contains", schema)


@dataclass(frozen=True)
class AnyOf:
    options: tuple[Matcher, ...]

    def check(self, present: bool, value: Any, fold: Fold = trim_casefold) -> bool:
        return any(m.check(present, value, fold) for m in self.options)

    def describe(self) -> str:
        return "any of (" + " | ".join(m.describe() for m in self.options) + ")"

    def impossible(self, schema: Mapping[str, Any], required: bool) -> list[str]:
        # Every alternative must be possible: one that never passes is a mistake in the case file.
        return [f"any_of[{i}]: {why}" for i, m in enumerate(self.options) for why in m.impossible(schema, required)]


@dataclass(frozen=True)
class OnDate:
    """A date or date-time whose calendar date, as written, is this day."""

    day: date

    def check(self, present: bool, value: Any, fold: Fold = trim_casefold) -> bool:
        return present and calendar_date(value) == self.day

    def describe(self) -> str:
        return f"on date {self.day.isoformat()}"

    def impossible(self, schema: Mapping[str, Any], required: bool) -> list[str]:
        return _needs_plain_string("date", schema)


@dataclass(frozen=True)
class AtMinute:
    """A date-time in this minute; no offset, `Z` or `+00:00`; any other offset fails."""

    minute: datetime

    def check(self, present: bool, value: Any, fold: Fold = trim_casefold) -> bool:
        if not present:
            return False
        stamp = parse_datetime(value)
        if stamp is None or not is_utc(stamp):
            return False
        return stamp.local.replace(second=0, microsecond=0) == self.minute

    def describe(self) -> str:
        return f"at {self.minute.strftime('%Y-%m-%dT%H:%M')}"

    def impossible(self, schema: Mapping[str, Any], required: bool) -> list[str]:
        return _needs_plain_string("datetime", schema)


@dataclass(frozen=True)
class Present:
    wanted: bool

    def check(self, present: bool, value: Any, fold: Fold = trim_casefold) -> bool:
        return present == self.wanted

    def describe(self) -> str:
        return "present" if self.wanted else "absent"

    def impossible(self, schema: Mapping[str, Any], required: bool) -> list[str]:
        if required and not self.wanted:
            return ["{\"present\": false} on a required param: a call without it fails the tool's schema"]
        return []


@dataclass(frozen=True)
class Fields:
    """An object param matched key by key: every key it has is named here, and every named key passes its
    matcher (a key the object lacks is absent, so `{"present": false}` lets it be left out)."""

    fields: tuple[tuple[str, Matcher], ...]

    def check(self, present: bool, value: Any, fold: Fold = trim_casefold) -> bool:
        if not present or not isinstance(value, dict):
            return False
        named = dict(self.fields)
        return set(value) <= set(named) and all(m.check(k in value, value.get(k), fold) for k, m in self.fields)

    def describe(self) -> str:
        return "{" + ", ".join(f"{k}: {m.describe()}" for k, m in self.fields) + "}"

    def impossible(self, schema: Mapping[str, Any], required: bool) -> list[str]:
        declared = schema.get("type")
        types = {declared} if isinstance(declared, str) else set(declared or ())
        if types and "object" not in types:
            return [f"'fields' needs an object param; this param is of type {' or '.join(sorted(types))}"]
        props = schema.get("properties", {})
        closed = schema.get("additionalProperties") is False
        why: list[str] = []
        for key, matcher in self.fields:
            if key in props:
                why += [f"fields.{key}: {w}" for w in matcher.impossible(props[key], key in schema.get("required", ()))]
            elif closed and not matcher.check(False, None):
                why.append(f"fields.{key}: the param's schema allows no key {key!r}")
        return why


def _validator(schema: Mapping[str, Any]) -> Any:
    """The validator for a param's schema: resolved in its tool's schema when it is a Subschema (local `$ref`s),
    else standalone; never fetching anything (harness.schema)."""
    return schema.validator() if isinstance(schema, Subschema) else jschema.validator(schema)


def _needs_plain_string(kind: str, schema: Mapping[str, Any]) -> list[str]:
    """`contains`, `date` and `datetime` read a free string: an enum or a non-string type never passes."""
    if "enum" in schema or "const" in schema:
        return [f"'{kind}' needs a free-text string param; this param is an enum"]
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or ())
    if types and "string" not in types:
        return [f"'{kind}' needs a string param; this param is of type {' or '.join(sorted(types))}"]
    return []


def _json_equal(expected: Any, actual: Any, fold: Fold = trim_casefold) -> bool:
    if isinstance(expected, str):
        return isinstance(actual, str) and fold(expected) == fold(actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)):
        return isinstance(actual, (int, float)) and expected == actual
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_json_equal(e, a, fold) for e, a in zip(expected, actual))
        )
    return expected == actual  # None


def compile_matcher(raw: Any, where: str = "") -> Matcher:
    """Turn a matcher's JSON form into a Matcher; MatcherError names the bad part."""
    if raw is None or isinstance(raw, (str, int, float, bool)):
        return Equals(raw)
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            if isinstance(item, dict):
                raise MatcherError("a plain array value may not hold objects", f"{where}[{i}]")
        return Equals(raw)
    if not isinstance(raw, dict):
        raise MatcherError(f"not a matcher: {raw!r}", where)
    if len(raw) != 1 or next(iter(raw)) not in MATCHER_KEYS:
        raise MatcherError(
            f"an object matcher has exactly one key, one of {', '.join(MATCHER_KEYS)}; got {sorted(raw)}", where
        )
    kind, arg = next(iter(raw.items()))
    at = f"{where}.{kind}"
    if kind == "contains":
        if not isinstance(arg, str) or not arg:
            raise MatcherError("'contains' takes a non-empty string", at)
        return Contains(arg)
    if kind == "any_of":
        if not isinstance(arg, list) or not arg:
            raise MatcherError("'any_of' takes a non-empty list of matchers", at)
        return AnyOf(tuple(compile_matcher(m, f"{at}[{i}]") for i, m in enumerate(arg)))
    if kind == "date":
        day = parse_date(arg)
        if day is None:
            raise MatcherError(f"'date' takes a YYYY-MM-DD date; got {arg!r}", at)
        return OnDate(day)
    if kind == "datetime":
        stamp = parse_datetime(arg)
        if stamp is None or not is_utc(stamp):
            raise MatcherError(f"'datetime' takes a UTC ISO 8601 date-time like 2026-02-27T10:00; got {arg!r}", at)
        return AtMinute(stamp.local.replace(second=0, microsecond=0))
    if kind == "fields":
        if not isinstance(arg, dict) or not arg:
            raise MatcherError("'fields' takes an object of key -> matcher", at)
        return Fields(tuple((k, compile_matcher(m, f"{at}.{k}")) for k, m in arg.items()))
    if not isinstance(arg, bool):
        raise MatcherError("'present' takes true or false", at)
    return Present(arg)
