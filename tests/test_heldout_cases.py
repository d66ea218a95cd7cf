"""A data split as a case file (training.data.heldout): the harness loads every case and scores replies by the
rule the module states, never by the example's wording."""
import json

import pytest

from harness.suite import resolve_suite
from harness.tasks.tool_call.cases import load_case_file
from training.data.__main__ import main as data_cli
from training.data.build import BuildConfig, build
from training.data.heldout import example_to_case, split_to_cases, spread


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "v1"
    build(BuildConfig(out=str(out)))
    return out


def example(user, reply, *, tool_turns=(), kind="single", now="2026-05-01T09:00:00Z"):
    messages = [{"role": "system", "content": "prompt"}]
    for turn in tool_turns:
        messages.append(turn)
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return {"messages": messages, "now": now, "kind": kind, "group": "g/1"}


def fenced(*calls):
    return "On it.\n\n" + "\n\n".join("```json\n" + json.dumps({"tool": t, "params": p}) + "\n```" for t, p in calls)


def test_every_holdout_example_becomes_a_case_the_harness_loads(data, tmp_path):
    out = tmp_path / "holdout.jsonl"
    assert data_cli(["cases", "--data", str(data), "--split", "holdout", "--out", str(out)]) == 0
    suite = resolve_suite([])
    loaded = load_case_file(out, suite.catalogue)
    rows = [json.loads(x) for x in (data / "holdout.jsonl").read_text().splitlines()]
    assert len(loaded.cases) == len(rows)
    assert {c.category for c in loaded.cases} >= {"single", "no_tool", "multi_turn"}
    for case, row in zip(loaded.cases, rows):
        assert case.messages == tuple({"role": m["role"], "content": m["content"]} for m in row["messages"][1:-1])
        assert case.now.isoformat().startswith(row["now"][:16])


def test_values_are_matched_by_kind_and_invented_text_is_left_out():
    catalogue = resolve_suite([]).catalogue
    ex = example("Email Dana that the report is late, and add 'Send the report' due May 3",
                 fenced(("sendEmail", {"to": "Dana", "subject": "Delay notice", "body": "It will be late."}),
                        ("createTask", {"title": "Send the report", "dueDate": "2026-05-03", "priority": "medium"})),
                 kind="multi_tool")
    case = example_to_case(ex, catalogue, "h-1")
    assert case["category"] == "multi_tool" and case["now"] == "2026-05-01T09:00:00Z"
    email, task = case["expected"]
    assert email == {"tool": "sendEmail", "params": {"to": {"contains": "Dana"}}}  # subject and body were invented
    assert task["params"] == {"title": {"contains": "Send the report"}, "dueDate": {"date": "2026-05-03"},
                              "priority": "medium"}


def test_an_id_from_a_tool_result_is_matched_exactly_and_a_plain_reply_is_a_no_tool_case():
    catalogue = resolve_suite([]).catalogue
    turns = [{"role": "user", "content": "what's open?"},
             {"role": "assistant", "content": fenced(("listTasks", {"status": "open"}))},
             {"role": "tool", "content": json.dumps({"tasks": [{"id": "tsk-77", "title": "Pay rent"}]})}]
    case = example_to_case(example("done with the rent one", fenced(("completeTask", {"taskId": "tsk-77"})),
                                   tool_turns=turns, kind="multi_turn"), catalogue, "h-2")
    assert case["expected"] == [{"tool": "completeTask", "params": {"taskId": "tsk-77"}}]
    assert [m["role"] for m in case["messages"]] == ["user", "assistant", "tool", "user"]
    plain = example_to_case(example("thanks!", "You're welcome.", kind="general"), catalogue, "h-3")
    assert plain["category"] == "no_tool" and plain["expected"] == []


def test_an_example_that_cannot_be_a_case_is_left_out_with_its_reason():
    catalogue = resolve_suite([]).catalogue
    broken = example("add milk", "```json\n{\"tool\": \"createTask\", \"params\": \n```")
    unknown = example("fly me", fenced(("bookFlight", {"to": "Oslo"})))
    good = example("add milk to my list", fenced(("createTask", {"title": "milk"})))
    cases, skipped = split_to_cases([broken, unknown, good], catalogue, "holdout")
    assert [c["id"] for c in cases] == ["holdout-0003"]
    assert "not a valid call" in skipped[0] and "bookFlight" in skipped[1]


def test_spread_keeps_the_mix_of_kinds_and_takes_every_phrasing_group_before_repeating_one():
    rows = ([{"kind": "a", "group": "a0", "n": i} for i in range(40)] + [{"kind": "a", "group": "a1", "n": 40}]
            + [{"kind": "b", "group": f"b{i % 5}", "n": 41 + i} for i in range(59)])
    picked = spread(rows, 10)
    assert len(picked) == 10 and sum(r["kind"] == "a" for r in picked) == 4  # 41 of 100 rows
    assert {r["group"] for r in picked} == {"a0", "a1", "b0", "b1", "b2", "b3", "b4"}
    assert [r["n"] for r in picked] == sorted(r["n"] for r in picked)  # in the split's order
    assert spread(rows, 10) == picked and spread(rows, 500) == rows
