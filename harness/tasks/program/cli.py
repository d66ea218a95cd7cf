"""`python -m harness program`: run the program task outside pytest, one strategy or several side by side.

    python -m harness program --cases suites/program --strategy template            # the floor, no model
    python -m harness program --cases suites/program --strategy direct --model local-base --base-model DIR
    python -m harness program --cases suites/program --strategy all --model replay --replies r.jsonl

Each strategy is one run, reports/<run-id>-<strategy>/ (summary.json with the gate's verdict, cases.jsonl). With more
than one strategy (a comma list, or `all`) the runs are compared on the same cases: every rule's pass rate, the
case pass rate with its interval, model calls per program, tokens and latency, written to
reports/<run-id>-strategies.md and .json. The exit status is 0 when every run passes its gate.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness import escape
from harness.backends import BackendError, BackendOptions
from harness.backends.options import first_problem
from harness.backends.registry import all_options
from harness.casefile import CaseFileError
from harness.core.engine import Run
from harness.core.task import thresholds as task_thresholds
from harness.gate import GATE_ON
from harness.report import RunFolderError, atomic_write_text, check_run_folder
from harness.tasks.program.core import load_program_file
from harness.tasks.program.strategies import METRICS, STRATEGIES, model_missing
from harness.tasks.program.task import ProgramTask

PROGRAM_MAX_NEW_TOKENS = 1024


def strategies_from(text: str) -> list[str]:
    chosen = list(STRATEGIES) if text == "all" else [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown or not chosen:
        raise ValueError(f"--strategy {text!r}: one or more of {', '.join(STRATEGIES)} (comma-separated), or all")
    return chosen


def comparison(summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The strategies side by side: each rate (with its counts and interval) and what each spent."""
    def rate(summary: Mapping[str, Any], m: str) -> dict[str, Any]:
        return {"rate": summary[m], **summary["counts"][m], "interval": summary["intervals"][m]}

    return {"strategies": list(summaries),
            "rates": {m: {s: rate(summaries[s], m) for s in summaries} for m in METRICS},
            "cost": {s: {**summaries[s]["cost"], "latency_p50_s": summaries[s]["latency_p50_s"]} for s in summaries},
            "gate": {s: summaries[s]["gate"]["passed"] for s in summaries},
            "answered_by_stage": {s: summaries[s]["answered_by_stage"] for s in summaries if "answered_by_stage" in summaries[s]}}


def comparison_markdown(cmp: Mapping[str, Any], n_cases: int) -> str:
    names = cmp["strategies"]

    def cell(r: Mapping[str, Any]) -> str:
        if r["rate"] is None:
            return "—"
        lo, hi = r["interval"]
        return f"{r['rate']:.3f} ({r['passed']}/{r['of']}; {lo:.2f}–{hi:.2f})"

    def num(v: Any, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    lines = [f"# Program strategies on the same {n_cases} cases", "",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {m} | " + " | ".join(cell(cmp["rates"][m][s]) for s in names) + " |" for m in cmp["rates"]]
    lines.append("| model calls per program | " + " | ".join(num(cmp["cost"][s]["model_calls_per_program"], ".2f") for s in names) + " |")
    lines.append("| tokens (all cases) | " + " | ".join(str(cmp["cost"][s]["tokens"]) for s in names) + " |")
    lines.append("| latency p50 s per program | " + " | ".join(num(cmp["cost"][s]["latency_p50_s"], ".2f") for s in names) + " |")
    lines.append("| gate | " + " | ".join("passed" if cmp["gate"][s] else "FAILED" for s in names) + " |")
    lines += ["", "Latency is each model call's time as the backend reports it; a local backend batches the one-request "
              "strategies (direct, few-shot), so their calls carry a whole batch's time: compare with --batch-size 1."]
    for s, stages in cmp["answered_by_stage"].items():
        lines += ["", f"{s}: answered by stage: " + ", ".join(f"{k} {v}" for k, v in stages.items())]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness program", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", required=True, type=Path, help="a program case file, or a folder of them")
    parser.add_argument("--strategy", default="direct",
                        help=f"{', '.join(STRATEGIES)}; several comma-separated, or all, to compare them")
    parser.add_argument("--model", help="the backend (as pytest --model); not for --strategy template")
    for option in all_options():  # every backend's own flags, as pytest has them (without its --th- prefix)
        kwargs = option.argparse_kwargs()
        if option.name == "max_new_tokens":
            kwargs["help"] = f"{option.help} (default here: {PROGRAM_MAX_NEW_TOKENS}, a whole program)"
        parser.add_argument(option.flag, dest=option.name, **kwargs)
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"))
    parser.add_argument("--run-id")
    parser.add_argument("--threshold", action="append", default=[], metavar="METRIC=VALUE",
                        help="override a gate threshold (case_pass_rate, a rule name, latency_p95_s); repeatable")
    parser.add_argument("--thresholds-file", metavar="TOML")
    parser.add_argument("--gate-on", default="point", choices=GATE_ON)
    args = parser.parse_args(argv)
    files = sorted(args.cases.glob("*.jsonl")) if args.cases.is_dir() else [args.cases]
    try:
        strategies = strategies_from(args.strategy)
        cases = [c for f in files for c in load_program_file(f)]
        thresholds = task_thresholds(ProgramTask(), args.threshold, args.thresholds_file)
        missing = next(filter(None, (model_missing(s, args.model) for s in strategies)), None)
        if missing:
            raise ValueError(missing)
    except (ValueError, CaseFileError) as exc:
        print(f"program run refused: {exc}", file=sys.stderr)
        return 2
    from harness.hashing import sha256_file

    backend_names = {o.name for o in all_options()}
    # a program is 500-1,300 SmolLM2 tokens: a longer default limit than a tool call's
    options = BackendOptions({"max_new_tokens": PROGRAM_MAX_NEW_TOKENS,
                              **{k: v for k, v in vars(args).items() if k in backend_names and v not in (None, False)}})
    problem = first_problem(all_options(), options.values)
    if problem:
        print(f"program run refused: {problem}", file=sys.stderr)
        return 2
    base_id = args.run_id or f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-program"
    try:
        for strategy in strategies:
            check_run_folder(args.reports_dir, base_id if len(strategies) == 1 else f"{base_id}-{strategy}")
    except RunFolderError as exc:
        print(f"program run refused: {exc}", file=sys.stderr)
        return 2
    summaries: dict[str, dict[str, Any]] = {}
    for strategy in strategies:
        run = Run(task=ProgramTask(strategy), model=None if strategy == "template" else args.model, options=options,
                  thresholds=thresholds, reports_dir=args.reports_dir, gate_on=args.gate_on,
                  run_id=base_id if len(strategies) == 1 else f"{base_id}-{strategy}", suite=None,
                  case_files={str(f): sha256_file(f) for f in files})
        started = time.perf_counter()
        try:
            run.start(cases)
        except (BackendError, RunFolderError) as exc:
            print(f"program run refused: {exc}", file=sys.stderr)
            return 2
        run.run_all()
        summary = summaries[strategy] = run.finish()
        print(f"program task, strategy {strategy}, {len(cases)} cases, {time.perf_counter() - started:.1f} s")
        for line in run.summary_lines() or ():
            print(escape.terminal(line))
        gate = summary["gate"]
        print(f"  gate: {'PASSED' if gate['passed'] else 'FAILED'}"
              + "".join(f"\n    {f['message']}" for f in gate["failures"]))
        print(f"report: {args.reports_dir / run.run_id / 'summary.json'}")
    if len(strategies) > 1:
        cmp = comparison(summaries)
        text = comparison_markdown(cmp, len(cases))
        atomic_write_text(args.reports_dir / f"{base_id}-strategies.md", text)
        atomic_write_text(args.reports_dir / f"{base_id}-strategies.json", json.dumps(cmp, indent=2) + "\n")
        print("\n" + text + f"comparison: {args.reports_dir / (base_id + '-strategies.md')} (and .json)")
    return 0 if all(s["gate"]["passed"] for s in summaries.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
