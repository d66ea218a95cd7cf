"""`make gpu-smoke`: the GPU paths for real, on the tiny offline model (no hub needed).

Trains a few QLoRA steps with the unsloth engine (4-bit), then loads the base model in 4-bit with the
harness's local backend and generates, printing what ran: engine, dtype, steps, loss, adapter files.
Without CUDA it says so and exits 2.
"""
from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("gpu-smoke: no CUDA device here; nothing to prove (the unsloth engine and 4-bit loading need one)")
        return 2
    from harness.backends.base import ask
    from harness.backends.local import GenerationSettings, LocalBackend
    from harness.core.task import get_task
    from harness.isotime import parse_now
    from harness.suite import resolve_suite
    from harness.tiny import TinySpec, build_tiny_model
    from training.data.build import BuildConfig, build, corpus
    from training.train import Job, unsloth_installed
    from training.train import main as train

    work = Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
    build(BuildConfig(out=str(work / "data")))
    spec = TinySpec(vocab_size=2048, hidden_size=128, intermediate_size=512, num_hidden_layers=2)
    base = build_tiny_model(work / "tiny", spec, corpus(work / "data"))
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    engines = ["unsloth"] if unsloth_installed() else []
    if not engines:
        print("unsloth is not installed (pip install -e '.[gpu]'); running the trl engine with 4-bit QLoRA instead")
    for engine in engines or ["trl"]:
        out = work / f"adapter-{engine}"
        record = train(Job(data=str(work / "data"), out=str(out), base_model=str(base), engine=engine, load_in_4bit=True,
                           max_steps=10, batch_size=4, grad_accum=1, logging_steps=2, eval_steps=5, learning_rate=1e-3))
        print(f"engine {record['engine']}, dtype {record['dtype']}, steps {record['result']['steps']}, "
              f"train loss {record['result']['train_loss']:.4f}, files: {', '.join(record['files'])}")
    backend = LocalBackend(str(base), out, load_in_4bit=True, settings=GenerationSettings(max_new_tokens=16, batch_size=2))
    now = parse_now("2026-02-24T09:00:00Z")
    suite = resolve_suite()
    asked = get_task("tool_call").conversation_request([{"role": "user", "content": "weather in Oslo?"}], now, suite)
    replies = ask(backend, [dataclasses.replace(asked, key="a"), dataclasses.replace(asked, key="b")])
    fp = backend.fingerprint()
    print(f"4-bit local backend: load_in_4bit={fp['load_in_4bit']}, dtype {fp['dtype']}, device {fp['device']}; "
          f"replies identical across the batch: {replies[0].text == replies[1].text}; first: {replies[0].text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
