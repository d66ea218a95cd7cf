from datetime import datetime, timedelta, timezone

from harness.isotime import parse_now
from harness.tasks.tool_call.prompt import build_messages, build_system_prompt


def test_prompt_states_date_weekday_zone_and_every_tool(catalogue, suite):
    prompt = build_system_prompt(parse_now("2026-02-24T09:00:00Z"), catalogue, suite.template)
    assert "Tuesday, 2026-02-24 09:00 (time zone: UTC)" in prompt
    for tool in catalogue.tools:
        assert f"### {tool.name}\n{tool.summary}\n" in prompt
        assert '"required"' in prompt
    assert "```json\n{\"tool\":" in prompt and "no json block" in prompt


def test_prompt_is_deterministic_and_follows_now(catalogue, suite):
    now = parse_now("2026-07-09T16:30:00Z")
    assert build_system_prompt(now, catalogue, suite.template) == build_system_prompt(now, catalogue, suite.template)
    assert "Thursday, 2026-07-09 16:30" in build_system_prompt(now, catalogue, suite.template)
    other = datetime(2026, 7, 9, 16, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert "(time zone: UTC-05:00)" in build_system_prompt(other, catalogue, suite.template)


def test_messages_put_the_system_prompt_first(make_case, catalogue, suite):
    case = make_case([], "no_tool", messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                               {"role": "user", "content": "thanks"}])
    msgs = build_messages(case, catalogue, suite.template)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[0]["content"] == build_system_prompt(case.now, catalogue, suite.template)


def test_the_assistant_prompt_is_the_old_text_with_the_date_line_moved_last(catalogue, suite):
    """The assistant prompt is the text the harness built before templates (its sha256, pinned then), with only the
    date line moved from the top to the end: every prompt then shares template header, instructions and tools
    whatever its date, so that prefix is computed once (local backend, training batches)."""
    import hashlib
    prompt = build_system_prompt(parse_now("2026-02-24T09:00:00Z"), catalogue, suite.template)
    line = "Current date and time: Tuesday, 2026-02-24 09:00 (time zone: UTC)."
    assert prompt.endswith("\n\n" + line)
    body = prompt[: -len(line) - 2]
    first = body.index("\n\n") + 2
    before = body[:first] + line + "\n\n" + body[first:]
    assert hashlib.sha256(before.encode()).hexdigest() == "d0726c5d4e8ae4e4cc8dbbd15a49d29994af4c61a0d6e81025833f44781e1d18"


def test_a_suite_brings_its_own_prompt_and_others_get_a_neutral_one(tmp_path):
    import json

    from harness.suite import resolve_suite
    tools = [{"type": "function", "function": {"name": "setTimer", "description": "Start a kitchen timer.",
              "parameters": {"type": "object", "properties": {"minutes": {"type": "integer"}}}}}]
    (tmp_path / "tools.json").write_text(json.dumps(tools))
    now = parse_now("2026-02-24T09:00:00Z")
    neutral = resolve_suite([tmp_path])
    text = build_system_prompt(now, neutral.catalogue, neutral.template)
    assert "### setTimer" in text and "personal assistant" not in text and "createTask" not in text
    assert "```json" in text and "Tuesday, 2026-02-24 09:00" in text
    (tmp_path / "chef.txt").write_text("You are a chef's helper. Today: {date}.\nTools:\n{tools}\nReply in JSON.\n")
    (tmp_path / "suite.toml").write_text('[prompt]\nfenced = "chef.txt"\n')
    own = resolve_suite([tmp_path])
    assert build_system_prompt(now, own.catalogue, own.template).startswith(
        "You are a chef's helper. Today: Tuesday, 2026-02-24 09:00 (time zone: UTC).\nTools:\n### setTimer")
    (tmp_path / "chef.txt").write_text("no placeholders here")
    import pytest
    with pytest.raises(ValueError, match="needs {date} and {tools}"):
        resolve_suite([tmp_path])
