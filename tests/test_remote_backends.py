"""Cloudflare and OpenAI-compatible backends against a real fake server on 127.0.0.1."""
import asyncio
import json
import time
from pathlib import Path

import pytest

from conftest import assistant_prompt, write_jsonl
from harness.backends import BackendError, Request
from harness.backends.http import FatalBackendError, RateLimiter, RetryPolicy, Secret
from harness.backends.remote import CloudflareBackend, OpenAIBackend
from harness.chat_format import render_llama3
from harness.isotime import parse_now
from harness.suite import resolve_catalogue  # noqa: E402
from harness.testing.fake_cloudflare import CF_ERRORS, FakeCloudflare, Fault

NOW = parse_now("2026-02-24T09:00:00Z")
FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05, timeout_s=2.0)
CALL = 'Sure.\n\n```json\n{"tool": "getWeather", "params": {"location": "Oslo"}}\n```'
GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def requests(n=3):
    return [Request(f"r{i}", ({"role": "system", "content": assistant_prompt(NOW)},
                              {"role": "user", "content": f"question {i}"}), NOW) for i in range(n)]


@pytest.fixture
def fake():
    with FakeCloudflare(reply=lambda body: CALL, models={"@cf/meta/llama-3.2-3b-instruct"},
                        lora_models={"@cf/meta/llama-3.2-3b-instruct"}, finetunes={"my-lora"},
                        served_models={"base", "my-lora"}) as server:
        yield server


def cloudflare(fake, **kw):
    kw.setdefault("retry", FAST)
    return CloudflareBackend("@cf/meta/llama-3.2-3b-instruct", fake.account_id, Secret(fake.token),
                             api_base=fake.api_base, **kw)


def test_messages_body_and_reply(fake):
    replies = cloudflare(fake, max_tokens=123, seed=7).generate(requests(2))
    assert [r.text for r in replies] == [CALL, CALL]
    assert all(r.latency_s > 0 and r.usage["prompt_tokens"] == 100 for r in replies)
    body = min((r.body for r in fake.requests), key=lambda b: b["messages"][1]["content"])  # requests race
    assert body["temperature"] == 0 and body["seed"] == 7 and body["max_tokens"] == 123 and "lora" not in body
    assert body["messages"][0]["role"] == "system" and body["messages"][1] == {"role": "user", "content": "question 0"}
    assert fake.requests[0].path == f"/client/v4/accounts/{fake.account_id}/ai/run/@cf/meta/llama-3.2-3b-instruct"


def test_lora_and_raw_prompt(fake):
    backend = cloudflare(fake, lora="my-lora", raw=True)
    assert backend.name == "cloudflare-lora"
    backend.generate(requests(1))
    body = fake.requests[0].body
    assert body["lora"] == "my-lora" and body["raw"] is True and "messages" not in body
    assert body["prompt"] == render_llama3(requests(1)[0].messages, NOW, bos="")  # the server adds <|begin_of_text|>


def test_usage_may_be_missing(fake):
    fake.usage = False
    assert cloudflare(fake).generate(requests(1))[0].usage is None


@pytest.mark.parametrize("fault", [
    Fault("429", retry_after=0.05), Fault("500"), Fault("drop"), Fault("cf_error", code=3040),
    Fault("cf_error", code=3007), Fault("slow", delay_s=1.0),
], ids=lambda f: f"{f.kind}-{f.code or ''}")
def test_healing_faults_are_retried(fake, fault):
    fake.inject(fault)
    backend = cloudflare(fake, retry=RetryPolicy(max_attempts=3, base_delay_s=0.01, timeout_s=0.5), concurrency=1)
    replies = backend.generate(requests(2))
    assert [r.text for r in replies] == [CALL, CALL] and backend.retries == 1
    assert len(fake.requests) == 3


def test_retry_after_is_honoured(fake):
    fake.inject(Fault("429", retry_after=0.4))
    started = time.perf_counter()
    reply = cloudflare(fake).generate(requests(1))[0]
    assert time.perf_counter() - started >= 0.4 and reply.text == CALL
    assert reply.latency_s < 0.4  # latency is the successful attempt's


def test_final_failure_is_a_case_error_and_the_run_goes_on(fake):
    fake.inject(Fault("500", times=3, match="question 0"))
    replies = cloudflare(fake).generate(requests(2))
    assert replies[0].text is None and "HTTP 500" in replies[0].error and "after 3 attempts" in replies[0].error
    assert replies[1].text == CALL


def test_non_healing_case_errors_are_not_retried(fake):
    fake.inject(Fault("cf_error", code=3006, match="question 0"))
    replies = cloudflare(fake).generate(requests(2))
    assert "Cloudflare error 3006" in replies[0].error and replies[1].text == CALL
    assert len(fake.requests) == 2


@pytest.mark.parametrize("code", [5007, 5005, 3037, 3036, 3039, 5016, 10000])
def test_errors_that_cannot_heal_stop_the_run(fake, code):
    fake.inject(Fault("cf_error", code=code, times=100))
    with pytest.raises(FatalBackendError, match=f"Cloudflare error {code}"):
        cloudflare(fake, concurrency=2).generate(requests(6))
    assert len(fake.requests) <= 2  # stops early instead of failing every case


def test_real_routes_give_the_fatal_codes(fake):
    with pytest.raises(FatalBackendError, match="5007"):
        CloudflareBackend("@cf/nope", fake.account_id, Secret(fake.token), api_base=fake.api_base,
                          retry=FAST).generate(requests(1))
    with pytest.raises(FatalBackendError, match="3037"):
        cloudflare(fake, lora="other-lora").generate(requests(1))


def test_bad_token_is_fatal_and_never_printed(fake):
    fake.echo_token_in_errors = True
    secret = "wrong-secret-token-abc123"
    backend = CloudflareBackend("@cf/meta/llama-3.2-3b-instruct", fake.account_id, Secret(secret),
                                api_base=fake.api_base, retry=FAST)
    with pytest.raises(FatalBackendError) as exc:
        backend.generate(requests(1))
    assert "Authentication error" in str(exc.value) and secret not in str(exc.value) and "***" in str(exc.value)
    assert secret not in repr(backend.token) and secret not in json.dumps(backend.fingerprint())


def test_concurrency_is_bounded(fake):
    fake.delay_s = 0.05
    cloudflare(fake, concurrency=3).generate(requests(10))
    assert fake.max_in_flight == 3


def test_rate_limiter_window():
    async def starts():
        limiter = RateLimiter(per_minute=2, window_s=0.3)
        t0 = time.monotonic()
        out = []
        for _ in range(3):
            await limiter.wait()
            out.append(time.monotonic() - t0)
        return out

    times = asyncio.run(starts())
    assert times[1] < 0.1 and times[2] >= 0.29


def test_on_reply_is_called_as_replies_arrive(fake):
    seen = []
    asked = requests(3)
    cloudflare(fake).generate(asked, on_reply=lambda r: seen.append(r.key))
    assert sorted(seen) == sorted(r.key for r in asked)


def test_openai_chat_and_raw(fake):
    fake.openai_key = "sk-local-123"
    chat = OpenAIBackend(fake.openai_base, "my-lora", Secret("sk-local-123"), retry=FAST)
    assert chat.generate(requests(1))[0].text == CALL
    body = fake.requests[-1].body
    assert fake.requests[-1].path == "/v1/chat/completions" and body["model"] == "my-lora" and body["temperature"] == 0
    assert body["chat_template_kwargs"] == {"date_string": "24 Feb 2026"}  # the case's date, not the server's clock
    assert chat.fingerprint()["generation"]["date"].startswith("chat_template_kwargs.date_string")
    raw = OpenAIBackend(fake.openai_base, "my-lora", Secret("sk-local-123"), raw=True, retry=FAST)
    assert raw.generate(requests(1))[0].text == CALL
    body = fake.requests[-1].body
    assert fake.requests[-1].path == "/v1/completions" and body["prompt"] == render_llama3(requests(1)[0].messages, NOW,
                                                                                           bos="")
    assert "<|eot_id|>" in body["stop"]


def test_openai_unknown_model_and_bad_key_are_fatal(fake):
    with pytest.raises(FatalBackendError, match="404"):
        OpenAIBackend(fake.openai_base, "nope", retry=FAST).generate(requests(1))
    fake.openai_key = "sk-right"
    with pytest.raises(FatalBackendError, match="401"):
        OpenAIBackend(fake.openai_base, "base", Secret("sk-wrong"), retry=FAST).generate(requests(1))


def test_openai_retries_like_cloudflare(fake):
    fake.inject(Fault("429", retry_after=0), Fault("drop"))
    backend = OpenAIBackend(fake.openai_base, "base", retry=FAST, concurrency=1)
    assert [r.text for r in backend.generate(requests(2))] == [CALL, CALL] and backend.retries == 2


# -- through pytest ---------------------------------------------------------------------------------

def cf_env(monkeypatch, fake, token=None):
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", fake.account_id)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", token or fake.token)


def all_output(pytester, result) -> str:
    files = [p.read_text(errors="replace") for p in pytester.path.rglob("*") if p.is_file()]
    return "\n".join([result.stdout.str(), result.stderr.str(), *files])


@pytest.mark.parametrize("model", ["cloudflare-base", "cloudflare-lora"])
def test_golden_suite_end_to_end_on_cloudflare(pytester, monkeypatch, fake, model):
    cf_env(monkeypatch, fake)
    result = pytester.runpytest(f"--model={model}", "--th-cf-model=@cf/meta/llama-3.2-3b-instruct", "--th-lora", "my-lora",
                                "--th-cf-api-base", fake.api_base, "--th-cases", str(GOLDEN), "--th-concurrency", "8", "-q")
    summary = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert summary["model"] == model and summary["n_cases"] >= 60 and summary["complete"] is True
    assert summary["latency_p50_s"] > 0 and summary["total_tokens"]["prompt_tokens"] == 100 * summary["n_cases"]
    assert summary["by_category"]["single"]["n_cases"] > 0 and result.ret == 1  # one fixed reply fails the gate
    assert ("lora" in fake.requests[0].body) == (model == "cloudflare-lora")
    assert fake.token not in all_output(pytester, result)


def test_golden_suite_end_to_end_on_openai(pytester, fake):
    result = pytester.runpytest("--model=openai", "--th-base-url", fake.openai_base, "--th-served-model", "my-lora",
                                "--th-cases", str(GOLDEN), "-q")
    summary = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert summary["model"] == "openai" and summary["n_cases"] >= 60 and result.ret == 1


def test_missing_credentials_are_usage_errors(pytester, monkeypatch, fake):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "x")
    result = pytester.runpytest("--model=cloudflare-base", "--th-cf-model", "cf/meta/x", "--th-cases", str(GOLDEN))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*needs the environment variable CLOUDFLARE_API_TOKEN*"])


CASES = [{"id": f"c{i}", "category": "single", "messages": [{"role": "user", "content": f"weather {i}?"}],
          "expected": [{"tool": "getWeather", "params": {"location": "oslo"}}]} for i in range(6)]


def test_fatal_error_stops_then_resume_asks_only_the_rest(pytester, monkeypatch, fake):
    cf_env(monkeypatch, fake)
    (pytester.path / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    fake.inject(Fault("cf_error", code=3036, match="weather 3?", times=1))
    args = ["--model=cloudflare-base", "--th-cf-model=@cf/meta/llama-3.2-3b-instruct", "--th-cf-api-base", fake.api_base,
            "--th-cases", "cases.jsonl", "--th-concurrency", "1", "--th-run-id", "run-a"]
    result = pytester.runpytest(*args)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*backend error (the run stops)*3036*", "*incomplete run: 3 of 6*--th-resume run-a*"])
    first = json.loads((pytester.path / "reports/run-a/summary.json").read_text())
    assert first["complete"] is False and first["n_cases"] == 3
    asked_before = len(fake.requests)
    result = pytester.runpytest(*args[:-2], "--th-resume", "run-a")
    assert result.ret == 0
    assert len(fake.requests) - asked_before == 3  # only c3, c4, c5 were asked again
    second = json.loads((pytester.path / "reports/run-a/summary.json").read_text())
    assert second["complete"] is True and second["n_cases"] == 6 and second["case_pass_rate"] == 1.0
    records = (pytester.path / "reports/run-a/cases.jsonl").read_text().splitlines()
    assert [json.loads(r)["id"] for r in records] == [f"c{i}" for i in range(6)]


def test_resume_refuses_another_model(pytester, monkeypatch, fake):
    cf_env(monkeypatch, fake)
    (pytester.path / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    base = ["--th-cf-api-base", fake.api_base, "--th-cases", "cases.jsonl"]
    pytester.runpytest("--model=cloudflare-base", "--th-cf-model=@cf/meta/llama-3.2-3b-instruct", *base, "--th-run-id", "r1")
    result = pytester.runpytest("--model=cloudflare-lora", "--th-cf-model=@cf/meta/llama-3.2-3b-instruct",
                                "--th-lora", "my-lora", *base, "--th-resume", "r1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--th-resume r1: that run evaluated a different model*"])


def test_cf_model_without_the_at_sign(fake):
    assert CloudflareBackend.from_options.__func__  # noqa: B018
    import os

    from harness.backends import BackendOptions
    os.environ.setdefault("CLOUDFLARE_ACCOUNT_ID", "a")
    os.environ.setdefault("CLOUDFLARE_API_TOKEN", "t")
    backend = CloudflareBackend.from_options("cloudflare-base", BackendOptions({"cf_model": "cf/meta/llama-3.2-3b-instruct"}))
    assert backend.model == "@cf/meta/llama-3.2-3b-instruct"


def test_every_fake_error_code_is_classified():
    backend = CloudflareBackend("m", "a", Secret("t"))
    import httpx
    for code, (status, message) in CF_ERRORS.items():
        failure = backend.classify(status, {"success": False, "errors": [{"code": code, "message": message}]},
                                   httpx.Headers())
        assert failure.kind in ("fatal", "retry", "case") and str(code) in failure.message
    assert BackendError


def test_a_token_echoed_by_the_server_is_redacted_everywhere(pytester, monkeypatch, fake):
    fake.echo_token_in_errors = True
    secret = "cf-secret-token-that-must-not-leak-42"
    cf_env(monkeypatch, fake, token=secret)
    (pytester.path / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    result = pytester.runpytest("--model=cloudflare-base", "--th-cf-model=@cf/meta/llama-3.2-3b-instruct",
                                "--th-cf-api-base", fake.api_base, "--th-cases", "cases.jsonl", "-l", "--tb=long")
    assert result.ret == 1 and "Authentication error for 'Bearer ***'" in result.stdout.str()
    assert secret not in all_output(pytester, result)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from harness.tiny import build_tiny_model
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_raw_mode_puts_exactly_one_bos_before_the_model(tiny_model):
    """Against a server that tokenizes like a real one (BOS added on encode), the raw prompt's token count
    equals the local backend's: the adapter sees what it was trained on, byte for byte."""
    from transformers import AutoTokenizer

    from harness.backends.local import GenerationSettings, LocalBackend
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    local = LocalBackend(str(tiny_model), device="cpu", settings=GenerationSettings(max_new_tokens=2, batch_size=4))
    local_counts = [r.usage["prompt_tokens"] for r in local.generate(requests(2))]
    with FakeCloudflare(reply=lambda body: CALL, tokenizer=tokenizer) as server:
        for backend in (cloudflare(server, raw=True), OpenAIBackend(server.openai_base, "m", raw=True, retry=FAST),
                        OpenAIBackend(server.openai_base, "m", retry=FAST)):  # chat: the server's own template
            assert [r.usage["prompt_tokens"] for r in backend.generate(requests(2))] == local_counts, backend.name
        doubled = OpenAIBackend(server.openai_base, "m", raw=True, raw_keep_bos=True, retry=FAST).generate(requests(1))
        assert doubled[0].usage["prompt_tokens"] == local_counts[0] + 1  # what --raw sent before: two BOS


def test_a_reply_cut_off_at_max_tokens_is_marked_truncated(fake):
    fake.finish_reason = "length"
    reply = OpenAIBackend(fake.openai_base, "base", retry=FAST).generate(requests(1))[0]
    assert reply.truncated and reply.text == CALL
    fake.finish_reason = "stop"
    assert not OpenAIBackend(fake.openai_base, "base", retry=FAST).generate(requests(1))[0].truncated
    assert cloudflare(fake, max_tokens=3).generate(requests(1))[0].truncated  # all 3 tokens of the budget used
    assert not cloudflare(fake, max_tokens=300).generate(requests(1))[0].truncated


def test_truncation_is_named_in_the_failure(make_case):
    from harness.tasks.tool_call.match import score
    case = make_case([{"tool": "getWeather", "params": {"location": "Oslo"}}])
    result = score(case, '```json\n{"tool": "getWeather", "params": {"loca', resolve_catalogue(), truncated=True)
    assert result.reason == "invalid_json" and result.truncated and "truncated" in result.details[0]
    from harness.tasks.tool_call.task import case_record
    assert case_record(result)["truncated"] is True


def test_latency_excludes_time_in_our_own_rate_limiter(fake):
    """Two requests a second allowed: the third waits ~0.5 s in the client, which is not the server's latency."""
    backend = cloudflare(fake, concurrency=3)
    backend.requests_per_minute = 120
    limiter_window = 1.0
    import harness.backends.http as http
    original = http.RateLimiter

    class FastWindow(original):
        def __init__(self, per_minute):
            super().__init__(2, window_s=limiter_window)
    http.RateLimiter = FastWindow
    try:
        started = time.perf_counter()
        replies = backend.generate(requests(3))
        elapsed = time.perf_counter() - started
    finally:
        http.RateLimiter = original
    assert elapsed >= limiter_window * 0.9
    assert max(r.latency_s for r in replies) < limiter_window / 2


def test_first_requests_failing_alike_stop_the_run(fake):
    """A wrong --served-model (HTTP 400) or a server that is down: one message, not a report of N errors."""
    fake.inject(Fault("cf_error", code=5006, times=1000))
    with pytest.raises(FatalBackendError, match="first 3 requests all failed the same way.*5006"):
        cloudflare(fake, concurrency=1).generate(requests(8))
    assert len(fake.requests) == 3
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    down = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "base", retry=RetryPolicy(max_attempts=2, base_delay_s=0.01,
                                                                                  max_delay_s=0.02, timeout_s=1.0))
    with pytest.raises(FatalBackendError, match="connection error"):
        down.generate(requests(6))


def test_a_failure_after_a_success_does_not_stop_the_run(fake):
    fake.inject(Fault("cf_error", code=5006, times=3, match="question 1"))
    replies = cloudflare(fake, concurrency=1).generate(requests(3))
    assert replies[0].text == CALL and replies[1].text is None and replies[2].text == CALL


def test_unanswered_cases_make_the_run_incomplete(pytester, monkeypatch, fake):
    cf_env(monkeypatch, fake)
    cases = [json.loads(line) for line in (GOLDEN / "assistant.jsonl").read_text().splitlines()[:6]]
    write_jsonl(pytester.path / "c.jsonl", cases)
    fake.inject(Fault("cf_error", code=5006, times=1, match=cases[3]["messages"][0]["content"][:20]))
    args = ("--model=cloudflare-base", "--th-cf-model=@cf/meta/llama-3.2-3b-instruct", "--th-cases", "c.jsonl",
            f"--th-cf-api-base={fake.api_base}", "--th-concurrency", "1", "--th-max-attempts", "1", "-p", "no:cacheprovider")
    result = pytester.runpytest(*args, "--th-threshold", "tool_selection_accuracy=off", "--th-threshold", "valid_json_rate=off",
                                "--th-threshold", "no_tool_accuracy=off", "--th-threshold", "disambiguation_accuracy=off")
    s = json.loads((pytester.path / "reports" / "latest" / "summary.json").read_text())
    assert s["n_unanswered"] == 1 and s["complete"] is False and not s["gate"]["passed"] and result.ret == 1
    assert "1 case(s) unanswered" in s["gate"]["failures"][-1]["message"]
    assert s["latency_conditions"]["concurrency"] == 1
    result.stdout.fnmatch_lines(["*latency measured at concurrency 1*"])
