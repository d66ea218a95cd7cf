"""Join the reports of a run split across machines (`pytest ... --shard I/N`) into the one run it stands for.

    python -m harness merge reports/shard-1 reports/shard-2 reports/shard-3 --out reports/full

The shards must be of one run: the same model fingerprint (model, weights, adapter, case files and their
hashes, generation settings), gate and selection, each index 1..N exactly once, no case twice. Their recorded
replies are scored again against the case files, in the case files' order, by the same code as any run, so the
summary and the gate are exactly those of an unsharded run over the same cases (intervals included). A case file
that changed since the shards ran is refused (its hash no longer matches).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from harness import escape
from harness.backends.base import Backend, BackendError, OnReply, Reply, Request
from harness.core.engine import RUN_FINGERPRINT_KEYS, Run, record_results
from harness.core.records import RUN_INFO, RunFormatError, load_prior_records, read_run
from harness.core.task import get_task
from harness.gate import Threshold
from harness.hashing import sha256_file
from harness.suite import resolve_suite


class MergeError(ValueError):
    """Shard reports that are not the parts of one run."""


class RecordedBackend(Backend):
    """The shards' backend, as their reports recorded it: it answers nothing (every reply is recorded)."""

    name = "recorded"
    shows_progress = False

    def __init__(self, fingerprint: dict[str, Any], measures_latency: bool, conditions: dict[str, Any]) -> None:
        self._fingerprint, self._conditions = fingerprint, conditions
        self.measures_latency = measures_latency  # type: ignore[misc]  # the shards' backend's, per instance

    def generate(self, requests: Sequence[Request], on_reply: OnReply | None = None) -> list[Reply]:
        raise BackendError("a merged run has no backend: every case's reply comes from a shard's report")

    def fingerprint(self) -> dict[str, Any]:
        return dict(self._fingerprint)

    def latency_conditions(self) -> dict[str, Any]:
        return dict(self._conditions)


def _read_shard(folder: Path) -> dict[str, Any]:
    try:
        report = read_run(folder)
    except RunFormatError as exc:
        raise MergeError(str(exc)) from None
    info, summary = report.info, report.summary
    if "shard" not in info:
        raise MergeError(f"{folder}: not a shard (the run had no --th-shard I/N)")
    return {"folder": folder, "info": info, "summary": summary, "records": load_prior_records(folder)}


def _same(shards: list[dict[str, Any]], what: str, get: Any) -> Any:
    values = [get(s) for s in shards]
    if any(v != values[0] for v in values[1:]):
        differing = ", ".join(str(s["folder"]) for s, v in zip(shards, values) if v != values[0])
        raise MergeError(f"the shards differ in {what} ({differing} against {shards[0]['folder']}): not one run")
    return values[0]


def merge_runs(folders: Sequence[Path], out: Path) -> dict[str, Any]:
    """Write the merged run to `out` (reports dir = its parent, run id = its name); returns its summary."""
    shards = [_read_shard(Path(f)) for f in folders]
    count = _same(shards, "shard count", lambda s: s["info"]["shard"]["count"])
    indices = sorted(s["info"]["shard"]["index"] for s in shards)
    if indices != list(range(1, count + 1)):
        raise MergeError(f"shards {indices} of {count}: each of 1..{count} is needed exactly once")
    fingerprint = _same(shards, "model fingerprint", lambda s: s["info"]["model_fingerprint"])
    model = _same(shards, "model", lambda s: s["info"]["model"])
    gate = _same(shards, "gate", lambda s: (s["summary"]["gate"]["thresholds"], s["info"].get("gate_on", "point"),
                                            s["info"].get("max_unanswered", 0)))
    base = _same(shards, "selection", lambda s: (s["info"]["shard"]["expression"], s["info"]["shard"]["n_selected"],
                                                 s["summary"]["selection"]["n_in_files"]))
    profiles = _same(shards, "scoring profiles", lambda s: sorted(s["summary"].get("profiles", {})))
    measured = _same(shards, "latency conditions", lambda s: s["summary"].get("latency_conditions"))
    planned_ids: set[str] = set()
    for s in shards:
        ids = set(s["info"]["shard"]["case_ids"])
        if ids & planned_ids:
            raise MergeError(f"{s['folder']}: cases also in another shard ({', '.join(sorted(ids & planned_ids)[:5])})")
        planned_ids |= ids
    records = {i: r for s in shards for i, r in s["records"].items() if i in planned_ids}

    paths = [Path(f["path"]) for f in fingerprint["case_files"]]
    for f in fingerprint["case_files"]:
        if not Path(f["path"]).is_file() or sha256_file(f["path"]) != f["sha256"]:
            raise MergeError(f"case file {f['path']} is missing or changed since the shards ran (sha256 differs)")
    task = get_task(_same(shards, "task", lambda s: s["info"].get("task", "tool_call")),
                    **_same(shards, "task settings", lambda s: {k: s["info"][k] for k in ("strategy",) if k in s["info"]}))
    suite = resolve_suite(paths, tools=fingerprint.get("tools_path"), reply_format=fingerprint.get("reply_format"),
                          profiles=profiles)
    cases = [c for p in paths for c in task.load_cases(p, suite)[2] if c.id in planned_ids]
    thresholds, gate_on, max_unanswered = gate
    run = Run(task=task, model=model, options=None,
              thresholds={m: Threshold(m, t["op"], t["value"]) for m, t in thresholds.items()},
              reports_dir=out.parent, run_id=out.name, suite=suite, gate_on=gate_on, max_unanswered=max_unanswered,
              case_files={f["path"]: f["sha256"] for f in fingerprint["case_files"]})
    expression, n_selected, n_in_files = base
    run.selection = {"expression": expression, "n_selected": n_selected, "n_in_files": n_in_files,
                     "whole_files": n_selected == n_in_files}
    added = set(RUN_FINGERPRINT_KEYS) | set(task.fingerprint(suite))
    backend = RecordedBackend({k: v for k, v in fingerprint.items() if k not in added},
                              measured is not None, {k: v for k, v in (measured or {}).items()})
    run.start(cases, backend=backend if task.asks_model() else None)
    if run.model_fingerprint != fingerprint:
        raise MergeError("the merged run's fingerprint differs from the shards' (another harness version or catalogue)")
    record_results(run, cases, records)
    summary = run.finish()
    info = json.loads((out / RUN_INFO).read_text(encoding="utf-8"))
    info["merged_from"] = [str(s["folder"]) for s in sorted(shards, key=lambda s: s["info"]["shard"]["index"])]
    (out / RUN_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness merge", description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="the shards' report folders (reports/<run-id>)")
    parser.add_argument("--out", type=Path, required=True, help="the merged run's folder (reports/<run-id>)")
    args = parser.parse_args(argv)
    try:
        summary = merge_runs(args.reports, args.out)
    except (MergeError, BackendError, ValueError) as exc:
        print(escape.terminal(f"merge refused: {exc}"), file=sys.stderr)
        return 2
    from harness.tasks.tool_call.summary import format_table

    print("\n".join(format_table(summary)))
    gate = summary["gate"]
    print(f"gate ({gate['gate_on']}): {'PASSED' if gate['passed'] else 'FAILED'} -- {summary['n_cases']} cases from "
          f"{len(args.reports)} shards; report: {args.out / 'summary.json'}")
    return 0 if gate["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
