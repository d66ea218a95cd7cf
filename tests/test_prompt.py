from datetime import datetime, timedelta, timezone

from harness.isotime import parse_now
from harness.prompt import build_messages, build_system_prompt


def test_prompt_states_date_weekday_zone_and_every_tool(catalogue):
    prompt = build_system_prompt(parse_now("2026-02-24T09:00:00Z"), catalogue)
    assert "Tuesday, 2026-02-24 09:00 (time zone: UTC)" in prompt
    for tool in catalogue.tools:
        assert f"### {tool.name}\n{tool.summary}\n" in prompt
        assert '"required"' in prompt
    assert "```json\n{\"tool\":" in prompt and "no json block" in prompt


def test_prompt_is_deterministic_and_follows_now(catalogue):
    now = parse_now("2026-07-09T16:30:00Z")
    assert build_system_prompt(now, catalogue) == build_system_prompt(now, catalogue)
    assert "Thursday, 2026-07-09 16:30" in build_system_prompt(now, catalogue)
    other = datetime(2026, 7, 9, 16, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert "(time zone: UTC-05:00)" in build_system_prompt(other, catalogue)


def test_messages_put_the_system_prompt_first(make_case, catalogue):
    case = make_case([], "no_tool", messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                               {"role": "user", "content": "thanks"}])
    msgs = build_messages(case, catalogue)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[0]["content"] == build_system_prompt(case.now, catalogue)
