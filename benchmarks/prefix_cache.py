"""The local backend's prefix-cached greedy loop against transformers' generate() on the same golden cases: wall
time of each, the one-time shared prefill, and whether every reply is identical.

    python benchmarks/prefix_cache.py                       # the shipped SmolLM2-135M-Instruct, 16 cases, 64 tokens
    python benchmarks/prefix_cache.py --base-model DIR --cases 75 --max-new-tokens 384 --dtype bfloat16
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness.backends.local import GenerationSettings, LocalBackend, shipped_model
from harness.core.engine import evaluate
from harness.suite import resolve_suite
from harness.tasks.tool_call.task import ToolCallTask

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", help="default: the shipped model (harness.models)")
    ap.add_argument("--cases", type=int, default=16, help="the first N golden cases")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--skip-generate", action="store_true", help="time the prefix-cached loop only")
    args = ap.parse_args()
    base = args.base_model or shipped_model()
    suite = resolve_suite([GOLDEN])
    cases = [c for f in sorted(GOLDEN.glob("*.jsonl")) for c in ToolCallTask().load_cases(f, suite)[2]][:args.cases]
    texts = {}
    for cached in (True,) if args.skip_generate else (True, False):
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, prefix_cache=cached)
        backend = LocalBackend(base, settings=settings, device="cpu", dtype=args.dtype)
        started = time.perf_counter()
        replies, _ = evaluate(suite, backend, cases)  # the engine's requests and scorer, as any run
        wall = time.perf_counter() - started
        texts[cached] = [r.response for r in replies]
        tokens = sum(r.usage["completion_tokens"] for r in replies)
        latencies = sorted(r.latency_s for r in replies if r.latency_s is not None)
        p50, p95 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
        print(f"{'prefix cache' if cached else 'generate()  '}: {wall:6.1f} s for {len(replies)} cases at batch "
              f"{args.batch_size}, {tokens} new tokens ({wall / max(tokens, 1) * 1000:.1f} ms a token); shared prefill "
              f"{backend.prefill_s:.2f} s ({backend.prefix_tokens_computed} tokens, once); reply latency p50 "
              f"{p50:.2f} s, p95 {p95:.2f} s", flush=True)
        backend.close()
    if not args.skip_generate:
        same = sum(a == b for a, b in zip(texts[True], texts[False]))
        print(f"identical replies: {same}/{len(cases)}")


if __name__ == "__main__":
    main()
