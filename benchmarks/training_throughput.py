"""Training throughput on the tiny model: tokens/s, steps/s and peak memory, per available engine.

    python benchmarks/training_throughput.py [--steps 20] [--batch-size 4]

Uses the product's own trainer (training.train.main) on a freshly built data set and tiny model.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import torch

from harness.tiny import TinySpec, build_tiny_model
from training.data.build import BuildConfig, build
from training.demo import corpus
from training.train import Job, cuda_available, main as train, unsloth_installed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="train-bench-"))
    build(BuildConfig(out=str(work / "data")))
    spec = TinySpec(vocab_size=2048, hidden_size=128, intermediate_size=512, num_hidden_layers=4)
    base = build_tiny_model(work / "tiny", spec, corpus(work / "data"))
    engines = ["trl"] + (["unsloth"] if cuda_available() and unsloth_installed() else [])
    print(f"tiny Llama (hidden {spec.hidden_size}, {spec.num_hidden_layers} layers, vocab {spec.vocab_size}); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, cuda {cuda_available()}")
    for engine in engines:
        for method in (("lora", "full") if engine == "trl" else ("lora",)):
            out = work / f"{engine}-{method}"
            if cuda_available():
                torch.cuda.reset_peak_memory_stats()
            record = train(Job(data=str(work / "data"), out=str(out), base_model=str(base), engine=engine, method=method,
                               max_steps=args.steps, batch_size=args.batch_size, grad_accum=1, logging_steps=5,
                               eval_steps=10**6, learning_rate=1e-3))
            seconds = record["result"]["train_seconds"]
            tokens = args.steps * args.batch_size * record["data"]["mean_sequence_tokens"]
            peak = (torch.cuda.max_memory_allocated() / 2**20 if cuda_available()
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            print(f"{engine:<8} {method:<5} {args.steps} steps x batch {args.batch_size}: {seconds:.1f} s, "
                  f"{args.steps / seconds:.2f} steps/s, {tokens / seconds:.0f} tokens/s, "
                  f"peak memory {peak:.0f} MiB ({'CUDA allocated' if cuda_available() else 'process max RSS, cumulative'})")


if __name__ == "__main__":
    sys.exit(main())
