"""BFCL import: the shipped sample (tests/fixtures/bfcl, Apache-2.0, see NOTICE) becomes a suite whose verdicts
on scripted replies are the ones BFCL's documented checker gives for them (reasoned case by case below)."""
import json
from pathlib import Path

import pytest

from conftest import write_jsonl
from harness.bfcl import Unsupported, import_suite, json_schema, to_case

SAMPLE = Path(__file__).parent / "fixtures" / "bfcl"


def test_bfcl_types_become_json_schema():
    got = json_schema({"type": "dict", "properties": {"x": {"type": "float"}, "t": {"type": "tuple", "items": {"type": "integer"}},
                                                      "a": {"type": "any", "description": "anything"}}, "required": ["x"]})
    assert got == {"type": "object", "properties": {"x": {"type": "number"}, "t": {"type": "array", "items": {"type": "integer"}},
                                                    "a": {"description": "anything"}},
                   "required": ["x"], "additionalProperties": False}


def test_answers_become_matchers_and_what_cannot_be_expressed_is_refused():
    entry = {"id": "simple_1", "question": [[{"role": "user", "content": "q"}]],
             "function": [{"name": "f", "parameters": {"type": "dict", "properties": {"u": {"type": "string"}}}}]}
    case = to_case(entry, {"id": "simple_1", "ground_truth": [{"f": {"u": ["cm", ""]}}]})
    assert case["expected"] == [{"tool": "f", "params": {"u": {"any_of": ["cm", {"present": False}]}}}]
    assert to_case({**entry, "id": "irrelevance_3"}, None)["expected"] == []
    with pytest.raises(Unsupported, match="object"):
        to_case(entry, {"id": "simple_1", "ground_truth": [{"f": {"u": [{"k": ["v"]}]}}]})


def test_the_sample_imports_and_names_what_it_left_out(tmp_path):
    report = import_suite(SAMPLE / "BFCL_v4_simple_python.sample.json",
                          SAMPLE / "BFCL_v4_simple_python.answers.sample.json", tmp_path / "bfcl-simple")
    # BFCL's own answer for simple_python_17 allows leaving out "formatted", which its schema requires.
    assert report["kept"] == 5 and list(report["left_out"]) == ["simple_python_17"]
    readme = (tmp_path / "bfcl-simple" / "README.md").read_text()
    assert "Apache License 2.0" in readme and "simple_python_17" in readme


def call(name, **params):
    return json.dumps({"name": name, "parameters": params})


# Scripted replies and BFCL's verdict for each, from its documented AST checker: the function name must be
# the one in the answer; every required parameter present; no parameter the function does not define; each
# value of the declared type and in the answer's list ("" in the list: may be left out).
REPLIES = [
    ("simple_python_0", call("calculate_triangle_area", base=10, height=5), True, None),
    ("simple_python_0", call("calculate_triangle_area", base=10, height=5, unit="units"), True, None),
    # a function the entry does not define: BFCL fails it; in the native format it is a malformed call here
    ("simple_python_0", call("calculate_area", base=10, height=5), False, "invalid_json"),
    ("simple_python_1", call("math.factorial"), False, "schema_error"),  # required parameter missing
    ("simple_python_1", call("math.factorial", number="5"), False, "schema_error"),  # wrong type
    ("simple_python_1", call("math.factorial", number=6), False, "param_mismatch:number"),  # not in the list
    ("simple_python_2", call("math.hypot", x=4, y=5, z=0), True, None),
    ("simple_python_2", call("math.hypot", x=4, y=5, w=1), False, "schema_error"),  # a parameter it does not define
    ("simple_python_7", call("calculate_circumference", radius=4, unit="in"), True, None),
    ("simple_python_7", json.dumps([json.loads(call("calculate_circumference", radius=4, unit="in"))] * 2), False,
     "extra_call"),  # one call expected, two made
    ("simple_python_13", call("calculate_area_under_curve", function="x**2", interval=[1.0, 3.0]), True, None),
]


@pytest.mark.parametrize("case_id, reply, passes, reason", REPLIES)
def test_scripted_replies_get_bfcls_verdicts(tmp_path, case_id, reply, passes, reason):
    from harness.cases import load_case_file
    from harness.match import score
    from harness.suite import resolve_suite
    suite_dir = tmp_path / "bfcl-simple"
    import_suite(SAMPLE / "BFCL_v4_simple_python.sample.json", SAMPLE / "BFCL_v4_simple_python.answers.sample.json",
                 suite_dir)
    suite = resolve_suite([suite_dir], reply_format="native")
    cases = {c.id: c for c in load_case_file(suite_dir / "cases.jsonl", suite.catalogue, system_messages=True).cases}
    result = score(cases[case_id], reply, suite.catalogue, reply_format="native")
    assert (result.passed, result.reason) == (passes, reason), result.details


def test_an_irrelevance_case_wants_no_call_and_a_broken_call_is_not_no_call(tmp_path):
    """BFCL counts an undecodable reply on an irrelevance entry as "no call" (a pass); this harness's default
    scoring keeps the three-way outcome: it is malformed, and fails."""
    from harness.cases import load_case_file
    from harness.match import score
    from harness.suite import resolve_suite
    data = tmp_path / "irrelevance.json"
    write_jsonl(data, [{"id": "irrelevance_0", "question": [[{"role": "user", "content": "Tell me a joke."}]],
                        "function": [{"name": "f", "parameters": {"type": "dict", "properties": {}}}]}])
    import_suite(data, None, tmp_path / "irr")
    suite = resolve_suite([tmp_path / "irr"], reply_format="native")
    [case] = load_case_file(tmp_path / "irr" / "cases.jsonl", suite.catalogue, system_messages=True).cases
    assert case.category == "no_tool"
    assert score(case, "Why did the chicken...", suite.catalogue, reply_format="native").passed
    assert score(case, call("f"), suite.catalogue, reply_format="native").reason == "unexpected_call"
    assert score(case, '{"name": "f", "parameters": ', suite.catalogue, reply_format="native").reason == "invalid_json"


def test_the_suite_runs_under_pytest(pytester, tmp_path):
    import_suite(SAMPLE / "BFCL_v4_simple_python.sample.json", SAMPLE / "BFCL_v4_simple_python.answers.sample.json",
                 pytester.path / "bfcl-simple")
    replies = [{"id": i, "response": r} for i, r, ok, _ in REPLIES[:1] + REPLIES[6:7] + REPLIES[8:9] + REPLIES[10:]]
    replies.append({"id": "simple_python_1", "response": call("math.factorial", number=5)})
    write_jsonl(pytester.path / "r.jsonl", replies)
    result = pytester.runpytest("--model=replay", "--cases", "bfcl-simple", "--replies", "r.jsonl",
                                "--reply-format", "native", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    s = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert s["tool_selection_accuracy"] == 1.0 and s["model_fingerprint"]["reply_format"] == "native"
