"""The plugin end to end through pytester: case file + replay file -> exit status and report files."""
import json
import re
from pathlib import Path

import pytest

from conftest import write_jsonl

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def fence(tool, params):
    return f"Sure.\n\n```json\n{json.dumps({'tool': tool, 'params': params})}\n```"


CASES = [
    {"id": "t-1", "category": "contrastive", "pair": "dentist",
     "messages": [{"role": "user", "content": "Remind me to call the dentist"}],
     "expected": [{"tool": "createTask", "params": {"title": {"contains": "dentist"}}}]},
    {"id": "e-1", "category": "contrastive", "pair": "dentist",
     "messages": [{"role": "user", "content": "Dentist Friday at 10"}],
     "expected": [{"tool": "createCalendarEvent", "params": {"startTime": {"datetime": "2026-02-27T10:00"}}}]},
    {"id": "w-1", "category": "single", "messages": [{"role": "user", "content": "weather in Oslo?"}],
     "expected": [{"tool": "getWeather", "params": {"location": "oslo"}}]},
    {"id": "n-1", "category": "no_tool", "messages": [{"role": "user", "content": "thanks"}], "expected": []},
]
GOOD = {
    "t-1": fence("createTask", {"title": "Call the dentist", "priority": "medium"}),
    "e-1": fence("createCalendarEvent", {"summary": "Dentist", "startTime": "2026-02-27T10:00:00Z"}),
    "w-1": fence("getWeather", {"location": "Oslo"}),
    "n-1": "You're welcome!",
}


def setup_run(pytester, replies, cases=CASES):
    write_jsonl(pytester.path / "cases.jsonl", cases)
    write_jsonl(pytester.path / "r.jsonl", [{"id": k, "response": v} for k, v in replies.items()])


def summary(pytester, which="latest"):
    return json.loads((pytester.path / "reports" / which / "summary.json").read_text())


def records(pytester):
    return [json.loads(line) for line in (pytester.path / "reports" / "latest" / "cases.jsonl").read_text().splitlines()]


def run(pytester, *args):
    return pytester.runpytest("--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl", "-p", "no:cacheprovider",
                              "-W", "ignore::pytest.PytestAssertRewriteWarning", *args)


def test_all_right_passes_and_writes_the_report(pytester):
    setup_run(pytester, GOOD)
    result = run(pytester)
    result.assert_outcomes(passed=4)
    assert result.ret == 0
    s = summary(pytester)
    for key in ("model", "model_fingerprint", "n_cases", "case_pass_rate", "tool_selection_accuracy", "valid_json_rate",
                "schema_valid_rate", "disambiguation_accuracy", "pair_accuracy", "no_tool_accuracy",
                "no_tool_precision", "by_category", "confusion", "intervals", "gate"):
        assert key in s, key
    assert s["model"] == "replay" and s["n_cases"] == 4 and s["case_pass_rate"] == 1.0
    assert s["gate"] == {**s["gate"], "passed": True, "failures": []}
    assert "latency_p95_s" not in s  # replay measures no latency
    assert s["model_fingerprint"]["case_files"][0]["sha256"] and s["model_fingerprint"]["harness_version"]
    run_dirs = [p for p in (pytester.path / "reports").iterdir() if p.name != "latest"]
    assert len(run_dirs) == 1 and run_dirs[0].name.split("-")[1] == "replay"
    assert (run_dirs[0] / "summary.json").read_text() == (pytester.path / "reports/latest/summary.json").read_text()
    assert [r["id"] for r in records(pytester)] == ["t-1", "e-1", "w-1", "n-1"]
    assert all(r["passed"] and r["reason"] is None for r in records(pytester))
    result.stdout.fnmatch_lines(["*tool_selection_accuracy*1.000*3/3*> 0.9*ok*", "*gate (point): PASSED*"])


def test_failing_case_shows_reason_expected_and_reply(pytester):
    setup_run(pytester, {**GOOD, "t-1": fence("createCalendarEvent", {"summary": "dentist", "startTime": "2026-02-27T10:00"})})
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*wrong_tool: case t-1 (contrastive, pair dentist) failed*",
        "expected:", "*createTask(title: contains 'dentist')*",
        "reply:", "*| Sure.*",
    ])
    s = summary(pytester)
    assert s["tool_selection_accuracy"] == pytest.approx(2 / 3) and s["pair_accuracy"] == 0.0
    assert s["confusion"]["createTask"] == {"createCalendarEvent": 1}
    assert {f["metric"] for f in s["gate"]["failures"]} == {"tool_selection_accuracy", "disambiguation_accuracy"}


def test_gate_decides_exit_status_unless_strict(pytester):
    setup_run(pytester, {**GOOD, "w-1": fence("getWeather", {"location": "Bergen"})})
    result = run(pytester)
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == 0  # param mismatch: tool selection still right, the gate holds
    assert records(pytester)[2]["reason"] == "param_mismatch:location"
    result.stdout.fnmatch_lines(["*gate (point): PASSED (single cases failed*--strict*"])
    assert run(pytester, "--strict").ret == 1


def test_threshold_overrides(pytester):
    setup_run(pytester, {**GOOD, "t-1": "I can't."})
    assert run(pytester).ret == 1
    offs = ["--th-threshold", "disambiguation_accuracy=off", "--th-threshold", "valid_json_rate=off"]
    assert run(pytester, "--th-threshold", "tool_selection_accuracy=0.5", *offs).ret == 0
    assert summary(pytester)["gate"]["thresholds"]["tool_selection_accuracy"] == {"op": ">", "value": 0.5}
    (pytester.path / "gate.toml").write_text(
        "[thresholds]\ntool_selection_accuracy = 0.5\ndisambiguation_accuracy = 'off'\nvalid_json_rate = 'off'\n")
    assert run(pytester, "--th-thresholds-file", "gate.toml").ret == 0
    assert run(pytester, "--th-gate-on", "lower-bound", "--th-thresholds-file", "gate.toml").ret == 1
    result = run(pytester, "--th-threshold", "tool_accuracy=0.5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_missing_reply_is_a_backend_error_not_a_crash(pytester):
    setup_run(pytester, {k: v for k, v in GOOD.items() if k != "n-1"})
    result = run(pytester)
    result.assert_outcomes(passed=3, failed=1)
    rec = records(pytester)[3]
    assert rec["reason"] == "backend_error" and rec["outcome"] is None and "no recorded reply" in rec["error"]
    assert summary(pytester)["no_tool_accuracy"] == 0.0


def test_malformed_case_file_runs_nothing(pytester):
    bad = [CASES[0], {**CASES[1], "expected": [{"tool": "createEvent", "params": {}}]}]
    setup_run(pytester, GOOD, cases=bad)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*cases.jsonl:2: expected?0?.tool: unknown tool 'createEvent'*"])
    assert "Traceback" not in result.stdout.str() and "pair" not in result.stdout.str()
    assert not (pytester.path / "reports").exists()


def test_k_selects_cases_by_id_and_lf_reruns_failures(pytester):
    setup_run(pytester, {**GOOD, "w-1": "no idea"})
    result = pytester.runpytest("--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl", "-k", "w-1")
    result.assert_outcomes(failed=1, deselected=3)
    run_dir = next(p for p in (pytester.path / "reports").iterdir() if p.name != "latest")
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["n_cases"] == 1 and s["selection"] == {"expression": "-k 'w-1'", "n_selected": 1, "n_in_files": 4,
                                                   "whole_files": False}
    assert not (pytester.path / "reports" / "latest").exists()  # a subset never replaces latest
    pytester.runpytest("--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl")
    result = pytester.runpytest("--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl", "--lf")
    result.assert_outcomes(failed=1, deselected=3)


def test_without_model_case_files_are_not_collected(pytester):
    (pytester.path / "golden").mkdir()
    write_jsonl(pytester.path / "golden" / "x.jsonl", CASES)
    pytester.makepyfile(test_unit="def test_ok():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_default_case_folder_is_golden_and_positional_paths_work(pytester):
    (pytester.path / "golden").mkdir()
    write_jsonl(pytester.path / "golden" / "x.jsonl", CASES)
    write_jsonl(pytester.path / "r.jsonl", [{"id": k, "response": v} for k, v in GOOD.items()])
    pytester.makepyfile(test_unit="def test_ok():\n    assert False\n")
    result = pytester.runpytest("--model=replay", "--th-replies", "r.jsonl")
    result.assert_outcomes(passed=4)
    result = pytester.runpytest("--model=replay", "--th-replies", "r.jsonl", "golden/x.jsonl")
    result.assert_outcomes(passed=4)


def test_usage_errors(pytester):
    setup_run(pytester, GOOD)
    result = pytester.runpytest("--model=replay", "--th-cases", "cases.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--model=replay needs --th-replies*"])
    result = pytester.runpytest("--model=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (pytester.path / "bad.jsonl").write_text('{"id": "t-1", "response": 5}\n')
    result = pytester.runpytest("--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "bad.jsonl")
    result.stderr.fnmatch_lines(["*bad.jsonl:1: response: must be a string*"])


def test_a_run_report_replays_to_the_same_summary(pytester):
    setup_run(pytester, {**GOOD, "w-1": "```json\n{broken\n```"})
    run(pytester)
    first = summary(pytester)
    (pytester.path / "again.jsonl").write_text((pytester.path / "reports/latest/cases.jsonl").read_text())
    pytester.runpytest("--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "again.jsonl")
    second = summary(pytester)
    for key in ("case_pass_rate", "tool_selection_accuracy", "valid_json_rate", "confusion", "intervals", "by_category"):
        assert first[key] == second[key]


def test_golden_suite_runs_under_replay(pytester):
    (pytester.path / "empty.jsonl").write_text("")
    result = pytester.runpytest("--model=replay", "--th-cases", str(GOLDEN), "--th-replies", "empty.jsonl", "-q")
    assert result.ret == 1
    s = summary(pytester)
    assert s["n_cases"] >= 60 and s["reasons"] == {"backend_error": s["n_cases"]} and s["case_pass_rate"] == 0.0


def many_cases(n):
    return [{"id": f"w-{i:03d}", "category": "single", "messages": [{"role": "user", "content": "weather?"}],
             "expected": [{"tool": "getWeather", "params": {"location": "oslo"}}]} for i in range(n)]


def test_every_failed_case_is_listed_and_the_first_n_in_full(pytester):
    cases = many_cases(30)
    setup_run(pytester, {c["id"]: ("no idea" if i % 3 else fence("getWeather", {"location": "Bergen"}))
                         for i, c in enumerate(cases)}, cases=cases)
    # Counted before pytest's short summary, which on CI (env CI set) repeats each failure's whole text.
    before_short_summary = lambda out: out.split("short test summary info")[0]  # noqa: E731
    out = run(pytester, "--th-failure-details", "2").stdout.str()
    for i in range(30):
        reason = "missing_call" if i % 3 else "param_mismatch:location"
        assert re.search(rf"^  w-{i:03d}  {reason}$", out, re.M), f"w-{i:03d} not listed with its reason"
    assert before_short_summary(out).count("\nexpected:\n") == 2 and "first 2 in full" in out
    assert "= FAILURES =" not in out  # pytest's own quadratic report is off unless asked for
    full = run(pytester, "--th-failure-details", "all").stdout.str()
    assert "= FAILURES =" in full and before_short_summary(full).count("\nexpected:\n") == 30
    assert before_short_summary(run(pytester, "--tb=short").stdout.str()).count("\nexpected:\n") == 30


def test_a_crashing_backend_shows_its_traceback_and_stops(pytester):
    pytester.makeconftest('''
from harness.backends import Backend, BackendSpec, register

class Crashing(Backend):
    name = "crashing"
    @classmethod
    def from_options(cls, name, options):
        return cls()
    def generate(self, requests, on_reply=None):
        raise ZeroDivisionError("a bug in the backend")

import sys
sys.modules[__name__].Crashing = Crashing
register(BackendSpec("crashing", f"{__name__}:Crashing", ()))
''')
    write_jsonl(pytester.path / "cases.jsonl", CASES)
    result = pytester.runpytest("--model=crashing", "--th-cases", "cases.jsonl", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "crashed: cases.jsonl::t-1" in out and "ZeroDivisionError: a bug in the backend" in out
    assert "Traceback" in out or "def generate" in out
    result.assert_outcomes(failed=1)
    s = summary(pytester)
    assert result.ret != 0 and s["complete"] is False and not s["gate"]["passed"]


THREE = [{"id": f"g-5{x}", "category": "contrastive", "pair": "g5",
          "messages": [{"role": "user", "content": "weather?"}],
          "expected": [{"tool": "getWeather", "params": {"location": "oslo"}}]} for x in "abc"]


def test_a_pair_counts_only_when_all_its_members_ran(pytester):
    setup_run(pytester, {"g-5a": fence("getWeather", {"location": "Oslo"}), "g-5b": "no", "g-5c": "no"}, cases=THREE)
    result = run(pytester, "-k", "g-5a", "--th-threshold", "tool_selection_accuracy=off", "--th-threshold",
                 "valid_json_rate=off", "--th-threshold", "no_tool_accuracy=off", "--th-threshold", "disambiguation_accuracy=off",
                 "--th-threshold", "pair_accuracy=0.5")
    run_dir = next(p for p in (pytester.path / "reports").iterdir() if p.name != "latest")
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["pair_accuracy"] is None and s["counts"]["pair_accuracy"] == {"passed": 0, "of": 0}
    assert s["incomplete_pairs"] == 1 and s["selection"]["n_selected"] == 1
    result.stdout.fnmatch_lines(["*on a subset: 1 of 3 cases (-k 'g-5a')*1 contrastive group(s) ran only in part*"])
    full = run(pytester)
    assert summary(pytester)["pair_accuracy"] == 0.0 and summary(pytester)["incomplete_pairs"] == 0
    assert full.ret == 1


def test_one_case_by_node_id(pytester):
    cases = [{**CASES[2], "id": f"g-1{x}"} for x in ("", "0", "1")]
    setup_run(pytester, {c["id"]: GOOD["w-1"] for c in cases}, cases=cases)
    result = pytester.runpytest("--model=replay", "cases.jsonl::g-1", "--th-replies", "r.jsonl", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    s = json.loads(next(p for p in (pytester.path / "reports").iterdir() if p.name != "latest").joinpath(
        "summary.json").read_text())
    assert s["selection"]["expression"].endswith("cases.jsonl::g-1") and s["n_cases"] == 1
    assert pytester.runpytest("--model=replay", "cases.jsonl", "--th-replies", "r.jsonl", "-k", "g-1",
                              "-p", "no:cacheprovider").parseoutcomes()["passed"] == 3  # -k matches substrings


def test_a_refused_file_makes_the_run_incomplete_and_leaves_no_empty_folder(pytester):
    setup_run(pytester, GOOD)
    write_jsonl(pytester.path / "more.jsonl", [{**CASES[0], "id": "x", "expected": [{"tool": "nope", "params": {}}]}])
    args = ("--model=replay", "--th-cases", "cases.jsonl", "--th-cases", "more.jsonl", "--th-replies", "r.jsonl",
            "-p", "no:cacheprovider")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.INTERRUPTED and not (pytester.path / "reports").exists()
    result.stdout.fnmatch_lines(["*case file refused:*more.jsonl*", "*more.jsonl:1: expected?0?.tool: unknown tool*"])
    result = pytester.runpytest(*args, "--continue-on-collection-errors")
    s = summary(pytester, next(p.name for p in (pytester.path / "reports").iterdir()))
    assert s["complete"] is False and s["refused_files"] == [str(pytester.path / "more.jsonl")]
    assert not s["gate"]["passed"] and "1 case file(s) refused" in s["gate"]["failures"][-1]["message"]
    assert result.ret == 1 and not (pytester.path / "reports" / "latest").exists()


def test_a_replay_file_given_as_cases_is_named_as_such(pytester):
    setup_run(pytester, GOOD)
    result = pytester.runpytest("--model=replay", "--th-cases", "r.jsonl", "--th-replies", "r.jsonl", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*r.jsonl: this is a replay file (lines with 'response' and no 'messages')*"])
    assert "problem(s)" in result.stdout.str() and "(1 problem(s))" in result.stdout.str()


def test_junit_xml_and_maxfail_still_work_with_the_lean_protocol(pytester):
    setup_run(pytester, {**GOOD, "w-1": "no idea", "n-1": "no idea either"})
    run(pytester, "--junitxml", "j.xml")
    import xml.etree.ElementTree as ET
    cases = {c.attrib["name"]: c for c in ET.parse(pytester.path / "j.xml").getroot().iter("testcase")}
    assert set(cases) == {"t-1", "e-1", "w-1", "n-1"}
    assert cases["w-1"].find("failure").attrib["message"].startswith("missing_call")
    assert cases["t-1"].find("failure") is None
    result = run(pytester, "-x")
    result.assert_outcomes(passed=2, failed=1)
