"""Local backend speed on the golden suite: sequential vs batched, and harness overhead.

    python benchmarks/local_generation.py                       # tiny offline model, CPU
    python benchmarks/local_generation.py --base-model DIR --adapter DIR --device cuda

Prints: wall time one prompt at a time vs batched (target: batched >= 3x faster at batch 8), and
harness overhead = (render + generate + decode + parse + score + report) / raw `model.generate` on
the same token batches and settings (target: <= 1.25x).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from harness.backends.base import Request
from harness.backends.local import GenerationSettings, LocalBackend
from harness.cases import load_case_file
from harness.gate import DEFAULT_THRESHOLDS
from harness.match import score
from harness.prompt import build_messages
from harness.report import RunWriter, case_record
from harness.summary import build_summary
from harness.tiny import build_tiny_model
from harness.suite import resolve_suite

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "assistant.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", help="model folder (default: a freshly built tiny model)")
    ap.add_argument("--adapter")
    ap.add_argument("--device")
    ap.add_argument("--cases", default=str(GOLDEN))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    base = args.base_model or str(build_tiny_model(tmp / "tiny"))
    suite = resolve_suite([Path(args.cases)])
    catalogue = suite.catalogue
    cases = load_case_file(args.cases, catalogue).cases
    requests = [Request(c.id, tuple(build_messages(c, catalogue, suite.template)), c.now) for c in cases]

    def backend(batch_size: int) -> LocalBackend:
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=batch_size)
        return LocalBackend(base, args.adapter, settings=settings, device=args.device)

    seq = backend(1)
    seq.generate(requests[:2])  # warm-up
    t0 = time.perf_counter()
    seq.generate(requests)
    sequential = time.perf_counter() - t0

    bat = backend(args.batch_size)
    bat.generate(requests[:2])
    t0 = time.perf_counter()
    replies = bat.generate(requests)
    results = [score(c, r.text, catalogue, error=r.error, latency_s=r.latency_s) for c, r in zip(cases, replies)]
    summary = build_summary(results, run_id="bench", model=bat.name, fingerprint=bat.fingerprint(),
                            thresholds=DEFAULT_THRESHOLDS, disambiguation_tools=suite.disambiguation_tools)
    RunWriter(tmp / "reports", "bench").finish(summary, (case_record(r) for r in results))
    harness_wall = time.perf_counter() - t0

    # The same prompts, tokenized up front, straight into model.generate with the same settings.
    tok, model = bat.tokenizer, bat.model
    batches = [
        tok([bat.render(r) for r in requests[i:i + args.batch_size]], return_tensors="pt", padding=True,
            add_special_tokens=False).to(model.device)
        for i in range(0, len(requests), args.batch_size)
    ]
    t0 = time.perf_counter()
    with torch.inference_mode():
        for enc in batches:
            model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False, temperature=None, top_p=None,
                           top_k=None, eos_token_id=bat.stop_ids, pad_token_id=tok.pad_token_id)
    raw = time.perf_counter() - t0

    print(f"model: {base}{' + ' + args.adapter if args.adapter else ''} on {bat.device}/{bat.dtype}, "
          f"{len(cases)} cases, max_new_tokens {args.max_new_tokens}, torch threads {torch.get_num_threads()}")
    print(f"sequential (batch 1):      {sequential:7.2f} s")
    print(f"batched (batch {args.batch_size}):         {harness_wall:7.2f} s   speed-up {sequential / harness_wall:.2f}x (target >= 3x)")
    print(f"raw model.generate:        {raw:7.2f} s   harness overhead {harness_wall / raw:.3f}x (target <= 1.25x)")


if __name__ == "__main__":
    main()
