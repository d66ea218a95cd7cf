"""Issue 21: misbehaving servers and odd credentials. A reply stays bound to its case, every failure is that
case's, and no secret reaches a report, a log or a traceback."""
import json
import shutil
from pathlib import Path

import httpx
import pytest

from harness.backends import (
    BackendError,
    BackendOptions,
    Reply,
    ReplyMismatch,
    Request,
    ask,
)
from harness.backends.base import Backend
from harness.backends.http import Secret, public_url, redact_secrets
from harness.backends.remote import CloudflareBackend, OpenAIBackend
from harness.core.engine import Run
from harness.gate import resolve_thresholds
from harness.isotime import parse_now
from harness.suite import resolve_suite
from harness.tasks.tool_call.metrics import DEFAULT_THRESHOLDS
from harness.tasks.tool_call.task import ToolCallTask
from harness.testing.fake_cloudflare import FakeCloudflare, Fault

ROOT = Path(__file__).resolve().parents[1]
KITCHEN = ROOT / "examples" / "kitchen"
CF = "@cf/meta/llama-3.2-3b-instruct"
NOW = parse_now("2026-02-24T09:00:00Z")


def echo(body):
    """Each reply names the request it answers: a reply scored for another case shows at once."""
    messages = body.get("messages") or [{"content": body.get("prompt", "")}]
    return "echo: " + messages[-1]["content"]


def kitchen_run(pytester, *args, env=None):
    return pytester.runpytest("--model=cloudflare-base", f"--th-cf-model={CF}", "--th-cases", str(KITCHEN),
                              "--th-max-attempts", "2", "-p", "no:cacheprovider", "--th-run-id", "k", *args)


@pytest.mark.parametrize("fault", [
    Fault("bad_200", times=10, match="12 minutes", body=b"this is not gzip", headers={"Content-Encoding": "gzip"}),
    Fault("bad_200", times=10, match="12 minutes", body=b'{"result": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
], ids=["broken-gzip", "deep-json"])
def test_a_reply_the_engine_cannot_read_is_that_cases_failure_and_no_reply_moves(pytester, monkeypatch, fault):
    with FakeCloudflare(reply=echo) as fake:
        monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", fake.account_id)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", fake.token)
        fake.inject(fault)
        kitchen_run(pytester, "--th-cf-api-base", fake.api_base, "--th-concurrency", "1")
    records = {r["id"]: r for r in map(json.loads, (pytester.path / "reports" / "k" / "cases.jsonl").read_text().splitlines())}
    cases = {c["id"]: c for c in map(json.loads, (KITCHEN / "cases.jsonl").read_text().splitlines())}
    assert records["k-timer"]["response"] is None and records["k-timer"]["error"]
    for case_id, rec in records.items():
        if case_id != "k-timer":
            assert rec["response"] == "echo: " + cases[case_id]["messages"][-1]["content"], case_id
    summary = json.loads((pytester.path / "reports" / "k" / "summary.json").read_text())
    assert summary["complete"] is False and summary["n_unanswered"] == 1 and summary["gate"]["passed"] is False


class Transport(httpx.AsyncBaseTransport):
    """Answers every request, except that asking about `bad` raises `exc`."""

    def __init__(self, bad, exc):
        self.bad, self.exc = bad, exc

    async def handle_async_request(self, request):
        body = json.loads(request.content)
        text = body["messages"][-1]["content"]
        if self.bad in text:
            raise self.exc
        return httpx.Response(200, json={"choices": [{"message": {"content": "echo: " + text}, "finish_reason": "stop"}]})


def _requests(n):
    return [Request(f"c{i}", ({"role": "user", "content": f"question {i}"},), NOW) for i in range(n)]


@pytest.mark.parametrize("exc", [RecursionError("deep"), RuntimeError("boom"), KeyError("x"),
                                 httpx.DecodingError("bad gzip"), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")])
def test_any_exception_while_asking_is_that_cases_backend_error(exc):
    token = "sk-" + "S3CRET" * 4
    exc.args = (*exc.args, f"while sending Bearer {token}") if not isinstance(exc, UnicodeDecodeError) else exc.args
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "m", Secret(token), transport=Transport("question 1", exc))
    replies = ask(backend, _requests(4))
    assert [r.key for r in replies] == ["c0", "c1", "c2", "c3"]
    assert [r.text for r in replies] == ["echo: question 0", None, "echo: question 2", "echo: question 3"]
    assert type(exc).__name__ in replies[1].error and token not in replies[1].error and "S3CRET" not in replies[1].error


class Shuffled(Backend):
    """Answers in reverse order, keyed: the run must still give each case its own reply."""

    name = "shuffled"

    def __init__(self, drop=False, extra=False):
        self.drop, self.extra = drop, extra

    def generate(self, requests, on_reply=None):
        out = [r.bind(Reply(text=f"about {r.case_id}")) for r in reversed(requests)]
        if self.drop:
            out = out[1:]
        if self.extra:
            out.append(Reply(text="stray", key="nobody"))
        return out


def test_replies_are_bound_by_key_not_by_position():
    replies = ask(Shuffled(), _requests(5))
    assert [r.text for r in replies] == [f"about c{i}" for i in range(5)]


@pytest.mark.parametrize("how", ["drop", "extra"])
def test_a_backend_returning_fewer_or_more_replies_crashes_the_run(make_cases, tmp_path, how):
    cases = make_cases([{"id": f"n{i}", "category": "no_tool", "messages": [{"role": "user", "content": "hi"}],
                         "expected": []} for i in range(3)])
    run = Run(task=ToolCallTask(), model="shuffled", options=BackendOptions(),
              thresholds=resolve_thresholds({}, DEFAULT_THRESHOLDS), reports_dir=tmp_path,
              suite=resolve_suite(), run_id="r")
    run.start(cases, backend=Shuffled(**{how: True}))
    with pytest.raises(ReplyMismatch):
        run.result_for(cases[0])
    assert run.stopped.startswith("backend crashed: ReplyMismatch") and not run.results


@pytest.mark.parametrize("url,why", [("http://127.0.0.1:99999/v1", "invalid port 99999"),
                                     ("ftp://host/v1", "http:// or https://"), ("not a url", "http:// or https://")])
def test_a_base_url_that_cannot_work_says_why(url, why):
    with pytest.raises(BackendError, match=why):
        OpenAIBackend(url, "m")


# -- secrets --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("var,model_args", [
    ("CLOUDFLARE_API_TOKEN", ["--model=cloudflare-base", f"--th-cf-model={CF}"]),
    ("OPENAI_API_KEY", ["--model=openai", "--th-served-model", "m"]),
])
def test_a_token_that_cannot_be_a_header_is_a_usage_error_and_never_printed(pytester, monkeypatch, var, model_args):
    token = "tokSECRETabcdé0123456789"
    with FakeCloudflare(reply=echo) as fake:
        monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", fake.account_id)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", fake.token)
        monkeypatch.setenv(var, token)
        result = pytester.runpytest(*model_args, "--th-cf-api-base", fake.api_base, "--th-base-url", fake.openai_base,
                                    "--th-cases", str(KITCHEN), "-p", "no:cacheprovider", "-l", "--junitxml", "j.xml",
                                    "--th-run-id", "s")
        assert not fake.requests
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR and var in text
    written = "".join(p.read_text(errors="replace") for p in pytester.path.rglob("*") if p.is_file())
    for leak in ("SECRETabcd", "abcdé"):
        assert leak not in text and leak not in written


def test_a_secret_survives_repr_str_format_and_exception_args():
    secret = Secret("sk-live-0123456789abcdef")
    for shown in (repr(secret), str(secret), f"{secret}", repr([secret]), repr({"k": secret}),
                  str(RuntimeError(secret)), repr(RuntimeError("x", secret))):
        assert "0123456789" not in shown
    with pytest.raises(TypeError):
        __import__("pickle").dumps(secret)


def test_userinfo_in_a_url_is_masked_wherever_it_is_recorded():
    assert public_url("http://bob:hunter2pass@host:8000/v1") == "http://bob:***@host:8000/v1"
    assert public_url("http://host/v1?x=a@b") == "http://host/v1?x=a@b"
    backend = OpenAIBackend("http://bob:hunter2pass@127.0.0.1:8000/v1", "m")  # no key: the URL's auth is the auth
    for shown in (json.dumps(backend.fingerprint()), backend.describe()):
        assert "hunter2pass" not in shown and "bob:***@" in shown
    assert redact_secrets("failed: hunter2pass", backend.secrets) == "failed: ***"


@pytest.mark.parametrize("make", [
    lambda: OpenAIBackend("http://bob:pw123456@127.0.0.1:8000/v1", "m", Secret("sk-0123456789abcdef")),
    lambda: CloudflareBackend(CF, "acct", Secret("tok0123456789"), api_base="http://bob:pw123456@127.0.0.1/client/v4"),
])
def test_userinfo_that_would_replace_the_api_token_is_refused(make):
    with pytest.raises(BackendError, match="would replace the API token") as err:
        make()
    assert "pw123456" not in str(err.value)


def test_a_short_dummy_key_never_changes_a_reply(pytester, monkeypatch):
    call = {"tool_calls": [{"name": "setTimer", "arguments": {"minutes": 12, "label": "kitchen pasta"}}]}
    shutil.copytree(KITCHEN, pytester.path / "kitchen")
    (pytester.path / "kitchen" / "suite.toml").write_text('[reply]\nformat = "native"\n')
    with FakeCloudflare(reply=lambda body: call, openai_key="k") as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        result = pytester.runpytest("--model=openai", "--th-base-url", fake.openai_base, "--th-served-model", "m",
                                    "--th-cases", "kitchen", "-k", "k-timer", "-p", "no:cacheprovider", "--th-run-id", "d")
    assert "too short to be treated as a secret" in result.stdout.str()
    [rec] = map(json.loads, (pytester.path / "reports" / "d" / "cases.jsonl").read_text().splitlines())
    assert rec["passed"] and "kitchen pasta" in rec["response"] and rec["redacted"] is False


def test_a_reply_changed_by_redaction_says_so(pytester, monkeypatch):
    token = "sk-" + "Z" * 24
    with FakeCloudflare(reply=lambda body: f"My key is {token}", openai_key=token) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", token)
        result = pytester.runpytest("--model=openai", "--th-base-url", fake.openai_base, "--th-served-model", "m",
                                    "--th-cases", str(KITCHEN), "-k", "k-timer", "-p", "no:cacheprovider", "--th-run-id", "d")
    [rec] = map(json.loads, (pytester.path / "reports" / "d" / "cases.jsonl").read_text().splitlines())
    assert rec["redacted"] is True and token not in rec["response"]
    assert "held a secret" in result.stdout.str() and token not in result.stdout.str()


# -- deploy verify asks and scores as a run of the suite does ---------------------------------------------------------
@pytest.mark.parametrize("minutes,passes", [(12, True), (13, False)])
def test_deploy_verify_on_a_native_suite_scores_native_calls(tmp_path, monkeypatch, capsys, minutes, passes):
    from deploy.__main__ import main as deploy

    suite = tmp_path / "kitchen"
    suite.mkdir()
    shutil.copy(KITCHEN / "tools.json", suite / "tools.json")
    (suite / "suite.toml").write_text('[reply]\nformat = "native"\n')
    first = (KITCHEN / "cases.jsonl").read_text().splitlines()[0]
    (suite / "cases.jsonl").write_text(first + "\n")
    call = {"tool_calls": [{"name": "setTimer", "arguments": {"minutes": minutes, "label": "pasta"}}]}
    model = "@cf/meta/llama-3.1-8b-instruct-fast"
    with FakeCloudflare(reply=lambda body: call if "lora" in body else "Sorry.", lora_models={model},
                        finetunes={"f"}) as fake:
        monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", fake.account_id)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", fake.token)
        code = deploy(["verify", f"--cf-model={model}", "--lora", "f", "--cases", str(suite), "--probes", "1",
                       "--cf-api-base", fake.api_base])
        asked = [r.body for r in fake.requests]
    out = capsys.readouterr().out
    assert code == 0, out
    assert all(b.get("tools") and b["tools"][0]["function"]["name"] == "setTimer" for b in asked)
    [line] = [row for row in out.splitlines() if row.strip().startswith("case_pass_rate")]
    assert line.split()[-1] == ("1.000" if passes else "0.000")


def test_deploy_refuses_an_unsendable_token_and_userinfo_in_its_api_base(monkeypatch, capsys):
    from deploy.__main__ import main as deploy

    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "acct0123")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "tokSECRETabcdé0123456789")
    assert deploy(["list", "--cf-api-base", "http://127.0.0.1:9/client/v4"]) == 1
    out = capsys.readouterr().out
    assert "CLOUDFLARE_API_TOKEN" in out and "SECRETabcd" not in out
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "tok0123456789abcdef")
    assert deploy(["list", "--cf-api-base", "http://bob:pw123456@127.0.0.1:9/client/v4"]) == 1
    out = capsys.readouterr().out
    assert "would replace the API token" in out and "pw123456" not in out
