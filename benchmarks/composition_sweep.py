"""Which data composition (and loss average) keeps a small model answering in text when no tool fits?

    python benchmarks/composition_sweep.py --configs 0.35/0.10/token,0.35/0.10/example

Measured on the data's own VALIDATION split, never on the golden suite: each config builds the data with its
no-tool and general fractions, trains the demo's CPU LoRA (training.demo.DemoConfig: the same subset size, epochs,
learning rate and batch) and scores the adapter on one fixed case file made from the validation split of the
reference composition (so every config is scored on the same cases). The validation split's phrasing groups are
never in any training split. Prints one row per config; `training.demo` takes the winner as its default.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.data.build import BuildConfig, build  # noqa: E402
from training.data.generate import Composition  # noqa: E402
from training.demo import DemoConfig, golden, subset  # noqa: E402
from training.train import main as train

KEYS = ("no_tool_accuracy", "tool_selection_accuracy", "case_pass_rate", "valid_json_rate")


def parse_config(text: str) -> tuple[Composition, str]:
    no_tool, general, average = text.split("/")
    return Composition(no_tool_fraction=float(no_tool), general_fraction=float(general)), average


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="0.35/0.10/token,0.35/0.10/example,0.25/0.10/example",
                        help="comma-separated no_tool/general/loss-average")
    parser.add_argument("--workdir", default="benchmarks/out/composition")
    parser.add_argument("--val-cases", type=int, default=40, help="validation cases, spread across the kinds")
    parser.add_argument("--train-examples", type=int, default=DemoConfig.train_examples)
    parser.add_argument("--batch-size", type=int, default=DemoConfig.batch_size)
    parser.add_argument("--prefix-gradient", action=argparse.BooleanOptionalAction, default=DemoConfig.prefix_gradient,
                        help="training.train.Job.prefix_gradient")
    parser.add_argument("--group-by-length", action=argparse.BooleanOptionalAction, default=DemoConfig.group_by_length,
                        help="training.train.Job.group_by_length")
    args = parser.parse_args(argv)
    from harness.models import DEFAULT_MODEL, convert
    from training.data.__main__ import main as data_cli

    work = Path(args.workdir).resolve()
    cfg = DemoConfig(workdir=str(work), batch_size=args.batch_size, device="cpu",
                     prefix_gradient=args.prefix_gradient, group_by_length=args.group_by_length)
    base = convert(DEFAULT_MODEL)
    reference = work / "reference"
    build(BuildConfig(out=str(reference / "data"), composition=DemoConfig.composition))
    cases = work / "val-cases.jsonl"
    data_cli(["cases", "--data", str(reference / "data"), "--split", "val", "--limit", str(args.val_cases),
              "--out", str(cases)])
    rows = []
    for text in args.configs.split(","):
        comp, average = parse_config(text)
        name = text.replace("/", "_")
        folder = work / name
        build(BuildConfig(out=str(folder / "data"), composition=comp))
        data = subset(folder / "data", folder / "data-sub", args.train_examples, cfg.val_examples)
        t0 = time.perf_counter()
        train(replace(cfg, loss_average=average).training_job(data, folder / "adapter", base))
        seconds = time.perf_counter() - t0
        summary = golden(f"val-{name}", ["--model=local-adapter", f"--th-adapter={folder / 'adapter'}"],
                         folder / "reports", replace(cfg, workdir=str(folder)), cases=cases)
        rows.append({"config": text, "train_s": round(seconds), **{k: summary.get(k) for k in KEYS},
                     "n_cases": summary["n_cases"]})
        (work / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
    short = [k.replace("_accuracy", "").replace("_rate", "") for k in KEYS]
    print(f"\n{'no_tool/general/average':<26}{'train s':>8}" + "".join(f"{k:>16}" for k in short))
    for r in rows:
        cells = "".join("—".rjust(16) if r[k] is None else f"{r[k]:>16.3f}" for k in KEYS)
        print(f"{r['config']:<26}{r['train_s']:>8}{cells}")
    print(f"(validation split, {rows[0]['n_cases'] if rows else 0} cases; {args.train_examples} training examples "
          f"each, batch {args.batch_size}{'' if args.prefix_gradient else ', no gradient through the shared prefix'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
