import json
import re
from datetime import datetime, timezone

from harness.report import PARTIAL, RunWriter, atomic_write_text, new_run_id


def test_run_id_sorts_by_time_and_names_the_model():
    a = new_run_id("local-adapter", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    b = new_run_id("local-adapter", datetime(2026, 1, 2, 3, 4, 6, tzinfo=timezone.utc))
    assert re.fullmatch(r"20260102T030405Z-local-adapter-[0-9a-f]{4}", a) and a < b
    assert "/" not in new_run_id("@cf/meta/llama")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "a" / "x.json", "1")
    atomic_write_text(tmp_path / "a" / "x.json", "2")
    assert (tmp_path / "a" / "x.json").read_text() == "2"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.json"]


def test_writer_keeps_partial_records_until_finish_then_mirrors_latest(tmp_path):
    w = RunWriter(tmp_path, "run-1")
    w.add({"id": "a"})
    assert json.loads((tmp_path / "run-1" / PARTIAL).read_text()) == {"id": "a"}
    assert not (tmp_path / "run-1" / "summary.json").exists()
    w.finish({"n_cases": 1}, [{"id": "a"}])
    assert not (tmp_path / "run-1" / PARTIAL).exists()
    for d in ("run-1", "latest"):
        assert json.loads((tmp_path / d / "summary.json").read_text()) == {"n_cases": 1}
        assert (tmp_path / d / "cases.jsonl").read_text() == '{"id": "a"}\n'
    RunWriter(tmp_path, "run-2").finish({"n_cases": 2}, [])
    assert json.loads((tmp_path / "latest" / "summary.json").read_text()) == {"n_cases": 2}
    assert (tmp_path / "latest" / "RUN_ID").read_text().strip() == "run-2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "run-1", "run-2"]
