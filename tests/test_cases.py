from collections import Counter
from pathlib import Path

import pytest

from conftest import write_jsonl
from harness.suite import resolve_catalogue  # noqa: E402
from harness.tasks.tool_call.cases import CaseFileError, load_case_file

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
GOOD = {"id": "a", "category": "single", "messages": [{"role": "user", "content": "hi"}],
        "expected": [{"tool": "createTask", "params": {"title": {"contains": "x"}}}]}


def problems_of(tmp_path, rows):
    path = write_jsonl(tmp_path / "cases.jsonl", rows)
    with pytest.raises(CaseFileError) as exc:
        load_case_file(path, resolve_catalogue())
    return exc.value.problems, str(exc.value)


def test_good_file_loads_with_default_now(tmp_path):
    f = load_case_file(write_jsonl(tmp_path / "c.jsonl", [GOOD, "", {**GOOD, "id": "b", "now": "2026-03-01T08:00:00Z"}]),
                       resolve_catalogue())
    assert [c.id for c in f.cases] == ["a", "b"]
    assert f.cases[0].now.isoformat() == "2026-02-24T09:00:00+00:00"
    assert f.cases[1].line == 3 and len(f.sha256) == 64


@pytest.mark.parametrize("row, field", [
    ({**GOOD, "category": "weird"}, "category"),
    ({k: v for k, v in GOOD.items() if k != "id"}, "id"),
    ({**GOOD, "id": ""}, "id"),
    ({**GOOD, "now": "next tuesday"}, "now"),
    ({**GOOD, "messages": []}, "messages"),
    ({**GOOD, "messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    ({**GOOD, "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    ({**GOOD, "expected": {}}, "expected"),
    ({**GOOD, "expected": [{"tool": "createReminder", "params": {}}]}, "expected[0].tool"),
    ({**GOOD, "expected": [{"tool": "createTask", "params": {"colour": "red"}}]}, "expected[0].params.colour"),
    ({**GOOD, "expected": [{"tool": "createTask", "params": {"dueDate": {"date": "soon"}}}]}, "expected[0].params.dueDate.date"),
    ({**GOOD, "expected": [{"tool": "createTask", "params": {"title": {"regex": "x"}}}]}, "expected[0].params.title"),
    ({**GOOD, "expected": [{"tool": "createTask", "args": {}}]}, "expected[0]"),
])
def test_each_problem_names_line_and_field(tmp_path, row, field):
    problems, message = problems_of(tmp_path, [GOOD | {"id": "first"}, row])
    assert [(p.line, p.field) for p in problems] == [(2, field)]
    assert f"cases.jsonl:2: {field}:" in message and "nothing was run" in message


def test_bad_json_line(tmp_path):
    problems, _ = problems_of(tmp_path, [GOOD, "{nope"])
    assert problems[0].line == 2 and "not valid JSON" in problems[0].message


def test_duplicate_ids_and_lonely_pairs(tmp_path):
    problems, _ = problems_of(tmp_path, [GOOD, GOOD, {**GOOD, "id": "p", "pair": "solo"}])
    assert {(p.line, p.field) for p in problems} == {(2, "id"), (3, "pair")}


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    problems, _ = problems_of(tmp_path, [{**GOOD, "category": "x"}, {**GOOD, "id": "b", "now": "x"}])
    assert len(problems) == 2


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(CaseFileError, match="cannot read"):
        load_case_file(tmp_path / "nope.jsonl", resolve_catalogue())
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(CaseFileError, match="no cases"):
        load_case_file(tmp_path / "empty.jsonl", resolve_catalogue())


def test_golden_suite_is_valid_and_covers_the_plan():
    files = sorted(GOLDEN.glob("*.jsonl"))
    assert files, "golden/ holds no case files"
    cases = [c for f in files for c in load_case_file(f, resolve_catalogue()).cases]
    assert len(cases) >= 60
    by_cat = Counter(c.category for c in cases)
    assert by_cat["no_tool"] >= 8 and by_cat["multi_turn"] >= 8 and by_cat["multi_tool"] >= 4
    single_tools = Counter(e.tool for c in cases if c.category == "single" for e in c.expected)
    assert all(single_tools[name] >= 2 for name in resolve_catalogue().names), single_tools
    pairs = {c.pair for c in cases if c.category == "contrastive" and c.pair}
    assert len(pairs) >= 10
    task_vs_event = {
        c.pair for c in cases if c.pair and any(e.tool in ("createTask", "createCalendarEvent") for e in c.expected)
    }
    assert len(task_vs_event) > len(pairs) / 2
    multi_turn_ids = [c for c in cases if c.category == "multi_turn" and any(m["role"] == "tool" for m in c.messages)]
    assert len(multi_turn_ids) >= 8
    assert all(not c.expected for c in cases if c.category == "no_tool")


def _expect(tool, **params):
    return {**GOOD, "expected": [{"tool": tool, "params": params}]}


@pytest.mark.parametrize("row, why", [
    (_expect("createTask", title="x", priority="urgent"), "'urgent' is not one of"),
    (_expect("createTask", title="x", priority=3), "3 is not one of"),
    (_expect("createTask", title=""), "should be non-empty"),
    (_expect("createTask", title=7), "7 is not of type 'string'"),
    (_expect("createTask", title=None), "None is not of type 'string'"),
    (_expect("createTask", priority={"any_of": ["urgent", "high"]}), "any_of[0]: expected value \"urgent\""),
    (_expect("createTask", priority={"any_of": ["high", "asap"]}), "any_of[1]:"),
    (_expect("createTask", title={"present": False}), "on a required param"),
    (_expect("createTask", priority={"any_of": ["high", {"present": False}]}), "any_of[1]: {\"present\": false}"),
    (_expect("createTask", priority={"contains": "hi"}), "'contains' needs a free-text string param"),
    (_expect("createTask", priority={"date": "2026-02-25"}), "this param is an enum"),
    (_expect("createTask", priority={"any_of": ["high", {"datetime": "2026-02-25T10:00"}]}), "any_of[1]: 'datetime'"),
])
def test_expectations_that_can_never_pass_are_refused(tmp_path, row, why):
    problems, message = problems_of(tmp_path, [GOOD | {"id": "first"}, row])
    param = list(row["expected"][0]["params"])[-1]
    assert [(p.line, p.field) for p in problems] == [(2, f"expected[0].params.{param}")]
    assert why in problems[0].message, problems[0].message
    assert f"cases.jsonl:2: expected[0].params.{param}: " in message


def test_a_typed_param_refuses_text_matchers(tmp_path, monkeypatch):
    """contains/date/datetime on an integer param (a catalogue with one) are refused; on a string they load."""
    import json

    from harness.tasks.tool_call.tools import load_catalogue
    tools = {"tools": [{"name": "setTimer", "summary": "t", "params": {
        "type": "object", "properties": {"minutes": {"type": "integer"}, "label": {"type": ["string", "null"]}},
        "required": ["minutes"]}}]}
    (tmp_path / "tools.json").write_text(json.dumps(tools))
    catalogue = load_catalogue(tmp_path / "tools.json")
    rows = [{**GOOD, "id": f"r{i}", "expected": [{"tool": "setTimer", "params": p}]} for i, p in enumerate([
        {"minutes": {"contains": "5"}}, {"minutes": {"datetime": "2026-02-25T10:00"}}, {"minutes": 5.5},
        {"minutes": 5, "label": {"contains": "tea"}}, {"minutes": {"any_of": [5, 10]}, "label": None}])]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(CaseFileError) as exc:
        load_case_file(path, catalogue)
    assert [(p.line, p.field) for p in exc.value.problems] == [(1, "expected[0].params.minutes"),
                                                               (2, "expected[0].params.minutes"),
                                                               (3, "expected[0].params.minutes")]
    assert "of type integer" in exc.value.problems[0].message
