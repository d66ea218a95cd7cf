"""A run split across machines: --shard I/N picks a deterministic part of the selected cases, and
`python -m harness merge` joins the parts into exactly the run an unsharded evaluation gives."""
import json

import pytest
from golden_replies import replies as golden_replies

from conftest import write_jsonl
from harness.merge import main as merge_main


def _replies(pytester, golden):
    """Recorded replies for the golden cases (right, wrong, malformed, abstaining in turn), some missing."""
    scripted = golden_replies()
    rows = [{"id": case["id"], "response": scripted[case["id"]]} for i, case in enumerate(golden) if i % 11 != 5]
    write_jsonl(pytester.path / "r.jsonl", rows)


def _summary(path):
    s = json.loads(path.read_text())
    return {k: v for k, v in s.items() if k != "run_id"}


@pytest.fixture
def golden(pytester):
    from pathlib import Path
    src = Path(__file__).resolve().parents[1] / "golden"
    for f in src.glob("*.jsonl"):
        (pytester.path / "golden").mkdir(exist_ok=True)
        (pytester.path / "golden" / f.name).write_text(f.read_text())
    return [json.loads(line) for f in sorted((pytester.path / "golden").glob("*.jsonl"))
            for line in f.read_text().splitlines() if line.strip()]


def run(pytester, *args):
    return pytester.runpytest("--model=replay", "--th-cases", "golden", "--th-replies", "r.jsonl", "--th-max-unanswered", "100",
                              "-p", "no:cacheprovider", *args)


def test_three_shards_merge_into_the_unsharded_run(pytester, golden):
    _replies(pytester, golden)
    run(pytester, "--th-run-id", "whole")
    whole = _summary(pytester.path / "reports/whole/summary.json")
    sizes = []
    for i in (1, 2, 3):
        result = run(pytester, "--th-run-id", f"shard-{i}", "--th-shard", f"{i}/3")
        shard = json.loads((pytester.path / f"reports/shard-{i}/summary.json").read_text())
        assert shard["shard"] == {"index": i, "count": 3} and shard["selection"]["expression"] == f"--th-shard {i}/3"
        sizes.append(shard["n_cases"])
        result.stdout.fnmatch_lines([f"*on a subset: {shard['n_cases']} of {len(golden)} cases (--th-shard {i}/3)*"])
    assert sum(sizes) == len(golden) and max(sizes) - min(sizes) <= 1
    out = pytester.path / "reports" / "merged"
    code = merge_main([str(pytester.path / f"reports/shard-{i}") for i in (3, 1, 2)] + ["--out", str(out)])
    merged = _summary(out / "summary.json")
    assert merged == whole  # every figure, interval, count, confusion cell, gate verdict and selection
    assert code == (0 if whole["gate"]["passed"] else 1)
    assert [json.loads(x)["id"] for x in (out / "cases.jsonl").read_text().splitlines()] == \
           [json.loads(x)["id"] for x in (pytester.path / "reports/whole/cases.jsonl").read_text().splitlines()]
    assert json.loads((out / "run.json").read_text())["merged_from"][0].endswith("shard-1")


def test_a_shard_of_a_subset_and_a_merge_that_is_not_one_run(pytester, golden, capsys):
    _replies(pytester, golden)
    run(pytester, "--th-run-id", "whole-k", "-k", "task")
    for i in (1, 2):
        run(pytester, "--th-run-id", f"k-{i}", "-k", "task", "--th-shard", f"{i}/2")
    out = pytester.path / "reports" / "merged-k"
    merge_main([str(pytester.path / "reports/k-1"), str(pytester.path / "reports/k-2"), "--out", str(out)])
    merged = _summary(out / "summary.json")
    assert merged == _summary(pytester.path / "reports/whole-k/summary.json")
    assert merged["selection"]["expression"] == "-k 'task'" and not merged["selection"]["whole_files"]

    # refused: a missing shard, a shard of another split, a shard of another run
    run(pytester, "--th-run-id", "other-1", "--th-shard", "1/3")
    cases = [str(pytester.path / "reports/k-1"), "--out", str(pytester.path / "reports/x")]
    assert merge_main(cases) == 2
    assert "each of 1..2 is needed exactly once" in capsys.readouterr().err
    assert merge_main([str(pytester.path / "reports/k-1"), str(pytester.path / "reports/other-1"), "--out",
                       str(pytester.path / "reports/y")]) == 2
    assert "differ in shard count" in capsys.readouterr().err
    assert merge_main([str(pytester.path / "reports/whole-k"), "--out", str(pytester.path / "reports/z")]) == 2
    assert "not a shard" in capsys.readouterr().err


def test_a_malformed_shard_is_a_usage_error(pytester, golden):
    _replies(pytester, golden)
    result = run(pytester, "--th-shard", "4/3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--th-shard '4/3': write I/N with 1 <= I <= N*"])


def test_python_m_harness_lists_its_commands(capsys):
    from harness.__main__ import main
    assert main([]) == 2 and "merge" in capsys.readouterr().err
