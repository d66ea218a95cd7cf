"""The golden suite's verdicts and figures are pinned: tests/fixtures/golden_verdicts.json was produced by the
harness before the catalogue moved to the function-tools form, from the replies of tests/golden_replies.py.
A change to how catalogues, prompts or suites are loaded must leave every verdict and figure as it was."""
import json
from pathlib import Path

from harness.suite import resolve_catalogue, resolve_suite
from harness.tasks.tool_call.cases import load_case_file
from harness.tasks.tool_call.match import score
from harness.tasks.tool_call.metrics import confusion, rates_block
from tests.golden_replies import GOLDEN, replies

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "golden_verdicts.json").read_text())


def test_golden_verdicts_and_figures_are_unchanged():
    catalogue = resolve_catalogue([GOLDEN])
    recorded = replies()
    results = [score(c, recorded[c.id], catalogue) for c in load_case_file(GOLDEN, catalogue).cases]
    assert {r.case.id: [r.passed, r.reason, r.outcome] for r in results} == FIXTURE["verdicts"]
    block = rates_block(results, resolve_suite([GOLDEN]).disambiguation_tools)
    assert {k: block[k] for k in FIXTURE["rates"]} == FIXTURE["rates"]
    assert block["counts"] == FIXTURE["counts"] and confusion(results) == FIXTURE["confusion"]
