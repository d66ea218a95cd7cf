"""compare: McNemar against known figures, pairing, fixed/broken, parity, and the CI gate, on replay runs."""
import json
from pathlib import Path

import pytest
from golden_replies import replies as golden_replies

from conftest import write_jsonl
from harness.compare import CompareError, compare_runs, load_run, mcnemar
from harness.compare import main as compare_main


@pytest.mark.parametrize("b, c, p", [
    (0, 0, 1.0), (3, 3, 1.0), (1, 5, 0.21875), (0, 10, 0.001953125), (10, 0, 0.001953125),
    (2, 12, 0.01293945312), (5, 15, 0.04138946533),  # 2 * P(X <= 2 | n 14), 2 * P(X <= 5 | n 20)
])
def test_mcnemar_exact_p_values(b, c, p):
    assert mcnemar(b, c) == pytest.approx(p, abs=1e-10)


def _golden(pytester):
    src = Path(__file__).resolve().parents[1] / "golden"
    (pytester.path / "golden").mkdir()
    for f in src.glob("*.jsonl"):
        (pytester.path / "golden" / f.name).write_text(f.read_text())
    return [json.loads(x) for f in sorted((pytester.path / "golden").glob("*.jsonl")) for x in f.read_text().splitlines()]


def _run(pytester, run_id, replies):
    write_jsonl(pytester.path / f"{run_id}.jsonl", [{"id": i, "response": r} for i, r in replies.items()])
    pytester.runpytest("--model=replay", "--th-cases", "golden", "--th-replies", f"{run_id}.jsonl", "--th-run-id", run_id,
                       "-p", "no:cacheprovider")
    return pytester.path / "reports" / run_id


def test_a_comparison_pairs_cases_and_names_what_changed(pytester):
    cases = _golden(pytester)
    scripted = golden_replies()
    good = {c["id"]: scripted[c["id"]] for c in cases}
    # A: every 4th reply right (the scripted mix); B: the right reply for 12 more cases, a wrong one for 2 A passed
    right = {i: t for i, t in good.items() if t.startswith("Done.") or t == "I can't do that."}
    a = _run(pytester, "base", good)
    run_a = load_run(a)
    failing = [i for i, r in run_a.records.items() if not r["passed"]]
    passing = [i for i, r in run_a.records.items() if r["passed"]]
    from golden_replies import _value
    b_replies = dict(good)
    fixed_ids = failing[:12]
    for case in cases:
        if case["id"] in fixed_ids:
            calls = [{"tool": e["tool"], "params": {k: _value(m) for k, m in e["params"].items()
                                                    if not (isinstance(m, dict) and m.get("present") is False)}}
                     for e in case["expected"]]
            b_replies[case["id"]] = "Done." + "".join(f"\n\n```json\n{json.dumps(c)}\n```" for c in calls) if calls else "Sure."
    broken_ids = passing[:2]
    for i in broken_ids:
        b_replies[i] = "```json\n{\"tool\": \"createTask\"\n```"
    b = _run(pytester, "adapter", b_replies)
    cmp = compare_runs(load_run(a), load_run(b))
    assert set(cmp["broken"]) == set(broken_ids) and cmp["reasons"][broken_ids[0]]["b"] == "invalid_json"
    run_b = load_run(b)
    assert cmp["fixed"] == [i for i in run_a.records if not run_a.records[i]["passed"] and run_b.records[i]["passed"]]
    assert len(cmp["fixed"]) >= 8 and set(cmp["fixed"]) <= set(fixed_ids)
    assert cmp["mcnemar"]["b"] == 2 and cmp["mcnemar"]["c"] == len(cmp["fixed"])
    assert cmp["mcnemar"]["p_value"] == pytest.approx(mcnemar(2, len(cmp["fixed"])))
    m = cmp["metrics"]["case_pass_rate"]
    assert m["diff"] == pytest.approx(m["b"] - m["a"]) and m["a_interval"][0] <= m["a"] <= m["a_interval"][1]
    assert sum(t["n"] for t in cmp["by_category"].values()) == cmp["n_paired"] == len(cases)
    assert {d["id"] for d in cmp["decisions_differ"]} >= set(broken_ids) and cmp["parity"] is False
    assert set(cmp["confusion"]) == {"a", "b"} and right  # both confusion tables carried

    # the CLI: JSON out, and --fail-on-regression (B is better overall, but B fails its gate's thresholds)
    out = pytester.path / "cmp.json"
    code = compare_main([str(a), str(b), "--out", str(out), "--fail-on-regression"])
    saved = json.loads(out.read_text())
    assert saved["mcnemar"] == cmp["mcnemar"] and saved["fixed"] == cmp["fixed"]
    assert code == 1 and any(r["where"] == "gate" for r in saved["regressions"])
    assert not any(r["where"] == "all cases" for r in saved["regressions"])  # B is not significantly worse
    # the reverse direction is a significant drop
    reverse = compare_runs(load_run(b), load_run(a))
    assert any(r["where"] == "all cases" and r["p_value"] < 0.05 for r in reverse["regressions"])


def test_runs_on_different_case_files_are_refused_unless_asked(pytester):
    cases = _golden(pytester)
    a = _run(pytester, "a", {c["id"]: "no" for c in cases})
    (pytester.path / "golden" / "assistant.jsonl").write_text(
        "".join(json.dumps(c) + "\n" for c in cases[:-1]))
    b = _run(pytester, "b", {c["id"]: "no" for c in cases})
    with pytest.raises(CompareError, match="different case files"):
        compare_runs(load_run(a), load_run(b))
    cmp = compare_runs(load_run(a), load_run(b), allow_different_cases=True)
    assert cmp["only_a"] == [cases[-1]["id"]] and cmp["warnings"] and cmp["n_paired"] == len(cases) - 1


def test_compare_to_in_pytest_prints_the_comparison(pytester):
    cases = _golden(pytester)
    a = _run(pytester, "ref", {c["id"]: "no" for c in cases})
    write_jsonl(pytester.path / "g.jsonl", [{"id": i, "response": t} for i, t in golden_replies().items()])
    result = pytester.runpytest("--model=replay", "--th-cases", "golden", "--th-replies", "g.jsonl", "--th-compare-to", str(a),
                                "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*compared with*", "A: replay (ref)   B: replay (*", "McNemar (exact, two-sided): *"])
