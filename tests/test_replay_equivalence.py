"""Every shipped suite decides as it did: a replay run of the golden suite, the kitchen example, a BFCL sample and
the program suite through `pytest --model=replay` gives the verdicts and summary figures pinned in
tests/fixtures/replay_runs.json (written by `python tests/replay_suites.py --write` before the layout changed).
A change meant to alter a figure rewrites the fixture in the same commit, so the diff shows what moved.
Keys the one engine added to every task's summary (ADDED) may be new; none pinned may change or go."""
import json

import pytest

from tests.replay_suites import FIXTURE, observe, suites

# The engine's keys for every task: the tool-call summary gained the task's name and n_planned, the program
# summary the unanswered count and the refused files the tool-call one had.
ADDED = {"task", "n_planned", "n_unanswered", "refused_files"}


@pytest.mark.parametrize("name", ["golden", "kitchen", "bfcl", "program"])
def test_a_replay_run_of_a_shipped_suite_decides_as_pinned(name, tmp_path):
    pinned = json.loads(FIXTURE.read_text())[name]
    seen = observe(suites(tmp_path)[name], tmp_path / "runs" / name)
    assert len(seen["verdicts"]) == len(pinned["verdicts"]) > 0
    assert seen["verdicts"] == pinned["verdicts"]
    assert {k: seen["summary"].get(k, "(gone)") for k in pinned["summary"]} == pinned["summary"]
    assert set(seen["summary"]) - set(pinned["summary"]) <= ADDED
    assert seen["exit"] == pinned["exit"] == 1  # each suite's replies include failures: the gate fails the run
