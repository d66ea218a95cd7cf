"""Catalogues in the function-tools form, and suites that carry their own."""
import json

import pytest

from conftest import write_jsonl
from harness.tasks.tool_call.tools import catalogue_from_json, load_catalogue

TIMER = [{"type": "function", "function": {"name": "setTimer", "description": "Start a kitchen timer.",
          "parameters": {"type": "object", "properties": {"minutes": {"type": "integer", "minimum": 1}},
                         "required": ["minutes"], "additionalProperties": False}}}]


def test_the_packaged_catalogue_is_a_function_tools_list():
    from harness.tasks.tool_call.tools import DEFAULT_TOOLS_PATH
    raw = json.loads(DEFAULT_TOOLS_PATH.read_text())
    assert isinstance(raw, list) and len(raw) == 10 and all(t["type"] == "function" for t in raw)
    assert load_catalogue(DEFAULT_TOOLS_PATH).to_function_tools() == raw


def test_the_older_form_reads_the_same():
    legacy = {"tools": [{"name": "setTimer", "summary": "Start a kitchen timer.",
                         "params": TIMER[0]["function"]["parameters"]}]}
    assert catalogue_from_json(legacy, "x").to_function_tools() == catalogue_from_json(TIMER, "y").to_function_tools()


@pytest.mark.parametrize("raw, why", [
    (TIMER + TIMER, r"tools\[1\]: 'setTimer' is defined twice"),
    ([{"type": "function"}], r"tools\[0\] lacks 'function'"),
    ([{"type": "function", "function": {"name": ""}}], "non-empty string"),
    ([], "no tools"),
    ({"tools": {}}, "a catalogue is a list"),
])
def test_a_bad_catalogue_is_refused_with_the_entry(raw, why):
    with pytest.raises(ValueError, match=why):
        catalogue_from_json(raw, "tools.json")


def timer_suite(folder, with_tools=True):
    folder.mkdir()
    if with_tools:
        (folder / "tools.json").write_text(json.dumps(TIMER))
    write_jsonl(folder / "cases.jsonl", [
        {"id": "t1", "category": "single", "messages": [{"role": "user", "content": "timer for 5 minutes"}],
         "expected": [{"tool": "setTimer", "params": {"minutes": 5}}]},
        {"id": "t2", "category": "no_tool", "messages": [{"role": "user", "content": "thanks"}], "expected": []}])
    write_jsonl(folder.parent / f"{folder.name}.replies.jsonl", [
        {"id": "t1", "response": '```json\n{"tool": "setTimer", "params": {"minutes": 5}}\n```'},
        {"id": "t2", "response": "You're welcome."}])
    return folder


def test_a_suite_folder_brings_its_own_catalogue(pytester):
    timer_suite(pytester.path / "kitchen")
    result = pytester.runpytest("--model=replay", "--th-cases", "kitchen", "--th-replies", "kitchen.replies.jsonl",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["tools: *kitchen/tools.json (1 tools)"])
    s = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert s["tool_selection_accuracy"] == 1.0 and s["no_tool_accuracy"] == 1.0


def test_tools_option_names_the_catalogue_of_a_folder_without_one(pytester):
    timer_suite(pytester.path / "kitchen", with_tools=False)
    (pytester.path / "timer-tools.json").write_text(json.dumps(TIMER))
    args = ["--model=replay", "--th-cases", "kitchen", "--th-replies", "kitchen.replies.jsonl", "-p", "no:cacheprovider"]
    refused = pytester.runpytest(*args)
    assert refused.ret == pytest.ExitCode.INTERRUPTED  # the assistant's catalogue has no setTimer
    refused.stdout.fnmatch_lines(["*expected?0?.tool: unknown tool 'setTimer'*"])
    pytester.runpytest(*args, "--th-tools", "timer-tools.json").assert_outcomes(passed=2)


def test_suites_with_different_catalogues_do_not_share_a_run(pytester):
    timer_suite(pytester.path / "a")
    timer_suite(pytester.path / "b")
    (pytester.path / "b" / "tools.json").write_text(json.dumps(TIMER + [{**TIMER[0], "function": {
        **TIMER[0]["function"], "name": "stopTimer"}}]))
    result = pytester.runpytest("--model=replay", "--th-cases", "a", "--th-cases", "b", "--th-replies", "a.replies.jsonl",
                                "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "different tool catalogues" in result.stderr.str()


def test_only_the_suite_resolver_loads_the_packaged_catalogue():
    """The core never defaults a catalogue: `harness.suite.resolve_catalogue` is the one edge that does."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in sorted(p for d in ("harness", "training", "deploy") for p in (root / d).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in ("harness/suite.py", "harness/tasks/tool_call/tools.py"):
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"DEFAULT_TOOLS_PATH|load_catalogue\(|spec/tools\.json", text):
            offenders.append(rel)
    assert offenders == []


FLIGHTS = [{"type": "function", "function": {"name": "book_flight", "description": "Book a flight.",
            "parameters": {"type": "object", "properties": {"to": {"type": "string"}, "seats": {"type": "integer"}},
                           "required": ["to"], "additionalProperties": False}}}]


def test_a_case_may_bring_its_own_functions(make_cases, catalogue, suite):
    from harness.tasks.tool_call.match import score
    from harness.tasks.tool_call.prompt import build_messages
    [case] = make_cases([{"id": "c", "category": "single", "tools": FLIGHTS,
                          "messages": [{"role": "user", "content": "fly me to Oslo"}],
                          "expected": [{"tool": "book_flight", "params": {"to": "Oslo"}}]}])
    system = build_messages(case, catalogue, suite.template)[0]["content"]
    assert "### book_flight" in system and "### createTask" not in system
    good = '```json\n{"tool": "book_flight", "params": {"to": "Oslo", "seats": 2}}\n```'
    assert score(case, good, catalogue).passed
    extra = '```json\n{"tool": "book_flight", "params": {"to": "Oslo", "class": "first"}}\n```'
    assert score(case, extra, catalogue).reason == "schema_error"  # no param beyond the listed ones
    other = '```json\n{"tool": "createTask", "params": {"title": "x", "priority": "low"}}\n```'
    assert score(case, other, catalogue).reason == "wrong_tool"


def test_a_cases_own_functions_are_checked_like_a_catalogue(tmp_path, catalogue):
    from harness.tasks.tool_call.cases import CaseFileError, load_case_file
    rows = [{"id": "a", "category": "single", "tools": FLIGHTS + FLIGHTS, "messages": [{"role": "user", "content": "x"}],
             "expected": [{"tool": "book_flight", "params": {}}]},
            {"id": "b", "category": "single", "tools": FLIGHTS, "messages": [{"role": "user", "content": "x"}],
             "expected": [{"tool": "createTask", "params": {}}]}]
    with pytest.raises(CaseFileError) as exc:
        load_case_file(write_jsonl(tmp_path / "c.jsonl", rows), catalogue)
    assert [(p.line, p.field) for p in exc.value.problems] == [(1, "tools"), (2, "expected[0].tool")]
    assert "defined twice" in exc.value.problems[0].message


def test_disambiguation_is_the_suites_setting(pytester):
    """The assistant suite keeps the contract's pair; another catalogue counts every contrastive case unless its
    suite.toml declares which tools make disambiguation_accuracy."""
    from harness.suite import ASSISTANT_DISAMBIGUATION, resolve_suite
    assert resolve_suite().disambiguation_tools == ASSISTANT_DISAMBIGUATION
    folder = pytester.path / "kitchen"
    folder.mkdir()
    two = TIMER + [{"type": "function", "function": {"name": "addToList", "description": "Add to the shopping list.",
                    "parameters": {"type": "object", "properties": {"item": {"type": "string"}}}}}]
    (folder / "tools.json").write_text(json.dumps(two))
    write_jsonl(folder / "cases.jsonl", [
        {"id": "a", "category": "contrastive", "pair": "p", "messages": [{"role": "user", "content": "5 min timer"}],
         "expected": [{"tool": "setTimer", "params": {"minutes": 5}}]},
        {"id": "b", "category": "contrastive", "pair": "p", "messages": [{"role": "user", "content": "buy eggs"}],
         "expected": [{"tool": "addToList", "params": {}}]}])
    assert resolve_suite([folder]).disambiguation_tools is None
    (folder / "suite.toml").write_text('[metrics]\ndisambiguation_tools = ["setTimer"]\n')
    assert resolve_suite([folder]).disambiguation_tools == frozenset({"setTimer"})
    write_jsonl(pytester.path / "r.jsonl", [
        {"id": "a", "response": '```json\n{"tool": "setTimer", "params": {"minutes": 5}}\n```'},
        {"id": "b", "response": '```json\n{"tool": "setTimer", "params": {"minutes": 1}}\n```'}])
    pytester.runpytest("--model=replay", "--th-cases", "kitchen", "--th-replies", "r.jsonl", "-p", "no:cacheprovider")
    s = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert s["counts"]["disambiguation_accuracy"] == {"passed": 1, "of": 1}  # only the setTimer case counts
    (folder / "suite.toml").write_text('[metrics]\ndisambiguation_tools = ["nope"]\n')
    result = pytester.runpytest("--model=replay", "--th-cases", "kitchen", "--th-replies", "r.jsonl", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "not in it: ['nope']" in result.stderr.str()


def test_a_case_may_open_with_its_own_system_message_where_the_suite_allows_it(pytester):
    from harness.tasks.tool_call.cases import load_case_file
    from harness.tasks.tool_call.prompt import build_messages
    folder = timer_suite(pytester.path / "kitchen")
    rows = [{"id": "s", "category": "single", "messages": [{"role": "system", "content": "You are terse."},
                                                           {"role": "user", "content": "timer 5"}],
             "expected": [{"tool": "setTimer", "params": {"minutes": 5}}]}]
    write_jsonl(folder / "cases.jsonl", rows)
    write_jsonl(pytester.path / "r.jsonl", [{"id": "s", "response": '```json\n{"tool": "setTimer", "params": {"minutes": 5}}\n```'}])
    args = ("--model=replay", "--th-cases", "kitchen", "--th-replies", "r.jsonl", "-p", "no:cacheprovider")
    refused = pytester.runpytest(*args)
    assert refused.ret == pytest.ExitCode.INTERRUPTED
    refused.stdout.fnmatch_lines(["*messages?0?.role: role 'system'*only first, where the suite's suite.toml allows it*"])
    (folder / "suite.toml").write_text("[cases]\nsystem_messages = true\n")
    pytester.runpytest(*args).assert_outcomes(passed=1)
    from harness.suite import resolve_suite
    suite = resolve_suite([folder])
    case = load_case_file(folder / "cases.jsonl", suite.catalogue, system_messages=True).cases[0]
    roles = [m["role"] for m in build_messages(case, suite.catalogue, suite.template)]
    assert roles == ["system", "system", "user"]  # the suite's prompt, then the case's own
