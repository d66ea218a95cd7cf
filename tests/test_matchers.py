import pytest

from harness.tasks.tool_call.matchers import MatcherError, compile_matcher


def ok(raw, value, present=True):
    return compile_matcher(raw).check(present, value)


def test_plain_string_trimmed_and_case_insensitive():
    assert ok("high", "  HIGH ")
    assert not ok("high", "highest")
    assert not ok("3", 3)


def test_plain_numbers_and_booleans_do_not_mix():
    assert ok(3, 3) and ok(3, 3.0)
    assert not ok(1, True) and not ok(True, 1)
    assert ok(True, True) and not ok(False, True)
    assert ok(None, None) and not ok(None, "null")


def test_absent_param_fails_every_value_matcher():
    for raw in ["x", {"contains": "x"}, {"date": "2026-02-25"}, {"datetime": "2026-02-25T10:00"}]:
        assert not ok(raw, None, present=False)


def test_contains():
    assert ok({"contains": "dentist"}, "Dentist appointment")
    assert not ok({"contains": "dentist"}, "doctor")
    assert not ok({"contains": "3"}, 3)


def test_any_of():
    m = {"any_of": ["open", {"present": False}]}
    assert ok(m, "OPEN") and ok(m, None, present=False)
    assert not ok(m, "all")


def test_present():
    assert ok({"present": True}, "") and not ok({"present": True}, None, present=False)
    assert ok({"present": False}, None, present=False) and not ok({"present": False}, "x")


@pytest.mark.parametrize("value", [
    "2026-02-25", "2026-02-25T10:00", "2026-02-25T23:59:59Z", "2026-02-25T10:00:00+05:00", "2026-02-25T00:00:00.5-08:00",
])
def test_date_accepts_dates_and_datetimes_on_that_day(value):
    assert ok({"date": "2026-02-25"}, value)


@pytest.mark.parametrize("value", ["2026-02-26", "2026-02-26T00:00", "25/02/2026", "tomorrow", "2026-02-30", 20260225])
def test_date_rejects_other_days_and_non_iso(value):
    assert not ok({"date": "2026-02-25"}, value)


@pytest.mark.parametrize("value", [
    "2026-02-27T10:00", "2026-02-27T10:00:00", "2026-02-27T10:00:00Z", "2026-02-27T10:00:00+00:00",
    "2026-02-27T10:00Z", "2026-02-27T10:00:00.000", "2026-02-27T10:00:00.123456789Z", "2026-02-27T10:00:59",
])
def test_datetime_accepts_that_minute_utc_or_naive(value):
    assert ok({"datetime": "2026-02-27T10:00"}, value)


@pytest.mark.parametrize("value", [
    "2026-02-27T10:00+01:00", "2026-02-27T11:00:00+01:00", "2026-02-27T05:00-05:00", "2026-02-27T10:00-00:00",
    "2026-02-27T10:01", "2026-02-27T09:59:59", "2026-02-27", "2026-02-27 10:00x", "2026-02-28T10:00", "10:00",
    "2026-02-27T25:00",
])
def test_datetime_rejects_other_minutes_offsets_and_bare_dates(value):
    assert not ok({"datetime": "2026-02-27T10:00"}, value)


@pytest.mark.parametrize("raw", [
    {"contains": ""}, {"contains": 3}, {"any_of": []}, {"any_of": "x"}, {"date": "2026-02-30"},
    {"date": "tomorrow"}, {"datetime": "2026-02-27"}, {"datetime": "2026-02-27T10:00+02:00"}, {"present": "yes"},
    {"regex": "x"}, {"contains": "a", "present": True}, {}, [{"a": 1}],
])
def test_unknown_or_bad_matchers_are_refused(raw):
    with pytest.raises(MatcherError):
        compile_matcher(raw)


def test_nested_any_of_error_names_the_path():
    with pytest.raises(MatcherError) as exc:
        compile_matcher({"any_of": ["x", {"date": "soon"}]})
    assert exc.value.where == ".any_of[1].date"


def test_fields_match_an_object_key_by_key():
    m = {"fields": {"min": 300000, "max": 400000, "currency": {"any_of": ["USD", {"present": False}]}}}
    assert ok(m, {"min": 300000, "max": 400000.0}) and ok(m, {"max": 400000, "min": 300000, "currency": "usd"})
    assert not ok(m, {"min": 300000})  # a named key missing
    assert not ok(m, {"min": 300000, "max": 400000, "note": "x"})  # a key not named
    assert not ok(m, {"min": 300000, "max": 400000, "currency": "EUR"})
    assert not ok(m, [300000, 400000]) and not ok(m, None, present=False)
    assert ok({"any_of": [m, {"present": False}]}, None, present=False)


def test_fields_use_the_profiles_string_comparison():
    m = compile_matcher({"fields": {"city": "San Diego"}})
    assert not m.check(True, {"city": "san-diego"})
    assert m.check(True, {"city": "san-diego"}, lambda s: s.replace("-", " ").casefold())


@pytest.mark.parametrize("schema, why", [
    ({"type": "string"}, "needs an object param"),
    ({"type": "object", "properties": {"min": {"type": "number"}}, "additionalProperties": False}, "allows no key 'max'"),
    ({"type": "object", "properties": {"min": {"type": "string"}, "max": {"type": "number"}}}, "fields.min: expected value 1"),
])
def test_fields_that_can_never_pass_say_why(schema, why):
    problems = compile_matcher({"fields": {"min": 1, "max": 2}}).impossible(schema, required=True)
    assert any(why in p for p in problems), problems


def test_fields_that_can_pass_are_not_refused():
    schema = {"type": "object", "properties": {"min": {"type": "number"}}, "additionalProperties": False}
    assert compile_matcher({"fields": {"min": 1, "max": {"present": False}}}).impossible(schema, required=True) == []
    assert compile_matcher({"fields": {"anything": "x"}}).impossible({"type": "object"}, required=True) == []


@pytest.mark.parametrize("raw", [{"fields": {}}, {"fields": ["a"]}, {"fields": {"k": {"nope": 1}}}])
def test_malformed_fields_are_refused(raw):
    with pytest.raises(MatcherError):
        compile_matcher(raw)
