"""The trainer on the tiny offline model: masking, refusals, options, outputs, provenance."""
import json

import pytest

pytest.importorskip("trl")

from conftest import labelled_spans  # noqa: E402
from harness.isotime import parse_now  # noqa: E402
from harness.suite import resolve_suite  # noqa: E402
from harness.tiny import build_tiny_model  # noqa: E402
from training.data.build import BuildConfig, build  # noqa: E402
from training.data.examples import call, make_example, reply, tool_result  # noqa: E402
from training.tokenize import (  # noqa: E402
    IGNORE,
    TrainingRefused,  # noqa: E402
    TrainingSetupError,
    check_template_parity,
    ensure_pad,
    tokenize_example,
)
from training.train import Job, cli, diagnose, main, parse_args, pick_engine, unsloth_kwargs  # noqa: E402

NOW = parse_now("2026-03-03T10:00:00Z")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def tokenizer(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "v1"
    build(BuildConfig(out=str(out)))
    return out


def conversation():
    first = reply(call("createTask", title="Call Sam", priority="medium"))
    second = reply(call("completeTask", taskId="task_9"))
    ex = make_example([("user", "Add a task to call Sam"), ("assistant", first),
                       ("tool", tool_result("createTask", {"taskId": "task_9"})), ("user", "done"), ("assistant", second)],
                      now=NOW, kind="multi_turn", source="t", group="g")
    return ex, first, second


def stop_ids(tokenizer):
    return [tokenizer.convert_tokens_to_ids(t) for t in ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>")]


def test_only_assistant_tokens_carry_labels(tokenizer):
    ex, first, second = conversation()
    tok = tokenize_example(tokenizer, ex, stop_ids(tokenizer))
    assert len(tok.labels) == len(tok.input_ids)
    spans = labelled_spans(tok)
    assert [tokenizer.decode(s) for s in spans] == [first + "<|eot_id|>", second + "<|eot_id|>"]
    masked = tokenizer.decode([t for t, label in zip(tok.input_ids, tok.labels) if label == IGNORE])
    assert "You are a personal assistant" in masked and "Add a task to call Sam" in masked and "task_9" in masked


def test_a_template_without_end_of_turn_is_refused(tokenizer):
    tokenizer.chat_template = tokenizer.chat_template.replace("| trim + '<|eot_id|>' }}", "| trim }}")
    with pytest.raises(TrainingSetupError, match="end-of-turn"):
        tokenize_example(tokenizer, conversation()[0], stop_ids(tokenizer))


def test_pad_equal_to_eos_is_replaced_or_refused_and_a_missing_pad_is_set(tokenizer, monkeypatch):
    assert ensure_pad(tokenizer) == "<|finetune_right_pad_id|>"
    tokenizer.pad_token = None
    assert ensure_pad(tokenizer) == "<|finetune_right_pad_id|>"
    tokenizer.pad_token = tokenizer.eos_token  # pad == eos: replaced by a distinct special token the tokenizer has
    assert ensure_pad(tokenizer) == "<|finetune_right_pad_id|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    import training.tokenize

    tokenizer.pad_token = tokenizer.eos_token
    monkeypatch.setattr(training.tokenize, "distinct_pad", lambda tok: None)  # a tokenizer with no other special token
    with pytest.raises(TrainingSetupError, match="pad token .* == eos"):
        ensure_pad(tokenizer)


def test_template_parity_refuses_stale_data_and_missing_templates(tokenizer):
    ex = conversation()[0]
    check_template_parity(tokenizer, [ex], resolve_suite())
    stale = {**ex, "messages": [{"role": "system", "content": "You are a helpful assistant."}] + ex["messages"][1:]}
    with pytest.raises(TrainingSetupError, match="differs from the harness's evaluation prompt"):
        check_template_parity(tokenizer, [stale], resolve_suite())
    tokenizer.chat_template = None
    with pytest.raises(TrainingSetupError, match="no chat template"):
        check_template_parity(tokenizer, [ex], resolve_suite())


def test_unknown_options_are_errors(capsys):
    with pytest.raises(ValueError, match="unknown job option.*lora_rank"):
        Job.from_dict({"lora_rank": 8})
    with pytest.raises(SystemExit):
        parse_args(["--lora-rank", "8"])
    assert "unrecognized arguments" in capsys.readouterr().err
    job = parse_args(["--lora-r", "8", "--max-steps", "3", "--no-eval-golden"])
    assert job.lora_r == 8 and job.max_steps == 3 and job.eval_golden is False and job.lora_alpha == 32


def test_defaults_are_the_plans_recipe():
    job = Job()
    assert (job.base_model, job.lora_r, job.lora_alpha, job.lora_dropout, job.target_modules, job.epochs,
            job.learning_rate, job.batch_size, job.max_length) == (
        "unsloth/Llama-3.2-3B-Instruct", 16, 32, 0.05, "all-linear", 2.0, 2e-4, 4, 2048)


def test_engine_choice_without_a_gpu(monkeypatch):
    import training.train as train
    monkeypatch.setattr(train, "cuda_available", lambda: False)  # pinned: the suite also runs on CUDA machines
    assert pick_engine("auto") == "trl" and pick_engine("trl") == "trl" and pick_engine("auto", "full") == "trl"
    with pytest.raises(TrainingRefused, match="needs a CUDA GPU"):
        pick_engine("unsloth")
    load, peft = unsloth_kwargs(Job(load_in_4bit=True, lora_r=8))
    assert load["load_in_4bit"] is True and load["max_seq_length"] == 2048
    assert peft["r"] == 8 and "down_proj" in peft["target_modules"] and peft["use_gradient_checkpointing"] == "unsloth"


def test_engine_choice_with_a_gpu_and_unsloth(monkeypatch):
    import training.train as train
    monkeypatch.setattr(train, "cuda_available", lambda: True)
    monkeypatch.setattr(train, "unsloth_installed", lambda: True)
    assert pick_engine("auto") == "unsloth" and pick_engine("auto", "full") == "trl" and pick_engine("trl") == "trl"
    monkeypatch.setattr(train, "unsloth_installed", lambda: False)
    assert pick_engine("auto") == "trl"
    with pytest.raises(TrainingRefused, match="needs unsloth"):
        pick_engine("unsloth")


def test_diagnosis_follows_the_plan():
    rows = lambda pairs: [{"step": s, "train_loss": t, "eval_loss": e} for s, t, e in pairs]  # noqa: E731
    assert diagnose(rows([(1, 2.5, None), (2, 2.0, 2.1)])).startswith("underfitting")
    assert diagnose(rows([(1, 1.0, 1.1), (2, 0.5, 0.9), (3, 0.1, 1.3)])).startswith("overfitting")
    assert diagnose(rows([(1, 1.0, 1.1), (2, 0.5, 0.6), (3, 0.3, 0.35)])).startswith("healthy")
    assert diagnose(rows([(1, 0.5, 0.9), (2, 0.1, 0.85)])).startswith("overfitting")  # the plan's "train 0.1, eval 0.8+"


def test_a_short_run_saves_the_adapter_only_with_its_provenance(tiny, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "adapter"
    main(Job(data=str(data), out=str(out), base_model=str(tiny), engine="trl", max_steps=4, batch_size=2, grad_accum=1,
             logging_steps=1, eval_steps=2, lora_r=4, lora_alpha=8, eval_golden=True, eval_max_new_tokens=8))
    names = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "job.json", "metrics.csv",
            "loss.png", "diagnosis.txt", "golden.json"} <= names
    assert not names & {"model.safetensors", "pytorch_model.bin"}  # never a merged model
    job = json.loads((out / "job.json").read_text())
    assert job["job"]["lora_r"] == 4 and job["engine"] == "trl" and job["result"]["steps"] == 4 and job["world_size"] == 1
    prov = job["provenance"]
    assert len(prov["data_manifest_sha256"]) == 64 and len(prov["base_model_weights_sha256"]) == 64
    assert "transformers" in prov["versions"] and "git_commit" in prov
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,train_loss,eval_loss,learning_rate,tokens_per_s" and len(rows) >= 5
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4 and adapter_config["base_model_name_or_path"] == str(tiny)
    summary = json.loads((tmp_path / "reports" / "latest" / "summary.json").read_text())
    assert summary["model"] == "local-adapter" and summary["n_cases"] >= 60
    from harness.hashing import sha256_file

    assert summary["model_fingerprint"]["adapter"]["training_job_sha256"] == sha256_file(out / "job.json")


def test_stale_data_stops_the_run_before_training(tiny, data, tmp_path):
    stale = tmp_path / "stale"
    stale.mkdir()
    lines = (data / "train.jsonl").read_text().splitlines()[:3]
    bad = [json.loads(line) for line in lines]
    bad[0]["messages"][0]["content"] = "Old system prompt"
    (stale / "train.jsonl").write_text("".join(json.dumps(b) + "\n" for b in bad))
    with pytest.raises(TrainingSetupError):
        main(Job(data=str(stale), out=str(tmp_path / "x"), base_model=str(tiny), max_steps=1))
    assert not (tmp_path / "x" / "adapter_model.safetensors").exists()


def test_a_curriculum_stage_trains_without_the_system_prompt_only_when_told(tiny, data, tmp_path):
    """A curriculum stage on the same conversations without the system message: the parity check refuses them
    unless the job says prompt_check=False (recorded in job.json), and such a job cannot evaluate the suite."""
    plain = tmp_path / "plain"
    plain.mkdir()
    for split in ("train", "val"):
        rows = [json.loads(x) for x in (data / f"{split}.jsonl").read_text().splitlines()]
        rows = [{**r, "messages": [m for m in r["messages"] if m["role"] != "system"]} for r in rows]
        (plain / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    job = dict(data=str(plain), base_model=str(tiny), engine="trl", method="full", max_steps=1, batch_size=2,
               grad_accum=1, logging_steps=1, eval_steps=10**6)
    with pytest.raises(TrainingSetupError, match="differs from the harness's evaluation prompt"):
        main(Job(out=str(tmp_path / "checked"), **job))
    with pytest.raises(TrainingRefused, match="cannot --eval-golden"):
        main(Job(out=str(tmp_path / "evaluated"), prompt_check=False, eval_golden=True, **job))
    main(Job(out=str(tmp_path / "a1"), prompt_check=False, **job))
    record = json.loads((tmp_path / "a1" / "job.json").read_text())
    assert record["job"]["prompt_check"] is False and record["result"]["steps"] == 1


def test_cli_prints_a_refusal_but_keeps_the_traceback_of_a_crash(monkeypatch, tmp_path, capsys):
    """A refusal is one line and exit 1; a RuntimeError mid-training (a CUDA failure) is not dressed up as one."""
    import training.train as train
    from harness.backends import BackendError
    argv = ["--data", str(tmp_path), "--out", str(tmp_path / "o")]

    def refuse(job):
        raise TrainingRefused("no training examples")
    monkeypatch.setattr(train, "main", refuse)
    assert cli(argv) == 1 and "training refused: no training examples" in capsys.readouterr().err

    def bad_option(job):
        raise BackendError("--dtype 'fp8': use one of float32, bfloat16, float16")
    monkeypatch.setattr(train, "main", bad_option)
    assert cli(argv) == 1 and "training refused: --dtype" in capsys.readouterr().err

    def crash(job):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    monkeypatch.setattr(train, "main", crash)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        cli(argv)
    assert "training refused" not in capsys.readouterr().err


def test_an_empty_data_folder_is_a_refusal(tmp_path):
    with pytest.raises(TrainingRefused, match="no training examples"):
        main(Job(data=str(tmp_path), out=str(tmp_path / "o"), engine="trl"))


def test_the_trainer_trains_and_evaluates_a_suite_of_other_tools(tiny, tmp_path, monkeypatch):
    """Data built for the kitchen suite in the native format: the template renders the tools at training as the
    local backend does at evaluation (checked before training), and --eval-golden runs that suite, not the assistant's."""
    import shutil
    from pathlib import Path

    from training.data.build import build_written
    root = Path(__file__).resolve().parents[1]
    suite_dir = tmp_path / "kitchen"
    shutil.copytree(root / "examples" / "kitchen", suite_dir)
    (suite_dir / "suite.toml").write_text('[reply]\nformat = "native"\n')
    suite = resolve_suite([suite_dir])
    data = tmp_path / "data"
    build_written(suite, [root / "examples" / "kitchen-training.jsonl"], data, [str(suite_dir / "cases.jsonl")])
    monkeypatch.chdir(tmp_path)
    job = dict(data=str(data), base_model=str(tiny), engine="trl", max_steps=2, batch_size=2, grad_accum=1, max_length=4096,
               logging_steps=1, eval_steps=2, lora_r=4, lora_alpha=8, eval_max_new_tokens=8)
    with pytest.raises(TrainingSetupError, match="differs from the harness's evaluation prompt"):
        main(Job(out=str(tmp_path / "wrong"), **job))  # checked against the assistant suite (the default golden/)
    with pytest.raises(TrainingRefused, match="every training example is longer than max_length 512"):
        main(Job(out=str(tmp_path / "short"), golden=str(suite_dir), **{**job, "max_length": 512}))
    main(Job(out=str(tmp_path / "adapter"), golden=str(suite_dir), eval_golden=True, **job))
    summary = json.loads((tmp_path / "reports" / "latest" / "summary.json").read_text())
    assert summary["n_cases"] == 10 and summary["model_fingerprint"]["reply_format"] == "native"
    assert summary["model_fingerprint"]["tools_sha256"] is not None


def test_the_trainer_trains_on_program_data_and_evaluates_the_program_suite(tiny, tmp_path, monkeypatch):
    """Program data is checked against the program task's prompt (and refused against the assistant suite), and
    --eval-golden with a program suite runs the program task's direct strategy on the adapter."""
    import shutil
    from pathlib import Path

    from training.data.program import build_program_set
    root = Path(__file__).resolve().parents[1]
    suite_dir = tmp_path / "program"
    suite_dir.mkdir()
    shutil.copy(root / "suites" / "program" / "suite.toml", suite_dir)
    lines = (root / "suites" / "program" / "cases.jsonl").read_text().splitlines()[:2]
    (suite_dir / "cases.jsonl").write_text("\n".join(lines) + "\n")
    data = tmp_path / "data"
    build_program_set(data, n=40, golden=[suite_dir / "cases.jsonl"])
    monkeypatch.chdir(tmp_path)
    job = dict(data=str(data), base_model=str(tiny), engine="trl", max_steps=2, batch_size=2, grad_accum=1,
               max_length=4096, logging_steps=1, eval_steps=2, lora_r=4, lora_alpha=8, eval_max_new_tokens=8)
    with pytest.raises(TrainingSetupError, match="differs from the harness's evaluation prompt for a tool_call suite"):
        main(Job(out=str(tmp_path / "wrong"), **job))
    record = main(Job(out=str(tmp_path / "adapter"), golden=str(suite_dir), eval_golden=True, **job))
    summary = json.loads((tmp_path / "reports" / "latest" / "summary.json").read_text())
    assert summary["task"] == "program" and summary["strategy"] == "direct" and summary["n_cases"] == 2
    assert summary["model"] == "local-adapter" and record["golden"]["run_id"] == summary["run_id"]
    assert record["golden"]["case_pass_rate"] == summary["case_pass_rate"]


def test_native_examples_render_the_tools_in_the_template(tokenizer, tmp_path):
    import shutil
    from pathlib import Path

    from training.data.written import read_examples
    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "examples" / "kitchen", tmp_path / "k")
    (tmp_path / "k" / "suite.toml").write_text('[reply]\nformat = "native"\n')
    suite = resolve_suite([tmp_path / "k"])
    [ex] = [e for e in read_examples(root / "examples" / "kitchen-training.jsonl", suite) if e["kind"] == "single"][:1]
    check_template_parity(tokenizer, [ex], suite)
    tok = tokenize_example(tokenizer, ex, stop_ids(tokenizer))
    masked = tokenizer.decode([t for t, label in zip(tok.input_ids, tok.labels) if label == IGNORE])
    assert "Given the following functions" in masked and '"name": "setTimer"' in masked
    labelled = tokenizer.decode([t for t, label in zip(tok.input_ids, tok.labels) if label != IGNORE])
    assert labelled == ex["messages"][-1]["content"] + "<|eot_id|>"


def test_unsloth_is_imported_before_transformers_trl_and_peft(tmp_path):
    """In a fresh process, with the engine resolved to unsloth, the first of these imports is unsloth's (a stand-in
    package records what was already imported, then stops the run)."""
    import subprocess
    import sys
    from pathlib import Path

    fake = tmp_path / "site" / "unsloth"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import sys\nprint('already imported:', sorted(m for m in ('transformers', 'trl', 'peft') if m in sys.modules))\n"
        "raise SystemExit(0)\n")
    script = ("import training.train as t\nt.cuda_available = lambda: True\nt.unsloth_installed = lambda: True\n"
              f"t.cli(['--data', {str(tmp_path)!r}, '--engine', 'unsloth'])\n")
    (tmp_path / "train.jsonl").write_text("")
    root = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": f"{tmp_path / 'site'}:{root}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert "already imported: []" in done.stdout, done.stdout + done.stderr


def test_two_processes_train_one_adapter_with_accelerate(tiny, data, tmp_path):
    """`accelerate launch` (DDP) runs the TRL engine unchanged: two CPU processes (gloo) share each step, one of
    them writes the outputs, and job.json records the world size. (`accelerate launch --cpu` starts one process
    unless MPI is installed: --multi_gpu with --device cpu is accelerate's multi-process launcher on CPUs.)"""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "adapter"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
           "-m", "training.train", "--data", str(data), "--out", str(out), "--base-model", str(tiny), "--engine", "trl",
           "--device", "cpu", "--max-steps", "2", "--batch-size", "2", "--grad-accum", "1", "--logging-steps", "1",
           "--eval-steps", "100", "--lora-r", "4", "--lora-alpha", "8"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    job = json.loads((out / "job.json").read_text())
    assert job["world_size"] == 2 and job["result"]["steps"] == 2
    assert done.stdout.count("trained 2 steps") == 1  # one process reports and writes
    assert (out / "adapter_model.safetensors").is_file() and len((out / "metrics.csv").read_text().splitlines()) >= 2


def test_the_loss_on_labelled_positions_equals_the_full_causal_lm_loss_and_its_gradient(tiny):
    """label_positions_loss runs the vocabulary head only where a label is; its value and its gradients are the
    model's own causal-LM loss over the same batch (two rows, labels at different places, one padded)."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.train import label_positions_loss

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    ids = torch.randint(5, model.config.vocab_size, (2, 24))
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    labels = torch.full_like(ids, IGNORE)
    labels[0, 10:15] = ids[0, 10:15]
    labels[1, 3:6] = ids[1, 3:6]
    labels[1, 17:20] = ids[1, 17:20]
    inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    ours = label_positions_loss(model, inputs)
    ours_grads = grads(ours)
    reference = model(**inputs).loss
    reference_grads = grads(reference)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    assert len(ours_grads) == len(reference_grads) > 0
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(ours_grads, reference_grads))
    # under gradient accumulation the divisor is the tokens of every micro-batch, as Trainer counts them
    assert label_positions_loss(model, inputs, num_items_in_batch=22).item() == pytest.approx(reference.item() * 11 / 22, rel=1e-5)


def test_the_per_example_average_weighs_every_reply_alike(tiny):
    """loss_average 'example': the mean over rows of each row's own mean loss (row 0 has 5 labelled tokens, row 1
    has 6), computed from the model's per-row causal-LM losses; divided by the accumulation steps under Trainer's
    token count, and refused with TRL's kernel."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.train import Job, label_positions_loss

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    ids = torch.randint(5, model.config.vocab_size, (2, 24))
    labels = torch.full_like(ids, IGNORE)
    labels[0, 10:15] = ids[0, 10:15]
    labels[1, 3:6] = ids[1, 3:6]
    labels[1, 17:20] = ids[1, 17:20]
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    rows = [model(input_ids=ids[i:i + 1], labels=labels[i:i + 1]).loss.item() for i in range(2)]
    ours = label_positions_loss(model, inputs, per_example=True)
    assert ours.item() == pytest.approx(sum(rows) / 2, rel=1e-5)
    assert label_positions_loss(model, inputs).item() == pytest.approx((5 * rows[0] + 6 * rows[1]) / 11, rel=1e-5)
    accumulated = label_positions_loss(model, inputs, num_items_in_batch=22, per_example=True, accumulation_steps=2)
    assert accumulated.item() == pytest.approx(sum(rows) / 4, rel=1e-5)
    with pytest.raises(ValueError, match="loss_average"):
        Job.from_dict({"loss": "trl", "loss_average": "example"})


def test_a_prefix_every_row_shares_runs_once_with_the_same_loss_and_gradients(tiny, monkeypatch):
    """Rows that open with the same unlabelled tokens (the system prompt) share one prefix forward: the loss and
    every gradient equal the rows run whole; right padding, and a label inside the prefix, stop the sharing there."""
    import torch
    from transformers import AutoModelForCausalLM

    import training.train as tt

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    common = torch.randint(5, model.config.vocab_size, (40,))
    ids = torch.stack([torch.cat([common, torch.randint(5, model.config.vocab_size, (12,))]) for _ in range(3)])
    mask = torch.ones_like(ids)
    mask[2, 48:] = 0  # right padding, as the collator pads
    labels = torch.full_like(ids, IGNORE)
    labels[0, 44:50] = ids[0, 44:50]
    labels[1, 42:52] = ids[1, 42:52]
    labels[2, 45:48] = ids[2, 45:48]
    inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    assert tt.shared_prefix_length(ids, labels, mask) == 40  # the rows differ from column 40 on
    assert tt.shared_prefix_length(ids, torch.where(torch.arange(52) == 20, ids, labels), mask) == 19

    calls = []
    real = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: calls.append(k["input_ids"].shape) or real(*a, **k))

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    shared = tt.label_positions_loss(model, inputs, pack=False)
    shared_grads = grads(shared)
    assert calls == [torch.Size([1, 40]), torch.Size([3, 12])]  # the prefix once, then only each row's own part
    whole = tt.label_positions_loss(model, inputs, share_prefix=False)
    whole_grads = grads(whole)
    assert shared.item() == pytest.approx(whole.item(), rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(shared_grads, whole_grads))
    # packed: the rows' own parts as one row without their padding (12 + 12 + 8 tokens), the same loss and gradients
    calls.clear()
    packed = tt.label_positions_loss(model, inputs)
    packed_grads = grads(packed)
    assert calls == [torch.Size([1, 40]), torch.Size([1, 32])]
    assert packed.item() == pytest.approx(whole.item(), rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(packed_grads, whole_grads))
    each = tt.label_positions_loss(model, inputs, per_example=True, share_prefix=False)
    assert tt.label_positions_loss(model, inputs, per_example=True).item() == pytest.approx(each.item(), rel=1e-5)
    model.config._attn_implementation = "eager"  # the additive mask
    assert tt.label_positions_loss(model, inputs).item() == pytest.approx(whole.item(), rel=1e-5)
    model.config._attn_implementation = "sdpa"
    # without autograd through the prefix: the same loss; gradients only along the rows' own positions
    constant = tt.label_positions_loss(model, inputs, prefix_gradient=False)
    constant_grads = grads(constant)
    assert constant.item() == pytest.approx(whole.item(), rel=1e-5)
    assert len(constant_grads) == len(whole_grads) and any(g.abs().sum() > 0 for g in constant_grads)
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(constant_grads, whole_grads))


def test_the_cpu_default_dtype_follows_the_cpus_bf16_instructions(monkeypatch):
    """bf16 on a CPU with avx512_bf16 / amx_bf16 (it trains faster there), fp32 on one without; CUDA keeps bf16."""
    import training.train as tt

    monkeypatch.setattr(tt, "cuda_available", lambda: False)
    monkeypatch.setattr(tt, "cpu_has_bf16", lambda: True)
    assert tt.resolve_device_dtype(Job()) == ("cpu", "bfloat16")
    assert tt.resolve_device_dtype(Job(dtype="float32")) == ("cpu", "float32")
    monkeypatch.setattr(tt, "cpu_has_bf16", lambda: False)
    assert tt.resolve_device_dtype(Job()) == ("cpu", "float32")


def test_fast_lora_dropout_keeps_dropouts_distribution_and_replaces_every_lora_dropout(tiny):
    """FastDropout drops round(p * 65536) / 65536 of the elements (the same p as nn.Dropout to 6 decimals), scales
    the kept ones so the mean is the input's, passes gradients only through kept elements, is the identity in eval
    mode and reproducible under a seed; fast_lora_dropout puts it in every LoRA layer of a PEFT model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.kernels import FastDropout, fast_lora_dropout

    drop = FastDropout(0.05)
    assert drop.p == pytest.approx(0.05, abs=5e-6)
    x = torch.ones(1000, 1001, requires_grad=True)  # an odd element count: draws come four to a 64-bit draw
    torch.manual_seed(0)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(drop.p, abs=0.002)  # 1e6 draws: 3.5 standard errors
    assert y[y != 0].unique().tolist() == pytest.approx([1 / (1 - drop.p)])
    assert y.mean().item() == pytest.approx(1.0, abs=0.003)
    y.sum().backward()
    assert torch.equal(x.grad != 0, y != 0)
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # the same seed, the same mask
    assert not torch.equal(drop(x), y)  # the generator moved on
    drop.eval()
    assert drop(x) is x
    assert FastDropout(0.0).train()(x) is x
    with pytest.raises(ValueError, match="dropout probability"):
        FastDropout(1.0)

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny),
                           LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules="all-linear"))
    before = sum(isinstance(m, torch.nn.Dropout) for m in model.modules())
    assert before > 0 and fast_lora_dropout(model) == before
    fast = [m for m in model.modules() if isinstance(m, FastDropout)]
    assert len(fast) == before and all(m.p == pytest.approx(0.1, abs=1e-5) for m in fast)
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
