"""Thresholds and the gate verdict. Pure apart from reading a TOML file of thresholds.

The gate is what CI trusts: a run passes when every threshold in force holds, even though single
cases fail. A metric that was not measured (null: its denominator is 0, or latency on replay) is
listed as skipped, never silently passed or failed.
"""
from __future__ import annotations

import math
import operator
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
GATE_ON = ("point", "lower-bound")


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


THRESHOLDS_PATH = Path(str(resources.files("harness") / "spec" / "thresholds.toml"))
PROGRAM_THRESHOLDS_PATH = Path(str(resources.files("harness") / "spec" / "program_thresholds.toml"))


_SPEC = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|>|<|=)\s*(\S+)\s*$")


def read_default_thresholds(path: Path) -> dict[str, Threshold]:
    """A task's default gate, from its data file (docs/contract.md's "Default thresholds" for tool calls)."""
    table = tomllib.loads(path.read_text(encoding="utf-8"))["thresholds"]
    out = {}
    for metric, spec in table.items():
        m = _SPEC.match(f"{metric}{spec.replace(' ', '')}")
        if not m or m.group(2) == "=":
            raise ValueError(f"{path}: {metric} = {spec!r}: write an operator and a number, e.g. \"> 0.9\"")
        out[metric] = Threshold(metric, m.group(2), float(m.group(3)))
    return out



def parse_threshold(spec: str, known: Mapping[str, Threshold], gateable: tuple[str, ...]) -> tuple[str, Threshold | None]:
    """`metric=0.95` keeps the metric's default direction; `metric>=0.8` sets it; `metric=off` drops it.
    `known` and `gateable`: the task's defaults and the metrics it reports (the tool-call task's by default)."""
    m = _SPEC.match(spec)
    if not m:
        raise ValueError(f"threshold {spec!r}: write metric=value, metric>=value, metric<value or metric=off")
    metric, op, raw = m.groups()
    if metric not in gateable:
        raise ValueError(f"threshold {spec!r}: unknown metric {metric!r}; one of {', '.join(gateable)}")
    if raw.lower() == "off":
        return metric, None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"threshold {spec!r}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"threshold {spec!r}: {raw!r} is not a finite number")
    if metric.startswith("latency"):
        if value < 0:
            raise ValueError(f"threshold {spec!r}: a latency in seconds is >= 0")
    elif not 0.0 <= value <= 1.0:
        raise ValueError(f"threshold {spec!r}: {metric} is a rate; give a value from 0 to 1")
    if op == "=":
        op = known[metric].op if metric in known else ">="
    return metric, Threshold(metric, op, value)


def load_threshold_file(path: str | Path, known: Mapping[str, Threshold],
                        gateable: tuple[str, ...]) -> dict[str, Threshold | None]:
    """A TOML file: `[thresholds]` with `metric = 0.95`, `metric = ">= 0.8"` or `metric = "off"`."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read thresholds: {exc}") from exc
    table = data.get("thresholds", data)
    out: dict[str, Threshold | None] = {}
    for metric, value in table.items():
        spec = f"{metric}={value}" if isinstance(value, (int, float)) and not isinstance(value, bool) else f"{metric}{value}"
        if isinstance(value, str) and value.strip().lower() == "off":
            spec = f"{metric}=off"
        try:
            name, threshold = parse_threshold(spec, known, gateable)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        out[name] = threshold
    return out


def resolve_thresholds(
    overrides: Mapping[str, Threshold | None], defaults: Mapping[str, Threshold],
) -> dict[str, Threshold]:
    merged: dict[str, Threshold | None] = {**defaults, **overrides}
    return {k: v for k, v in merged.items() if v is not None}


def evaluate(summary: Mapping[str, Any], thresholds: Mapping[str, Threshold], gate_on: str = "point") -> dict[str, Any]:
    """The verdict: {"passed", "gate_on", "failures", "skipped", "thresholds"}."""
    if gate_on not in GATE_ON:
        raise ValueError(f"gate_on must be one of {GATE_ON}")
    failures, skipped = [], []
    for t in thresholds.values():
        value = summary.get(t.metric)
        if value is None:
            skipped.append({"metric": t.metric, "why": "not measured (no denominator, or not timed)"})
            continue
        judged = value
        interval = summary.get("intervals", {}).get(t.metric)
        if gate_on == "lower-bound" and interval is not None and t.op in (">", ">="):
            judged = interval[0]
        if not OPS[t.op](judged, t.value):
            basis = "Wilson lower bound" if judged is not value else "value"
            failures.append(
                {
                    "metric": t.metric, "value": value, "judged": judged, "op": t.op, "threshold": t.value,
                    "message": f"{t.metric} {basis} {judged:.4g} is not {t.op} {t.value:g}",
                }
            )
    return {
        "passed": not failures,
        "gate_on": gate_on,
        "failures": failures,
        "skipped": skipped,
        "thresholds": {t.metric: {"op": t.op, "value": t.value} for t in thresholds.values()},
    }
