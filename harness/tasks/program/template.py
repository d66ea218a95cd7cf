"""The template strategy: a deterministic program from the request alone, valid by construction. It is the floor
every model must beat (it passes every rule), and the last stage of the hybrid chain."""
from __future__ import annotations

from typing import Any

from harness.fenced import fence
from harness.tasks.program.core import LOWER, UPPER, ProgramCase, program_name

# Day layouts per days per week (used when the request names no split): (day name, region).
LAYOUTS = {
    3: (("Full Body A", "full"), ("Full Body B", "full"), ("Full Body C", "full")),
    4: (("Upper A", "upper"), ("Lower A", "lower"), ("Upper B", "upper"), ("Lower B", "lower")),
    5: (("Upper Push", "upper"), ("Lower", "lower"), ("Upper Pull", "upper"), ("Lower", "lower"), ("Full Body", "full")),
    6: (("Push", "upper"), ("Pull", "upper"), ("Legs", "lower"), ("Push", "upper"), ("Pull", "upper"), ("Legs", "lower")),
}
SETS_REPS = {"hypertrophy": (4, "8-12", 90), "strength": (5, "3-5", 180), "endurance": (3, "15-20", 45),
             "general_fitness": (3, "10-12", 75), "fat_loss": (3, "12-15", 60)}


def _region_of(name: str) -> str:
    from harness.tasks.program.core import day_region

    return day_region({"name": name})


def template_program(case: ProgramCase) -> dict[str, Any]:
    """Day names from the requested split (or the layout for the number of days), each day's exercises taken in
    turn from the available lists of its region, 3 to 6 per day, never twice in a day."""
    names = list(case.split) if case.split else [n for n, _ in LAYOUTS[case.days_per_week]]
    sets, reps, rest = SETS_REPS[case.goal]
    days = []
    for i, name in enumerate(names, start=1):
        region = _region_of(name)
        groups = UPPER if region == "upper" else LOWER if region == "lower" else UPPER + LOWER
        pool = [(g, x) for g in groups for x in case.exercises.get(g, ())]
        if len(pool) < 3:  # too few exercises for this region: a full-body day may use any group
            region, groups = "full", UPPER + LOWER
            pool = [(g, x) for g in groups for x in case.exercises.get(g, ())]
        # rotate the start so that days of one region do not all repeat the same exercises
        start = (i - 1) * 2 % len(pool) if pool else 0
        chosen, seen = [], set()
        for _group, x in pool[start:] + pool[:start]:
            if x.casefold() not in seen and len(chosen) < 6:
                chosen.append({"name": x, "sets": sets, "reps": reps, "rest_seconds": rest})
                seen.add(x.casefold())
        used = sorted({g for g, x in pool if x.casefold() in seen}, key=(UPPER + LOWER).index)
        days.append({"day_number": i, "name": name,
                     "focus": {"upper": "upper body", "lower": "lower body", "full": "full body"}[region],
                     "muscle_groups": used, "exercises": chosen})
    return {"name": program_name(case), "days": days}


def template_reply(case: ProgramCase) -> str:
    return fence(template_program(case))
