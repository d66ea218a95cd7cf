"""Fine-tuning data for the workout-program task: generated requests answered by rule-valid programs.

    python -m training.data build --task program --out data/program [--n 600] [--seed-file seed.jsonl]

Each example is the chat the program task asks at evaluation (harness.tasks.program.strategies: its system prompt and request
text) with a program that passes every rule as the answer: the template builder's program, varied (exercise
order and count, sets, reps and rest within the rules). Requests are drawn at random (days, goal, split or not,
which exercises are available); a request identical to one of the golden program suite's is dropped and counted
(the suite is the measure, never the target). The seed plan's `{"prompt", "completion"}` lines are accepted as
well: kept when the completion is a program the schema accepts, refused by line otherwise. Split by group
(one group per request), stratified by days per week.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any, Sequence

from harness import jsonl
from harness.fenced import fence
from harness.report import atomic_write_text
from harness.tasks.program.core import GOALS, ProgramCase, load_program_file, parse_program, schema_errors
from harness.tasks.program.strategies import SYSTEM, request_text
from harness.tasks.program.task import ProgramTask
from harness.tasks.program.template import template_program
from training.data.split import by_split, invert, split_groups, write_splits

LIBRARY = {
    "Chest": ["Barbell Bench Press", "Incline Dumbbell Press", "Cable Fly", "Push-Up", "Machine Chest Press", "Dips",
              "Decline Press", "Pec Deck"],
    "Back": ["Barbell Row", "Lat Pulldown", "Pull-Up", "Seated Cable Row", "Deadlift", "Face Pull", "T-Bar Row"],
    "Shoulders": ["Overhead Press", "Lateral Raise", "Rear Delt Fly", "Arnold Press", "Push Press"],
    "Biceps": ["Barbell Curl", "Hammer Curl", "Preacher Curl", "Incline Curl"],
    "Triceps": ["Triceps Pushdown", "Skull Crusher", "Overhead Triceps Extension", "Close-Grip Press"],
    "Legs": ["Leg Press", "Walking Lunge", "Bulgarian Split Squat", "Step-Up"],
    "Quads": ["Back Squat", "Front Squat", "Leg Extension", "Hack Squat", "Goblet Squat"],
    "Hamstrings": ["Romanian Deadlift", "Lying Leg Curl", "Good Morning", "Nordic Curl"],
    "Glutes": ["Hip Thrust", "Glute Bridge", "Cable Kickback"],
    "Calves": ["Standing Calf Raise", "Seated Calf Raise", "Donkey Calf Raise"],
}
SPLITS_BY_DAYS = {3: [["Full Body", "Upper", "Lower"], ["Full Body A", "Full Body B", "Full Body C"]],
                  4: [["Upper", "Lower", "Upper", "Lower"], ["Upper Push", "Lower", "Upper Pull", "Lower"]],
                  5: [["Push", "Pull", "Legs", "Upper", "Lower"]], 6: [["Push", "Pull", "Legs", "Push", "Pull", "Legs"]]}
VOLUME = {"hypertrophy": ([3, 4], ["8-12", "10-12", "6-10"], [60, 90, 120]),
          "strength": ([4, 5], ["3-5", "4-6", 5], [150, 180, 240]),
          "endurance": ([2, 3], ["15-20", "12-15", 20], [30, 45, 60]),
          "general_fitness": ([3], ["10-12", "8-12", 10], [60, 75, 90]),
          "fat_loss": ([3, 4], ["12-15", "10-15"], [45, 60])}


def request_key(case: ProgramCase) -> str:
    """What makes two requests the same: days, goal, split and the available exercises (order aside)."""
    body = {"d": case.days_per_week, "g": case.goal, "s": list(case.split or ()),
            "e": {g: sorted(x.casefold() for x in v) for g, v in sorted(case.exercises.items()) if v}}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def random_case(rng: random.Random, n: int) -> ProgramCase:
    days = rng.choice((3, 4, 5, 6))
    lists = {g: tuple(rng.sample(v, rng.randint(min(2, len(v)), len(v)))) for g, v in LIBRARY.items()}
    if rng.random() < 0.2:
        lists.pop(rng.choice(("Calves", "Glutes", "Biceps", "Legs")))
    split = tuple(rng.choice(SPLITS_BY_DAYS[days])) if rng.random() < 0.5 else None
    user = {"weight_kg": rng.randint(50, 110), "age": rng.randint(18, 70)} if rng.random() < 0.4 else None
    return ProgramCase(f"gen-{n}", days, rng.choice(GOALS), lists, split=split, user=user)


def varied_program(case: ProgramCase, rng: random.Random) -> dict[str, Any]:
    """The template's program with its exercise order and count, sets, reps and rest varied within the rules."""
    program = template_program(case)
    sets, reps, rests = VOLUME[case.goal]
    for day in program["days"]:
        exercises = day["exercises"]
        rng.shuffle(exercises)
        del exercises[rng.randint(3, max(3, len(exercises))):]
        for e in exercises:
            e.update(sets=rng.choice(sets), reps=rng.choice(reps), rest_seconds=rng.choice(rests))
    return program


def example(case: ProgramCase, answer: str, source: str, group: str) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": request_text(case)},
                         {"role": "assistant", "content": answer}],
            "now": "2026-02-24T09:00:00Z", "kind": "program", "source": source, "group": group,
            "days_per_week": case.days_per_week}


def convert_seed_file(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The seed plan's {"prompt", "completion"} lines as chat examples; refused lines as `file:line: why`."""
    kept, refused = [], []
    for n, line in jsonl.iter_lines(path):
        try:
            rec = jsonl.loads(line)
            prompt, completion = rec["prompt"], rec["completion"]
        except (ValueError, KeyError, TypeError) as exc:
            refused.append(f"{path}:{n}: not a {{\"prompt\", \"completion\"}} line ({exc})")
            continue
        program, why = parse_program(completion)
        errors = schema_errors(program) if program is not None else [why]
        if errors:
            refused.append(f"{path}:{n}: completion: {errors[0]}")
            continue
        kept.append({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt},
                                  {"role": "assistant", "content": "```json\n" + json.dumps(program) + "\n```"}],
                     "now": "2026-02-24T09:00:00Z", "kind": "program", "source": f"seed:{Path(path).name}",
                     "group": f"seed/{n}", "days_per_week": len(program["days"])})
    return kept, refused


def build_program_set(out: Path, *, n: int = 600, seed: int = 13, golden: Sequence[Path] = (),
                      seed_files: Sequence[Path] = (), holdout: float = 0.15, val: float = 0.10) -> dict[str, Any]:
    """Generate, validate (every program must pass every rule for its request), decontaminate, split, write."""
    rng = random.Random(seed)
    golden_keys = {request_key(c) for f in golden for c in load_program_file(f)}
    examples, dropped, seen = [], [], set()
    for i in range(n):
        case = random_case(rng, i)
        key = request_key(case)
        if key in golden_keys:
            dropped.append(f"gen-{i}: the same request as a golden case")
            continue
        if key in seen:
            continue
        seen.add(key)
        answer = fence(varied_program(case, rng))
        result = ProgramTask().score_text(case, answer)
        if not result.passed:  # zero tolerance: a generator bug, never training data
            raise ValueError(f"generated program for gen-{i} breaks {result.reason}: {result.failures}")
        examples.append(example(case, answer, "generated", f"req/{key}"))
    refused: list[str] = []
    for path in seed_files:
        kept, bad = convert_seed_file(path)
        examples += kept
        refused += bad
    strata = {ex["group"]: f"days-{ex['days_per_week']}" for ex in examples}
    files = write_splits(out, by_split(examples, split_groups(invert(strata), holdout, val, seed)))
    manifest = {"task": "program", "files": files, "golden_files": [str(g) for g in golden],
                "counts": {"total": len(examples), "decontaminated": len(dropped), "seed_refused": len(refused)},
                "decontaminated_examples": dropped, "seed_refused": refused,
                "system_prompt_sha256": hashlib.sha256(SYSTEM.encode()).hexdigest()}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest

