"""Training throughput per engine and configuration: tokens/s, steps/s, peak memory, share of the GPU's peak.

    python benchmarks/training_throughput.py --steps 20                          # a small tiny model, CPU
    python benchmarks/training_throughput.py --base-model models/smollm2-135m-instruct --steps 6 \
        --dtypes float32,bfloat16 --losses trl,labelled --configs trl:lora:nockpt,trl:lora:ckpt --batch-sizes 1
    python -m harness.tiny --shape llama-3.2-3b --out /tmp/standin                # the 3B stand-in, then on a GPU:
    python benchmarks/training_throughput.py --base-model /tmp/standin --steps 30 --configs \\
        trl:lora:ckpt,trl:qlora:ckpt,unsloth:qlora:ckpt,unsloth:qlora:nockpt --batch-sizes 4,8

Each configuration is engine:method:checkpointing (method lora = 16-bit base, qlora = 4-bit base, full = every
weight; ckpt / nockpt = gradient checkpointing), run through the product's own trainer (training.train.main)
on the assistant data set. Steady state: the first logged interval (warm-up, compilation) is left out of
tokens/s. Share of peak = 6 x parameters x tokens/s / --peak-tflops (a LoRA step still runs the base's forward
and backward; H100 SXM bf16 dense ~ 790 TFLOP/s).
"""
from __future__ import annotations

import argparse
import csv
import itertools
import resource
import sys
import tempfile
from pathlib import Path

import torch

from harness.tiny import TinySpec, build_tiny_model
from training.data.build import BuildConfig, build, corpus
from training.train import Job, cuda_available, unsloth_installed
from training.train import main as train


def steady_tokens_per_s(metrics: Path) -> float | None:
    """Mean tokens/s over the logged train intervals after the first."""
    rows = [r for r in csv.DictReader(metrics.open()) if r["tokens_per_s"]]
    values = [float(r["tokens_per_s"]) for r in rows[1:]] or [float(r["tokens_per_s"]) for r in rows]
    return sum(values) / len(values) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", help="a model folder, e.g. the 3B stand-in (default: a small tiny model built here)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-sizes", default="4", help="comma-separated per-device batch sizes")
    ap.add_argument("--configs", default=None, help="engine:method:ckpt|nockpt, comma-separated "
                                                    "(default: every engine and method this machine runs)")
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--dtypes", default="", help="comma-separated (default: the trainer's for this device)")
    ap.add_argument("--losses", default="labelled", help="labelled (head only where labels are) and/or trl (TRL's kernel)")
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--prefix-gradient", default="on", help="on and/or off: the shared prefix run with or without "
                                                            "autograd (training.train.Job.prefix_gradient)")
    ap.add_argument("--pack", default="on", help="on and/or off: the rows after the shared prefix packed without "
                                                 "padding (training.train.Job.pack_rows)")
    ap.add_argument("--fast-dropout", default="on", help="on and/or off: LoRA dropout's masks from 16-bit draws "
                                                         "(training.train.Job.fast_dropout) or torch's nn.Dropout")
    ap.add_argument("--examples", type=int, default=0, help="train on the first N training examples (0: all)")
    ap.add_argument("--peak-tflops", type=float, default=790.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="train-bench-"))
    build(BuildConfig(out=str(work / "data")))
    if args.base_model:
        base = Path(args.base_model)
    else:
        spec = TinySpec(vocab_size=2048, hidden_size=128, intermediate_size=512, num_hidden_layers=4)
        base = build_tiny_model(work / "tiny", spec, corpus(work / "data"))
    gpu = cuda_available()
    if args.configs:
        configs = [tuple(c.split(":")) for c in args.configs.split(",")]
    else:
        configs = [("trl", "lora", "ckpt" if gpu else "nockpt"), ("trl", "full", "nockpt")]
        if gpu:
            configs += [("trl", "qlora", "ckpt")] + ([("unsloth", "qlora", "ckpt")] if unsloth_installed() else [])
    from transformers import AutoConfig

    n_params = _parameters(AutoConfig.from_pretrained(base))
    print(f"model {base} ({n_params / 1e9:.3f} B parameters); torch {torch.__version__}, cuda {gpu}, "
          f"{torch.get_num_threads()} CPU threads; {args.steps} steps per configuration")
    data = work / "data"
    if args.examples:
        rows = (data / "train.jsonl").read_text().splitlines(keepends=True)[:args.examples]
        (work / "subset").mkdir()
        (work / "subset" / "train.jsonl").write_text("".join(rows))
        data = work / "subset"
    batches = [int(b) for b in args.batch_sizes.split(",")]
    dtypes = args.dtypes.split(",") if args.dtypes else [None]
    grid = itertools.product(batches, configs, dtypes, args.losses.split(","), args.prefix_gradient.split(","),
                             args.pack.split(","), args.fast_dropout.split(","))
    for batch, (engine, method, ckpt), dtype, loss, through_prefix, pack, fast in grid:
        label = (f"{engine:<8} {method:<5} {ckpt:<6} {dtype or 'default':<8} loss {loss:<8} prefix grad "
                 f"{through_prefix:<3} pack {pack:<3} fast dropout {fast:<3} batch {batch:>2}x{args.grad_accum}")
        out = work / f"{engine}-{method}-{ckpt}-{dtype}-{loss}-{through_prefix}-{pack}-{fast}-{batch}"
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        try:
            record = train(Job(data=str(data), out=str(out), base_model=str(base), engine=engine,
                               method="full" if method == "full" else "lora", load_in_4bit=method == "qlora",
                               gradient_checkpointing=ckpt == "ckpt", max_steps=args.steps, batch_size=batch,
                               grad_accum=args.grad_accum, logging_steps=max(1, args.steps // 6),
                               eval_steps=10**6, max_length=args.max_length, learning_rate=1e-4,
                               dtype=dtype, loss=loss, prefix_gradient=through_prefix == "on", pack_rows=pack == "on",
                               fast_dropout=fast == "on"))
        except Exception as exc:  # one configuration this machine cannot run does not stop the others
            print(f"{label}: not run ({type(exc).__name__}: {exc})")
            continue
        seconds = record["result"]["train_seconds"]
        steady = steady_tokens_per_s(out / "metrics.csv")
        peak = (torch.cuda.max_memory_allocated() / 2**30 if gpu
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
        share = f", {6 * n_params * steady / (args.peak_tflops * 1e12):.1%} of peak" if gpu and steady else ""
        print(f"{label} ({record['dtype']}): {args.steps / seconds:.3f} steps/s, {steady or 0:.0f} tokens/s "
              f"steady{share}, peak memory {peak:.1f} GiB "
              f"({'CUDA allocated' if gpu else 'process max RSS, cumulative'}); "
              f"{record['data']['mean_sequence_tokens']:.0f} tokens per example", flush=True)


def _parameters(config) -> int:
    with torch.device("meta"):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    sys.exit(main())
