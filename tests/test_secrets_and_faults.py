"""Secrets and data under faults: a hostile server that echoes the Authorization header back everywhere it can,
and the faults that used to leak it, lose replies, or score transport failures as model failures."""
import json
import time
from pathlib import Path

import pytest

from conftest import assistant_prompt, write_jsonl
from harness.backends.http import FatalBackendError, RetryPolicy, Secret, redact_secrets
from harness.backends.remote import CloudflareBackend, OpenAIBackend
from harness.testing.fake_cloudflare import FakeCloudflare, Fault, envelope

TOKEN = "cf-SECRETtoken-9f8e7d6c5b4a"
KEY = "sk-SECRETkey-0a1b2c3d4e5f"
ACCOUNT = "acct7f3e9d2c1b"
CF = "@cf/meta/llama-3.2-3b-instruct"
GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02, timeout_s=2.0)
CALL = 'Sure.\n\n```json\n{"tool": "getWeather", "params": {"location": "Oslo"}}\n```'


def pieces(secret: str, n: int = 6) -> set[str]:
    return {secret[i:i + n] for i in range(len(secret) - n + 1)}


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        found = sorted(p for p in pieces(secret) if p in text)
        assert not found, f"{len(found)} piece(s) of a secret leaked, e.g. {found[:3]}"


def everything_written(root: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


def test_redaction_catches_cut_off_and_partial_secrets():
    s = Secret(TOKEN)
    text = f"Bearer {TOKEN[:10]} | {TOKEN} | tail {TOKEN[-7:]} | {TOKEN[3:9]} | short {TOKEN[:5]}"
    out = redact_secrets(text, [s])
    assert_clean(out, TOKEN)
    assert out.endswith(f"short {TOKEN[:5]}")  # five characters identify nothing


@pytest.fixture
def hostile(monkeypatch):
    with FakeCloudflare(token=TOKEN, account_id=ACCOUNT, openai_key=KEY, echo_auth=True,
                        reply=lambda body: CALL, models={CF}, lora_models={CF}) as fake:
        monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield fake


def golden_cases(pytester, n=12):
    cases = [json.loads(line) for line in (GOLDEN / "assistant.jsonl").read_text().splitlines()[:n]]
    write_jsonl(pytester.path / "c.jsonl", cases)
    return cases


@pytest.mark.parametrize("model", ["cloudflare-base", "openai"])
def test_a_hostile_server_leaks_nothing_into_output_reports_or_junit(pytester, hostile, model):
    golden_cases(pytester)
    hostile.inject(Fault("429", retry_after_text="soon", times=3), Fault("500", times=3),
                   Fault("bad_200", times=2), Fault("bad_200", times=2, body={"choices": []}),
                   Fault("bad_200", times=2, body=envelope({"response": None})))
    backend = (["--model=cloudflare-base", f"--th-cf-model={CF}", f"--th-cf-api-base={hostile.api_base}"]
               if model == "cloudflare-base" else ["--model=openai", f"--th-base-url={hostile.openai_base}",
                                                   "--th-served-model=m"])
    result = pytester.runpytest(*backend, "--th-cases", "c.jsonl", "--th-max-attempts", "6", "-l", "--tb=long",
                                "--full-trace", "-rA", "--junitxml", "j.xml", "--th-failure-details", "all",
                                "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert "cases passed" in out  # the run happened and was scored
    assert_clean(out + everything_written(pytester.path / "reports") + (pytester.path / "j.xml").read_text(),
                 TOKEN, KEY, ACCOUNT)
    records = [json.loads(r) for r in (pytester.path / "reports/latest/cases.jsonl").read_text().splitlines()]
    assert all(r["response"] is not None and r["redacted"] for r in records)  # every reply echoed the header
    summary = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert summary["n_unanswered"] == 0 and summary["retries"] >= 9
    kinds = set(summary["fault_kinds"])
    assert "HTTP 500" in kinds and kinds & {"HTTP 429", "Cloudflare error 3040"}, kinds
    assert "HTTP 200 without a readable reply" in kinds


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("peft")
    from harness.tiny import build_tiny_model
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def adapter(tiny, tmp_path):
    """A random LoRA adapter whose config names the 3B base (what deploy maps to the Workers AI model)."""
    from harness.tiny import make_random_adapter
    folder = make_random_adapter(tiny, tmp_path / "adapter")
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "unsloth/Llama-3.2-3B-Instruct"
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def test_every_deploy_command_keeps_secrets_out(hostile, adapter, tmp_path, capsys):
    from deploy.__main__ import main as deploy
    api = ["--cf-api-base", hostile.api_base]
    codes = [deploy(["export", str(adapter), "--out", str(tmp_path / "b"), f"--cf-model={CF}"])]
    hostile.inject(Fault("bad_200", times=1, body=envelope({"message": "accepted"}), match='"no-id"'))
    codes.append(deploy(["upload", str(tmp_path / "b"), "--name", "no-id", f"--cf-model={CF}", *api]))
    hostile.inject(Fault("500", times=10, match="adapter_config.json\r\n"))
    codes.append(deploy(["upload", str(tmp_path / "b"), "--name", "half", f"--cf-model={CF}", *api,
                         "--max-attempts", "2"]))
    codes.append(deploy(["list", *api]))
    hostile.inject(Fault("cf_error", code=5006, times=3))
    codes.append(deploy(["verify", f"--cf-model={CF}", "--lora", "half", "--probes", "3", *api]))
    out = capsys.readouterr()
    assert codes == [0, 1, 1, 0, 1], out.out
    assert "the reply has no id" in out.out
    assert_clean(out.out + out.err + everything_written(tmp_path / "b"), TOKEN, ACCOUNT)


def test_a_malformed_200_is_retried_and_attempts_are_recorded(hostile):
    hostile.echo_auth = False
    hostile.inject(Fault("bad_200", times=1, body={"choices": []}))
    backend = OpenAIBackend(hostile.openai_base, "m", Secret(KEY), retry=FAST, concurrency=1)
    reply = backend.generate([_request()])[0]
    assert reply.text == CALL and reply.attempts == 2 and reply.faults == ("HTTP 200 without a readable reply",)


def _request():
    from harness.backends import Request
    from harness.isotime import parse_now
    now = parse_now("2026-02-24T09:00:00Z")
    return Request("r0", ({"role": "system", "content": assistant_prompt(now)}, {"role": "user", "content": "hi"}), now)


def test_a_fatal_error_cancels_requests_that_are_backing_off(hostile):
    """One request waits on a 429 with Retry-After 10 while another gets a fatal code: the run ends at once."""
    hostile.echo_auth = False
    hostile.inject(Fault("429", retry_after=10, times=5, match="question 0"),
                   Fault("cf_error", code=3036, times=1, match="question 1"))
    from harness.backends import Request
    from harness.isotime import parse_now
    now = parse_now("2026-02-24T09:00:00Z")
    requests = [Request(f"r{i}", ({"role": "user", "content": f"question {i}"},), now) for i in range(2)]
    backend = CloudflareBackend(CF, ACCOUNT, Secret(TOKEN), api_base=hostile.api_base, retry=FAST, concurrency=2)
    started = time.perf_counter()
    with pytest.raises(FatalBackendError, match="3036"):
        backend.generate(requests)
    assert time.perf_counter() - started < 3
    assert len(hostile.requests) == 2  # the backing-off request was never sent again


def test_resume_over_a_subset_keeps_every_reply(pytester, hostile):
    hostile.echo_auth = False
    cases = golden_cases(pytester, n=12)
    hostile.inject(Fault("cf_error", code=3036, times=1, match=cases[8]["messages"][-1]["content"][:25]))
    args = ["--model=cloudflare-base", f"--th-cf-model={CF}", f"--th-cf-api-base={hostile.api_base}",
            "--th-concurrency", "1", "-p", "no:cacheprovider"]
    pytester.runpytest(*args, "c.jsonl", "--th-run-id", "r1")
    first = [json.loads(x)["id"] for x in (pytester.path / "reports/r1/cases.jsonl").read_text().splitlines()]
    assert len(first) == 8
    subset = cases[10]["id"]
    result = pytester.runpytest(*args, "--th-resume", "r1", f"c.jsonl::{subset}")
    assert result.ret == 1
    s = json.loads((pytester.path / "reports/r1/summary.json").read_text())
    assert s["complete"] is False and not s["gate"]["passed"] and s["kept_from_earlier"] == 8
    kept = [json.loads(x)["id"] for x in (pytester.path / "reports/r1/cases.jsonl").read_text().splitlines()]
    assert set(first) | {subset} == set(kept)  # nothing dropped
    asked = len(hostile.requests)
    pytester.runpytest(*args, "c.jsonl", "--th-resume", "r1")
    assert len(hostile.requests) - asked == 3  # only the 3 cases never answered
    s = json.loads((pytester.path / "reports/r1/summary.json").read_text())
    assert s["complete"] is True and s["n_cases"] == 12


def test_a_lost_create_reply_finds_the_finetune_instead_of_making_a_second(hostile, adapter, tmp_path, capsys):
    from deploy.__main__ import main as deploy
    hostile.echo_auth = False
    assert deploy(["export", str(adapter), "--out", str(tmp_path / "b"), f"--cf-model={CF}"]) == 0
    hostile.inject(Fault("drop_after", times=1, match='"once"'))
    code = deploy(["upload", str(tmp_path / "b"), "--name", "once", f"--cf-model={CF}", "--cf-api-base",
                   hostile.api_base])
    out = capsys.readouterr().out
    assert code == 0, out
    assert len(hostile.store) == 1 and "found it by name" in out
    record = json.loads((tmp_path / "b" / "upload.json").read_text())
    assert record["status"] == "complete" and record["recovered_after"]


def test_export_refuses_links(adapter, tmp_path):
    from deploy.check import CheckFailed, export
    outside = tmp_path / "precious.bin"
    outside.write_bytes(b"keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "adapter_model.safetensors").symlink_to(outside)
    with pytest.raises(CheckFailed, match="is a link to"):
        export(adapter, out, CF)
    assert outside.read_bytes() == b"keep me"
    elsewhere = tmp_path / "elsewhere.safetensors"
    (adapter / "adapter_model.safetensors").rename(elsewhere)
    (adapter / "adapter_model.safetensors").symlink_to(elsewhere)
    with pytest.raises(CheckFailed, match="outside the adapter folder"):
        export(adapter, tmp_path / "out2", CF)


@pytest.mark.parametrize("flag, value", [("--th-max-attempts", "0"), ("--th-requests-per-minute", "-5"),
                                         ("--th-concurrency", "0"), ("--th-request-timeout", "0")])
def test_bad_option_values_are_usage_errors(pytester, hostile, flag, value):
    golden_cases(pytester, n=2)
    result = pytester.runpytest("--model=cloudflare-base", f"--th-cf-model={CF}", f"--th-cf-api-base={hostile.api_base}",
                                "--th-cases", "c.jsonl", flag, value, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert flag in result.stderr.str() and not hostile.requests
