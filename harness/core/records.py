"""A run's record on disk, read back: the one reader of run.json, summary.json and cases.jsonl (compare,
history, merge, resume) and the one reply reader (resume, merge, replay of an earlier run's cases.jsonl).

Format 2 (this version) writes `task` in every summary and run.json and `format_version` on every case record,
whatever the task. Format 1 runs (before the one engine) read the same way; any other version is refused by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import jsonl
from harness.backends import Reply
from harness.report import FORMAT_VERSION, PARTIAL

RUN_INFO = "run.json"
READABLE_VERSIONS = (1, FORMAT_VERSION)


class RunFormatError(ValueError):
    """A report folder this harness cannot read as a run: not finished, or written in another format."""


@dataclass(frozen=True)
class RunReport:
    """A finished run as its folder holds it: run.json (empty for a report without one), summary.json, and the
    case records by id in the run's order."""

    folder: Path
    info: dict[str, Any]
    summary: dict[str, Any]
    records: dict[str, dict[str, Any]]

    @property
    def task(self) -> str:
        return str(self.summary.get("task") or self.info.get("task") or "tool_call")


def check_version(document: dict[str, Any], where: Path | str) -> None:
    """Refuse, by name, a run document of a format this harness does not read."""
    version = document.get("format_version", 1)
    if version not in READABLE_VERSIONS:
        raise RunFormatError(f"{where}: format_version {version!r}: this harness reads formats "
                             f"{', '.join(map(str, READABLE_VERSIONS))} (a run written by another version)")


def read_run(folder: str | Path) -> RunReport:
    """A finished run's folder; RunFormatError when it is not one, or not in a format read here."""
    folder = Path(folder)
    try:
        summary = jsonl.loads((folder / "summary.json").read_text(encoding="utf-8"))
        records = {rec["id"]: rec for rec in jsonl.read_records(folder / "cases.jsonl", jsonl.RECORD_DEPTH)}
        info = jsonl.loads((folder / RUN_INFO).read_text(encoding="utf-8")) if (folder / RUN_INFO).is_file() else {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunFormatError(f"{folder}: not a finished run report ({exc})") from None
    if not isinstance(summary, dict) or not isinstance(info, dict):
        raise RunFormatError(f"{folder}: not a finished run report (summary.json or run.json is not an object)")
    check_version(summary, folder / "summary.json")
    if summary.get("task") == "program" and "rates" in summary:
        raise RunFormatError(f"{folder}: a program-task run written before its metrics were top-level keys (format "
                             f"{summary.get('format_version')}); run it again to read it")
    return RunReport(folder, info, summary, records)


def load_prior_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    """A run's case records so far, by id (cases.jsonl, then its partial file, the later line winning)."""
    records: dict[str, dict[str, Any]] = {}
    for name in ("cases.jsonl", PARTIAL):
        path = run_dir / name
        if not path.is_file():
            continue
        for line in jsonl.split_lines(path.read_text(encoding="utf-8")):
            try:
                rec = jsonl.loads(line, jsonl.RECORD_DEPTH)
            except ValueError:
                continue  # a line cut off when the run was killed
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                if isinstance(rec.get("response"), str) or rec["id"] not in records:
                    records[rec["id"]] = rec  # a reply is never replaced by a later failed request
    return records


def reply_from_record(rec: dict[str, Any], missing: str = "no reply recorded") -> Reply:
    """The reply a case record holds; a record without one gives a failed reply with its error (`missing` when
    it names none)."""
    text = rec["response"] if isinstance(rec.get("response"), str) else None
    return Reply(text=text, latency_s=rec.get("latency_s"), usage=rec.get("usage"),
                 error=None if text is not None else rec.get("error") or missing,
                 truncated=rec.get("truncated") is True, redacted=rec.get("redacted") is True,
                 attempts=rec.get("attempts") or 1, faults=tuple(rec.get("faults") or ()),
                 constrained=rec.get("constrained") is True)
