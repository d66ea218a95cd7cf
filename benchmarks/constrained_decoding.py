"""Constrained decoding as a measured axis: per-token time free vs constrained, grammar compile time, and what the
grammar does to the metrics (McNemar between the two runs), on the golden suite.

    python benchmarks/constrained_decoding.py                              # the shipped SmolLM2, untrained
    python benchmarks/constrained_decoding.py --adapter demo/adapter        # the demo's LoRA on it
    python benchmarks/constrained_decoding.py --tiny --cases 16             # the random tiny model

Both runs go through the engine (harness.core.engine.evaluate): the same requests, the same scorer; only the
local backend's --th-decoding differs. Per-token time is the backend's own decoding time over the tokens it wrote
(batch 1 on the first --latency-cases cases, then the whole selection at --batch-size).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.backends.local import GenerationSettings, LocalBackend, shipped_model  # noqa: E402
from harness.compare import mcnemar  # noqa: E402
from harness.core.engine import evaluate  # noqa: E402
from harness.grammar import library_version  # noqa: E402
from harness.suite import resolve_suite  # noqa: E402
from harness.tasks.tool_call.task import ToolCallTask, reply_grammar  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
KEYS = ("case_pass_rate", "tool_selection_accuracy", "valid_json_rate", "schema_valid_rate", "no_tool_accuracy",
        "disambiguation_accuracy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-model", help="default: the shipped SmolLM2-135M-Instruct")
    ap.add_argument("--adapter")
    ap.add_argument("--tiny", action="store_true", help="the random tiny model instead (the unit tests' stand-in)")
    ap.add_argument("--cases", type=int, default=0, help="the first N golden cases (0: all)")
    ap.add_argument("--latency-cases", type=int, default=6, help="cases timed at batch 1")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=192)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    if args.tiny:
        from harness.tiny import build_tiny_model

        base = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="bench-tiny-")) / "model"))
    else:
        base = args.base_model or shipped_model()
    suite = resolve_suite([GOLDEN])
    task = ToolCallTask()
    cases = task.load_cases(GOLDEN / "assistant.jsonl", suite)[2]
    cases = cases[:args.cases] if args.cases else cases
    started = time.perf_counter()
    grammar = reply_grammar(suite.catalogue.to_function_tools(), suite.reply_format)
    build_s = time.perf_counter() - started
    print(f"model {base}{' + ' + args.adapter if args.adapter else ''}; {len(cases)} golden cases; llguidance "
          f"{library_version()}; reply grammar {grammar.sha256[:12]} built and checked in {build_s * 1000:.0f} ms "
          f"(once per suite, cached); unconstrained parts: {list(grammar.unconstrained) or 'none'}")

    def backend(decoding: str, batch: int) -> LocalBackend:
        return LocalBackend(base, args.adapter, device="cpu", dtype=args.dtype,
                            settings=GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=batch,
                                                        decoding=decoding))

    runs, costs = {}, {}
    for decoding in ("free", "constrained"):
        one = backend(decoding, 1)
        started = time.perf_counter()
        timed, _ = evaluate(suite, one, cases[:args.latency_cases])
        wall_1 = time.perf_counter() - started
        tokens_1 = sum((r.usage or {}).get("completion_tokens", 0) for r in timed)
        mask_1 = one.constraint.mask_s if one.constraint else 0.0
        many = backend(decoding, args.batch_size)
        started = time.perf_counter()
        results, figures = evaluate(suite, many, cases)
        wall_n = time.perf_counter() - started
        tokens_n = sum((r.usage or {}).get("completion_tokens", 0) for r in results)
        mask_n = many.constraint.mask_s if many.constraint else 0.0
        runs[decoding] = (results, figures)
        costs[decoding] = {1: (wall_1, tokens_1, mask_1), args.batch_size: (wall_n, tokens_n, mask_n)}
        print(f"{decoding:<11} batch 1: {wall_1 / max(tokens_1, 1) * 1000:6.1f} ms a token ({tokens_1} tokens, masks "
              f"{mask_1:.2f} s); batch {args.batch_size}: {wall_n / max(tokens_n, 1) * 1000:6.1f} ms a token "
              f"({tokens_n} tokens, {wall_n:.0f} s, masks {mask_n:.2f} s)", flush=True)
    # The two runs write different replies (their lengths, hence prefill's share of a token, differ): the grammar's
    # own cost is its mask time a token, added to what the free run spends a token.
    for batch, (wall_f, tokens_f, _) in costs["free"].items():
        _, tokens_c, mask_c = costs["constrained"][batch]
        free_ms, mask_ms = wall_f / max(tokens_f, 1) * 1000, mask_c / max(tokens_c, 1) * 1000
        print(f"batch {batch}: the grammar's masks {mask_ms:.2f} ms a token on top of free's {free_ms:.1f} ms = "
              f"{(free_ms + mask_ms) / free_ms:.3f}x (goal <= 1.10x)")
    (free, f_fig), (cons, c_fig) = runs["free"], runs["constrained"]
    print(f"\n{'metric':<26}{'free':>10}{'constrained':>14}")
    for key in KEYS:
        a, b = f_fig.get(key), c_fig.get(key)
        print(f"{key:<26}{'—' if a is None else f'{a:.3f}':>10}{'—' if b is None else f'{b:.3f}':>14}")
    only_free = sum(a.passed and not b.passed for a, b in zip(free, cons))
    only_cons = sum(b.passed and not a.passed for a, b in zip(free, cons))
    outcomes = {k: sum(r.outcome == k for r in cons) for k in ("call", "malformed", "abstention")}
    print(f"McNemar: {only_free} passed only free, {only_cons} only constrained, p = {mcnemar(only_free, only_cons):.3g}; "
          f"constrained outcomes: {outcomes}")


if __name__ == "__main__":
    main()
