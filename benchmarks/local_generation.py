"""Local backend speed: one-time costs apart from per-case costs, batch 1 latency and batch-N throughput.

    python benchmarks/local_generation.py                                    # tiny offline model, CPU
    python -m harness.tiny --shape llama-3.2-3b --out /tmp/standin           # the 3B stand-in (6.4 GB), then:
    python benchmarks/local_generation.py --base-model /tmp/standin --device cuda --mode compiled --max-new-tokens 64

Prints, each measured on its own:
- one-time: model load, the weights hash (first run and again: it is cached on disk by path, size and mtime),
  the warm-up of the static/compiled modes;
- batch 1: p50/p95 seconds per reply and milliseconds per decoding step, against the memory-bandwidth floor
  (weight bytes / --bandwidth-tbs; H100 SXM ~3.35 TB/s) — target within 3x;
- batch N (--batch-size, default 16): completion tokens/s, and how many times batch 1's — target >= 10x;
- harness overhead: the harness's batched generate + parse + score + report against raw `model.generate` on the
  same token batches, settings and mode (target <= 1.25x). Nothing timed includes a one-time cost.
Random stand-in weights rarely stop early: every reply runs to --max-new-tokens, which is what a latency bound wants.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from harness.backends.local import GenerationSettings, LocalBackend
from harness.core.engine import evaluate, first_requests
from harness.hashing import model_weights_sha256
from harness.report import RunWriter
from harness.suite import resolve_suite
from harness.tasks.tool_call.metrics import DEFAULT_THRESHOLDS, percentile
from harness.tasks.tool_call.summary import build_summary
from harness.tasks.tool_call.task import ToolCallTask, case_record
from harness.tiny import build_tiny_model

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "assistant.jsonl"


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", help="model folder (default: a freshly built tiny model)")
    ap.add_argument("--adapter")
    ap.add_argument("--merge-adapter", action="store_true")
    ap.add_argument("--device")
    ap.add_argument("--dtype")
    ap.add_argument("--mode", default="auto", help="generation mode: auto, dynamic, static, compiled")
    ap.add_argument("--cases", default=str(GOLDEN))
    ap.add_argument("--n-cases", type=int, default=24, help="cases timed at batch 1 (all of them at batch N)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--bandwidth-tbs", type=float, default=3.35, help="memory bandwidth for the batch-1 floor")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    base = args.base_model or str(build_tiny_model(tmp / "tiny"))
    suite = resolve_suite([Path(args.cases)])
    cases = ToolCallTask().load_cases(Path(args.cases), suite)[2]
    requests = first_requests(ToolCallTask(), suite, cases)  # for the raw generate() baseline below

    def backend(batch_size: int) -> LocalBackend:
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=batch_size, mode=args.mode,
                                      merge_adapter=args.merge_adapter)
        return LocalBackend(base, args.adapter, settings=settings, device=args.device, dtype=args.dtype)

    # one-time costs
    one, load_s = _timed(lambda: backend(1))
    _, hash_first_s = _timed(lambda: model_weights_sha256(base))
    _, hash_again_s = _timed(lambda: model_weights_sha256(base))
    weight_bytes = sum(p.numel() * p.element_size() for p in one.model.parameters())

    # batch 1: per-reply latency (the backend's own clock; its warm-up happens inside the first generate, untimed)
    replies, _ = evaluate(suite, one, cases[:args.n_cases])
    lat = [r.latency_s for r in replies if r.latency_s]
    steps = [r.latency_s / r.usage["completion_tokens"] for r in replies if r.latency_s and r.usage["completion_tokens"]]
    tokens_1 = sum(r.usage["completion_tokens"] for r in replies) / sum(lat)
    warmup_1 = one.warmup_s
    one.close()

    # batch N: throughput and the harness's own overhead against raw generate, both after warm-up
    many = backend(args.batch_size)
    evaluate(suite, many, cases[:args.batch_size])  # warm-up (and, for the static modes, the compile and cache)
    started = time.perf_counter()
    results, _ = evaluate(suite, many, cases)
    batch_replies = results
    summary = build_summary(results, run_id="bench", model=many.name, fingerprint={"benchmark": True},
                            thresholds=DEFAULT_THRESHOLDS, disambiguation_tools=suite.disambiguation_tools)
    RunWriter(tmp / "reports", "bench").finish(summary, (case_record(r) for r in results))
    harness_wall = time.perf_counter() - started
    tokens_n = sum(r.usage["completion_tokens"] for r in batch_replies if r.usage) / harness_wall

    tok, model = many.tokenizer, many.model
    batches = [tok([many.render(r) for r in requests[i:i + args.batch_size]], return_tensors="pt", padding=True,
                   add_special_tokens=False).to(model.device) for i in range(0, len(requests), args.batch_size)]
    started = time.perf_counter()
    with torch.inference_mode():
        for enc in batches:
            model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False, temperature=None, top_p=None,
                           top_k=None, eos_token_id=many.stop_ids, pad_token_id=tok.pad_token_id, **many._mode_kwargs())
    if many.device.startswith("cuda"):
        torch.cuda.synchronize()
    raw = time.perf_counter() - started

    floor_ms = weight_bytes / (args.bandwidth_tbs * 1e12) * 1e3
    step_ms = statistics.median(steps) * 1e3 if steps else float("nan")
    print(f"model: {base}{' + ' + args.adapter if args.adapter else ''} on {one.device}/{str(one.dtype).removeprefix('torch.')}, "
          f"mode {one.mode}, {weight_bytes / 1e9:.2f} GB of weights, max_new_tokens {args.max_new_tokens}")
    print(f"one-time: load {load_s:.2f} s, weights hash {hash_first_s:.2f} s (again, from the on-disk cache: "
          f"{hash_again_s:.3f} s), warm-up {warmup_1 or 0:.2f} s at batch 1 -- none of it in the figures below")
    print(f"batch 1 ({len(lat)} replies): p50 {percentile(lat, 0.5):.3f} s, p95 {percentile(lat, 0.95):.3f} s per reply; "
          f"{step_ms:.2f} ms per step, floor {floor_ms:.2f} ms at {args.bandwidth_tbs} TB/s "
          f"({step_ms / floor_ms:.1f}x, target <= 3x); {tokens_1:.0f} tokens/s")
    print(f"batch {args.batch_size} ({len(requests)} replies): {tokens_n:.0f} tokens/s = {tokens_n / tokens_1:.1f}x batch 1 "
          f"(target >= 10x)")
    print(f"harness overhead at batch {args.batch_size}: {harness_wall:.2f} s vs raw model.generate {raw:.2f} s = "
          f"{harness_wall / raw:.3f}x (target <= 1.25x)")


if __name__ == "__main__":
    main()
