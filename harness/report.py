"""The on-disk run: reports/<run-id>/{summary.json, cases.jsonl}, mirrored to reports/latest/.

Per-case records are appended to `cases.partial.jsonl` as each case is scored, so a run that
dies midway keeps every reply it got; the final files appear whole (temp file, then rename).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness import jsonl
from harness.backends.options import flag

FORMAT_VERSION = 2  # harness.core.records reads it back (and format 1)
PARTIAL = "cases.partial.jsonl"


def new_run_id(model: str, now: datetime | None = None) -> str:
    """Sorts by time (UTC, to the second) and names the model: 20261122T101500Z-replay-3f9a."""
    now = now or datetime.now(timezone.utc)
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", model).strip("-") or "model"
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{slug}-{secrets.token_hex(2)}"


RUN_ID_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
RUN_FILES = ("run.json", "cases.jsonl", "summary.json", PARTIAL)
LOCK = ".lock"


class RunFolderError(ValueError):
    """A run id or run folder that cannot be used (unsafe name, a folder another run holds or already wrote)."""


def check_run_id(run_id: str) -> str:
    """A run id is one path component of safe characters, and not `latest` (the mirror of the last whole run):
    anything else could write outside the reports folder or over another run."""
    if not isinstance(run_id, str) or not RUN_ID_RULE.fullmatch(run_id) or run_id == "latest" or ".." in run_id:
        raise RunFolderError(f"run id {run_id!r}: one name of letters, digits and . _ + - (up to 128, not 'latest', "
                             "no '..', no '/'), e.g. 20261201-my-adapter")
    return run_id


def check_run_folder(reports_dir: Path, run_id: str, resume: bool = False) -> Path:
    """The folder a run with this id writes; refused when the id is unsafe, or when a run is already there and
    this one does not continue it (a rerun with the same id would overwrite it). A resume that finds no run is
    refused where it reads that run (harness.run)."""
    folder = Path(reports_dir) / check_run_id(run_id)
    there = any((folder / name).exists() for name in RUN_FILES)
    if there and not resume:
        raise RunFolderError(f"{folder}: a run with id {run_id!r} is already there; pick another {flag('run_id')}, "
                             f"or continue it with {flag('resume')} {run_id}")
    return folder


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: Path, mode: int | None = None) -> None:
    """mkstemp/mkdtemp (and some writers) make 0600/0700 files: give `path` the mode any other file or folder made
    here would get (`mode` before the umask; default 0777 for a folder, 0666 for a file)."""
    if mode is None:
        mode = 0o777 if path.is_dir() else 0o666
    with contextlib.suppress(OSError):
        os.chmod(path, mode & ~_umask())


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        honour_umask(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonl(records: Iterable[Mapping[str, Any]]) -> str:
    return "".join(jsonl.dumps(r) + "\n" for r in records)


def lock_run_folder(folder: Path) -> Any:
    """Hold `folder/.lock` (an advisory lock the OS drops when the process ends) for the life of a run, so two
    runs with one id cannot interleave their records; a second run is refused with the holder's pid."""
    handle = open(folder / LOCK, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunFolderError(f"{folder}: another run is writing this run folder (pid {holder}); wait for it, or "
                             f"pick another {flag('run_id')}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class RunWriter:
    """Writes one run's directory; `add` as cases finish, `finish` once at the end."""

    def __init__(self, reports_dir: str | Path, run_id: str, keep: Iterable[Mapping[str, Any]] = (),
                 resume: bool = False) -> None:
        """`keep`: records a resumed run already has and will not score again; the partial file starts with
        them (written whole, then renamed), so no reply is lost if this run is killed too. A folder that already
        holds a run is refused unless `resume` says this run continues it."""
        self.root = Path(reports_dir)
        self.run_id = run_id
        self.dir = check_run_folder(self.root, run_id, resume)
        self.dir.mkdir(parents=True, exist_ok=True)
        honour_umask(self.dir)
        self._lock = lock_run_folder(self.dir)
        atomic_write_text(self.dir / PARTIAL, _jsonl(keep))
        self._partial = open(self.dir / PARTIAL, "a", encoding="utf-8")

    def add(self, record: Mapping[str, Any]) -> None:
        self._partial.write(jsonl.dumps(record) + "\n")
        self._partial.flush()

    def finish(self, summary: Mapping[str, Any], records: Iterable[Mapping[str, Any]], replace_latest: bool = True) -> Path:
        """Write cases.jsonl then summary.json (last: its presence means the run is complete); then, for a
        run over whole case files, reports/latest/."""
        cases_text = _jsonl(records)
        summary_text = jsonl.dumps(summary, indent=2) + "\n"
        atomic_write_text(self.dir / "cases.jsonl", cases_text)
        atomic_write_text(self.dir / "summary.json", summary_text)
        self._partial.close()
        (self.dir / PARTIAL).unlink(missing_ok=True)
        if replace_latest:
            self._replace_latest(cases_text, summary_text)
        self.close()
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
        honour_umask(fresh)
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
        if not self._lock.closed:
            with contextlib.suppress(OSError):
                (self.dir / LOCK).unlink()
            self._lock.close()


def metric_keys(*summaries: Mapping[str, Any]) -> list[str]:
    """The rate metrics these summaries report, whichever task wrote them, in the order they report them: the keys
    of each one's `counts` (every rate has its count)."""
    counts = [s.get("counts") for s in summaries]
    return list(dict.fromkeys(k for c in counts if isinstance(c, Mapping) for k in c))
