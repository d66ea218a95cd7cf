"""The native (Llama 3.x JSON) reply parser: outcomes, calls, and that it never raises."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.tasks.tool_call.parse_native import parse_native

KNOWN = {"getWeather", "createTask"}


@pytest.mark.parametrize("text, outcome, tools", [
    ('{"name": "getWeather", "parameters": {"location": "Oslo"}}', "call", ["getWeather"]),
    ('<|python_tag|>{"name": "getWeather", "parameters": {"location": "Oslo"}}', "call", ["getWeather"]),
    ('[{"name": "getWeather", "parameters": {}}, {"name": "createTask", "parameters": {"title": "x"}}]', "call",
     ["getWeather", "createTask"]),
    ('{"name": "getWeather", "parameters": {}}; {"name": "createTask", "parameters": {}}', "call",
     ["getWeather", "createTask"]),
    ('{"name": "getWeather", "arguments": "{\\"location\\": \\"Oslo\\"}"}', "call", ["getWeather"]),
    ("The weather in Oslo is sunny.", "abstention", []),
    ("", "abstention", []),
    ('Sure! {"name": "getWeather", "parameters": {}}', "abstention", []),
    ('{"name": "getWeather", "parameters": {"location": "Os', "malformed", []),
    ('{"name": "sendFax", "parameters": {}}', "malformed", []),
    ('{"name": "getWeather", "arguments": "{not json"}', "malformed", []),
    ('{"name": "getWeather", "parameters": []}', "malformed", []),
    ('{"function": "getWeather"}', "malformed", []),
    ('{"name": "getWeather", "parameters": {}} trailing words', "malformed", ["getWeather"]),
    ('{"name": "getWeather", "parameters": {"x": NaN}}', "malformed", []),
    ("[]", "malformed", []),
])
def test_outcomes_and_calls(text, outcome, tools):
    parsed = parse_native(text, KNOWN)
    assert parsed.outcome == outcome and [c.tool for c in parsed.calls] == tools


def test_a_broken_call_is_never_an_abstention():
    for text in ['{"name": "getWeather"', "[{", '<|python_tag|>oops', '{"name": 3, "parameters": {}}']:
        assert parse_native(text, KNOWN).outcome == "malformed", text


@given(st.text(max_size=300))
def test_never_raises_on_any_text(text):
    parsed = parse_native(text, KNOWN)
    assert parsed.outcome in ("call", "malformed", "abstention")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=10)


@given(st.lists(st.fixed_dictionaries({"name": st.sampled_from(sorted(KNOWN) + ["other"]),
                                        "parameters": json_values}), max_size=3), st.sampled_from(["; ", "\n", " "]))
def test_never_raises_on_call_shaped_json(objs, sep):
    text = sep.join(json.dumps(o) for o in objs) if objs else "{"
    parsed = parse_native(text, KNOWN)
    valid = [o for o in objs if o["name"] in KNOWN and isinstance(o["parameters"], dict)]
    assert [c.tool for c in parsed.calls] == [o["name"] for o in valid]
    assert parsed.outcome == ("call" if objs and len(valid) == len(objs) else "malformed")


def native_form(fenced: str) -> str:
    """The same reply in the native form: calls as JSON, broken blocks as broken JSON, text as text."""
    from harness.tasks.tool_call.parse import parse_reply
    parsed = parse_reply(fenced)
    if parsed.outcome == "abstention":
        return fenced
    if parsed.outcome == "malformed":
        return '{"name": "createTask", "parameters": '
    calls = [{"name": c.tool, "parameters": c.params} for c in parsed.calls]
    return json.dumps(calls[0] if len(calls) == 1 else calls)


def test_the_scorer_gives_the_same_verdicts_whatever_the_format():
    """Golden cases, the regression fixture's replies, once fenced and once native: same verdicts and figures."""
    from harness.suite import resolve_suite
    from harness.tasks.tool_call.cases import load_case_file
    from harness.tasks.tool_call.match import score
    from harness.tasks.tool_call.metrics import rates_block
    from tests.golden_replies import GOLDEN, replies
    suite = resolve_suite([GOLDEN])
    cases = load_case_file(GOLDEN, suite.catalogue).cases
    recorded = replies()
    fenced = [score(c, recorded[c.id], suite.catalogue) for c in cases]
    native = [score(c, native_form(recorded[c.id]), suite.catalogue, reply_format="native") for c in cases]
    assert [(r.passed, r.reason, r.outcome) for r in fenced] == [(r.passed, r.reason, r.outcome) for r in native]
    strip = lambda b: {k: v for k, v in b.items()}  # noqa: E731
    assert strip(rates_block(fenced, suite.disambiguation_tools)) == strip(rates_block(native, suite.disambiguation_tools))


def test_a_native_run_end_to_end_under_replay(pytester):
    from conftest import write_jsonl
    write_jsonl(pytester.path / "c.jsonl", [
        {"id": "w", "category": "single", "messages": [{"role": "user", "content": "weather in Oslo?"}],
         "expected": [{"tool": "getWeather", "params": {"location": "Oslo"}}]},
        {"id": "n", "category": "no_tool", "messages": [{"role": "user", "content": "thanks"}], "expected": []},
        {"id": "m", "category": "single", "messages": [{"role": "user", "content": "weather?"}],
         "expected": [{"tool": "getWeather", "params": {"location": "Oslo"}}]}])
    write_jsonl(pytester.path / "r.jsonl", [
        {"id": "w", "response": '{"name": "getWeather", "parameters": {"location": "Oslo"}}'},
        {"id": "n", "response": "You're welcome!"},
        {"id": "m", "response": '{"name": "getWeather", "parameters": {"location": '}])
    result = pytester.runpytest("--model=replay", "--th-cases", "c.jsonl", "--th-replies", "r.jsonl", "--th-reply-format",
                                "native", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    s = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert s["model_fingerprint"]["reply_format"] == "native" and s["reasons"] == {"invalid_json": 1}
    from conftest import assistant_prompt
    from harness.isotime import parse_now
    prompt = assistant_prompt(parse_now("2026-02-24T09:00:00Z"), "native")
    assert '{"name": "createTask", "parameters": {' in prompt and "```json" not in prompt


def structured(body):
    """A fake server's answer: structured tool calls when the request carries tools, else plain text."""
    if not body.get("tools"):
        return "no tools were offered"
    user = body["messages"][-1]["content"]
    if "broken" in user:
        return {"tool_calls": [{"name": "getWeather", "arguments": '{"location": "Os'}]}
    if "thanks" in user:
        return {"content": "You're welcome!"}
    return {"tool_calls": [{"name": "getWeather", "arguments": {"location": "Oslo"}}]}


@pytest.mark.parametrize("model", ["openai", "cloudflare-base"])
def test_native_remote_requests_carry_tools_and_structured_calls_are_scored(pytester, monkeypatch, model):
    from conftest import write_jsonl
    from harness.testing.fake_cloudflare import FakeCloudflare
    write_jsonl(pytester.path / "c.jsonl", [
        {"id": "w", "category": "single", "messages": [{"role": "user", "content": "weather in Oslo?"}],
         "expected": [{"tool": "getWeather", "params": {"location": "Oslo"}}]},
        {"id": "n", "category": "no_tool", "messages": [{"role": "user", "content": "thanks"}], "expected": []},
        {"id": "b", "category": "single", "messages": [{"role": "user", "content": "broken weather"}],
         "expected": [{"tool": "getWeather", "params": {"location": "Oslo"}}]}])
    with FakeCloudflare(reply=structured) as fake:
        monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", fake.account_id)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", fake.token)
        backend = ([f"--th-base-url={fake.openai_base}", "--th-served-model=m"] if model == "openai"
                   else ["--th-cf-model=@cf/meta/llama-3.2-3b-instruct", f"--th-cf-api-base={fake.api_base}"])
        result = pytester.runpytest(f"--model={model}", *backend, "--th-cases", "c.jsonl", "--th-reply-format", "native",
                                    "--th-max-attempts", "1", "-p", "no:cacheprovider")
        bodies = [r.body for r in fake.requests]
    result.assert_outcomes(passed=2, failed=1)
    assert all(b["tools"][0]["type"] == "function" and len(b["tools"]) == 10 for b in bodies)
    records = {json.loads(x)["id"]: json.loads(x) for x in
               (pytester.path / "reports/latest/cases.jsonl").read_text().splitlines()}
    assert records["w"]["outcome"] == "call" and records["n"]["outcome"] == "abstention"
    assert records["b"]["outcome"] == "malformed" and records["b"]["reason"] == "invalid_json"


def test_native_local_generation_renders_the_tools_through_the_chat_template(tmp_path):
    pytest.importorskip("peft")
    from harness.backends import Request
    from harness.backends.local import GenerationSettings, LocalBackend
    from harness.isotime import parse_now
    from harness.suite import resolve_suite
    from harness.tiny import build_tiny_model
    tiny = build_tiny_model(tmp_path / "tiny")
    suite = resolve_suite()
    now = parse_now("2026-02-24T09:00:00Z")
    tools = tuple(suite.catalogue.to_function_tools())
    request = Request("r", ({"role": "user", "content": "weather in Oslo?"},), now, tools=tools)
    backend = LocalBackend(str(tiny), device="cpu", settings=GenerationSettings(max_new_tokens=4, batch_size=1))
    prompt = backend.render(request)
    assert '"name": "getWeather"' in prompt and "Given the following functions" in prompt
    assert "getWeather" not in backend.render(Request("r", request.messages, now))
    assert backend.generate([request])[0].text is not None
