"""Constrained decoding (--th-decoding constrained): the reply grammar the task builds, the local backend's masked
greedy loop, and the two promises: no malformed reply is reachable, and the abstention branch is never closed."""
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
llguidance = pytest.importorskip("llguidance")

from harness.backends import BackendError, Request, ask  # noqa: E402
from harness.backends.constrained import Constraint  # noqa: E402
from harness.backends.local import GenerationSettings, LocalBackend  # noqa: E402
from harness.grammar import fenced_calls, fenced_json, native_calls  # noqa: E402
from harness.suite import resolve_suite  # noqa: E402
from harness.tasks.tool_call.parse import parse_reply  # noqa: E402
from harness.tasks.tool_call.parse_native import parse_native  # noqa: E402
from harness.tasks.tool_call.task import ToolCallTask, case_request  # noqa: E402
from harness.tiny import build_tiny_model  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tokenizer(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


@pytest.fixture(scope="module")
def suite():
    return resolve_suite([GOLDEN])


def _matcher(constraint, grammar):
    return constraint.matcher(Request("x", (), None, grammar=grammar))


def _accepts(constraint, tokenizer, grammar, text):
    m = _matcher(constraint, grammar)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return m.consume_tokens(ids) and m.is_accepting()


def test_the_fenced_grammar_takes_text_and_valid_calls_and_nothing_else(tokenizer, suite):
    constraint = Constraint(tokenizer, [tokenizer.eos_token_id])
    grammar = fenced_calls(suite.catalogue.to_function_tools())
    assert grammar.unconstrained == ()  # every golden tool's schema compiles exactly
    ok = ['You are welcome!', 'Sure, noted.\n\n```json\n{"tool": "getWeather", "params": {"location": "Oslo"}}\n```',
          'Two things.\n\n```json\n{"tool": "getWeather", "params": {"location": "Oslo"}}\n```\n\n```json\n'
          '{"tool": "getWeather", "params": {"location": "Rome"}}\n```', "Code: `x` and ``` fences ```python\nprint()\n```"]
    bad = ['```json\n{"tool": "noSuchTool", "params": {}}\n```', '```json\n{"tool": "getWeather", "params": {}}\n```',
           '```json\n{"tool": "getWeather", "params": {"location": "Oslo"}', 'Hi ```json\n{"tool": "getWeather"}\n```']
    assert [_accepts(constraint, tokenizer, grammar, t) for t in ok] == [True] * len(ok)
    assert [_accepts(constraint, tokenizer, grammar, t) for t in bad] == [False] * len(bad)


def test_the_native_and_program_grammars(tokenizer, suite):
    constraint = Constraint(tokenizer, [tokenizer.eos_token_id])
    native = native_calls(suite.catalogue.to_function_tools())
    assert _accepts(constraint, tokenizer, native, "No call needed.")
    assert _accepts(constraint, tokenizer, native, '{"name": "getWeather", "parameters": {"location": "Oslo"}}')
    assert _accepts(constraint, tokenizer, native, '[{"name": "getWeather", "parameters": {"location": "Oslo"}}]')
    assert not _accepts(constraint, tokenizer, native, '{"name": "getWeather", "parameters": {}}')
    from harness.tasks.program.core import SCHEMA as PROGRAM_SCHEMA

    program = fenced_json(PROGRAM_SCHEMA, "program")
    assert not _accepts(constraint, tokenizer, program, "Here is your plan: rest.")  # no abstention for programs


def _walk(constraint, tokenizer, grammar, rng, forced="", steps=4000):
    """Random allowed tokens (the worst a model could do), stopping where the grammar accepts now and then."""
    m = _matcher(constraint, grammar)
    out = tokenizer(forced, add_special_tokens=False)["input_ids"] if forced else []
    assert m.consume_tokens(out)
    eos = tokenizer.eos_token_id
    for _ in range(steps):
        logits = torch.randn(1, len(tokenizer))
        constraint.mask([m], logits)  # raises on a dead end: every state allows some token
        if m.is_accepting() and (m.is_stopped() or rng.random() < 0.2):
            return tokenizer.decode(out), True  # the grammar ends here (only end-of-turn is left) or may
        logits[0, eos] = float("-inf")
        token = int(logits.argmax())
        constraint.take([m], [token])
        out.append(token)
    return tokenizer.decode(out), False


def test_under_the_grammar_no_malformed_reply_is_reachable(tokenizer, suite):
    """Property test over random logits: every reply the grammar lets end parses as a call or an abstention, from
    any start and from inside a call block."""
    constraint = Constraint(tokenizer, [tokenizer.eos_token_id])
    tools = suite.catalogue.to_function_tools()
    known = set(suite.catalogue.names)
    rng = random.Random(7)
    torch.manual_seed(7)
    seen = {"call": 0, "abstention": 0}
    for trial in range(40):
        forced = ["", "Noted.\n\n```json\n", '```json\n{"tool": "createTask", "params": {'][trial % 3]
        text, ended = _walk(constraint, tokenizer, fenced_calls(tools), rng, forced)
        if ended:
            outcome = parse_reply(text).outcome
            assert outcome in ("call", "abstention"), text
            seen[outcome] += 1
    for trial in range(20):
        text, ended = _walk(constraint, tokenizer, native_calls(tools), rng, ['', '{"name": "getWeather"'][trial % 2])
        if ended:
            assert parse_native(text, known).outcome in ("call", "abstention"), text
    assert seen["call"] > 0 and seen["abstention"] > 0


def _backend(tiny, decoding, n=48):
    return LocalBackend(str(tiny), settings=GenerationSettings(max_new_tokens=n, batch_size=4, decoding=decoding),
                        device="cpu", dtype="float32")


def test_constrained_replies_are_deterministic_never_malformed_and_keep_plain_text(tiny, suite):
    """The same replies on every run; none malformed unless cut off by the budget; and where the free reply is plain
    text (the random tiny model writes no ```json block), the constrained reply is plain text too, and the same text
    where the free one is whole characters (a random model also emits lone UTF-8 bytes, which no text grammar
    takes: the grammar works on characters)."""
    task = ToolCallTask()
    cases = task.load_cases(GOLDEN / "assistant.jsonl", suite)[2][:6]
    requests = [case_request(c, suite) for c in cases]
    free = [r.text for r in ask(_backend(tiny, "free"), requests)]
    constrained = _backend(tiny, "constrained")
    first = ask(constrained, requests)
    again = ask(constrained, requests)
    assert [r.text for r in first] == [r.text for r in again]
    for reply, text in zip(first, free):
        parsed = parse_reply(reply.text)
        assert parsed.outcome != "malformed" or reply.truncated, reply.text
        if parse_reply(text).outcome == "abstention":
            assert parsed.outcome == "abstention"  # the abstention branch stays open
            if "\ufffd" not in text:
                assert reply.text == text  # and plain text is left alone (tests/test_real_model.py: on real text)
    fp = constrained.fingerprint()["generation"]
    assert fp["decoding"] == "constrained" and fp["constraint"]["library"] == "llguidance" and fp["constraint"]["version"]


def test_a_request_without_a_grammar_is_refused_and_other_modes_are_usage_errors(tiny, suite):
    backend = _backend(tiny, "constrained", n=4)
    from harness.isotime import parse_now

    reply = ask(backend, [Request("bare", ({"role": "user", "content": "hi"},), parse_now("2026-02-24T09:00:00Z"))])[0]
    assert reply.text is None and "no grammar" in reply.error
    with pytest.raises(BackendError, match="dynamic generation mode"):
        LocalBackend(str(tiny), settings=GenerationSettings(decoding="constrained", mode="static"), device="cpu")
    with pytest.raises(BackendError, match="one of free, constrained"):
        LocalBackend(str(tiny), settings=GenerationSettings(decoding="greedy"), device="cpu")


# -- a server that enforces the grammar, and one that ignores it ----------------------------------------------------

def _server(enforces: bool):
    from harness.testing.fake_cloudflare import FakeCloudflare

    def reply(body):
        grammar = (body.get("structured_outputs") or {}).get("grammar") or body.get("grammar") or ""
        sent = "%json" in grammar and "getWeather" in grammar
        if enforces and sent:
            return 'Noted.\n\n```json\n{"tool": "getWeather", "params": {"location": "Oslo"}}\n```'
        return '```json\n{"tool": "getWeather", "params": \n```'  # what a server that ignored the grammar sent

    return FakeCloudflare(reply=reply, served_models={"m"})


@pytest.mark.parametrize("enforces", [True, False])
def test_openai_sends_the_grammar_and_a_server_that_ignores_it_is_caught(pytester, enforces):
    import json as _json

    with _server(enforces) as fake:
        result = pytester.runpytest("--model=openai", "--th-base-url", fake.openai_base, "--th-served-model", "m",
                                    "--th-cases", str(GOLDEN), "--th-decoding", "constrained", "-k", "weather", "-q",
                                    "-p", "no:cacheprovider")
        body = fake.requests[-1].body
    assert body["structured_outputs"]["grammar"] == body["guided_grammar"] and body["guided_decoding_backend"] == "guidance"
    summary = _json.loads((pytester.path / "reports" / next(
        p.name for p in (pytester.path / "reports").iterdir() if p.name != "latest") / "summary.json").read_text())
    assert summary["model_fingerprint"]["generation"]["decoding"] == "constrained"
    assert summary["model_fingerprint"]["reply_grammar"]["sha256"]
    if enforces:
        assert summary["constraint_violations"] == 0
    else:
        assert summary["constraint_violations"] == summary["n_cases"] > 0 and not summary["gate"]["passed"]
        assert any(f["metric"] == "constraint_violations" for f in summary["gate"]["failures"])
        result.stdout.fnmatch_lines(["*constraint violated: * reply(ies) outside the reply grammar*"])


def test_llama_cpp_gets_the_grammar_behind_its_llguidance_marker(suite):
    from harness.backends.http import RetryPolicy
    from harness.backends.remote import OpenAIBackend

    with _server(True) as fake:
        backend = OpenAIBackend(fake.openai_base, "m", decoding="constrained", constraint_format="llama.cpp",
                                retry=RetryPolicy(max_attempts=1, timeout_s=5))
        case = ToolCallTask().load_cases(GOLDEN / "assistant.jsonl", suite)[2][0]
        reply = ask(backend, [case_request(case, suite)])[0]
        assert fake.requests[-1].body["grammar"].startswith("%llguidance {}\n") and reply.constrained


def test_a_backend_that_cannot_enforce_the_grammar_refuses_constrained_decoding():
    from harness.backends import BackendOptions, create_backend

    with pytest.raises(BackendError, match="cloudflare-lora cannot decode under the reply grammar.*local-adapter.*openai"):
        create_backend("cloudflare-lora", BackendOptions({"decoding": "constrained", "cf_model": "@cf/x"}))


def test_free_and_constrained_runs_are_compared_case_by_case(pytester, tiny):
    """pytest --th-decoding free, then constrained, on the same cases: `python -m harness compare` pairs them (the
    same case files, fingerprints that differ only in decoding) and reports what the grammar fixed and broke."""
    import shutil

    from harness.compare import compare_runs, load_run

    (pytester.path / "cases").mkdir()
    lines = (GOLDEN / "assistant.jsonl").read_text().splitlines()[:4]
    (pytester.path / "cases" / "c.jsonl").write_text("\n".join(lines) + "\n")
    if (GOLDEN / "tools.json").is_file():
        shutil.copy(GOLDEN / "tools.json", pytester.path / "cases" / "tools.json")
    for decoding in ("free", "constrained"):
        pytester.runpytest("--model=local-base", "--th-base-model", str(tiny), "--th-cases", "cases", "--th-device", "cpu",
                           "--th-max-new-tokens", "24", "--th-decoding", decoding, "--th-run-id", decoding,
                           "-p", "no:cacheprovider", "-q")
    free, constrained = load_run(pytester.path / "reports" / "free"), load_run(pytester.path / "reports" / "constrained")
    assert constrained.summary["model_fingerprint"]["generation"]["decoding"] == "constrained"
    assert "constraint_violations" in constrained.summary and "constraint_violations" not in free.summary
    cmp = compare_runs(free, constrained)
    assert cmp["n_paired"] == 4 and not cmp["warnings"] and {"case_pass_rate", "valid_json_rate"} <= set(cmp["metrics"])
    assert set(cmp["mcnemar"]) == {"b", "c", "p_value"}
