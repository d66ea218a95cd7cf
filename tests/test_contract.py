"""The code against docs/contract.md and the data files beside the catalogue, on every checkout."""
import re
from pathlib import Path

from harness.backends import Backend, BackendOptions, Reply
from harness.core.engine import Run
from harness.gate import resolve_thresholds
from harness.suite import resolve_suite
from harness.tasks.tool_call.cases import CATEGORIES
from harness.tasks.tool_call.match import REASONS
from harness.tasks.tool_call.matchers import MATCHER_KEYS
from harness.tasks.tool_call.metrics import DEFAULT_THRESHOLDS
from harness.tasks.tool_call.parse import parse_reply
from harness.tasks.tool_call.task import ToolCallTask

CONTRACT = (Path(__file__).resolve().parents[1] / "docs" / "contract.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = CONTRACT.index(f"## {title}")
    end = CONTRACT.find("\n## ", start + 1)
    return CONTRACT[start:end if end > 0 else None]


def table_rows(text: str) -> list[list[str]]:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
    return [r for r in rows[2:]]  # past the header and its rule


def test_default_thresholds_are_the_contracts_table():
    table = {r[0]: r[1].split(" (")[0] for r in table_rows(section("Default thresholds"))}
    assert table.pop("adapter file size") == "< 300 MB"
    assert {m: f"{t.op} {t.value}" for m, t in DEFAULT_THRESHOLDS.items()} == {
        m: f"{op} {float(v)}" for m, (op, v) in ((m, t.split()) for m, t in table.items())}


def test_reasons_categories_and_matchers_are_the_contracts():
    reasons = set(re.findall(r"`([a-z_]+)(?::<param>)?`", section("Replies").split("from this set:")[1]))
    assert reasons == set(REASONS)
    cats = set(re.findall(r"`([a-z_]+)`", next(r for r in table_rows(section("Case files")) if r[0] == "`category`")[2]))
    assert cats == set(CATEGORIES)
    keys = {k for r in table_rows(section("Case files").split("### Param matchers")[1].split("**Dates")[0])
            for k in re.findall(r'\{"([a-z_]+)"', r[0])}
    assert keys == set(MATCHER_KEYS)


def test_the_example_reply_is_one_call():
    example = section("Replies").split("one fenced block per call,")[1].split("and plain text")[0]
    reply = "\n".join(line[4:] for line in example.splitlines() if line.startswith("    "))
    parsed = parse_reply(reply)
    assert parsed.outcome == "call" and [c.tool for c in parsed.calls] == ["createTask"]


class Echo(Backend):
    name = "echo"

    def generate(self, requests, on_reply=None):
        return [r.bind(Reply(text="Hello!", latency_s=0.1)) for r in requests]


def test_a_summary_has_every_key_the_contract_names(make_cases, tmp_path):
    cases = make_cases([{"id": "n", "category": "no_tool", "messages": [{"role": "user", "content": "hi"}],
                         "expected": []}])
    run = Run(task=ToolCallTask(), model="echo", options=BackendOptions(), thresholds=resolve_thresholds({}, DEFAULT_THRESHOLDS),
              reports_dir=tmp_path, suite=resolve_suite(), run_id="r")
    run.start(cases, backend=Echo())
    run.run_all()
    summary = run.finish()
    named = {k for r in table_rows(section("The run summary")) for k in re.findall(r"`([a-z0-9_]+)`", r[0])}
    assert named and named <= set(summary), named - set(summary)
