"""Fine-tuning data for a catalogue other than the assistant's: examples written for the kitchen suite
(examples/kitchen, three tools of its own) are rendered in the suite's prompt and reply format, validated with the
harness's parser and schemas, split, and decontaminated against the suite's own cases."""
import json
import shutil
from pathlib import Path

import pytest

from conftest import write_jsonl
from harness.suite import resolve_suite
from harness.tasks.tool_call.parse import parse_reply
from harness.tasks.tool_call.parse_native import parse_native
from training.data.__main__ import main as data_cli
from training.data.build import build_written
from training.data.validate import read_jsonl, validate_file
from training.data.written import ExamplesError, read_examples

ROOT = Path(__file__).resolve().parents[1]
KITCHEN = ROOT / "examples" / "kitchen"
WRITTEN = ROOT / "examples" / "kitchen-training.jsonl"


def native_kitchen(tmp_path):
    folder = tmp_path / "kitchen-native"
    shutil.copytree(KITCHEN, folder)
    (folder / "suite.toml").write_text('[reply]\nformat = "native"\n')
    return folder


def test_the_cli_builds_a_set_for_the_kitchen_suite_that_validates(tmp_path, capsys):
    out = tmp_path / "data"
    assert data_cli(["build", "--suite", str(KITCHEN), "--examples", str(WRITTEN), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    n_written = len(WRITTEN.read_text().splitlines())
    assert manifest["counts"]["written"] == n_written == manifest["counts"]["total"]
    assert sum(f["examples"] for f in manifest["files"].values()) == n_written
    assert manifest["tools"].endswith("examples/kitchen/tools.json") and manifest["golden_files"] == [str(KITCHEN / "cases.jsonl")]
    assert set(manifest["composition"]["tools"]) == {"setTimer", "addToShoppingList", "convertUnits"}
    assert f"built {n_written} examples" in printed
    suite = resolve_suite([KITCHEN])
    for split in ("train", "val", "holdout"):
        assert validate_file(out / f"{split}.jsonl", suite) == []
    ex = next(e for _, e in read_jsonl(out / "train.jsonl") if e["kind"] == "single")
    assert "setTimer" in ex["messages"][0]["content"] and "createTask" not in ex["messages"][0]["content"]
    assert parse_reply(ex["messages"][-1]["content"]).outcome == "call"
    # the same files are not valid for the assistant suite: another prompt, other tools
    assert data_cli(["validate", str(out / "train.jsonl")]) == 1


def test_answers_are_written_in_the_suites_reply_format(tmp_path):
    written = tmp_path / "w.jsonl"
    write_jsonl(written, [
        {"messages": [{"role": "user", "content": "Set a six minute timer"}], "calls": [{"tool": "setTimer", "params": {"minutes": 6}}]},
        {"messages": [{"role": "user", "content": "Oil and salt on the list, and time 7 minutes"}],
         "calls": [{"tool": "addToShoppingList", "params": {"items": ["oil", "salt"]}}, {"tool": "setTimer", "params": {"minutes": 7}}],
         "say": "Both done."},
        {"messages": [{"role": "user", "content": "cheers"}], "reply": "Any time."}])
    fenced = read_examples(written, resolve_suite([KITCHEN]))
    assert fenced[0]["messages"][-1]["content"] == 'I\'ll use setTimer.\n\n```json\n{"tool": "setTimer", "params": {"minutes": 6}}\n```'
    assert [c.tool for c in parse_reply(fenced[1]["messages"][-1]["content"]).calls] == ["addToShoppingList", "setTimer"]
    assert [e["kind"] for e in fenced] == ["single", "multi_tool", "no_tool"] and "tools" not in fenced[0]
    suite = resolve_suite([native_kitchen(tmp_path)])
    native = read_examples(written, suite)
    assert json.loads(native[0]["messages"][-1]["content"]) == {"name": "setTimer", "parameters": {"minutes": 6}}
    parsed = parse_native(native[1]["messages"][-1]["content"], suite.catalogue.names)
    assert parsed.outcome == "call" and len(parsed.calls) == 2
    assert native[0]["tools"] == suite.catalogue.to_function_tools()  # the template renders them, as at evaluation
    assert "Any time." == native[2]["messages"][-1]["content"]


def test_a_native_set_builds_and_validates(tmp_path):
    folder = native_kitchen(tmp_path)
    suite = resolve_suite([folder])
    manifest = build_written(suite, [WRITTEN], tmp_path / "data", [str(folder / "cases.jsonl")])
    assert manifest["reply_format"] == "native"
    assert validate_file(tmp_path / "data" / "train.jsonl", suite) == []
    fenced_problems = validate_file(tmp_path / "data" / "train.jsonl", resolve_suite([KITCHEN]))
    assert fenced_problems and any("system prompt" in p for p in fenced_problems)


def test_near_copies_of_the_suites_cases_are_dropped(tmp_path):
    written = tmp_path / "w.jsonl"
    write_jsonl(written, [
        {"messages": [{"role": "user", "content": "set a timer for 12 minutes for the pasta!"}],
         "calls": [{"tool": "setTimer", "params": {"minutes": 12}}]},
        {"messages": [{"role": "user", "content": "A 9 minute timer for the noodles"}],
         "calls": [{"tool": "setTimer", "params": {"minutes": 9}}]}])
    manifest = build_written(resolve_suite([KITCHEN]), [written], tmp_path / "data", [str(KITCHEN / "cases.jsonl")])
    assert manifest["counts"]["decontaminated"] == 1 and manifest["counts"]["total"] == 1
    assert "set a timer for 12 minutes for the pasta" in manifest["decontaminated_examples"][0]


@pytest.mark.parametrize("row, where", [
    ({"messages": [{"role": "user", "content": "x"}]}, ":1: calls / reply"),
    ({"messages": [], "reply": "x"}, ":1: messages"),
    ({"messages": [{"role": "user", "content": "x"}], "calls": [{"tool": "setTimer"}]}, ":1: calls"),
    ({"messages": [{"role": "user", "content": "x"}], "reply": "y", "now": "tomorrow"}, ":1: now"),
    ({"messages": [{"role": "user", "content": "x"}], "reply": "y", "kind": "weird"}, ":1: kind"),
])
def test_a_bad_examples_line_is_named(tmp_path, row, where):
    written = tmp_path / "w.jsonl"
    write_jsonl(written, [row])
    with pytest.raises(ExamplesError, match=where):
        read_examples(written, resolve_suite([KITCHEN]))


def test_calls_the_catalogue_refuses_stop_the_build_before_anything_is_written(tmp_path, capsys):
    written = tmp_path / "w.jsonl"
    write_jsonl(written, [
        {"messages": [{"role": "user", "content": "timer zero"}], "calls": [{"tool": "setTimer", "params": {"minutes": 0}}]},
        {"messages": [{"role": "user", "content": "new task"}], "calls": [{"tool": "createTask", "params": {"title": "x"}}]}])
    out = tmp_path / "data"
    assert data_cli(["build", "--suite", str(KITCHEN), "--examples", str(written), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "setTimer params: minutes: 0 is less than the minimum of 1" in err and "unknown tool 'createTask'" in err
    assert not out.exists()
    assert data_cli(["build", "--examples", str(written), "--out", str(out)]) == 2  # examples without their suite
