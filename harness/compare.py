"""Two runs of one suite, case by case: is B better than A, by how much, on which cases, and do they decide alike?

    python -m harness compare reports/<base-run> reports/<adapter-run> [--out compare.json] [--fail-on-regression]

Pairs the runs by case id (their case files must have the same hashes, or --allow-different-cases pairs what
both ran, with a warning). Prints every metric of both runs with its 95 % Wilson interval and the difference;
McNemar's exact test on the pass/fail pairs, overall and per category; the cases fixed and broken with their
reasons; the confusion tables side by side; and the cases whose decision (outcome and tools called) differs, which
in parity mode (a local adapter against the deployed one) is the finding. `--fail-on-regression` exits 1 when a
category's pass rate drops significantly (McNemar, --alpha) or B fails one of its gate's thresholds: CI's "the
new adapter may not be worse than the deployed one". The core (`compare_runs`, `mcnemar`) is pure.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness import escape
from harness.core.records import RunFormatError, read_run
from harness.report import metric_keys

ALPHA = 0.05


class CompareError(ValueError):
    """Two runs that cannot be compared as asked."""


@dataclass(frozen=True)
class Run:
    """A finished run as its report folder holds it."""

    folder: str
    summary: dict[str, Any]
    records: dict[str, dict[str, Any]]  # by case id, in the run's order

    @property
    def label(self) -> str:
        return f"{self.summary.get('model')} ({self.summary.get('run_id')})"


def load_run(folder: str | Path) -> Run:
    try:
        report = read_run(folder)
    except RunFormatError as exc:
        raise CompareError(str(exc)) from None
    return Run(str(report.folder), report.summary, report.records)


def mcnemar(b: int, c: int) -> float:
    """McNemar's exact two-sided p-value for b and c discordant pairs: 2 P(X <= min(b, c)), X ~ Bin(b + c, 1/2),
    capped at 1 (1.0 when there is no discordant pair)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _decision(rec: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """What a reply decided: its outcome and the tools it called (an unanswered case decides "error"); a program
    reply, the first rule it failed ("passed" when none)."""
    if "rules" in rec:
        return ("error" if rec.get("response") is None else rec.get("reason") or "passed", ())
    if rec.get("outcome") is None:
        return ("error", ())
    return (rec["outcome"], tuple(sorted(c["tool"] for c in rec.get("calls") or [])))


def _case_files(run: Run) -> dict[str, str]:
    return {Path(f["path"]).name: f["sha256"] for f in run.summary.get("model_fingerprint", {}).get("case_files", [])}


def _pairs_test(pairs: Sequence[tuple[dict, dict]]) -> dict[str, Any]:
    b = sum(1 for a, x in pairs if a["passed"] and not x["passed"])
    c = sum(1 for a, x in pairs if x["passed"] and not a["passed"])
    n = len(pairs)
    return {"n": n, "b": b, "c": c, "p_value": mcnemar(b, c),
            "a_pass_rate": sum(a["passed"] for a, _ in pairs) / n if n else None,
            "b_pass_rate": sum(x["passed"] for _, x in pairs) / n if n else None}


def compare_runs(a: Run, b: Run, *, allow_different_cases: bool = False, alpha: float = ALPHA) -> dict[str, Any]:
    """The comparison of run A (the reference) with run B. Pure apart from nothing: both runs are loaded."""
    if a.summary.get("task", "tool_call") != b.summary.get("task", "tool_call"):
        raise CompareError(f"{a.folder} and {b.folder} are runs of different tasks: their cases cannot be paired")
    files_a, files_b = _case_files(a), _case_files(b)
    warnings = []
    if files_a != files_b:
        if not allow_different_cases:
            raise CompareError(f"the runs were made on different case files ({sorted(files_a.items())} vs "
                               f"{sorted(files_b.items())}); pass --allow-different-cases to pair the cases both ran")
        warnings.append("the case files differ: only the cases both runs scored are paired, by id")
    ids = [i for i in a.records if i in b.records]
    only_a = [i for i in a.records if i not in b.records]
    only_b = [i for i in b.records if i not in a.records]
    if only_a or only_b:
        warnings.append(f"{len(only_a)} case(s) only in A, {len(only_b)} only in B: not paired")
    pairs = [(a.records[i], b.records[i]) for i in ids]
    categories = dict.fromkeys(rec["category"] for rec, _ in pairs)
    by_category = {cat: _pairs_test([p for p in pairs if p[0]["category"] == cat]) for cat in categories}
    overall = _pairs_test(pairs)

    def metric(key: str) -> dict[str, Any]:
        va, vb = a.summary.get(key), b.summary.get(key)
        return {"a": va, "b": vb, "diff": None if va is None or vb is None else vb - va,
                "a_interval": a.summary.get("intervals", {}).get(key), "b_interval": b.summary.get("intervals", {}).get(key)}

    fixed = [i for i, (x, y) in zip(ids, pairs) if not x["passed"] and y["passed"]]
    broken = [i for i, (x, y) in zip(ids, pairs) if x["passed"] and not y["passed"]]
    differ = [{"id": i, "a": list(_decision(x)), "b": list(_decision(y))}
              for i, (x, y) in zip(ids, pairs) if _decision(x) != _decision(y)]
    regressions = [
        {"where": cat, "a_pass_rate": t["a_pass_rate"], "b_pass_rate": t["b_pass_rate"], "p_value": t["p_value"]}
        for cat, t in [("all cases", overall), *by_category.items()]
        if t["n"] and t["b"] > t["c"] and t["p_value"] < alpha
    ]
    regressions += [{"where": "gate", "metric": f["metric"], "message": f["message"]}
                    for f in b.summary.get("gate", {}).get("failures", [])]
    adapter = lambda r: (r.summary.get("model_fingerprint", {}).get("adapter") or {}).get("sha256")  # noqa: E731
    return {
        "a": {"folder": a.folder, "model": a.summary.get("model"), "run_id": a.summary.get("run_id")},
        "b": {"folder": b.folder, "model": b.summary.get("model"), "run_id": b.summary.get("run_id")},
        "warnings": warnings,
        "n_paired": len(pairs), "only_a": only_a, "only_b": only_b,
        "metrics": {k: metric(k) for k in (*metric_keys(a.summary, b.summary), "latency_p50_s", "latency_p95_s")
                    if k in a.summary or k in b.summary},
        "mcnemar": {k: overall[k] for k in ("b", "c", "p_value")},
        "by_category": by_category,
        "fixed": fixed, "broken": broken,
        "reasons": {i: {"a": a.records[i].get("reason"), "b": b.records[i].get("reason")} for i in fixed + broken},
        "confusion": {"a": a.summary.get("confusion", {}), "b": b.summary.get("confusion", {})},
        "decisions_differ": differ,
        "parity": bool(adapter(a)) and adapter(a) == adapter(b) and a.summary.get("model") != b.summary.get("model"),
        "regressions": regressions,
        "alpha": alpha,
    }


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _interval(iv: Sequence[float] | None) -> str:
    return f"[{iv[0]:.3f}, {iv[1]:.3f}]" if iv else ""


def format_comparison(cmp: Mapping[str, Any], limit: int = 20, confusion: bool = True) -> list[str]:
    """The comparison as terminal lines (the confusion tables last, unless left out)."""
    out = [f"A: {cmp['a']['model']} ({cmp['a']['run_id']})   B: {cmp['b']['model']} ({cmp['b']['run_id']})   "
           f"{cmp['n_paired']} paired cases"]
    out += [f"warning: {w}" for w in cmp["warnings"]]
    out.append(f"{'metric':<26}{'A':>8} {'95% CI':<17}{'B':>8} {'95% CI':<17}{'B - A':>8}")
    for key, m in cmp["metrics"].items():
        diff = "" if m["diff"] is None else f"{m['diff']:+.3f}"
        out.append(f"{key:<26}{_fmt(m['a']):>8} {_interval(m['a_interval']):<17}{_fmt(m['b']):>8} "
                   f"{_interval(m['b_interval']):<17}{diff:>8}")
    mc = cmp["mcnemar"]
    out.append(f"McNemar (exact, two-sided): {mc['b']} passed only in A, {mc['c']} only in B, p = {mc['p_value']:.4g}")
    for cat, t in cmp["by_category"].items():
        if t["b"] + t["c"]:
            out.append(f"  {cat:<12} n {t['n']:>3}: pass {t['a_pass_rate']:.3f} -> {t['b_pass_rate']:.3f}, "
                       f"{t['b']} only A / {t['c']} only B, p = {t['p_value']:.4g}")
    for title, ids in (("fixed (failed in A, pass in B)", cmp["fixed"]), ("broken (passed in A, fail in B)", cmp["broken"])):
        out.append(f"{title}: {len(ids)}")
        for i in ids[:limit]:
            r = cmp["reasons"][i]
            out.append(f"  {i}: A {r['a'] or 'passed'} -> B {r['b'] or 'passed'}")
        if len(ids) > limit:
            out.append(f"  ... and {len(ids) - limit} more (--out FILE has them all)")
    differ = cmp["decisions_differ"]
    out.append(f"{'PARITY: ' if cmp['parity'] else ''}decisions differ (outcome or tools called) on {len(differ)} case(s)"
               + (" -- the same adapter decides differently here: check the deployed template and tokenisation"
                  if cmp["parity"] and differ else ""))
    for d in differ[:limit]:
        out.append(f"  {d['id']}: A {d['a'][0]} {','.join(d['a'][1])} | B {d['b'][0]} {','.join(d['b'][1])}")
    if confusion:
        out += _confusions(cmp["confusion"])
    return out


def _confusions(conf: Mapping[str, Mapping[str, Mapping[str, int]]]) -> list[str]:
    rows = sorted(set(conf["a"]) | set(conf["b"]))
    cols = sorted({c for side in conf.values() for row in side.values() for c in row})
    if not rows:
        return []
    width = max(len(c) for c in cols + ["expected"]) + 1
    head = "".join(f"{c[:width - 1]:>{width}}" for c in cols)
    lines = ["confusion (rows expected, columns got): A | B", f"{'expected':<22}{head} |{head}"]
    for r in rows:
        cells = ["".join(f"{conf[s].get(r, {}).get(c, 0):>{width}}" for c in cols) for s in ("a", "b")]
        lines.append(f"{r:<22}{cells[0]} |{cells[1]}")
    return lines


def describe_regression(r: Mapping[str, Any]) -> str:
    if r["where"] == "gate":
        return f"gate: {r['message']}"
    return f"{r['where']}: pass rate {r['a_pass_rate']:.3f} -> {r['b_pass_rate']:.3f} (McNemar p = {r['p_value']:.4g})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness compare", description=__doc__.splitlines()[0])
    parser.add_argument("a", help="the reference run's report folder (e.g. the base model, or the deployed adapter)")
    parser.add_argument("b", help="the run compared with it (e.g. the new adapter)")
    parser.add_argument("--out", type=Path, help="also write the comparison as JSON here")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when a category's pass rate drops significantly or B fails a gate threshold")
    parser.add_argument("--alpha", type=float, default=ALPHA, help=f"significance level (default {ALPHA})")
    parser.add_argument("--allow-different-cases", action="store_true",
                        help="pair the cases both runs scored even though their case files differ (warned)")
    args = parser.parse_args(argv)
    try:
        cmp = compare_runs(load_run(args.a), load_run(args.b), allow_different_cases=args.allow_different_cases,
                           alpha=args.alpha)
    except CompareError as exc:
        print(escape.terminal(f"compare refused: {exc}"), file=sys.stderr)
        return 2
    print(escape.terminal("\n".join(format_comparison(cmp))))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(cmp, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if cmp["regressions"]:
        print(escape.terminal("regressions: " + "; ".join(describe_regression(r) for r in cmp["regressions"])))
    return 1 if args.fail_on_regression and cmp["regressions"] else 0


if __name__ == "__main__":
    sys.exit(main())
