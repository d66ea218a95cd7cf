import pytest

from harness import gate
from harness.gate import Threshold, evaluate
from harness.tasks.tool_call.metrics import DEFAULT_THRESHOLDS, GATEABLE


def parse_threshold(spec):
    return gate.parse_threshold(spec, DEFAULT_THRESHOLDS, GATEABLE)


def load_threshold_file(path):
    return gate.load_threshold_file(path, DEFAULT_THRESHOLDS, GATEABLE)


def resolve_thresholds(overrides=None):
    return gate.resolve_thresholds(overrides or {}, DEFAULT_THRESHOLDS)


def test_defaults_are_the_contracts_table():
    assert {str(t) for t in DEFAULT_THRESHOLDS.values()} == {
        "tool_selection_accuracy > 0.9", "valid_json_rate > 0.98", "disambiguation_accuracy > 0.95",
        "no_tool_accuracy > 0.9", "latency_p95_s < 2",
    }


def test_parse_keeps_default_direction_and_allows_explicit_ops():
    assert parse_threshold("tool_selection_accuracy=0.95") == ("tool_selection_accuracy", Threshold("tool_selection_accuracy", ">", 0.95))
    assert parse_threshold("case_pass_rate=0.8")[1] == Threshold("case_pass_rate", ">=", 0.8)
    assert parse_threshold("latency_p95_s<=3")[1] == Threshold("latency_p95_s", "<=", 3.0)
    assert parse_threshold("no_tool_accuracy=off") == ("no_tool_accuracy", None)


@pytest.mark.parametrize("spec", ["tool_selection_acuracy=0.9", "valid_json_rate=high", "nonsense"])
def test_parse_refuses_typos(spec):
    with pytest.raises(ValueError):
        parse_threshold(spec)


def test_threshold_file(tmp_path):
    path = tmp_path / "gate.toml"
    path.write_text('[thresholds]\ntool_selection_accuracy = 0.95\ncase_pass_rate = ">= 0.5"\nlatency_p95_s = "off"\n')
    got = resolve_thresholds(load_threshold_file(path))
    assert got["tool_selection_accuracy"] == Threshold("tool_selection_accuracy", ">", 0.95)
    assert got["case_pass_rate"] == Threshold("case_pass_rate", ">=", 0.5)
    assert "latency_p95_s" not in got
    path.write_text("[thresholds]\nbogus = 1\n")
    with pytest.raises(ValueError, match="gate.toml"):
        load_threshold_file(path)


def test_strict_inequality_and_skipped_nulls():
    summary = {"tool_selection_accuracy": 0.9, "valid_json_rate": 1.0, "disambiguation_accuracy": None,
               "no_tool_accuracy": 0.95, "intervals": {}}
    gate = evaluate(summary, DEFAULT_THRESHOLDS)
    assert not gate["passed"]
    assert [f["metric"] for f in gate["failures"]] == ["tool_selection_accuracy"]
    assert {s["metric"] for s in gate["skipped"]} == {"disambiguation_accuracy", "latency_p95_s"}


def test_lower_bound_gating():
    summary = {"tool_selection_accuracy": 0.95, "intervals": {"tool_selection_accuracy": [0.86, 0.98]},
               "latency_p95_s": 1.0}
    th = resolve_thresholds({k: None for k in ("valid_json_rate", "disambiguation_accuracy", "no_tool_accuracy")})
    assert evaluate(summary, th, "point")["passed"]
    gate = evaluate(summary, th, "lower-bound")
    assert not gate["passed"] and gate["failures"][0]["judged"] == 0.86
    assert "lower bound" in gate["failures"][0]["message"]
