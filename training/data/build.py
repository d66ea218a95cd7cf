"""sources -> generate/convert -> validate -> split/decontaminate/dedup -> train/val/holdout + manifest.

    python -m training.data build --out data/v1 [--glaive FILE ...] [--seed 13]
    python -m training.data validate data/v1/train.jsonl
    python -m training.data stats data/v1
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness import jsonl
from harness.isotime import parse_now
from harness.report import atomic_write_text
from harness.suite import Suite, resolve_suite
from harness.tasks.tool_call.cases import DEFAULT_NOW
from harness.tasks.tool_call.prompt import build_system_prompt
from training.data.convert import ConvertReport, convert_file
from training.data.examples import make_example
from training.data.generate import Composition, Phrasing, phrasings, targets
from training.data.plain import general_phrasings, no_tool_phrasings
from training.data.split import GoldenIndex, by_split, decontaminate, dedup, invert, split_groups, write_splits
from training.data.validate import check_examples, final_calls, read_jsonl
from training.data.vocab import random_now
from training.data.written import read_examples

FORMAT_VERSION = 1
SEEDS = Path(__file__).resolve().parent / "sources" / "seeds.jsonl"
GOLDEN = Path(__file__).resolve().parents[2] / "golden"


@dataclass(frozen=True)
class BuildConfig:
    out: str = "data/v1"
    seed: int = 13
    holdout: float = 0.15
    val: float = 0.10
    composition: Composition = field(default_factory=Composition)
    golden: tuple[str, ...] = ()          # case files to decontaminate against (default: golden/*.jsonl)
    converted: tuple[tuple[str, str], ...] = ()  # (source, local file)
    convert_limit: int | None = 150       # per source, the plan's yield


def load_seeds(path: Path = SEEDS) -> list[dict[str, Any]]:
    """Hand-written examples (data in the repo), each its own group."""
    out = []
    for line, rec in read_jsonl(path):
        if isinstance(rec, str):
            raise ValueError(f"{path}:{line}: {rec}")
        out.append(make_example([tuple(t) for t in rec["turns"]], now=parse_now(rec["now"]), kind=rec["kind"],
                                source="seed", group=f"seed/{line}"))
    return out


def expand(phrasings: Sequence[Phrasing], total: int, seed: int) -> list[dict[str, Any]]:
    """`total` distinct examples drawn round-robin from the phrasings; a phrasing that runs out of
    new variants (a fixed question) drops out and the others fill its share."""
    rngs = {p.group + f"#{p.index}": random.Random(f"{seed}/{p.group}/{p.index}") for p in phrasings}
    seen: set[tuple[tuple[str, str], ...]] = set()
    misses = {key: 0 for key in rngs}
    out: list[dict[str, Any]] = []
    while len(out) < total and any(m < 12 for m in misses.values()):
        for p in phrasings:
            key = p.group + f"#{p.index}"
            if len(out) == total or misses[key] >= 12:
                continue
            rng = rngs[key]
            now = random_now(rng)
            turns = tuple(p.build(rng, now))
            if turns in seen:
                misses[key] += 1
                continue
            seen.add(turns)
            out.append(make_example(list(turns), now=now, kind=p.kind, source="generated", group=p.group))
    return out


def generated(comp: Composition, seed: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """All generated examples, and group -> stratum (what the split stratifies on)."""
    want = targets(comp)
    by_key: dict[str, list[Phrasing]] = defaultdict(list)
    for p, key in phrasings():
        by_key[key].append(p)
    tool_total = sum(want.values())
    whole = tool_total / (1 - comp.no_tool_fraction - comp.general_fraction)
    by_key["no_tool"] = no_tool_phrasings()
    by_key["general"] = general_phrasings()
    want["no_tool"] = round(whole * comp.no_tool_fraction)
    want["general"] = round(whole * comp.general_fraction)
    examples, strata = [], {}
    for key, group_phrasings in by_key.items():
        strata.update({p.group: key for p in group_phrasings})
        examples += expand(group_phrasings, want[key], seed)
    return examples, strata


def build(config: BuildConfig) -> dict[str, Any]:
    """Build, check and write a data set of the assistant suite; returns the manifest."""
    suite = resolve_suite()  # the suite this builder generates for
    examples, strata = generated(config.composition, config.seed)
    seeds = load_seeds()
    strata.update({ex["group"]: "seed" for ex in seeds})
    reports: list[ConvertReport] = []
    converted = []
    for source, path in config.converted:
        got, report = convert_file(source, path, config.convert_limit)
        reports.append(report)
        converted += got
        strata.update({ex["group"]: f"converted:{source}" for ex in got})
    golden = config.golden or tuple(str(p) for p in sorted(GOLDEN.glob("*.jsonl")))
    return write_set(seeds + examples + converted, strata, suite, golden, Path(config.out),
                     holdout=config.holdout, val=config.val, seed=config.seed,
                     config=_jsonable(asdict(config)), counts={"generated": len(examples), "seeds": len(seeds),
                                                               "converted": len(converted)},
                     conversion=[r.line() for r in reports])


def build_written(suite: Suite, examples: Sequence[str | Path], out: Path, golden: Sequence[str], *,
                  holdout: float = BuildConfig.holdout, val: float = BuildConfig.val,
                  seed: int = BuildConfig.seed) -> dict[str, Any]:
    """A data set for any suite from examples files a person wrote (training.data.written); split within each
    final tool (or kind, for plain replies), decontaminated against `golden` (the suite's case files)."""
    everything = [ex for path in examples for ex in read_examples(path, suite)]
    strata = {}
    for ex in everything:
        calls = final_calls(ex, suite)
        strata[ex["group"]] = calls[0].tool if calls else ex["kind"]
    config = {"suite": suite.catalogue.source or "per case", "examples": [str(p) for p in examples],
              "holdout": holdout, "val": val, "seed": seed}
    return write_set(everything, strata, suite, golden, out, holdout=holdout, val=val, seed=seed, config=config,
                     counts={"written": len(everything)})


def write_set(everything: list[dict[str, Any]], strata: Mapping[str, str], suite: Suite, golden: Sequence[str],
              out: Path, *, holdout: float, val: float, seed: int, config: Mapping[str, Any],
              counts: Mapping[str, int], conversion: Sequence[str] = ()) -> dict[str, Any]:
    """Validate (zero tolerance: nothing is written if one example is bad), split by group within each stratum,
    drop near-copies of the suite's case prompts and duplicates, write train/val/holdout and the manifest."""
    check_examples(everything, "the built set", suite)
    assignment = split_groups(invert(strata), holdout, val, seed)
    kept, dropped = decontaminate(everything, GoldenIndex.from_files(golden, suite.catalogue))
    unique = dedup(kept)
    files = write_splits(out, by_split(unique, assignment))
    manifest = {
        "format_version": FORMAT_VERSION,
        "config": dict(config),
        "files": files,
        "counts": {**counts, "decontaminated": len(dropped), "duplicates": len(kept) - len(unique), "total": len(unique)},
        "conversion": list(conversion),
        "decontaminated_examples": dropped,
        "golden_files": list(golden),
        "tools": suite.catalogue.source or "per case",
        "reply_format": suite.reply_format,
        "system_prompt_sha256": hashlib.sha256(
            build_system_prompt(parse_now(DEFAULT_NOW), suite.catalogue, suite.template).encode()).hexdigest(),
        "composition": composition(unique, suite),
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def composition(examples: Sequence[Mapping[str, Any]], suite: Suite | None = None) -> dict[str, Any]:
    """Counts per kind, per tool called in the final reply (read in `suite`'s reply format; fenced without
    one), per source."""
    kinds, tools, sources = Counter(), Counter(), Counter()
    for ex in examples:
        kinds[ex["kind"]] += 1
        sources[ex["source"]] += 1
        for c in final_calls(ex, suite):
            tools[c.tool] += 1
    return {"kinds": dict(sorted(kinds.items())), "tools": dict(sorted(tools.items())), "sources": dict(sorted(sources.items()))}


def corpus(data: Path) -> list[str]:
    """Tokenizer training text for a stand-in model: the training split's turns (never the golden suite)."""
    return [m["content"] for row in jsonl.read_records(Path(data) / "train.jsonl") for m in row["messages"]]
