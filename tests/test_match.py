import json

import pytest

from harness.tasks.tool_call.match import REASONS, score


def reply(*calls, text="Okay."):
    return text + "".join(f"\n```json\n{c if isinstance(c, str) else json.dumps(c)}\n```" for c in calls)


def task(**params):
    return {"tool": "createTask", "params": {"title": "Call John", "priority": "medium", **params}}


def event(**params):
    return {"tool": "createCalendarEvent", "params": {"summary": "Dentist", "startTime": "2026-02-27T10:00", **params}}


@pytest.fixture
def task_case(make_case):
    return make_case([{"tool": "createTask", "params": {"title": {"contains": "john"}}}])


def test_right_call_passes(task_case, catalogue):
    r = score(task_case, reply(task()), catalogue)
    assert r.passed and r.reason is None and r.outcome == "call"
    assert r.tools_right and r.valid_json and r.schema_valid


def test_backend_error_when_no_reply(task_case, catalogue):
    r = score(task_case, None, catalogue, error="timeout")
    assert r.reason == "backend_error" and r.outcome is None and not r.tools_right and "timeout" in r.details[0]


def test_invalid_json_beats_everything_else(task_case, catalogue):
    r = score(task_case, reply(task(), "{oops"), catalogue)
    assert r.reason == "invalid_json" and r.outcome == "malformed" and not r.valid_json


def test_abstention_where_a_call_was_expected_is_missing_call(task_case, catalogue):
    r = score(task_case, "I can't do that.", catalogue)
    assert r.reason == "missing_call" and r.outcome == "abstention" and not r.valid_json and not r.schema_valid


def test_wrong_tool(task_case, catalogue):
    assert score(task_case, reply(event()), catalogue).reason == "wrong_tool"


def test_unknown_tool_is_wrong_tool_and_schema_invalid(task_case, catalogue):
    r = score(task_case, reply({"tool": "createReminder", "params": {"title": "x"}}), catalogue)
    assert r.reason == "wrong_tool" and not r.schema_valid and r.valid_json


def test_extra_call(task_case, catalogue):
    assert score(task_case, reply(task(), event()), catalogue).reason == "extra_call"


def test_missing_one_of_two(make_case, catalogue):
    case = make_case([{"tool": "createTask", "params": {}}, {"tool": "createCalendarEvent", "params": {}}], "multi_tool")
    assert score(case, reply(task()), catalogue).reason == "missing_call"
    assert score(case, reply(task(), {"tool": "getWeather", "params": {"location": "x"}}), catalogue).reason == "wrong_tool"


def test_schema_error(task_case, catalogue):
    r = score(task_case, reply({"tool": "createTask", "params": {"title": "Call John"}}), catalogue)
    assert r.reason == "schema_error" and not r.schema_valid and r.tools_right
    assert "priority" in r.details[0]
    r = score(task_case, reply(task(colour="red")), catalogue)
    assert r.reason == "schema_error"


def test_param_mismatch_names_the_param(make_case, catalogue):
    case = make_case([{"tool": "createTask", "params": {"title": {"contains": "john"}, "priority": "high"}}])
    r = score(case, reply(task()), catalogue)
    assert r.reason == "param_mismatch:priority" and r.tools_right and r.schema_valid


def test_present_false(make_case, catalogue):
    case = make_case([{"tool": "getWeather", "params": {"date": {"present": False}}}])
    assert score(case, reply({"tool": "getWeather", "params": {"location": "Oslo"}}), catalogue).passed
    r = score(case, reply({"tool": "getWeather", "params": {"location": "Oslo", "date": "2026-02-24"}}), catalogue)
    assert r.reason == "param_mismatch:date"


def test_no_tool_case(make_case, catalogue):
    case = make_case([], "no_tool")
    assert score(case, "You're welcome!", catalogue).passed
    assert score(case, reply(task()), catalogue).reason == "unexpected_call"
    r = score(case, "Sure\n```json\n{broken", catalogue)
    assert r.reason == "invalid_json" and r.outcome == "malformed" and not r.tools_right
    assert score(case, None, catalogue).reason == "backend_error"


def test_calls_match_in_any_order(make_case, catalogue):
    case = make_case([{"tool": "createCalendarEvent", "params": {}}, {"tool": "createTask", "params": {}}], "multi_tool")
    assert score(case, reply(task(), event()), catalogue).passed


def test_assignment_is_exact_not_greedy(make_case, catalogue):
    # Greedy first-fit pairs expected[0] (contains "a") with the first call "a b", leaving "a" for
    # expected[1] (contains "b"), which fails. The exact assignment finds the passing pairing.
    case = make_case([
        {"tool": "getWeather", "params": {"location": {"contains": "a"}}},
        {"tool": "getWeather", "params": {"location": {"contains": "b"}}},
    ], "multi_tool")
    replies = reply({"tool": "getWeather", "params": {"location": "a b"}},
                    {"tool": "getWeather", "params": {"location": "a"}})
    assert score(case, replies, catalogue).passed


def test_assignment_reports_first_mismatch_of_best_pairing(make_case, catalogue):
    case = make_case([
        {"tool": "getWeather", "params": {"location": {"contains": "paris"}}},
        {"tool": "getWeather", "params": {"location": {"contains": "berlin"}, "date": {"date": "2026-02-25"}}},
    ], "multi_tool")
    replies = reply({"tool": "getWeather", "params": {"location": "Berlin"}},
                    {"tool": "getWeather", "params": {"location": "Paris"}})
    assert score(case, replies, catalogue).reason == "param_mismatch:date"


def test_reasons_come_from_the_documented_set(task_case, make_case, catalogue):
    replies = [None, reply(task(), "{oops"), "no", reply(event()), reply(task(), event()),
               reply({"tool": "createTask", "params": {"title": "x"}}), reply(task(title="Call Mary"))]
    reasons = {score(task_case, r, catalogue).reason for r in replies}
    reasons.add(score(make_case([], "no_tool"), reply(task()), catalogue).reason)
    assert {r.split(":")[0] for r in reasons} == set(REASONS)


def test_malformed_reply_with_right_valid_call_still_counts_its_tool(task_case, catalogue):
    r = score(task_case, reply(task(), "not json"), catalogue)
    assert r.tools_right and not r.valid_json and r.schema_valid and not r.passed
