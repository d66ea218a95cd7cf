"""The HTML report and its Markdown summary: self-contained, with real plots, for one run and for two."""
import base64
import io
import json
import re
import struct

import pytest

pytest.importorskip("matplotlib")

from golden_replies import replies as golden_replies  # noqa: E402
from test_compare import _golden, _run  # noqa: E402

from harness.compare import load_run  # noqa: E402
from harness.html_report import main as report_main  # noqa: E402
from harness.html_report import render_html, training_metrics


def images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def check_png(png: bytes) -> tuple[int, int]:
    """A real PNG with something drawn on it: (width, height)."""
    import matplotlib.image as mpimg
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    pixels = mpimg.imread(io.BytesIO(png))
    assert pixels.std() > 0.05, "a blank image"
    return width, height


def test_one_run_gives_a_self_contained_page_and_a_summary(pytester):
    cases = _golden(pytester)
    run = _run(pytester, "r1", golden_replies())
    assert report_main([str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page  # nothing fetched, nothing run
    pngs = images(page)
    assert len(pngs) == 3  # metrics with intervals, categories, confusion (replay: no latency, no training job)
    assert all(w > 300 and h > 150 for w, h in map(check_png, pngs))
    assert "Failing cases" in page and "case_pass_rate" in page and "tool_selection_accuracy" in page
    summary = json.loads((run / "summary.json").read_text())
    n_failed = summary["n_cases"] - summary["n_passed"]
    assert f"{n_failed} of {len(cases)} cases failed" in page
    failing = next(r for r in load_run(run).records.values() if not r["passed"] and r["response"])
    assert failing["id"] in page and failing["reason"] in page
    md = (run / "report.md").read_text()
    assert md.startswith("### replay (r1): gate FAILED") and "| case_pass_rate |" in md
    assert report_main([str(run), "--note", "a toy stand-in"]) == 0
    assert "Note: a toy stand-in" in (run / "report.html").read_text()
    assert (run / "report.md").read_text().startswith("> a toy stand-in")


def test_two_runs_side_by_side_with_their_comparison(pytester):
    cases = _golden(pytester)
    a = _run(pytester, "a", {c["id"]: "I can't." for c in cases})
    b = _run(pytester, "b", golden_replies())
    assert report_main([str(a), str(b)]) == 0
    page = (b / "report.html").read_text()
    assert "McNemar" in page and "Fixed (failed in A, passed in B)" in page and "A: replay (a)" in page
    assert len(images(page)) == 4  # metrics, categories, a confusion matrix per run
    assert "vs replay (a)" in (b / "report.md").read_text()


def test_a_linked_training_job_adds_its_loss_curves(pytester, tmp_path):
    _golden(pytester)
    run = load_run(_run(pytester, "r", golden_replies()))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "metrics.csv").write_text("step,epoch,train_loss,eval_loss,learning_rate,tokens_per_s\n"
                                         "5,0.1,2.5,,0.001,100\n10,0.2,1.2,1.4,0.001,100\n15,0.3,0.8,,0.001,100\n")
    run.summary["model_fingerprint"]["adapter"] = {"path": str(adapter), "sha256": "ab" * 32, "training_job_sha256": "cd" * 32}
    assert [r["step"] for r in training_metrics(run.summary)] == ["5", "10", "15"]
    page = render_html([run])
    assert "training loss of the adapter" in page and len(images(page)) == 4
    assert "job.json sha256 cdcdcdcd" in page


@pytest.mark.skipif(not __import__("shutil").which("chromium"), reason="needs Chromium (Debian: apt-get install chromium)")
def test_the_page_renders_its_plots_in_a_real_browser(pytester):
    """Chromium renders report.html headless; the screenshot holds the plots' colours (scripts/check_report_in_browser.py)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from check_report_in_browser import main as check
    from check_report_in_browser import plot_pixels
    cases = _golden(pytester)
    a = _run(pytester, "a", {c["id"]: "I can't." for c in cases})
    b = _run(pytester, "b", golden_replies())
    report_main([str(a), str(b)])
    shot = pytester.path / "shot.png"
    assert check([str(b / "report.html"), "--out", str(shot)]) == 0
    # the same page with its images removed has none of those pixels: the count comes from the plots
    bare = b / "bare.html"
    bare.write_text(re.sub(r'<img [^>]*>', "", (b / "report.html").read_text()))
    assert check([str(bare), "--out", str(pytester.path / "bare.png")]) == 1
    assert plot_pixels(shot)["C0 blue"] > 1000
