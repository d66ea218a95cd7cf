"""One self-contained HTML report per run (and a Markdown summary for a CI job page), with plots.

    python -m harness report reports/<run> [--open]                  # reports/<run>/report.html and report.md
    python -m harness report reports/<base-run> reports/<run>        # the two side by side, with the comparison

No server and no CDN: the plots are matplotlib PNGs embedded as data URIs, the styles inline. The page holds the
fingerprint (model, adapter and case-file hashes, generation settings, the training job when the adapter links
one), every metric with its 95 % interval against its threshold, the pass rate per category, the confusion
matrix as a heatmap, the latency histogram, the training loss curves, and every failing case with its expected
calls, the reply and the reason.
"""
from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness import escape
from harness.compare import Run, compare_runs, describe_regression, load_run
from harness.report import metric_keys

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#1d232a;padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #dde;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f8}.ok{color:#137333}.fail{color:#b3261e;font-weight:600}.muted{color:#667}
pre{white-space:pre-wrap;margin:0;font-size:12px;max-width:520px}img{max-width:100%;border:1px solid #eef}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0}.side{display:flex;gap:24px}
"""


def figure_png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display): the one place plots are set up."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - the [train] extra brings it
        raise RuntimeError("the HTML report draws with matplotlib: pip install matplotlib (or -e '.[train]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(summaries: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> bytes:
    """Each rate as a point with its Wilson interval, one colour per run, thresholds as ticks."""
    plt = pyplot()
    keys = [k for k in metric_keys(*summaries) if any(s.get(k) is not None for s in summaries)]
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(keys) + 1))
    for n, (s, label) in enumerate(zip(summaries, labels)):
        offset = (n - (len(summaries) - 1) / 2) * 0.22
        for y, k in enumerate(keys):
            v, iv = s.get(k), s.get("intervals", {}).get(k)
            if v is None:
                continue
            ax.errorbar(v, y + offset, xerr=[[max(0.0, v - iv[0])], [max(0.0, iv[1] - v)]] if iv else None, fmt="o", color=f"C{n}",
                        capsize=3, label=label if y == 0 or k == keys[0] else None)
    thresholds = summaries[-1].get("gate", {}).get("thresholds", {})
    for y, k in enumerate(keys):
        if k in thresholds:
            ax.plot([thresholds[k]["value"]] * 2, [y - 0.35, y + 0.35], color="#b3261e", lw=2)
    ax.set_yticks(range(len(keys)), keys)
    ax.set_xlim(-0.02, 1.02)
    ax.invert_yaxis()
    ax.set_xlabel("rate (dot), 95 % Wilson interval (bar), threshold (red tick)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return figure_png(fig)


def plot_categories(summaries: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> bytes:
    plt = pyplot()
    cats = list(dict.fromkeys(c for s in summaries for c in s.get("by_category", {})))
    fig, ax = plt.subplots(figsize=(6.5, 3))
    width = 0.8 / len(summaries)
    for n, (s, label) in enumerate(zip(summaries, labels)):
        values = [(s.get("by_category", {}).get(c) or {}).get("case_pass_rate") or 0 for c in cats]
        ax.bar([i + n * width for i in range(len(cats))], values, width, label=label, color=f"C{n}")
    ax.set_xticks([i + width * (len(summaries) - 1) / 2 for i in range(len(cats))], cats)
    ax.set_ylim(0, 1)
    ax.set_ylabel("case pass rate")
    ax.legend(fontsize=8)
    return figure_png(fig)


def plot_confusion(confusion: Mapping[str, Mapping[str, int]], title: str) -> bytes:
    plt = pyplot()
    rows = sorted(confusion)
    cols = sorted({c for r in confusion.values() for c in r})
    grid = [[confusion[r].get(c, 0) for c in cols] for r in rows]
    fig, ax = plt.subplots(figsize=(0.55 * len(cols) + 3, 0.4 * len(rows) + 1.4))
    ax.imshow(grid, cmap="Blues")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                        color="white" if v > max(max(r) for r in grid) / 2 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("got")
    ax.set_ylabel("expected")
    ax.set_title(title, fontsize=9)
    return figure_png(fig)


def plot_latency(latencies: Sequence[float]) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 2.6))
    ax.hist(latencies, bins=min(30, max(5, len(latencies) // 3)), color="C0")
    ax.set_xlabel("seconds per reply")
    ax.set_ylabel("cases")
    return figure_png(fig)


def plot_losses(rows: Sequence[Mapping[str, Any]], title: str = "") -> bytes:
    """Train and eval loss by step; rows as training.train's metrics log holds them, in memory (numbers, None) or
    read back from metrics.csv (strings, "")."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 2.8))
    for key, label in (("train_loss", "train"), ("eval_loss", "eval")):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
        if pts:
            ax.plot(*zip(*pts), marker="o" if key == "eval_loss" else None, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return figure_png(fig)


def training_metrics(summary: Mapping[str, Any]) -> list[dict[str, str]] | None:
    """The loss log of the training job beside the run's adapter (its job.json hash is in the fingerprint)."""
    adapter = (summary.get("model_fingerprint") or {}).get("adapter") or {}
    if not adapter.get("training_job_sha256") or not adapter.get("path"):
        return None
    path = Path(adapter["path"]) / "metrics.csv"
    return list(csv.DictReader(path.open())) if path.is_file() else None


def _img(png: bytes, caption: str) -> str:
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            f'<figcaption class="muted">{html.escape(caption)}</figcaption></figure>')


def _esc(value: Any) -> str:
    """HTML for any value from a run record: escaped, control characters shown as escapes (the page is also read
    with `cat`)."""
    return html.escape(escape.terminal(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)))


def _fingerprint_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    fp = summary.get("model_fingerprint") or {}
    adapter = fp.get("adapter") or {}
    rows = [("model", f"{summary.get('model')} (run {summary.get('run_id')})"),
            ("base model", f"{fp.get('base_model') or fp.get('cf_model') or fp.get('served_model') or '—'}"
                           + (f", weights sha256 {str(fp.get('base_model_weights_sha256'))[:16]}"
                              if fp.get("base_model_weights_sha256") else "")),
            ("adapter", f"{adapter.get('path')} sha256 {str(adapter.get('sha256'))[:16]}" if adapter else "—"),
            ("training job", f"job.json sha256 {adapter['training_job_sha256'][:16]}" if adapter.get("training_job_sha256") else "—"),
            ("case files", ", ".join(f"{Path(f['path']).name} ({f['sha256'][:12]})" for f in fp.get("case_files", []))),
            ("reply format", str(fp.get("reply_format", "fenced"))),
            ("generation", _esc(fp.get("generation") or {k: fp[k] for k in ("temperature", "seed") if k in fp} or "—")),
            ("harness", str(fp.get("harness_version")))]
    selection = summary.get("selection") or {}
    if not selection.get("whole_files", True):
        rows.append(("selection", f"a subset: {selection.get('n_selected')} of {selection.get('n_in_files')} cases "
                                  f"({selection.get('expression')})"))
    if not summary.get("complete", True):
        rows.append(("complete", "NO: " + "; ".join(f["message"] for f in summary["gate"]["failures"]
                                                     if f["message"].startswith("incomplete"))))
    return rows


def _threshold(t: Mapping[str, Any] | None) -> str:
    return f"{t['op']} {t['value']:g}" if t else ""


def _metrics_table(summaries: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    gate = summaries[-1].get("gate", {})
    failed = {f["metric"] for f in gate.get("failures", [])}
    head = "".join(f"<th>{html.escape(label)}</th><th>95% CI</th>" for label in labels)
    rows = []
    for k in (*metric_keys(*summaries), "latency_p50_s", "latency_p95_s"):
        if not any(k in s for s in summaries):
            continue
        cells = ""
        for s in summaries:
            v, iv, cnt = s.get(k), s.get("intervals", {}).get(k), s.get("counts", {}).get(k)
            value = "—" if v is None else f"{v:.3f}"
            count = f" <span class=muted>({_esc(cnt['passed'])}/{_esc(cnt['of'])})</span>" if cnt else ""
            interval = f"[{iv[0]:.3f}, {iv[1]:.3f}]" if iv else ""
            cells += f"<td>{value}{count}</td><td>{interval}</td>"
        t = gate.get("thresholds", {}).get(k)
        verdict = "" if t is None else ("<span class=fail>FAIL</span>" if k in failed else "<span class=ok>ok</span>")
        rows.append(f"<tr><td>{_esc(k)}</td>{cells}<td>{_esc(_threshold(t))}</td><td>{verdict}</td></tr>")
    return f"<table><tr><th>metric</th>{head}<th>threshold</th><th></th></tr>{''.join(rows)}</table>"


def _reply(rec: Mapping[str, Any]) -> str:
    return rec["response"] if rec.get("response") is not None else f"(no reply: {rec.get('error')})"


def _details(rec: Mapping[str, Any]) -> list[str]:
    """A failed case's findings: a tool-call record's details, or a program record's failing rules."""
    return list(rec.get("details") or []) or [f"{rule}: {x}" for rule, xs in (rec.get("failures") or {}).items() for x in xs]


def _failing_cases(run: Run) -> str:
    failing = [r for r in run.records.values() if not r.get("passed")]
    if not failing:
        return "<p class=ok>Every case passed.</p>"
    rows = "".join(
        f"<tr><td>{_esc(r['id'])}<br><span class=muted>{_esc(r.get('category', ''))}</span></td>"
        f"<td><pre>{_esc(r.get('expected'))}</pre></td><td><pre>{_esc(_reply(r))}</pre></td>"
        f"<td class=fail>{_esc(str(r.get('reason')))}</td><td><pre>{_esc(chr(10).join(_details(r)))}</pre></td></tr>"
        for r in failing)
    return (f"<p>{len(failing)} of {len(run.records)} cases failed.</p><table><tr><th>case</th><th>expected</th>"
            f"<th>reply</th><th>reason</th><th>details</th></tr>{rows}</table>")


def _comparison(cmp: Mapping[str, Any]) -> str:
    mc = cmp["mcnemar"]
    parts = [f"<p>{_esc(cmp['n_paired'])} paired cases. McNemar (exact, two-sided): {_esc(mc['b'])} passed only in A, "
             f"{_esc(mc['c'])} only in B, p = {mc['p_value']:.4g}.</p>"]
    parts += [f"<p class=fail>warning: {html.escape(w)}</p>" for w in cmp["warnings"]]
    rows = "".join(f"<tr><td>{_esc(c)}</td><td>{_esc(t['n'])}</td><td>{t['a_pass_rate']:.3f}</td>"
                   f"<td>{t['b_pass_rate']:.3f}</td><td>{_esc(t['b'])}</td><td>{_esc(t['c'])}</td><td>{t['p_value']:.4g}</td>"
                   "</tr>" for c, t in cmp["by_category"].items())
    parts.append("<table><tr><th>category</th><th>n</th><th>A pass</th><th>B pass</th><th>only A</th><th>only B</th>"
                 f"<th>p</th></tr>{rows}</table>")
    for title, ids in (("Fixed (failed in A, passed in B)", cmp["fixed"]), ("Broken (passed in A, failed in B)", cmp["broken"])):
        items = "".join(f"<li>{html.escape(i)}: {html.escape(str(cmp['reasons'][i]['a'] or 'passed'))} → "
                        f"{html.escape(str(cmp['reasons'][i]['b'] or 'passed'))}</li>" for i in ids)
        parts.append(f"<h3>{title}: {len(ids)}</h3><ul>{items}</ul>")
    differ = "".join(f"<li>{html.escape(d['id'])}: A {html.escape(d['a'][0])} {html.escape(','.join(d['a'][1]))} | "
                     f"B {html.escape(d['b'][0])} {html.escape(','.join(d['b'][1]))}</li>" for d in cmp["decisions_differ"])
    parts.append(f"<h3>{'Parity: ' if cmp['parity'] else ''}decisions that differ: {len(cmp['decisions_differ'])}</h3><ul>{differ}</ul>")
    if cmp["regressions"]:
        parts.append("<p class=fail>Regressions: " + "; ".join(html.escape(describe_regression(r)) for r in cmp["regressions"]) + "</p>")
    return "".join(parts)


def _pair(runs: Sequence[Run]) -> dict[str, Any] | None:
    """The comparison of two runs (A, B) as the report shows it; None for one run."""
    return compare_runs(runs[0], runs[1], allow_different_cases=True) if len(runs) == 2 else None


def render_html(runs: Sequence[Run], notes: Sequence[str] = (), cmp: Mapping[str, Any] | None = None) -> str:
    """The report of one run, or of two side by side (A, then B) with their comparison; `notes` are shown first
    (what the figures cannot say by themselves, e.g. which model and training budget they describe)."""
    summaries = [r.summary for r in runs]
    labels = [r.label for r in runs] if len(runs) == 1 else [f"{'AB'[n]}: {r.label}" for n, r in enumerate(runs)]
    last = runs[-1]
    gate = last.summary["gate"]
    verdict = "PASSED" if gate["passed"] else "FAILED"
    out = [f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(last.label)} report</title>"
           f"<style>{CSS}</style></head><body>",
           f"<h1>{html.escape(' vs '.join(r.label for r in runs))}</h1>",
           *(f"<p class=fail>Note: {html.escape(n)}</p>" for n in notes),
           f"<p>Gate ({_esc(gate.get('gate_on'))}): <span class={'ok' if gate['passed'] else 'fail'}>{verdict}</span> — "
           f"{_esc(last.summary.get('n_passed'))}/{_esc(last.summary.get('n_cases'))} cases passed.</p>"]
    out += [f"<p class=fail>gate failure: {html.escape(f['message'])}</p>" for f in gate.get("failures", [])]
    out.append("<h2>What was evaluated</h2><div class=side>")
    for r in runs:
        out.append("<table>" + "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in _fingerprint_rows(r.summary))
                   + "</table>")
    out.append("</div><h2>Metrics</h2>" + _metrics_table(summaries, labels))
    plots = [_img(plot_metrics(summaries, labels), "metrics with 95 % intervals against the thresholds")]
    if any(s.get("by_category") for s in summaries):
        plots.append(_img(plot_categories(summaries, labels), "case pass rate per category"))
    plots += [_img(plot_confusion(r.summary["confusion"], label), f"confusion: {label}") for r, label in zip(runs, labels)
              if r.summary.get("confusion")]
    latencies = [rec["latency_s"] for rec in last.records.values() if rec.get("latency_s")]
    if latencies:
        plots.append(_img(plot_latency(latencies), "latency per reply (" + ", ".join(
            f"{k} {v}" for k, v in (last.summary.get("latency_conditions") or {}).items() if k != "note") + ")"))
    losses = training_metrics(last.summary)
    if losses:
        plots.append(_img(plot_losses(losses), "training loss of the adapter's job"))
    out.append("<h2>Plots</h2><div class=plots>" + "".join(plots) + "</div>")
    if len(runs) == 2:
        out.append("<h2>Comparison (A → B)</h2>" + _comparison(cmp or _pair(runs)))
    out.append(f"<h2>Failing cases ({html.escape(last.label)})</h2>" + _failing_cases(last))
    out.append("</body></html>")
    return "".join(out)


def render_markdown(runs: Sequence[Run], cmp: Mapping[str, Any] | None = None) -> str:
    """A short Markdown summary (a CI job summary): verdict, metrics table, failures by reason."""
    md = escape.markdown  # every field from a run record: it must not make a heading, a link or an image
    last = runs[-1].summary
    gate = last["gate"]
    lines = [f"### {md(runs[-1].label)}: gate {'PASSED' if gate['passed'] else 'FAILED'} "
             f"({md(last.get('n_passed'))}/{md(last.get('n_cases'))} cases passed)", ""]
    head = " | ".join(md(r.label) for r in runs)
    lines += [f"| metric | {head} | threshold |", "|---" * (len(runs) + 2) + "|"]
    for k in (*metric_keys(*(r.summary for r in runs)), "latency_p95_s"):
        if k not in last:
            continue
        cells = " | ".join("—" if r.summary.get(k) is None else f"{r.summary[k]:.3f}" for r in runs)
        lines.append(f"| {md(k)} | {cells} | {md(_threshold(gate.get('thresholds', {}).get(k)))} |")
    lines += [""] + [f"- gate failure: {md(f['message'])}" for f in gate.get("failures", [])]
    if last.get("reasons"):
        lines.append("- failure reasons: " + ", ".join(f"{md(k)} {md(v)}" for k, v in last["reasons"].items()))
    if len(runs) == 2:
        cmp = cmp or _pair(runs)
        mc = cmp["mcnemar"]
        lines.append(f"- vs {md(runs[0].label)}: {len(cmp['fixed'])} fixed, {len(cmp['broken'])} broken, "
                     f"McNemar p = {mc['p_value']:.4g}")
    return "\n".join(lines) + "\n"


def write_report(folders: Sequence[str | Path], notes: Sequence[str] = ()) -> tuple[Path, Path]:
    """report.html and report.md in the (last) run's folder."""
    runs = [load_run(f) for f in folders]
    target = Path(folders[-1])
    page, md = target / "report.html", target / "report.md"
    cmp = _pair(runs)  # compared once for both files
    page.write_text(render_html(runs, notes, cmp), encoding="utf-8")
    md.write_text("".join(f"> {escape.markdown(n)}\n\n" for n in notes) + render_markdown(runs, cmp), encoding="utf-8")
    return page, md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness report", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="a run's report folder; two: the reference (A) and the run (B)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.add_argument("--note", action="append", default=[], help="a note shown at the top (repeatable)")
    args = parser.parse_args(argv)
    if len(args.runs) > 2:
        parser.error("one run, or two to compare")
    try:
        page, md = write_report(args.runs, args.note)
    except (ValueError, RuntimeError) as exc:
        print(escape.terminal(f"report refused: {exc}"), file=sys.stderr)
        return 2
    print(f"report: {page} (Markdown summary: {md})")
    if args.open:
        import webbrowser

        webbrowser.open(page.resolve().as_uri())
    return 0


if __name__ == "__main__":
    sys.exit(main())
