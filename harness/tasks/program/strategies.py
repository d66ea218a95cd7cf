"""The program task's prompts, strategies and metrics (the command line: harness.tasks.program.cli; pytest: the plugin).

Strategies: `direct` asks once; `few-shot` puts complete example programs (built for requests that are not in
the suite) before the request; `chain` asks for the split structure first, then each day's exercises from the list
filtered to that day's body region (a malformed step is asked again once); `hybrid` tries direct (the fine-tuned
or adapter backend), then few-shot, then chain, then the template, accepting the first answer that passes every rule
(the summary counts which stage answered); `template` builds the program from the request with no model. Every reply
goes through the same rules (harness.tasks.program.core). The summary holds each rule's pass
rate over the replies it could judge, the case pass rate over all cases, each with its Wilson interval, by goal and
by days per week, and the calls, tokens and latency the strategy spent.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Generator, Sequence

from harness.backends import Reply
from harness.backends.options import flag
from harness.fenced import fence
from harness.stats import percentile, wilson
from harness.tasks.program.core import (
    GROUPS,
    LOWER,
    RULES,
    UPPER,
    ProgramCase,
    ProgramResult,
    day_region,
    first_json,
    program_name,
    score_program,
)
from harness.tasks.program.template import template_reply

STRATEGIES = ("direct", "few-shot", "chain", "hybrid", "template")
HYBRID_STAGES = ("direct", "few-shot", "chain", "template")
NOW = datetime(2026, 2, 24, 9, 0, tzinfo=timezone.utc)  # programs do not depend on the date; the template wants one
SYSTEM = (
    "You are a strength coach. Write the training program the user asks for as one JSON object, in a ```json block:\n"
    '{"name": str, "days": [{"day_number": 1.., "name": str, "focus": str, "muscle_groups": [str], '
    '"exercises": [{"name": str, "sets": 1-6, "reps": int or "a-b", "rest_seconds": 30-300}]}]}\n'
    "Rules: exactly the requested number of days, numbered from 1; only exercises from the available list, spelled "
    "as listed; upper-body days only Chest, Back, Shoulders, Biceps and Triceps exercises, lower-body days only "
    "Legs, Quads, Hamstrings, Glutes and Calves (full-body days may mix); when a split is given, name the days as "
    "it does, in order; 3 to 8 exercises a day, none twice in a day."
)


def request_text(case: ProgramCase) -> str:
    """The user's request, in the seed's words."""
    split = f" for a {', '.join(case.split)} split" if case.split else ""
    user = (f"\nAbout me: {case.user.get('weight_kg')} kg, {case.user.get('age')} years old." if case.user else "")
    lists = "\n".join(f"{g}: {', '.join(case.exercises[g])}" for g in GROUPS if case.exercises.get(g))
    return (f"Create a {case.days_per_week}-day {case.goal.replace('_', ' ')} program{split}.{user}\n\n"
            f"Available exercises:\n{lists}")


def few_shot_examples() -> list[ProgramCase]:
    """Example requests for the few-shot prompt: fixed, and made of exercise names no suite case is built from."""
    lists = {"Chest": ("Floor Press", "Decline Press", "Pec Deck"), "Back": ("T-Bar Row", "Chest-Supported Row", "Rack Pull"),
             "Shoulders": ("Push Press", "Upright Row"), "Biceps": ("Spider Curl",), "Triceps": ("Close-Grip Press",),
             "Quads": ("Goblet Squat", "Sissy Squat"), "Hamstrings": ("Nordic Curl",), "Glutes": ("Step-Up",),
             "Calves": ("Donkey Calf Raise",), "Legs": ("Belt Squat",)}
    return [ProgramCase("example-3", 3, "general_fitness", lists),
            ProgramCase("example-4", 4, "strength", lists, split=("Upper", "Lower", "Upper", "Lower"))]


def messages(case: ProgramCase, strategy: str) -> tuple[dict[str, str], ...]:
    shots: list[dict[str, str]] = []
    if strategy == "few-shot":
        for ex in few_shot_examples():
            shots += [{"role": "user", "content": request_text(ex)},
                      {"role": "assistant", "content": template_reply(ex)}]
    return ({"role": "system", "content": SYSTEM}, *shots, {"role": "user", "content": request_text(case)})


def _tokens(reply: Reply) -> int:
    """Prompt and completion tokens of one reply (0 where the backend reports no usage)."""
    return sum((reply.usage or {}).get(k, 0) for k in ("prompt_tokens", "completion_tokens"))


class Spend:
    """What one case's strategy spent: model calls, tokens and seconds."""

    def __init__(self) -> None:
        self.calls, self.tokens, self.seconds = 0, 0, 0.0

    def add(self, reply: Reply) -> None:
        self.calls += 1
        self.tokens += _tokens(reply)
        self.seconds += reply.latency_s or 0.0


# A strategy for one case is a generator: it yields the messages of its next model call (with what the reply is:
# "program", or a chain's "step"), is sent that call's Reply,
# and returns (reply text or None, error or None). The engine (harness.core.engine.drive) runs every case's
# generator together, so the cases' calls at the same step go to the backend as one batch (a chain's day 2 of one
# case beside another's day 1).
Steps = Generator[tuple[Sequence[dict[str, str]], str], Reply, Any]


def _json_value(text: str | None, kind: type) -> Any:
    """The first JSON value of a reply (fenced or bare) when it is of `kind`, else None."""
    value, _ = first_json(text, "[{")
    return value if isinstance(value, kind) else None


def _ask_twice(msgs: Sequence[dict[str, str]], kind: type) -> Steps:
    """A chain step: asked again once when its answer does not parse."""
    for _ in range(2):
        value = _json_value((yield msgs, "step").text, kind)
        if value is not None:
            return value
    return None


def chain_steps(case: ProgramCase) -> Steps:
    """Structure first, then each day's exercises from the list filtered to its region; None when a step fails."""
    structure = yield from _ask_twice([
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": request_text(case) + "\n\nFirst only the split: a JSON list with one object per "
                                    'day, {"day_number", "name", "focus", "muscle_groups"}; no exercises yet.'}], list)
    if not structure or not all(isinstance(d, dict) for d in structure):
        return None
    days = []
    for d in structure:
        region = day_region(d)
        groups = UPPER if region == "upper" else LOWER if region == "lower" else GROUPS
        allowed = "\n".join(f"{g}: {', '.join(case.exercises[g])}" for g in groups if case.exercises.get(g))
        exercises = yield from _ask_twice([
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Day {d.get('day_number')}: {d.get('name')} ({d.get('focus', region)}) of a "
                                        f"{case.goal.replace('_', ' ')} program. Choose 3 to 8 exercises from:\n{allowed}\n"
                                        'Output a JSON array of {"name", "sets", "reps", "rest_seconds"}. Compound '
                                        "exercises first."}], list)
        if exercises is None:
            return None
        days.append({**d, "exercises": exercises})
    return fence({"name": program_name(case), "days": days})


def model_missing(strategy: str, model: Any) -> str | None:
    """Why `strategy` cannot run without a model or backend (None when it has one, or is the template)."""
    return None if strategy == "template" or model else f"{flag('strategy')} {strategy} needs --model (only template asks no model)"


def _one(case: ProgramCase, strategy: str) -> Steps:
    """(the reply, or None; the error when there is no reply) of one non-hybrid strategy for one case."""
    if strategy == "template":
        return template_reply(case), None
    if strategy == "chain":
        text = yield from chain_steps(case)
        return (text, None) if text is not None else ("", None)  # a chain that broke down answers nothing usable
    reply = yield messages(case, strategy), "program"
    return reply.text, reply.error


def strategy_steps(case: ProgramCase, strategy: str) -> Steps:
    """(the result, the stage whose answer was accepted): hybrid tries its stages in turn, the others are one stage."""
    for stage in HYBRID_STAGES if strategy == "hybrid" else (strategy,):
        text, error = yield from _one(case, stage)
        result = score_program(case, text, error)
        if result.passed:
            break
    return result, stage


def _rate(passed: int, of: int) -> dict[str, Any]:
    return {"rate": passed / of if of else None, "passed": passed, "of": of, "interval": wilson(passed, of)}


def rates(results: Sequence[ProgramResult]) -> dict[str, dict[str, Any]]:
    """The case pass rate over all cases; each rule's over the replies it could judge (None: an earlier rule,
    JSON or schema, left nothing to read)."""
    out = {"case_pass_rate": _rate(sum(r.passed for r in results), len(results))}
    for rule in RULES:
        judged = [r for r in results if r.rules.get(rule) is not None]
        out[rule] = _rate(sum(r.rules[rule] is True for r in judged), len(judged) if rule != "json_valid" else len(results))
    return out


METRICS = ("case_pass_rate", *RULES)


def summarize(records: Sequence[dict[str, Any]], strategy: str, model: str | None) -> dict[str, Any]:
    """The program run's figures in the tool-call summary's shape: every rate a top-level key, with `counts` and
    `intervals` beside them (so the gate, compare and history read both tasks alike)."""
    results = [r["result"] for r in records]
    latencies = [r["latency_s"] for r in records if r["latency_s"]]
    per = rates(results)
    return {
        "task": "program", "strategy": strategy, "model": model or "none (template)", "n_cases": len(results),
        "n_passed": sum(r.passed for r in results), **{k: r["rate"] for k, r in per.items()},
        "counts": {k: {"passed": r["passed"], "of": r["of"]} for k, r in per.items()},
        "intervals": {k: r["interval"] for k, r in per.items()},
        "latency_p50_s": percentile(latencies, 0.5), "latency_p95_s": percentile(latencies, 0.95),
        "by_goal": {g: rates([r for r in results if r.case.goal == g])["case_pass_rate"]
                    for g in dict.fromkeys(r.case.goal for r in results)},
        "by_days_per_week": {str(d): rates([r for r in results if r.case.days_per_week == d])["case_pass_rate"]
                             for d in sorted({r.case.days_per_week for r in results})},
        "reasons": {k: sum(r.reason == k for r in results) for k in ("backend_error", *RULES)
                    if any(r.reason == k for r in results)},
        **({"answered_by_stage": {st: sum(r.get("stage") == st for r in records) for st in HYBRID_STAGES}}
           if strategy == "hybrid" else {}),
        "cost": {"model_calls_per_program": sum(r["calls"] for r in records) / len(records) if records else None,
                 "tokens": sum(r["tokens"] for r in records)},
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The terminal table of a program run: each rate with its count and interval, the hybrid stages, the first
    failing rule per case, and what the strategy spent."""
    lines = []
    for key in METRICS:
        rate, count, iv = summary[key], summary["counts"][key], summary["intervals"][key]
        value = "—" if rate is None else f"{rate:.3f}"
        lines.append(f"  {key:<22} {value:>6} {count['passed']}/{count['of']}" + (f"  [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else ""))
    if "answered_by_stage" in summary:
        lines.append("  answered by stage: " + ", ".join(f"{k} {v}" for k, v in summary["answered_by_stage"].items()))
    if summary["reasons"]:
        lines.append("  first failing rule per case: " + ", ".join(f"{k} {v}" for k, v in summary["reasons"].items()))
    cost = summary["cost"]
    calls = cost["model_calls_per_program"]
    p50 = summary["latency_p50_s"]
    lines.append(f"  cost: {'—' if calls is None else f'{calls:.2f}'} model calls per program, {cost['tokens']} tokens"
                 + (f", latency p50 {p50:.2f} s per program" if p50 is not None else ""))
    return lines


def format_program_failure(result: ProgramResult) -> str:
    """A failed program case for pytest: the first failing rule first, then every failing rule's findings and the
    reply."""
    case = result.case
    head = (f"{result.reason}: program case {case.id} ({case.days_per_week} days, {case.goal}"
            f"{', split ' + '/'.join(case.split) if case.split else ''}) failed")
    lines = [head]
    if result.response is None:
        lines.append(f"  no reply: {result.error}")
    for rule, findings in result.failures.items():
        lines.append(f"  {rule}:")
        lines += [f"    {f}" for f in findings[:8]] + ([f"    ... {len(findings) - 8} more"] if len(findings) > 8 else [])
    if result.response is not None:
        text = result.response if len(result.response) <= 2000 else result.response[:2000] + " ..."
        lines.append("reply:")
        lines.append("\n".join("  | " + line for line in (text or "(empty)").splitlines()))
    return "\n".join(lines)


def record_line(rec: dict[str, Any]) -> dict[str, Any]:
    r: ProgramResult = rec["result"]
    return {"id": r.case.id, "category": r.case.goal, "goal": r.case.goal, "days_per_week": r.case.days_per_week,
            "response": r.response,
            "passed": r.passed, "reason": r.reason, "rules": dict(r.rules), "failures": {k: list(v) for k, v in r.failures.items()},
            "error": r.error, "calls": rec["calls"], "tokens": rec["tokens"], "latency_s": rec["latency_s"],
            **({"stage": rec["stage"]} if rec.get("stage") else {})}
