"""Recorded replies: `{"id": ..., "response": ..., "latency_s"?: ...}` per line.

A `cases.jsonl` from an earlier run is a valid replay file too (it has `id`, `response` and, for
a failed request, `error`), so any run can be re-scored offline.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from harness import jsonl
from harness.backends import options as opts
from harness.backends.base import Backend, BackendError, BackendOptions, OnReply, Reply, Request
from harness.backends.options import flag


def load_replies(path: Path) -> dict[str, Reply]:
    """Read a replay file; a malformed line stops the run with file:line and the field."""
    try:
        lines = jsonl.split_lines(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BackendError(f"cannot read replies file {path}: {exc}") from exc
    replies: dict[str, Reply] = {}
    first: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = jsonl.loads(line, jsonl.RECORD_DEPTH)
        except jsonl.JsonValueError as exc:
            raise BackendError(f"{where}: {exc}") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
            raise BackendError(f"{where}: id: each line needs a string 'id'")
        case_id = rec["id"]
        if case_id in first:
            raise BackendError(f"{where}: id: duplicate reply for {case_id!r} (first on line {first[case_id]})")
        first[case_id] = lineno
        replies[case_id] = _reply_from(rec, where)
    return replies


def _reply_from(rec: dict[str, Any], where: str) -> Reply:
    response = rec.get("response")
    if response is not None and not isinstance(response, str):
        raise BackendError(f"{where}: response: must be a string (or null for a failed request)")
    latency = rec.get("latency_s")
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float))):
        raise BackendError(f"{where}: latency_s: must be a number of seconds")
    error = None
    if response is None:
        error = str(rec.get("error") or "recorded reply is null")
    usage = rec.get("usage") if isinstance(rec.get("usage"), dict) else None
    return Reply(text=response, latency_s=latency, usage=usage, error=error, truncated=rec.get("truncated") is True)


class ReplayBackend(Backend):
    name = "replay"
    OPTIONS = opts.REPLAY
    measures_latency = False
    shows_progress = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"{flag('replies')} {self.path}: no such file")
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.replies = load_replies(self.path)

    @classmethod
    def from_options(cls, name: str, options: BackendOptions) -> "ReplayBackend":
        return cls(options.require("replies", name, "FILE (recorded replies, one JSON line per case)"))

    def generate(self, requests: Sequence[Request], on_reply: OnReply | None = None) -> list[Reply]:
        out = []
        for r in requests:
            reply = r.bind(self.replies.get(r.case_id)
                           or Reply(text=None, error=f"no recorded reply for {r.case_id!r} in {self.path}"))
            if on_reply is not None:
                on_reply(reply)
            out.append(reply)
        return out

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": self.name, "replies_file": str(self.path), "replies_sha256": self.sha256}

    def describe(self) -> str:
        return f"replay of {self.path} (sha256 {self.sha256[:12]})"
