"""The one run-record reader: a format 1 run (before the one engine) still reads, another version is refused by
name, and every case record of either task carries the format version it was written in."""
import json

import pytest

from harness.core.records import READABLE_VERSIONS, RunFormatError, read_run
from harness.report import FORMAT_VERSION
from tests.replay_suites import observe, suites


def _write(folder, summary, records=({"id": "a", "passed": True, "category": "single"},)):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_format_1_runs_read_and_other_versions_are_refused_by_name(tmp_path):
    old = read_run(_write(tmp_path / "old", {"format_version": 1, "case_pass_rate": 1.0, "counts": {}}))
    assert old.task == "tool_call" and old.records["a"]["passed"] and old.info == {}
    assert FORMAT_VERSION in READABLE_VERSIONS and 1 in READABLE_VERSIONS and FORMAT_VERSION == 2
    with pytest.raises(RunFormatError, match="format_version 99: this harness reads formats 1, 2"):
        read_run(_write(tmp_path / "new", {"format_version": 99}))
    with pytest.raises(RunFormatError, match="written before its metrics were top-level keys"):
        read_run(_write(tmp_path / "nested", {"format_version": 1, "task": "program", "rates": {}}))
    with pytest.raises(RunFormatError, match="not a finished run report"):
        read_run(tmp_path / "missing")


@pytest.mark.parametrize("name", ["golden", "program"])
def test_every_case_record_and_summary_names_its_format_and_task(name, tmp_path):
    observe(suites(tmp_path)[name], tmp_path / "runs" / name)
    report = read_run(tmp_path / "runs" / name / "reports" / "pinned")
    assert report.summary["format_version"] == FORMAT_VERSION and report.info["format_version"] == FORMAT_VERSION
    assert report.task == report.info["task"] == ("program" if name == "program" else "tool_call")
    assert report.records and all(r["format_version"] == FORMAT_VERSION for r in report.records.values())
