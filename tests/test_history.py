"""history: every run's gate metrics in time order, a table and a plot."""
import os

import pytest

pytest.importorskip("matplotlib")

from golden_replies import replies as golden_replies  # noqa: E402
from test_compare import _golden, _run  # noqa: E402
from test_html_report import check_png  # noqa: E402

from harness.history import collect  # noqa: E402
from harness.history import main as history_main


def test_history_lists_runs_oldest_first_and_plots_them(pytester, capsys):
    cases = _golden(pytester)
    first = _run(pytester, "run-1", {c["id"]: "no" for c in cases})
    _run(pytester, "run-2", golden_replies())
    os.utime(first / "summary.json", (1_000_000, 1_000_000))  # written long before the second
    rows = collect(pytester.path / "reports")
    assert [r["run_id"] for r in rows] == ["run-1", "run-2"]  # latest/ is a copy, not a run
    assert rows[0]["case_pass_rate"] < rows[1]["case_pass_rate"] and rows[0]["who"] == "replay"
    assert history_main([str(pytester.path / "reports")]) == 0
    out = capsys.readouterr().out
    assert "run-1" in out and "case_pass_rate" in out and out.index("run-1") < out.index("run-2")
    check_png((pytester.path / "reports" / "history.png").read_bytes())
    assert "run-2" in (pytester.path / "reports" / "history.md").read_text()
    assert history_main([str(pytester.path / "nothing")]) == 2
