"""The program task (seed 000): a workout request in, a JSON program out, scored by the rules of
harness.tasks.program.core; its strategies (direct, few-shot, chain, hybrid, template) are harness.tasks.program.strategies's.

A case's steps are its strategy's model calls: one for direct and few-shot, a chain of them for chain and hybrid,
none for the template. What the strategy spent (calls, tokens, seconds, the hybrid stage that answered) travels
with the result into cases.jsonl and the summary.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from harness.backends import Backend, Request
from harness.core.task import Steps
from harness.gate import PROGRAM_THRESHOLDS_PATH, Threshold, read_default_thresholds
from harness.grammar import Grammar, fenced_json
from harness.hashing import sha256_file
from harness.tasks.program.core import RULES, SCHEMA, ProgramCase, ProgramResult, load_program_file, score_program
from harness.tasks.program.strategies import (
    NOW,
    STRATEGIES,
    SYSTEM,
    Spend,
    format_program_failure,
    model_missing,
    record_line,
    strategy_steps,
    summarize,
    summary_lines,
)

if TYPE_CHECKING:  # the suite is the front end's (harness.suite); a task only reads it
    from harness.suite import Suite


# A chain step's reply (a split, or a day's exercises) is read leniently (the first JSON list in it): under
# constrained decoding it stays free text, and says so.
CHAIN_STEP = Grammar("start: TEXT\nTEXT: /(?s:.*)/\n", ("chain step: free text (its first JSON list is read)",))


@functools.lru_cache(maxsize=1)
def program_grammar() -> Grammar:
    """A program reply: one fenced json block holding a program of the task's JSON Schema."""
    return fenced_json(SCHEMA, "program")


@dataclass(frozen=True)
class ProgramOutcome:
    """A program case's result and what its strategy spent to get it."""

    result: ProgramResult
    calls: int = 0
    tokens: int = 0
    latency_s: float = 0.0
    stage: str | None = None  # hybrid: the stage whose answer was accepted

    @property
    def case(self) -> ProgramCase:
        return self.result.case

    @property
    def passed(self) -> bool:
        return self.result.passed

    @property
    def reason(self) -> str | None:
        return self.result.reason

    @property
    def response(self) -> str | None:
        return self.result.response

    def as_record(self) -> dict[str, Any]:
        return {"result": self.result, "calls": self.calls, "tokens": self.tokens, "latency_s": self.latency_s,
                "stage": self.stage}


@dataclass(frozen=True)
class ProgramTask:
    strategy: str = "direct"
    kind: str = "program"
    gateable: tuple[str, ...] = ("case_pass_rate", *RULES, "latency_p50_s", "latency_p95_s")

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r}: one of {', '.join(STRATEGIES)}")

    @property
    def defaults(self) -> Mapping[str, Threshold]:
        return read_default_thresholds(PROGRAM_THRESHOLDS_PATH)

    def asks_model(self) -> bool:
        return self.strategy != "template"

    def backend_problem(self, model: str | None) -> str | None:
        return model_missing(self.strategy, model)

    def settings(self) -> dict[str, Any]:
        return {"strategy": self.strategy}

    def load_cases(self, path: Path, suite: Suite) -> tuple[str, str, list[ProgramCase]]:
        cases = load_program_file(path)
        return str(path), sha256_file(path), cases

    def steps(self, case: ProgramCase, suite: Suite) -> Steps:
        spend = Spend()
        strategy = strategy_steps(case, self.strategy)
        reply = None
        try:
            while True:
                messages, kind = strategy.send(reply)  # type: ignore[arg-type]  # None starts it
                reply = yield Request(case.id, tuple(messages), NOW, grammar=program_grammar() if kind == "program"
                                      else CHAIN_STEP)
                spend.add(reply)
        except StopIteration as stop:
            result, stage = stop.value
        return ProgramOutcome(result, spend.calls, spend.tokens, spend.seconds,
                              stage if self.strategy == "hybrid" else None)

    def conversation_request(self, turns: Sequence[Mapping[str, str]], now: Any, suite: Suite) -> Request:
        """The program task asks with its own system prompt at its own fixed date, whatever `now` is."""
        return Request("conversation", ({"role": "system", "content": SYSTEM}, *turns), NOW)

    def score_text(self, case: ProgramCase, text: str | None) -> ProgramResult:
        """A program text judged by the rules, as a run judges a reply (training data is checked with it)."""
        return score_program(case, text)

    def from_record(self, case: ProgramCase, record: Mapping[str, Any], suite: Suite) -> ProgramOutcome | None:
        if not isinstance(record.get("response"), str):
            return None
        return ProgramOutcome(score_program(case, record["response"]), int(record.get("calls") or 0),
                              int(record.get("tokens") or 0), float(record.get("latency_s") or 0.0),
                              record.get("stage") if self.strategy == "hybrid" else None)

    def record(self, result: ProgramOutcome, suite: Suite) -> dict[str, Any]:
        return record_line(result.as_record())

    def summarize(self, results: Sequence[ProgramOutcome], suite: Suite, backend: Backend | None) -> dict[str, Any]:
        figures = summarize([r.as_record() for r in results], self.strategy, None)
        if self.asks_model():
            del figures["model"]  # the run's --model; only the template's "none (template)" stands
        return figures

    def fingerprint(self, suite: Suite) -> dict[str, Any]:
        return {"task": "program", "strategy": self.strategy,
                "system_prompt_sha256": hashlib.sha256(SYSTEM.encode()).hexdigest(),
                "reply_grammar": {"sha256": program_grammar().sha256, "unconstrained": list(program_grammar().unconstrained)}}

    def describe_failure(self, result: ProgramOutcome) -> str:
        return format_program_failure(result.result)

    def summary_lines(self, summary: Mapping[str, Any]) -> list[str] | None:
        return summary_lines(summary)


def run_strategy(cases: Sequence[ProgramCase], strategy: str, backend: Backend | None) -> list[dict[str, Any]]:
    """One record per case (the result, what the strategy spent, the hybrid stage), through the engine's driver:
    every case's next call in one batch."""
    from harness.core.engine import drive

    task = ProgramTask(strategy)
    missing = model_missing(strategy, backend)
    if missing:
        raise ValueError(missing)
    done = drive(task, None, [(c.id, c) for c in cases], backend)  # type: ignore[arg-type]  # programs need no suite
    return [done[c.id].as_record() for c in cases]
