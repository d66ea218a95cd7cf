"""Reading a run's records back: the one reply reader (resume, merge, replay of an earlier run's cases.jsonl)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import jsonl
from harness.backends import Reply
from harness.report import PARTIAL

RUN_INFO = "run.json"


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
                 attempts=rec.get("attempts") or 1, faults=tuple(rec.get("faults") or ()))
