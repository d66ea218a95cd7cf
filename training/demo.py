"""`make demo`: the whole loop on one CPU, with a tiny stand-in for Llama 3.2 3B.

    data -> tiny model (offline) -> golden suite on it -> stage A: full training (the stand-in learns the
    language and the chat format, which the real Instruct model already knows) -> golden suite ->
    stage B: LoRA, the real recipe -> golden suite on the adapter

Stage A is a curriculum in two steps: A1 on the training conversations without the system prompt (short, so many
more of them fit the budget: the stand-in learns to read the user's turn and answer it), then A2 on the same data
with the prompt. Trained on the full ~1,000-token prompt from the start, a random-init stand-in never learned to read
the user turn in this budget (the system prompt is 900 of those tokens): it gave every golden case the same reply.

Every stage is the product's own code: training.data, harness.tiny, training.train and
`pytest --model=local-...`. The golden suite is only measured, never trained on (decontamination on).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import jsonl
from harness.tiny import TinySpec, build_tiny_model
from training.data.build import BuildConfig, build
from training.data.generate import Composition
from training.train import Job, main as train

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DemoConfig:
    workdir: str = "demo"
    spec: TinySpec = TinySpec(vocab_size=2048, hidden_size=96, intermediate_size=384, num_hidden_layers=3,
                              num_attention_heads=4, num_key_value_heads=2, seed=0)
    # A1: conversations without the system prompt (~120 tokens), batch 16; A2: with it (~1,000 tokens: the system
    # prompt is 900 of them), batch 4, ~0.8 s a step on 2 cores.
    plain_steps: int = 350
    plain_batch_size: int = 16
    full_steps: int = 150
    full_lr: float = 4e-3
    lora_steps: int = 50
    lora_lr: float = 2e-3
    batch_size: int = 4
    max_new_tokens: int = 128
    composition: Composition = Composition()


def corpus(data: Path) -> list[str]:
    """Tokenizer training text: the training split's turns (never the golden suite)."""
    texts = []
    for row in jsonl.read_records(data / "train.jsonl"):
        texts += [m["content"] for m in row["messages"]]
    return texts


def without_system_prompt(data: Path, out: Path) -> Path:
    """Stage A1's data: the training and validation conversations with the system message left out."""
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        rows = jsonl.read_records(data / f"{split}.jsonl")
        rows = [{**r, "messages": [m for m in r["messages"] if m["role"] != "system"]} for r in rows]
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return out


def golden(label: str, model_args: list[str], reports: Path, max_new_tokens: int) -> dict:
    """The golden suite through pytest, as a user runs it; returns its summary."""
    run_id = f"demo-{label}"
    shutil.rmtree(reports / run_id, ignore_errors=True)  # the demo's own run of an earlier `make demo`
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir", str(ROOT), *model_args,
           "--cases", str(ROOT / "golden"), "--reports-dir", str(reports), "--run-id", run_id,
           "--max-new-tokens", str(max_new_tokens), "--tb=no", "--no-header"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    tail = proc.stdout[proc.stdout.find("golden suite:") - 30:] if "golden suite:" in proc.stdout else proc.stdout[-3000:]
    print("\n".join(line for line in tail.splitlines() if not line.startswith(("FAILED", "="))).strip())
    summary_path = reports / run_id / "summary.json"
    if not summary_path.is_file():
        raise RuntimeError(f"the golden run {label} wrote no summary:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads(summary_path.read_text())


def run(cfg: DemoConfig) -> None:
    work = Path(cfg.workdir).resolve()
    reports = work / "reports"
    times: dict[str, float] = {}

    def stage(name: str):
        print(f"\n=== {name} ===", flush=True)
        return time.perf_counter()

    t = stage("1/6 data: python -m training.data build")
    manifest = build(BuildConfig(out=str(work / "data"), composition=cfg.composition))
    print(f"{manifest['counts']['total']} examples; " + ", ".join(f"{k} {v['examples']}" for k, v in manifest["files"].items()))
    times["data"] = time.perf_counter() - t

    t = stage("2/6 tiny model, built offline")
    base = build_tiny_model(work / "tiny-random", cfg.spec, corpus(work / "data"))
    import torch
    from transformers import AutoModelForCausalLM

    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base).parameters())
    print(f"a {n_params / 1e6:.1f} M-parameter Llama (hidden {cfg.spec.hidden_size}, {cfg.spec.num_hidden_layers} layers, "
          f"vocab {cfg.spec.vocab_size}), random init: a DEMO STAND-IN for Llama 3.2 3B, {torch.get_num_threads()} CPU threads")
    times["tiny model"] = time.perf_counter() - t

    t = stage("3/6 golden suite on the untrained model (pytest --model=local-base)")
    before = golden("before", ["--model=local-base", f"--base-model={base}"], reports, cfg.max_new_tokens)
    times["golden before"] = time.perf_counter() - t

    t = stage("4/6 stage A1: full training on the conversations without the system prompt "
              "(python -m training.train --method full --no-prompt-check)")
    stage_a1 = work / "tiny-read"
    train(Job(data=str(without_system_prompt(work / "data", work / "data-no-system")), out=str(stage_a1),
              base_model=str(base), method="full", engine="trl", max_steps=cfg.plain_steps, learning_rate=cfg.full_lr,
              batch_size=cfg.plain_batch_size, grad_accum=1, logging_steps=50, eval_steps=10**6, warmup_ratio=0.05,
              lr_scheduler="cosine", seed=1, prompt_check=False))
    times["stage A1"] = time.perf_counter() - t

    t = stage("stage A2: full training with the system prompt (python -m training.train --method full)")
    stage_a = work / "tiny-trained"
    train(Job(data=str(work / "data"), out=str(stage_a), base_model=str(stage_a1), method="full", engine="trl",
              max_steps=cfg.full_steps, learning_rate=cfg.full_lr, batch_size=cfg.batch_size, grad_accum=1,
              logging_steps=25, eval_steps=10**6, warmup_ratio=0.05, lr_scheduler="cosine", seed=1))
    times["stage A2"] = time.perf_counter() - t

    t = stage("golden suite on the stage-A model (pytest --model=local-base)")
    middle = golden("stage-a", ["--model=local-base", f"--base-model={stage_a}"], reports, cfg.max_new_tokens)
    times["golden stage A"] = time.perf_counter() - t

    t = stage("5/6 stage B: LoRA r16 all-linear, the real recipe (python -m training.train)")
    adapter = work / "adapter"
    train(Job(data=str(work / "data"), out=str(adapter), base_model=str(stage_a), engine="trl",
              max_steps=cfg.lora_steps, learning_rate=cfg.lora_lr, batch_size=cfg.batch_size, grad_accum=1,
              logging_steps=10, eval_steps=10**6, seed=2))
    times["stage B (LoRA)"] = time.perf_counter() - t

    t = stage("6/6 golden suite on the adapter (pytest --model=local-adapter)")
    after = golden("after", ["--model=local-adapter", f"--adapter={adapter}"], reports, cfg.max_new_tokens)
    times["golden after"] = time.perf_counter() - t

    keys = ("case_pass_rate", "tool_selection_accuracy", "valid_json_rate", "schema_valid_rate",
            "disambiguation_accuracy", "no_tool_accuracy")
    print("\n=== before / after (golden suite, the same tiny model) ===")
    print(f"{'metric':<26}{'untrained':>10}{'stage A':>10}{'+ LoRA':>10}")
    for k in keys:
        cells = ["—" if s[k] is None else f"{s[k]:.3f}" for s in (before, middle, after)]
        print(f"{k:<26}" + "".join(f"{c:>10}" for c in cells))
    print(f"gate after LoRA: {'PASSED' if after['gate']['passed'] else 'FAILED'} "
          f"({'; '.join(f['message'] for f in after['gate']['failures'][:3]) or 'every threshold holds'})")
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f"; total {sum(times.values()):.0f} s")
    caveat = ("A toy: a tiny random-init stand-in trained on one CPU cannot copy names and places it never saw, so "
              "cases needing them fail whatever it learned, and in this budget it does not learn when not to call "
              "(behind the ~900-token tool list it starts a call on nearly every no-tool turn); the same commands "
              "train and evaluate the real 3B model on a GPU (README).")
    from harness.compare import compare_runs, format_comparison, load_run
    from harness.html_report import write_report

    print("\n=== paired comparison, untrained (A) vs stage A + LoRA (B): python -m harness compare ===")
    cmp = compare_runs(load_run(reports / "demo-before"), load_run(reports / "demo-after"))
    print("\n".join(format_comparison(cmp, limit=6, confusion=False)))
    page, _ = write_report([reports / "demo-before", reports / "demo-after"], notes=[caveat])
    print(f"reports: {reports}/demo-after/summary.json (and demo-before, demo-stage-a); "
          f"loss plots: {stage_a}/loss.png, {adapter}/loss.png")
    print(caveat)
    print(f"HTML report (before vs after, plots inline): {page}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=DemoConfig.workdir)
    parser.add_argument("--plain-steps", type=int, default=DemoConfig.plain_steps)
    parser.add_argument("--full-steps", type=int, default=DemoConfig.full_steps)
    parser.add_argument("--lora-steps", type=int, default=DemoConfig.lora_steps)
    parser.add_argument("--no-tool-fraction", type=float, default=DemoConfig.composition.no_tool_fraction)
    args = parser.parse_args(argv)
    comp = Composition(no_tool_fraction=args.no_tool_fraction,
                       general_fraction=DemoConfig.composition.general_fraction)
    run(DemoConfig(workdir=args.workdir, plain_steps=args.plain_steps, full_steps=args.full_steps,
                   lora_steps=args.lora_steps, composition=comp))


if __name__ == "__main__":
    main()
