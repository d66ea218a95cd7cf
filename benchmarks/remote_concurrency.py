"""Remote backend engine against the fake Cloudflare: concurrency and retries.

    python benchmarks/remote_concurrency.py

1. A fixed 200 ms reply delay, 60 cases at concurrency 8: wall time vs the ideal ceil(60/8) x 0.2 s
   (target: within 1.2x).
2. 20 % of the requests answered 429 (Retry-After 0) or 500 once: every case still ends with a reply;
   prints the number of retries.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from harness.backends.http import Secret
from harness.backends.remote import CloudflareBackend
from harness.core.engine import evaluate
from harness.suite import resolve_suite
from harness.tasks.tool_call.cases import load_case_file
from harness.testing.fake_cloudflare import FakeCloudflare, Fault

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "assistant.jsonl"
N, CONCURRENCY, DELAY = 60, 8, 0.2


def main() -> None:
    suite = resolve_suite([GOLDEN])
    catalogue = suite.catalogue
    cases = load_case_file(GOLDEN, catalogue).cases[:N]
    with FakeCloudflare(reply=lambda body: "ok", delay_s=DELAY) as fake:
        backend = CloudflareBackend("@cf/meta/llama-3.2-3b-instruct", fake.account_id, Secret(fake.token),
                                    api_base=fake.api_base, concurrency=CONCURRENCY, requests_per_minute=300)
        t0 = time.perf_counter()
        replies, _ = evaluate(suite, backend, cases)
        wall = time.perf_counter() - t0
        ideal = math.ceil(N / CONCURRENCY) * DELAY
        print(f"{N} cases, concurrency {CONCURRENCY}, {DELAY * 1000:.0f} ms per reply: {wall:.2f} s, "
              f"ideal {ideal:.2f} s, ratio {wall / ideal:.3f} (target <= 1.2); max in flight {fake.max_in_flight}")
        assert all(r.response == "ok" for r in replies)

        faulty = cases[::5]  # every fifth case: 20 %
        fake.inject(*(Fault("429" if i % 2 else "500", retry_after=0 if i % 2 else None,
                            match=c.messages[-1]["content"], times=1) for i, c in enumerate(faulty)))
        backend.retries = 0
        t0 = time.perf_counter()
        replies, _ = evaluate(suite, backend, cases)
        wall = time.perf_counter() - t0
        ok = sum(r.response == "ok" for r in replies)
        print(f"with {len(faulty)} of {N} requests failed once (429/500): {ok}/{N} cases got a reply, "
              f"{backend.retries} retries, {wall:.2f} s")


if __name__ == "__main__":
    main()
