import pytest

from conftest import case_row
from harness.suite import ASSISTANT_DISAMBIGUATION
from harness.tasks.tool_call.match import score
from harness.tasks.tool_call.metrics import confusion, percentile, rate_counts, rates_block, wilson


@pytest.mark.parametrize("k, n, low, high", [
    (54, 60, 0.7985, 0.9534),   # docs/platform-notes.md: a 60-case suite at 54/60 is about [0.80, 0.95]
    (5, 10, 0.2366, 0.7634),
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (1, 1, 0.2065, 1.0),
])
def test_wilson_matches_known_values(k, n, low, high):
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_of_nothing_is_none():
    assert wilson(0, 0) is None


def test_percentile_interpolates_like_numpy():
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.95) == pytest.approx(4.8)
    assert percentile([], 0.5) is None


CALL = '```json\n{"tool": "%s", "params": %s}\n```'


def call(tool, params='{"title": "x", "priority": "low"}'):
    return CALL % (tool, params)


@pytest.fixture
def results(make_cases, catalogue):
    task = [{"tool": "createTask", "params": {}}]
    ev_call = '{"summary": "s", "startTime": "2026-02-25T10:00"}'
    ev = [{"tool": "createCalendarEvent", "params": {}}]
    weather2 = [{"tool": "getWeather", "params": {}}, {"tool": "getWeather", "params": {}}]
    rows_replies = [
        (case_row(task, "contrastive", pair="p1"), call("createTask")),                  # right
        (case_row(ev, "contrastive", pair="p1"), call("createTask")),                    # wrong tool
        (case_row(task, "contrastive", pair="p2"), call("createTask")),                  # right
        (case_row(ev, "contrastive", pair="p2"), call("createCalendarEvent", ev_call)),   # right
        (case_row([], "no_tool"), "hello"),                                               # abstention, right
        (case_row([], "no_tool"), "```json\n{bad\n```"),                                # malformed
        (case_row(task), "no"),                                                           # abstention, wrong
        (case_row(weather2, "multi_tool"), call("getWeather", '{"location": "a"}') + call("getWeather", '{"location": "b"}')),
        (case_row(task), None),                                                           # backend error
    ]
    cases = make_cases([row for row, _ in rows_replies])
    return [score(c, text, catalogue, error=None if text else "boom") for c, (_, text) in zip(cases, rows_replies)]


def test_rate_denominators(results):
    counts = rate_counts(results, ASSISTANT_DISAMBIGUATION)
    assert counts["case_pass_rate"] == (5, 9)
    assert counts["tool_selection_accuracy"] == (4, 7)
    assert counts["valid_json_rate"] == (5, 7)
    assert counts["schema_valid_rate"] == (5, 7)
    assert counts["disambiguation_accuracy"] == (3, 4)
    assert counts["pair_accuracy"] == (1, 2)
    assert counts["no_tool_accuracy"] == (1, 2)
    assert counts["no_tool_precision"] == (1, 2)


def test_null_when_denominator_is_zero(make_case, catalogue):
    block = rates_block([score(make_case([], "no_tool"), "hi", catalogue)], ASSISTANT_DISAMBIGUATION)
    assert block["tool_selection_accuracy"] is None and block["intervals"]["tool_selection_accuracy"] is None
    assert block["pair_accuracy"] is None and block["no_tool_accuracy"] == 1.0


def test_confusion(results):
    table = confusion(results)
    assert table["createTask"] == {"createTask": 2, "error": 1, "none": 1}
    assert table["createCalendarEvent"] == {"createCalendarEvent": 1, "createTask": 1}
    assert table["none"] == {"malformed": 1, "none": 1}
    assert "getWeather" not in table  # two expected calls: outside the confusion table


def test_multiple_calls_are_one_outcome(make_case, catalogue):
    r = score(make_case([{"tool": "createTask", "params": {}}]), call("createTask") + call("createTask"), catalogue)
    assert confusion([r]) == {"createTask": {"multiple": 1}}
