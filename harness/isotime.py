"""ISO 8601 dates and date-times as the contract reads them, independent of the Python version.

`datetime.fromisoformat` accepts different things on 3.10 and 3.11+, so the accepted forms are
spelled out here once, letter for letter with docs/contract.md: ISO 8601 extended format in ASCII
digits 0-9 only (a Unicode digit class and `int()` would take `２０２６` or `٢٠٢٦`), `YYYY-MM-DD`, optionally `T` or `t`,
`HH:MM`, optional `:SS` with an optional `.`/`,` fraction, and an optional offset `Z`, `z`, `±HH:MM`,
`±HHMM` or `±HH`. Nothing is stripped: surrounding spaces are not part of a date.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]+))?)?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)


@dataclass(frozen=True)
class Stamp:
    """A parsed date-time: the wall-clock value as written, and its UTC offset (None when absent)."""

    local: datetime
    offset: timedelta | None
    offset_text: str | None


def parse_date(text: object) -> date | None:
    """A bare `YYYY-MM-DD` date, or None."""
    if not isinstance(text, str):
        return None
    m = _DATE.fullmatch(text)
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def parse_datetime(text: object) -> Stamp | None:
    """A date-time with at least hours and minutes, or None."""
    if not isinstance(text, str):
        return None
    m = _DATETIME.fullmatch(text)
    if not m:
        return None
    fraction = (m[7] or "0")[:6].ljust(6, "0")
    try:
        local = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0), int(fraction))
    except ValueError:
        return None
    offset_text = m["offset"]
    offset = _offset(offset_text) if offset_text else None
    if offset_text and offset is None:
        return None
    return Stamp(local=local, offset=offset, offset_text=offset_text)


def _offset(text: str) -> timedelta | None:
    if text in ("Z", "z"):
        return timedelta(0)
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        return None
    sign = -1 if text[0] == "-" else 1
    return sign * timedelta(hours=hours, minutes=minutes)


def is_utc(stamp: Stamp) -> bool:
    """No offset, `Z`, or a `+00:00` spelling; `-00:00` (RFC 3339's "unknown offset") is not UTC."""
    if stamp.offset_text is None:
        return True
    return stamp.offset == timedelta(0) and not stamp.offset_text.startswith("-")


def calendar_date(text: object) -> date | None:
    """The calendar date as written, from a date or a date-time (any offset)."""
    d = parse_date(text)
    if d is not None:
        return d
    stamp = parse_datetime(text)
    return stamp.local.date() if stamp else None


def parse_now(text: str) -> datetime:
    """A case's `now`: an aware datetime (UTC when no offset is written). Raises ValueError."""
    stamp = parse_datetime(text)
    if stamp is None:
        raise ValueError(f"not an ISO 8601 date-time: {text!r}")
    tz = timezone(stamp.offset) if stamp.offset is not None else timezone.utc
    return stamp.local.replace(tzinfo=tz)
