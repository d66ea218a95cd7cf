"""The gate metrics of every run under a reports folder, in time order and by model/adapter: a regression shows.

    python -m harness history reports/ [--metric case_pass_rate --metric no_tool_accuracy]

Prints one row per run (oldest first; `latest/` is a copy and is skipped) and writes `history.png` (each metric
over the runs, one line per model/adapter) and `history.md` beside the runs. A run over part of its case files or
an incomplete one is marked, since its figures do not stand for the whole suite.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from harness import escape
from harness.core.records import RunFormatError, read_run
from harness.report import metric_keys

DEFAULT_METRICS = ("case_pass_rate", "tool_selection_accuracy", "valid_json_rate", "disambiguation_accuracy",
                   "no_tool_accuracy")


def collect(reports: Path) -> list[dict[str, Any]]:
    """One row per finished run under `reports`, oldest first (by when its summary was written)."""
    rows = []
    for path in reports.glob("*/summary.json"):
        if path.parent.name == "latest":
            continue
        try:
            s = read_run(path.parent).summary
        except RunFormatError:
            continue  # unfinished, or a format this harness does not read
        fp = s.get("model_fingerprint") or {}
        adapter = (fp.get("adapter") or {}).get("sha256")
        who = s.get("model", "?") + (f" + adapter {adapter[:8]}" if adapter else "") + (
            f", {s['strategy']}" if s.get("strategy") else "")
        base = fp.get("base_model") or fp.get("cf_model") or fp.get("served_model")
        selection = s.get("selection") or {}
        rows.append({"run_id": s.get("run_id", path.parent.name), "who": who + (f" ({Path(base).name})" if base else ""),
                     "time": path.stat().st_mtime, "n_cases": s.get("n_cases"),
                     "subset": not selection.get("whole_files", True), "complete": s.get("complete", True),
                     "gate": (s.get("gate") or {}).get("passed"),
                     "task": s.get("task", "tool_call"),
                     "metrics": metric_keys(s), **{k: s.get(k) for k in (*metric_keys(s), "latency_p95_s")}})
    return sorted(rows, key=lambda r: (r["time"], r["run_id"]))


def table(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> list[str]:
    head = ["run", "model / adapter", "cases", *metrics, "gate"]
    body = [[r["run_id"], r["who"], str(r["n_cases"]) + ("*" if r["subset"] else "") + ("!" if not r["complete"] else ""),
             *["—" if r.get(m) is None else f"{r[m]:.3f}" for m in metrics], "pass" if r["gate"] else "FAIL"] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [fmt(head), "-" * len(fmt(head))] + [fmt(b) for b in body] + (
        ["* a subset of the case files; ! incomplete (see the run's gate)"] if any(r["subset"] or not r["complete"] for r in rows) else [])


def plot(rows: Sequence[dict[str, Any]], metrics: Sequence[str], out: Path) -> None:
    from harness.html_report import figure_png, pyplot

    plt = pyplot()
    fig, axes = plt.subplots(len(metrics), 1, figsize=(8, 1.9 * len(metrics) + 0.6), sharex=True, squeeze=False)
    groups = list(dict.fromkeys(r["who"] for r in rows))
    for ax, metric in zip(axes[:, 0], metrics):
        for n, who in enumerate(groups):
            pts = [(i, r[metric]) for i, r in enumerate(rows) if r["who"] == who and r.get(metric) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", color=f"C{n % 10}", label=who)
        ax.set_ylabel(metric.replace("_", " "), fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xticks(range(len(rows)), [r["run_id"] for r in rows], rotation=45, ha="right", fontsize=7)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    out.write_bytes(figure_png(fig))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness history", description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, nargs="?", default=Path("reports"))
    parser.add_argument("--metric", action="append",
                        help=f"metrics to show (default for tool-call runs: {', '.join(DEFAULT_METRICS)}; for runs of "
                             "other tasks: every rate they report), or latency_p95_s")
    args = parser.parse_args(argv)
    rows = collect(args.reports)
    if not rows:
        print(f"history: no finished runs under {args.reports}", file=sys.stderr)
        return 2
    reported = list(dict.fromkeys(m for r in rows for m in r["metrics"]))
    unknown = [m for m in args.metric or () if m not in (*reported, "latency_p95_s")]
    if unknown:
        print(f"history: no run reports {', '.join(unknown)}; these do: {', '.join(reported)}, latency_p95_s",
              file=sys.stderr)
        return 2
    tool_calls = all(r["task"] == "tool_call" for r in rows)
    metrics = tuple(args.metric or (DEFAULT_METRICS if tool_calls else reported))
    lines = table(rows, metrics)
    print(escape.terminal("\n".join(lines)))
    plot(rows, metrics, args.reports / "history.png")
    # Inside the fence a backtick from a run's model name could close it: none gets in.
    fenced = "\n".join(escape.terminal(line).replace("`", "'") for line in lines)
    (args.reports / "history.md").write_text("```\n" + fenced + "\n```\n", encoding="utf-8")
    print(f"plot: {args.reports / 'history.png'}; table: {args.reports / 'history.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
