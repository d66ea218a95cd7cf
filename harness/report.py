"""The on-disk run: reports/<run-id>/{summary.json, cases.jsonl}, mirrored to reports/latest/.

Per-case records are appended to `cases.partial.jsonl` as each case is scored, so a run that
dies midway keeps every reply it got; the final files appear whole (temp file, then rename).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.match import CaseResult

FORMAT_VERSION = 1
PARTIAL = "cases.partial.jsonl"


def new_run_id(model: str, now: datetime | None = None) -> str:
    """Sorts by time (UTC, to the second) and names the model: 20261122T101500Z-replay-3f9a."""
    now = now or datetime.now(timezone.utc)
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", model).strip("-") or "model"
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{slug}-{secrets.token_hex(2)}"


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def case_record(result: CaseResult) -> dict[str, Any]:
    """One line of cases.jsonl; `id` + `response` make it a valid replay line too."""
    case = result.case
    return {
        "format_version": FORMAT_VERSION,
        "id": case.id,
        "category": case.category,
        "pair": case.pair,
        "source": f"{case.source}:{case.line}",
        "response": result.response,
        "outcome": result.outcome,
        "calls": [c.to_json() for c in result.parsed.calls],
        "invalid_blocks": [{"index": b.index, "reason": b.reason} for b in result.parsed.invalid],
        "expected": [{"tool": e.tool, "params": e.raw} for e in case.expected],
        "passed": result.passed,
        "reason": result.reason,
        "details": list(result.details),
        "tool_selection_ok": result.tools_right,
        "valid_json": result.valid_json,
        "schema_valid": result.schema_valid,
        "error": result.error,
        "latency_s": result.latency_s,
        "usage": result.usage,
        "truncated": result.truncated,
        "redacted": result.redacted,
        "attempts": result.attempts,
        "faults": list(result.faults),
    }


def _jsonl(records: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


class RunWriter:
    """Writes one run's directory; `add` as cases finish, `finish` once at the end."""

    def __init__(self, reports_dir: str | Path, run_id: str, keep: Iterable[Mapping[str, Any]] = ()) -> None:
        """`keep`: records a resumed run already has and will not score again; the partial file starts with
        them (written whole, then renamed), so no reply is lost if this run is killed too."""
        self.root = Path(reports_dir)
        self.run_id = run_id
        self.dir = self.root / run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dir / PARTIAL, _jsonl(keep))
        self._partial = open(self.dir / PARTIAL, "a", encoding="utf-8")

    def add(self, record: Mapping[str, Any]) -> None:
        self._partial.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._partial.flush()

    def finish(self, summary: Mapping[str, Any], records: Iterable[Mapping[str, Any]], replace_latest: bool = True) -> Path:
        """Write cases.jsonl then summary.json (last: its presence means the run is complete); then, for a
        run over whole case files, reports/latest/."""
        cases_text = _jsonl(records)
        summary_text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
        atomic_write_text(self.dir / "cases.jsonl", cases_text)
        atomic_write_text(self.dir / "summary.json", summary_text)
        self._partial.close()
        (self.dir / PARTIAL).unlink(missing_ok=True)
        if replace_latest:
            self._replace_latest(cases_text, summary_text)
        return self.dir / "summary.json"

    def remove(self) -> None:
        """Delete this run's folder (only what a run writes; anything else keeps the folder)."""
        self.close()
        for name in (PARTIAL, "run.json"):
            (self.dir / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.dir.rmdir()

    def _replace_latest(self, cases_text: str, summary_text: str) -> None:
        """Swap in a complete reports/latest/ by renames, so readers never see a mix of two runs."""
        fresh = Path(tempfile.mkdtemp(dir=self.root, prefix=".latest-new-"))
        atomic_write_text(fresh / "cases.jsonl", cases_text)
        atomic_write_text(fresh / "summary.json", summary_text)
        (fresh / "RUN_ID").write_text(self.run_id + "\n", encoding="utf-8")
        latest = self.root / "latest"
        old = None
        if latest.exists() or latest.is_symlink():
            old = self.root / f".latest-old-{secrets.token_hex(4)}"
            os.replace(latest, old)
        os.replace(fresh, latest)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)

    def close(self) -> None:
        if not self._partial.closed:
            self._partial.close()
