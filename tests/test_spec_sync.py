"""The in-repo contract (docs/contract.md, harness/spec/) against the team's shared spec, where a checkout
has one beside it (../shared/spec/). On a clean checkout these skip; tests/test_contract.py always runs."""
import json
import re
from pathlib import Path

import pytest

from harness.tasks.tool_call.metrics import DEFAULT_THRESHOLDS
from harness.tasks.tool_call.tools import DEFAULT_TOOLS_PATH, catalogue_from_json, load_catalogue

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec"
CONTRACT = (Path(__file__).resolve().parents[1] / "docs" / "contract.md").read_text(encoding="utf-8")
shared = pytest.mark.skipif(not SPEC.is_dir(), reason="no shared spec folder beside this checkout")


@shared
def test_packaged_catalogue_is_the_spec():
    """The same tools, descriptions and schemas (the packaged file is in the function-tools form)."""
    spec = catalogue_from_json(json.loads((SPEC / "tools.json").read_text()), "spec")
    assert load_catalogue(DEFAULT_TOOLS_PATH).to_function_tools() == spec.to_function_tools()


@shared
def test_default_thresholds_are_the_specs():
    text = (SPEC / "metrics.md").read_text(encoding="utf-8").split("## Default thresholds")[1]
    rows = dict(re.findall(r"^\| ([a-z0-9_]+) \| ([<>]=? [0-9.]+)", text, re.M))
    assert {m: (t.op, t.value) for m, t in DEFAULT_THRESHOLDS.items()} == {
        m: (v.split()[0], float(v.split()[1])) for m, v in rows.items()}


@shared
def test_every_summary_key_of_the_spec_is_in_the_contract():
    text = (SPEC / "metrics.md").read_text(encoding="utf-8").split("## Default thresholds")[0]
    keys = {k for row in re.findall(r"^\| (`[^|]+)\|", text, re.M) for k in re.findall(r"`([a-z0-9_]+)`", row)}
    summary_table = CONTRACT.split("## The run summary")[1].split("## Default thresholds")[0]
    documented = set(re.findall(r"^\| `([a-z0-9_]+)`", summary_table, re.M)) | set(
        re.findall(r"^\| `[a-z0-9_]+`, `([a-z0-9_]+)`", summary_table, re.M))
    assert keys and keys <= documented, keys - documented


@shared
def test_the_contract_names_the_specs_date_forms_and_reasons():
    spec = (SPEC / "golden-cases.md").read_text(encoding="utf-8") + (SPEC / "metrics.md").read_text(encoding="utf-8")
    for phrase in ("`-00:00`", "`+0000`", "`+00`", "`20260227T1000Z`", "`２０２６`", "`٢٠٢٦`", "`minLength`"):
        assert phrase in spec and phrase in CONTRACT, phrase
    for reason in re.findall(r"`([a-z_]+(?::<param>)?)`", spec.split("typed failure reason")[1].split("\n\n")[0]):
        assert f"`{reason}`" in CONTRACT, reason


def test_catalogue_has_the_ten_tools(catalogue):
    assert len(catalogue.names) == 10 and "createTask" in catalogue and "createCalendarEvent" in catalogue
