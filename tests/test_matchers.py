import pytest

from harness.matchers import MatcherError, compile_matcher


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
