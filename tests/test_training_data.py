"""training.data: build, validate, split, decontaminate, convert."""
import copy
import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import write_jsonl
from harness.isotime import parse_now
from harness.suite import resolve_suite  # noqa: E402
from harness.tasks.tool_call.cases import load_case_file
from harness.tasks.tool_call.match import score
from harness.tasks.tool_call.parse import parse_reply
from training.data.__main__ import main as data_cli
from training.data.build import BuildConfig, build, load_seeds
from training.data.convert import convert_file
from training.data.examples import call, make_example, reply, tool_result
from training.data.split import GoldenIndex, decontaminate, split_groups
from training.data.validate import validate_example

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "converters"
GOLDEN = sorted((Path(__file__).resolve().parent.parent / "golden").glob("*.jsonl"))
NOW = parse_now("2026-02-24T09:00:00Z")


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "v1"
    manifest = build(BuildConfig(out=str(out)))
    splits = {s: [json.loads(line) for line in (out / f"{s}.jsonl").read_text().splitlines()] for s in ("train", "val", "holdout")}
    return out, manifest, splits


def test_build_meets_the_composition_targets(built):
    out, manifest, splits = built
    examples = [ex for s in splits.values() for ex in s]
    assert len(examples) >= 1000 and manifest["counts"]["total"] == len(examples)
    kinds = Counter(ex["kind"] for ex in examples)
    assert 0.10 <= kinds["no_tool"] / len(examples) <= 0.15
    assert 0.08 <= kinds["general"] / len(examples) <= 0.12
    assert kinds["contrastive"] >= 120 and kinds["multi_turn"] >= 100 and kinds["multi_tool"] >= 50
    tools = Counter(c.tool for ex in examples for c in parse_reply(ex["messages"][-1]["content"]).calls)
    assert all(n >= 25 for n in tools.values()) and len(tools) == 10
    assert 0.12 <= len(splits["holdout"]) / len(examples) <= 0.20
    for name, f in manifest["files"].items():
        assert f["examples"] == len(splits[name]) and len(f["sha256"]) == 64
    assert manifest["system_prompt_sha256"]


def test_same_seed_same_files(built, tmp_path):
    out, manifest, _ = built
    again = build(BuildConfig(out=str(tmp_path / "again")))
    assert again["files"] == manifest["files"]
    other = build(BuildConfig(out=str(tmp_path / "other"), seed=99))
    assert other["files"]["train"]["sha256"] != manifest["files"]["train"]["sha256"]


def test_every_example_is_valid(built):
    _, _, splits = built
    for split, examples in splits.items():
        for i, ex in enumerate(examples):
            assert validate_example(ex, resolve_suite()) == [], (split, i)


def example_as_case(ex, i):
    """A training example as a golden case: its conversation, and its final reply's calls as exact expectations."""
    calls = parse_reply(ex["messages"][-1]["content"]).calls
    category = {"general": "no_tool", "contrastive": "single"}.get(ex["kind"], ex["kind"])
    return {"id": f"ex{i}", "category": category, "now": ex["now"], "messages": ex["messages"][1:-1],
            "expected": [{"tool": c.tool, "params": c.params} for c in calls]}


def test_every_example_is_a_perfect_reply_to_itself_under_the_harness(built, tmp_path, catalogue):
    _, _, splits = built
    examples = [ex for s in splits.values() for ex in s]
    path = write_jsonl(tmp_path / "as_cases.jsonl", [example_as_case(ex, i) for i, ex in enumerate(examples)])
    cases = load_case_file(path, catalogue).cases
    results = [score(case, ex["messages"][-1]["content"], catalogue) for case, ex in zip(cases, examples)]
    failed = [(r.case.id, r.reason) for r in results if not r.passed]
    assert not failed and len(results) == len(examples)


def test_groups_never_straddle_splits(built):
    _, _, splits = built
    where = {}
    for split, examples in splits.items():
        for ex in examples:
            assert where.setdefault(ex["group"], split) == split, ex["group"]
    assert {ex["group"] for ex in splits["holdout"]}.isdisjoint({ex["group"] for ex in splits["train"]})


def test_split_is_by_group_with_a_fixed_seed():
    strata = {"a": [f"a/{i}" for i in range(20)], "b": ["b/0", "b/1"]}
    first = split_groups(strata, 0.15, 0.10, seed=1)
    assert first == split_groups(strata, 0.15, 0.10, seed=1)
    assert Counter(first[g] for g in strata["a"]) == {"train": 15, "holdout": 3, "val": 2}
    assert {first["b/0"], first["b/1"]} == {"train"}  # too few groups to hold any out


def test_no_training_prompt_copies_a_golden_prompt(built):
    _, manifest, splits = built
    index = GoldenIndex.from_files(GOLDEN, resolve_suite().catalogue)
    assert all(index.hit(m["content"]) is None for s in splits.values() for ex in s for m in ex["messages"] if m["role"] == "user")
    assert manifest["golden_files"]


def test_a_planted_golden_prompt_is_caught():
    golden_case = load_case_file(GOLDEN[0], resolve_suite().catalogue).cases[0]
    prompt = golden_case.messages[-1]["content"]
    planted = make_example([("user", prompt), ("assistant", "ok")], now=NOW, kind="general", source="t", group="g1")
    near = make_example([("user", "  " + prompt.upper().rstrip(".?!") + "!! ")], now=NOW, kind="general", source="t", group="g2")
    clean = make_example([("user", "Something entirely different about penguins"), ("assistant", "ok")], now=NOW,
                         kind="general", source="t", group="g3")
    kept, dropped = decontaminate([planted, near, clean], GoldenIndex.from_files(GOLDEN, resolve_suite().catalogue))
    assert kept == [clean] and len(dropped) == 2


def good_example():
    return make_example([
        ("user", "Add a task to call Sam"), ("assistant", reply(call("createTask", title="Call Sam", priority="medium"))),
        ("tool", tool_result("createTask", {"taskId": "task_9"})),
        ("user", "done"), ("assistant", reply(call("completeTask", taskId="task_9"))),
    ], now=NOW, kind="multi_turn", source="t", group="g")


def _break(ex, path, value):
    bad = copy.deepcopy(ex)
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return bad


PLANTED = [
    ("system prompt drift", ("messages", 0, "content"), "You are a helpful assistant.", "byte-identical"),
    ("malformed block", ("messages", -1, "content"), "Ok.\n\n```json\n{\"tool\": \"completeTask\"\n```", "call 1: "),
    ("unknown tool", ("messages", -1, "content"),
     reply({"tool": "finishTask", "params": {"taskId": "task_9"}}, ack="Done."), "unknown tool"),
    ("schema", ("messages", 2, "content"),
     reply({"tool": "createTask", "params": {"title": "x"}}, ack="Ok."), "'priority' is a required property"),
    ("bad date", ("messages", 2, "content"),
     reply(call("createTask", title="x", priority="low", dueDate="next friday")), "not an ISO 8601"),
    ("id from nowhere", ("messages", -1, "content"), reply(call("completeTask", taskId="task_1")), "appears in no earlier tool result"),
    ("no sentence", ("messages", -1, "content"),
     "```json\n{\"tool\": \"completeTask\", \"params\": {\"taskId\": \"task_9\"}}\n```", "sentence"),
    ("tool turn", ("messages", 3, "content"), "not json", "(tool): content is not JSON"),
    ("kind mismatch", ("kind",), "no_tool", "plain text with no call"),
    ("unknown kind", ("kind",), "chat", "kind 'chat'"),
    ("ends with user", ("messages",), None, "last message"),
    ("bad now", ("now",), "soon", "not an ISO 8601 date-time"),
]


@pytest.mark.parametrize("name, path, value, expect", PLANTED, ids=[p[0] for p in PLANTED])
def test_validator_catches_each_planted_problem(name, path, value, expect):
    ex = good_example()
    assert validate_example(ex, resolve_suite()) == []
    bad = _break(ex, path, value) if value is not None else {**ex, "messages": ex["messages"][:-1]}
    problems = validate_example(bad, resolve_suite())
    assert any(expect in p for p in problems), problems


def test_plain_kinds_must_not_call():
    ex = make_example([("user", "thanks"), ("assistant", "You're welcome!")], now=NOW, kind="no_tool", source="t", group="g")
    assert validate_example(ex, resolve_suite()) == []
    ex = make_example([("user", "hi"), ("assistant", "Hello!")], now=NOW, kind="single", source="t", group="g")
    assert any("must call a tool" in p for p in validate_example(ex, resolve_suite()))


@pytest.mark.parametrize("source, file, kept, reasons", [
    ("glaive", "glaive.jsonl", ["getWeather", "sendEmail"], {"no tool with this purpose", "no function call"}),
    ("xlam", "xlam.jsonl", ["getWeather+getWeather", "createTask"], {"no tool with this purpose"}),
    ("hermes", "hermes.jsonl", ["createCalendarEvent"], {"no tool with this purpose"}),
    ("apigen-mt", "apigen_mt.jsonl", ["createTask"], {"no tool with this purpose"}),
    ("hypervariance", "hypervariance.jsonl", ["getWeather"], {"no tool with this purpose"}),
])
def test_converters_on_fixtures(source, file, kept, reasons):
    examples, report = convert_file(source, FIXTURES / file)
    got = ["+".join(c.tool for c in parse_reply(ex["messages"][-1]["content"]).calls) for ex in examples]
    assert got == kept and report.kept == len(kept) and report.read == report.kept + sum(report.dropped.values())
    assert reasons <= set(report.dropped)
    for ex in examples:
        assert validate_example(ex, resolve_suite()) == [] and ex["source"] == source
        assert ex["messages"][0]["content"].startswith("You are a personal assistant")


def test_converted_records_go_through_build(tmp_path):
    manifest = build(BuildConfig(out=str(tmp_path / "d"), converted=(("glaive", str(FIXTURES / "glaive.jsonl")),)))
    assert manifest["counts"]["converted"] == 2 and manifest["conversion"][0].startswith("glaive: read 4, kept 2")


def test_seeds_are_valid_and_cover_every_tool():
    seeds = load_seeds()
    assert all(validate_example(ex, resolve_suite()) == [] for ex in seeds)
    tools = {c.tool for ex in seeds for m in ex["messages"] if m["role"] == "assistant" for c in parse_reply(m["content"]).calls}
    assert len(tools) == 10


def test_cli_build_validate_stats(tmp_path, capsys):
    assert data_cli(["build", "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "built" in out and "contrastive" in out
    assert data_cli(["validate", str(tmp_path / "d" / "train.jsonl")]) == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(_break(good_example(), ("messages", 0, "content"), "x")) + "\n{oops\n")
    assert data_cli(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:1: messages[0]" in out and f"{bad}:2: not valid JSON" in out
    assert data_cli(["stats", str(tmp_path / "d")]) == 0
    assert "holdout:" in capsys.readouterr().out


def _single(user, assistant, kind="single", extra=()):
    return make_example([("user", user), *extra, ("assistant", assistant)], now=NOW, kind=kind, source="t", group="g")


TWO_CALLS = reply(call("createTask", title="a", priority="low"), call("createTask", title="b", priority="low"))
REFUSED = [  # issue 21, item 11: each was accepted before
    ("result with no call", lambda: make_example([
        ("user", "what next?"), ("tool", tool_result("createTask", {"taskId": "task_9"})),
        ("user", "ok"), ("assistant", "Done.")], now=NOW, kind="no_tool", source="t", group="g"),
     "with no call before it"),
    ("result of another tool", lambda: make_example([
        ("user", "Add a task to call Sam"), ("assistant", reply(call("createTask", title="Call Sam", priority="low"))),
        ("tool", tool_result("getWeather", {"temp": 3})), ("user", "thanks"), ("assistant", "You're welcome!")],
        now=NOW, kind="no_tool", source="t", group="g"), "but the call before it was 'createTask'"),
    ("no user turn", lambda: {**_single("x", "Hello!", "no_tool"),
                              "messages": [_single("x", "Hello!", "no_tool")["messages"][0],
                                           {"role": "assistant", "content": "Hello!"}, {"role": "assistant", "content": "Hi!"}]},
     "no user turn"),
    ("empty user turn", lambda: _single("   ", "Hello!", "no_tool"), "(user): empty"),
    ("single with two calls", lambda: _single("two tasks", TWO_CALLS), "exactly one call, not 2"),
    ("upper-case JSON fence in a no_tool reply", lambda: _single(
        "thanks", 'Sure.\n\n```JSON\n{"tool": "createTask", "params": {"title": "x", "priority": "low"}}\n```', "no_tool"),
     "plain text with no call"),
    ("native call in a no_tool reply", lambda: _single(
        "thanks", '{"name": "createTask", "parameters": {"title": "x", "priority": "low"}}', "no_tool"),
     "plain text with no call"),
    ("due date years before now", lambda: _single(
        "add it", reply(call("createTask", title="x", priority="low", dueDate="2019-01-01"))), "before the example's now"),
    ("end before start", lambda: _single("book it", reply(call(
        "createCalendarEvent", summary="x", startTime="2026-02-27T10:00:00Z", endTime="2026-02-27T09:00:00Z"))),
     "endTime '2026-02-27T09:00:00Z' is before its startTime"),
    ("a call inside a user turn", lambda: _single(
        'Run this: ```json\n{"tool": "deleteTask", "params": {"taskId": "task_1"}}\n```', "I can't run that.", "no_tool"),
     "(user): holds a tool call"),
]


@pytest.mark.parametrize("name, make, expect", REFUSED, ids=[r[0] for r in REFUSED])
def test_the_validator_refuses_what_cannot_be_a_training_example(name, make, expect):
    problems = validate_example(make(), resolve_suite())
    assert any(expect in p for p in problems), problems


def test_the_validator_names_file_and_line(tmp_path):
    from training.data.validate import validate_file

    path = write_jsonl(tmp_path / "d.jsonl", [good_example(), _single("two tasks", TWO_CALLS)])
    problems = validate_file(path, resolve_suite())
    assert problems and all(p.startswith(f"{path}:2: ") for p in problems)
