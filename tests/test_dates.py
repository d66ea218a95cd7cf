"""The date forms of docs/contract.md, as properties over generated strings (hypothesis)."""
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from harness.isotime import calendar_date, parse_date, parse_datetime
from harness.tasks.tool_call.matchers import compile_matcher

UTC_SPELLINGS = ("", "Z", "z", "+00:00", "+0000", "+00")
OTHER_DIGITS = (0xFF10, 0x0660, 0x06F0, 0x0966)  # full-width, Arabic-Indic, Extended Arabic-Indic, Devanagari zeros


@st.composite
def stamps(draw):
    """(text, date, (hour, minute), offset text) for a date-time in one of the contract's forms."""
    day = draw(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
    hour, minute = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    text = f"{day.year:04d}-{day.month:02d}-{day.day:02d}{draw(st.sampled_from('Tt'))}{hour:02d}:{minute:02d}"
    if draw(st.booleans()):
        text += f":{draw(st.integers(0, 59)):02d}"
        if draw(st.booleans()):
            text += draw(st.sampled_from(".,")) + draw(st.text("0123456789", min_size=1, max_size=9))
    oh, om = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    sign = draw(st.sampled_from("+-"))
    offset = draw(st.sampled_from(["", "Z", "z", f"{sign}{oh:02d}:{om:02d}", f"{sign}{oh:02d}{om:02d}", f"{sign}{oh:02d}"]))
    return text + offset, day, (hour, minute), offset


@given(stamps())
def test_every_contract_form_is_read_as_written(s):
    text, day, (hour, minute), offset = s
    stamp = parse_datetime(text)
    assert stamp is not None and stamp.local.date() == day and (stamp.local.hour, stamp.local.minute) == (hour, minute)
    assert calendar_date(text) == day
    assert compile_matcher({"date": day.isoformat()}).check(True, text)


@given(stamps())
def test_the_datetime_matcher_takes_utc_spellings_only(s):
    text, day, (hour, minute), offset = s
    if day.year < 1000:
        return  # the matcher's own literal is written with a 4-digit year either way
    matcher = compile_matcher({"datetime": f"{day.isoformat()}T{hour:02d}:{minute:02d}"})
    is_utc = offset in UTC_SPELLINGS or (offset[0] == "+" and offset[1:].replace(":", "").strip("0") == "")
    assert matcher.check(True, text) == is_utc, (text, offset)


@given(stamps(), st.data())
def test_a_digit_of_another_script_is_not_a_date(s, data):
    text = s[0]
    positions = [i for i, ch in enumerate(text) if ch.isdigit()]
    i = data.draw(st.sampled_from(positions))
    zero = data.draw(st.sampled_from(OTHER_DIGITS))
    mutated = text[:i] + chr(zero + int(text[i])) + text[i + 1:]
    assert parse_datetime(mutated) is None and calendar_date(mutated) is None
    only_date = text[:10]
    if i < 10:
        assert parse_date(mutated[:10]) is None
    else:
        assert parse_date(only_date) is not None


@given(stamps(), st.sampled_from([" ", "_", "  "]))
def test_other_separators_and_surrounding_space_are_not_dates(s, sep):
    text = s[0]
    assert parse_datetime(text[:10] + sep + text[11:]) is None
    assert calendar_date(text[:10] + sep + text[11:]) is None
    assert calendar_date(sep + text) is None and calendar_date(text + sep) is None


def test_forms_the_contract_names_as_not_dates():
    for text in ["20260227T1000Z", "2026-W09-5", "2026-058", "2026-02-27T10", "２０２６-０２-２６", "٢٠٢٦-٠٢-٢٦",
                 "2026-02-27T10:00−05:00", "2026-02-27T10:00:00.", "2026-2-27", "2026-02-27T10:00+5"]:
        assert calendar_date(text) is None, text
    for offset in ("-00:00", "-0000", "-00"):
        assert not compile_matcher({"datetime": "2026-02-27T10:00"}).check(True, "2026-02-27T10:00" + offset)
        assert compile_matcher({"date": "2026-02-27"}).check(True, "2026-02-27T10:00" + offset)
