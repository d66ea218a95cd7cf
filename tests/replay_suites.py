"""Replay runs of the shipped suites through the whole pipeline (`pytest --model=replay`, a subprocess), and what
they decide: every case's verdict from cases.jsonl and every figure of summary.json. The replies are made from
each case file alone (right, wrong tool, malformed, abstention, in turn; programs from the template strategy or
broken), so a layout change that alters how a suite is loaded, asked, scored or summarized shows as a diff.

    python tests/replay_suites.py --write     # pins tests/fixtures/replay_runs.json from the code as it is
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "replay_runs.json"
BFCL = ROOT / "tests" / "fixtures" / "bfcl"
# Summary keys that describe the run, not its figures (times, paths, versions, ids).
VOLATILE = ("started", "finished", "run_id", "model_fingerprint", "harness_version", "duration_s", "reports_dir",
            "case_files", "git_commit", "python", "platform", "latest", "format_version")


def _value(matcher: Any) -> Any:
    if isinstance(matcher, dict) and len(matcher) == 1:
        kind, arg = next(iter(matcher.items()))
        made = {"contains": lambda a: f"about {a}", "date": lambda a: a, "datetime": lambda a: a + ":00Z",
                "any_of": lambda a: _value(a[0]), "present": lambda a: "x"}
        if kind in made:
            return made[kind](arg)
    return matcher


def _calls(case: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"tool": e["tool"], "params": {k: _value(m) for k, m in e.get("params", {}).items()
                                           if not (isinstance(m, dict) and m.get("present") is False)}}
            for e in case.get("expected") or []]


def tool_call_reply(i: int, case: dict[str, Any], native: bool) -> str:
    """The i-th case's reply: right, a wrong tool, malformed, or plain text, in turn."""
    calls, kind = _calls(case), i % 4
    if native:
        if kind == 0 or not calls:
            return json.dumps([{"name": c["tool"], "parameters": c["params"]} for c in calls]) if calls else "No call."
        return ('{"name": "nope", "parameters": {}}', '{"name": ', "I cannot do that.")[kind - 1]
    if kind == 0 or not calls:
        return "Done." + "".join(f"\n\n```json\n{json.dumps(c)}\n```" for c in calls)
    wrong = {"tool": "notATool", "params": {}}
    return (f"```json\n{json.dumps(wrong)}\n```", "```json\n{\"tool\": \"x\", \"params\": \n```", "Sure, noted.")[kind - 1]


def program_reply(i: int, case: Any) -> str:
    """The i-th program case's reply: the template strategy's program, cut-off JSON, or plain text, in turn."""
    from harness.tasks.program.template import template_reply

    return (template_reply(case), '{"days": [', "Here is a plan: rest.")[i % 3]


def suites(work: Path) -> dict[str, Path]:
    """The suites this pins: the golden suite, the kitchen example, a BFCL sample (imported here), the program suite."""
    from harness.tasks.tool_call.bfcl import import_suite

    bfcl = work / "bfcl"
    import_suite(BFCL / "BFCL_v4_multiple.sample.json", BFCL / "BFCL_v4_multiple.answers.sample.json", bfcl)
    return {"golden": ROOT / "golden", "kitchen": ROOT / "examples" / "kitchen", "bfcl": bfcl,
            "program": ROOT / "suites" / "program"}


def replies_for(suite: Path) -> list[dict[str, str]]:
    files = sorted(suite.glob("*.jsonl")) if suite.is_dir() else [suite]
    native = "format = \"native\"" in (suite / "suite.toml").read_text() if (suite / "suite.toml").is_file() else False
    out = []
    for path in files:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if lines and json.loads(lines[0]).get("task") == "program":
            from harness.tasks.program.core import load_program_file

            out += [{"id": c.id, "response": program_reply(i, c)} for i, c in enumerate(load_program_file(path))]
            continue
        out += [{"id": (case := json.loads(line))["id"], "response": tool_call_reply(i, case, native)}
                for i, line in enumerate(lines)]
    return out


def observe(suite: Path, work: Path) -> dict[str, Any]:
    """One replay run of `suite` in `work`: {verdicts by case id, summary figures}."""
    work.mkdir(parents=True, exist_ok=True)
    replies = work / "replies.jsonl"
    replies.write_text("".join(json.dumps(r) + "\n" for r in replies_for(suite)), encoding="utf-8")
    cmd = [sys.executable, "-m", "pytest", "--model=replay", "--th-cases", str(suite), "--th-replies", str(replies),
           "--th-run-id", "pinned", "-p", "no:cacheprovider", "-q", "-W", "ignore::pytest.PytestAssertRewriteWarning",
           "--rootdir", str(work), "-c", os.devnull]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    run = work / "reports" / "pinned"
    if not (run / "summary.json").is_file():
        raise AssertionError(f"no summary for {suite}: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    verdicts = {}
    for line in (run / "cases.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        verdicts[rec["id"]] = {k: rec.get(k) for k in ("passed", "reason", "outcome")}
    summary = json.loads((run / "summary.json").read_text())
    return {"exit": done.returncode, "verdicts": verdicts,
            "summary": {k: v for k, v in summary.items() if k not in VOLATILE}}


def observe_all() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        return {name: observe(path, work / "runs" / name) for name, path in suites(work).items()}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    FIXTURE.write_text(json.dumps(observe_all(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")
