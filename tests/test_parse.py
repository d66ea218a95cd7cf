from hypothesis import given, settings
from hypothesis import strategies as st

from harness.tasks.tool_call.parse import parse_reply

CALL = '{"tool": "createTask", "params": {"title": "x", "priority": "low"}}'


def block(content: str, opener: str = "```json\n") -> str:
    return f"{opener}{content}\n```"


def test_plain_text_is_abstention():
    r = parse_reply("Sure, happy to help! No tool needed.")
    assert r.outcome == "abstention" and r.calls == () and r.n_blocks == 0


def test_one_valid_block_is_a_call_and_text_outside_is_ignored():
    r = parse_reply(f"I'll add that.\n\n{block(CALL)}\nAnything else?")
    assert r.outcome == "call"
    assert [c.tool for c in r.calls] == ["createTask"]
    assert r.calls[0].params == {"title": "x", "priority": "low"}


def test_blocks_are_taken_in_order():
    other = '{"tool": "getWeather", "params": {"location": "Oslo"}}'
    r = parse_reply(block(CALL) + "\nand\n" + block(other))
    assert [c.tool for c in r.calls] == ["createTask", "getWeather"]


def test_spaces_after_json_are_allowed_but_not_other_words():
    assert parse_reply(block(CALL, "```json   \n")).outcome == "call"
    assert parse_reply(block(CALL, "```jsonc\n")).outcome == "abstention"
    assert parse_reply(block(CALL, "```json x\n")).outcome == "abstention"


def test_other_fences_are_not_blocks():
    assert parse_reply(block(CALL, "```python\n")).outcome == "abstention"
    assert parse_reply(block(CALL, "```\n")).outcome == "abstention"
    assert parse_reply(block(CALL, "```JSON\n")).outcome == "abstention"


def test_opener_needs_a_line_break():
    assert parse_reply("```json " + CALL + "```").outcome == "abstention"


def test_extra_keys_are_ignored():
    r = parse_reply(block('{"tool": "listTasks", "params": {}, "why": "asked"}'))
    assert r.outcome == "call" and r.calls[0].params == {}


def test_invalid_blocks_make_the_reply_malformed_and_are_not_calls():
    for bad in ["{not json}", "[1, 2]", '{"tool": 3, "params": {}}', '{"tool": "x", "params": []}',
                '{"tool": "x"}', '{"params": {}}', "", '{"tool": "x", "params": {"a": NaN}}']:
        r = parse_reply(block(CALL) + "\n" + block(bad))
        assert r.outcome == "malformed", bad
        assert len(r.calls) == 1 and len(r.invalid) == 1


def test_unclosed_block_is_a_broken_call_not_an_abstention():
    r = parse_reply("I'll add it.\n```json\n" + CALL)
    assert r.outcome == "malformed"
    assert r.calls == () and "never closed" in r.invalid[0].reason


def test_block_closes_at_the_next_three_backticks_even_inside_a_string():
    r = parse_reply('```json\n{"tool": "sendEmail", "params": {"body": "use ```code```"}}\n```')
    assert r.outcome == "malformed"


def test_crlf_line_break_opens_a_block():
    assert parse_reply("```json\r\n" + CALL + "\r\n```").outcome == "call"


def test_non_string_is_treated_as_empty():
    assert parse_reply(None).outcome == "abstention"  # type: ignore[arg-type]


fence_text = st.lists(
    st.one_of(st.text(max_size=30), st.sampled_from(["```", "```json\n", "```json  \n", "{", "}", '"tool"',
                                                    '"params"', ":", "[", "\n", CALL, "null", "1e999"])),
    max_size=20,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(fence_text)
def test_parser_never_raises_and_outcome_is_consistent(text):
    r = parse_reply(text)
    assert r.outcome in ("call", "malformed", "abstention")
    assert r.n_blocks == len(r.calls) + len(r.invalid)
    assert (r.outcome == "abstention") == (r.n_blocks == 0)
    assert (r.outcome == "malformed") == bool(r.invalid)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parser_never_raises_on_arbitrary_text(text):
    parse_reply(text)
