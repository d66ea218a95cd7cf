"""Split by group before expansion, decontaminate against the golden suite, and deduplicate.

The golden suite is the measure, never the target: any training example whose user turn equals or
nearly equals a golden prompt is dropped (normalised text; word 3-gram overlap), and counted.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from harness.report import atomic_write_text
from harness.tasks.tool_call.cases import load_case_file
from harness.tasks.tool_call.tools import Catalogue

SPLITS = ("train", "val", "holdout")


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def ngrams(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def split_groups(strata: Mapping[str, Sequence[str]], holdout: float, val: float, seed: int) -> dict[str, str]:
    """group -> split. Within each stratum (a tool or kind), a fixed-seed shuffle of its groups sends
    about `holdout` of them to holdout and `val` to val; a stratum with fewer than 4 groups stays in
    train so that no tool disappears from training."""
    out: dict[str, str] = {}
    for stratum in sorted(strata):
        groups = sorted(set(strata[stratum]))
        rng = random.Random(f"{seed}/{stratum}")
        rng.shuffle(groups)
        n_hold = max(1, round(len(groups) * holdout)) if len(groups) >= 4 else 0
        n_val = max(1, round(len(groups) * val)) if len(groups) >= 4 else 0
        for i, g in enumerate(groups):
            out.setdefault(g, "holdout" if i < n_hold else "val" if i < n_hold + n_val else "train")
    return out


def invert(strata: Mapping[str, str]) -> dict[str, list[str]]:
    """group -> stratum as stratum -> groups (what split_groups takes)."""
    out: dict[str, list[str]] = defaultdict(list)
    for group, stratum in strata.items():
        out[stratum].append(group)
    return out


def write_splits(out: Path, splits: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """train/val/holdout.jsonl under `out` (each written whole, then renamed); their example counts and sha256."""
    files = {}
    for name in SPLITS:
        text = "".join(json.dumps(ex, ensure_ascii=False) + "\n" for ex in splits[name])
        atomic_write_text(out / f"{name}.jsonl", text)
        files[name] = {"examples": len(splits[name]), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    return files


@dataclass(frozen=True)
class GoldenIndex:
    """Every user turn of every golden case file, ready for near-duplicate checks."""

    exact: frozenset[str]
    grams: tuple[tuple[str, set[tuple[str, ...]]], ...]

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], catalogue: Catalogue) -> "GoldenIndex":
        texts = [m["content"] for p in paths for c in load_case_file(p, catalogue).cases for m in c.messages
                 if m["role"] == "user"]
        return cls(frozenset(normalise(t) for t in texts), tuple((normalise(t), ngrams(t)) for t in texts))

    def hit(self, text: str, threshold: float = 0.5) -> str | None:
        """The golden prompt this text copies or nearly copies, else None."""
        norm = normalise(text)
        if norm in self.exact:
            return norm
        mine = ngrams(text)
        if not mine:
            return None
        for golden, theirs in self.grams:
            if theirs and len(mine & theirs) / len(mine | theirs) >= threshold:
                return golden
        return None


def decontaminate(examples: Sequence[Mapping[str, Any]], index: GoldenIndex) -> tuple[list[Mapping[str, Any]], list[str]]:
    """(kept examples, one line per dropped example naming the golden prompt it matched)."""
    kept, dropped = [], []
    for ex in examples:
        hit = next((h for m in ex["messages"] if m["role"] == "user" and (h := index.hit(m["content"]))), None)
        if hit is None:
            kept.append(ex)
        else:
            dropped.append(f"{ex['group']}: matches golden prompt {hit!r}")
    return kept, dropped


def dedup_key(ex: Mapping[str, Any]) -> tuple[str, ...]:
    """The user turns and the final reply; the date in the system prompt does not make a new example."""
    return tuple(normalise(m["content"]) for m in ex["messages"][1:] if m["role"] == "user") + (ex["messages"][-1]["content"],)


def dedup(examples: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    seen: set[tuple[str, ...]] = set()
    out = []
    for ex in examples:
        key = dedup_key(ex)
        if key not in seen:
            seen.add(key)
            out.append(ex)
    return out


def by_split(examples: Iterable[Mapping[str, Any]], assignment: Mapping[str, str]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for ex in examples:
        out[assignment[ex["group"]]].append(ex)
    return {s: out.get(s, []) for s in SPLITS}
