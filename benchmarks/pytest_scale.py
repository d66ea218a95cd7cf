"""Seconds for `pytest --model=replay` over 1k / 5k / 10k cases with default options, against the library API.

    python benchmarks/pytest_scale.py [--sizes 1000 5000 10000] [-- extra pytest args]

Cases are drawn from the golden suite (ids renumbered) and replies are a mix of right answers, wrong tools,
malformed blocks and abstentions, so about half of the cases fail: pytest's failure reporting is the cost
being measured. Each size runs in a fresh subprocess, as a user would run it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "golden" / "assistant.jsonl"
WRONG = ['Sure.\n\n```json\n{"tool": "getWeather", "params": {"location": "Oslo"}}\n```',
         "```json\n{not json\n```", "I can't help with that."]


def write_suite(folder: Path, n: int) -> tuple[Path, Path]:
    golden = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line.strip()]
    cases, replies = [], []
    for i in range(n - n % len(golden)):  # whole copies of the suite, so every pair stays whole
        case = dict(golden[i % len(golden)])
        case["id"] = f"{case['id']}-{i:05d}"
        if case.get("pair"):
            case["pair"] = f"{case['pair']}-{i // len(golden)}"
        cases.append(case)
        replies.append({"id": case["id"], "response": WRONG[i % 3] if i % 2 else "OK."})
    cases_path, replies_path = folder / f"cases-{n}.jsonl", folder / f"replies-{n}.jsonl"
    cases_path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    replies_path.write_text("".join(json.dumps(r) + "\n" for r in replies), encoding="utf-8")
    return cases_path, replies_path


def time_pytest(cases: Path, replies: Path, reports: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "pytest", "--model=replay", "--th-cases", str(cases), "--th-replies", str(replies),
           "--th-reports-dir", str(reports), "-p", "no:cacheprovider", "-q", *extra]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"pytest exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def time_library(cases: Path, replies: Path) -> float:
    """The same cases through the engine with the replay backend, no pytest: load, ask, score, summarize."""
    from harness.backends.replay import ReplayBackend
    from harness.core.engine import evaluate
    from harness.suite import resolve_suite
    from harness.tasks.tool_call.task import ToolCallTask

    started = time.perf_counter()
    suite = resolve_suite([cases])
    evaluate(suite, ReplayBackend(replies), ToolCallTask().load_cases(cases, suite)[2])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("extra", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"{'cases':>6}  {'pytest s':>9}  {'library s':>9}  {'pytest per case ms':>18}")
        for n in args.sizes:
            cases, replies = write_suite(folder, n)
            seconds = time_pytest(cases, replies, folder / "reports", args.extra)
            lib = time_library(cases, replies)
            print(f"{n:>6}  {seconds:>9.2f}  {lib:>9.2f}  {1000 * seconds / n:>18.2f}", flush=True)


if __name__ == "__main__":
    main()
