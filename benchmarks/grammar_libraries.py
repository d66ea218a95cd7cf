"""The candidates for constrained decoding, measured on the golden suite's call schema: llguidance (the one the
harness uses), XGrammar and outlines-core. For each: the tokenizer's one-time preparation, the compile time of the
schema, whether it compiles exactly, and the per-token mask time while walking real call replies token by token.

    pip install --no-deps --target /tmp/gramlibs xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2 outlines-core==0.2.14
    PYTHONPATH=/tmp/gramlibs python benchmarks/grammar_libraries.py                       # the shipped SmolLM2 tokenizer

What is compiled: one call of the golden catalogue, {"tool": <a name>, "params": <that tool's parameter schema>}
(harness.grammar.call_schema; `--exact` adds the fenced format's no-```-in-strings patterns). Only llguidance also
takes the rest of the reply grammar (the abstention branch: any text that opens no ```json block, a lexeme with
negation), so the comparison is on the part all three can express. The walked replies are the calls in the fenced
blocks of the data's validation split (`python -m training.data build`, into a temporary folder): what a trained
model writes, never golden wording. A library missing from the path is reported as such, not skipped silently.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import jsonl  # noqa: E402
from harness.fenced import iter_blocks  # noqa: E402
from harness.grammar import call_schema, library_version  # noqa: E402
from harness.suite import resolve_suite  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def walked_calls(n: int) -> list[str]:
    """The JSON text of up to n calls from the data's validation split, as the data writes them."""
    from training.data.build import BuildConfig, build

    out = Path(tempfile.mkdtemp(prefix="grammar-bench-")) / "data"
    build(BuildConfig(out=str(out)))
    calls = []
    for row in jsonl.read_records(out / "val.jsonl"):
        reply = next((m["content"] for m in reversed(row["messages"]) if m["role"] == "assistant"), "")
        calls += [text.strip() for text, closed in iter_blocks(reply) if closed]
    return calls[:n]


def walk(calls: list[list[int]], start: Callable[[], Any], mask: Callable[[Any], Any],
         accept: Callable[[Any, int, Any], bool]) -> list[float] | str:
    """Each call's tokens through a fresh matcher (`start()`): the time of each mask (`mask(m)`) before the token is
    taken (`accept(m, token, that mask)`), or why a token of a valid call was refused."""
    per_token = []
    for tokens in calls:
        m = start()
        for t in tokens:
            started = time.perf_counter()
            allowed = mask(m)
            per_token.append(time.perf_counter() - started)
            if not accept(m, t, allowed):
                return f"refused token {t} of a valid call"
    return per_token


def bench_llguidance(tokenizer: Any, schema: dict, calls: list[list[int]], stop: list[int]) -> dict[str, Any]:
    import llguidance
    import llguidance.hf

    llg_tok, prep = _timed(lambda: llguidance.hf.from_tokenizer(tokenizer, eos_token=stop))
    matcher, compile_s = _timed(lambda: llguidance.LLMatcher(llg_tok, "start: %json " + json.dumps(schema),
                                                             log_level=0))
    if matcher.is_error():
        return {"prepare_s": prep, "error": matcher.get_error()[:200]}
    return {"prepare_s": prep, "compile_s": compile_s,
            "walk": walk(calls, matcher.deep_copy, lambda m: m.compute_bitmask(), lambda m, t, _: m.consume_token(t))}


def bench_xgrammar(tokenizer: Any, schema: dict, calls: list[list[int]], stop: list[int]) -> dict[str, Any]:
    import xgrammar as xg

    info, prep = _timed(lambda: xg.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer),
                                                                  stop_token_ids=stop))
    compiler = xg.GrammarCompiler(info, max_threads=2, cache_enabled=False)
    try:
        compiled, compile_s = _timed(lambda: compiler.compile_json_schema(json.dumps(schema), any_whitespace=True,
                                                                          strict_mode=True))
    except Exception as exc:  # noqa: BLE001  (whatever the library raises is the finding)
        return {"prepare_s": prep, "error": f"{type(exc).__name__}: {exc}"[:200]}
    bitmask = xg.allocate_token_bitmask(1, info.vocab_size)
    return {"prepare_s": prep, "compile_s": compile_s,
            "walk": walk(calls, lambda: xg.GrammarMatcher(compiled), lambda m: m.fill_next_token_bitmask(bitmask),
                         lambda m, t, _: m.accept_token(t))}


def bench_outlines(tokenizer: Any, schema: dict, calls: list[list[int]], stop: list[int]) -> dict[str, Any]:
    import outlines_core as oc

    def vocabulary() -> Any:
        vocab: dict[str, list[int]] = {}
        special = set(tokenizer.all_special_ids)
        for token_id in range(len(tokenizer)):
            if token_id in special:
                continue
            vocab.setdefault(tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(token_id)]),
                             []).append(token_id)
        return oc.Vocabulary(stop[0], vocab)

    vocab, prep = _timed(vocabulary)
    try:
        regex = oc.json_schema.build_regex_from_schema(json.dumps(schema))
        index, compile_s = _timed(lambda: oc.Index(regex, vocab))
    except Exception as exc:  # noqa: BLE001
        return {"prepare_s": prep, "error": f"{type(exc).__name__}: {exc}"[:200]}

    def accept(guide: Any, token: int, allowed: Any) -> bool:
        if token not in allowed:
            return False
        guide.advance(token)
        return True

    return {"prepare_s": prep, "compile_s": compile_s,
            "walk": walk(calls, lambda: oc.Guide(index), lambda g: g.get_tokens(), accept)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", help="a model folder (default: the shipped SmolLM2-135M-Instruct)")
    ap.add_argument("--calls", type=int, default=40, help="calls from the validation split walked token by token")
    ap.add_argument("--exact", action="store_true", help="the fenced format's schema (strings kept free of ```)")
    ap.add_argument("--libraries", default="llguidance,xgrammar,outlines-core")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from harness.backends.local import shipped_model

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or shipped_model())
    stop = [tokenizer.eos_token_id]
    suite = resolve_suite([GOLDEN])
    notes: list[str] = []
    tools = suite.catalogue.to_function_tools()
    schema = call_schema(tools, notes) if args.exact else call_schema(tools, notes, fenced=False)
    texts = walked_calls(args.calls)
    calls = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    n_tokens = sum(len(c) for c in calls)
    print(f"tokenizer {args.tokenizer or 'shipped SmolLM2-135M-Instruct'} ({len(tokenizer)} tokens); schema: one call "
          f"of {len(tools)} tools{' with no-``` string patterns' if args.exact else ''} "
          f"({len(json.dumps(schema))} bytes); walked {len(calls)} validation-split calls, {n_tokens} tokens")
    benches = {"llguidance": bench_llguidance, "xgrammar": bench_xgrammar, "outlines-core": bench_outlines}
    print("| library | version | tokenizer prep (once) | compile | per-token mask p50 / p95 / mean | result |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.libraries.split(","):
        try:
            result = benches[name](tokenizer, schema, calls, stop)
        except ImportError as exc:
            print(f"| {name} | not installed | | | | {exc} |")
            continue
        walked = result.get("walk", [])
        masks = sorted(walked) if isinstance(walked, list) else []
        timing = (f"{statistics.median(masks) * 1e6:.0f} / {masks[int(0.95 * (len(masks) - 1))] * 1e6:.0f} / "
                  f"{statistics.fmean(masks) * 1e6:.0f} us" if masks else "")
        compile_s = f"{result['compile_s'] * 1e3:.0f} ms" if "compile_s" in result else ""
        error = result.get("error") or (walked if isinstance(walked, str) else None)
        outcome = error or f"every token of {len(calls)} calls allowed"
        print(f"| {name} | {library_version(name)} | {result['prepare_s']:.2f} s | {compile_s} | {timing} | {outcome} |")


if __name__ == "__main__":
    main()
