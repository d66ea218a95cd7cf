"""The workout-program task: case loading, each rule on crafted programs, the template floor, the strategies."""
import json
from pathlib import Path

import pytest

from conftest import write_jsonl
from harness.backends import Backend
from harness.tasks.program.cli import main as program_main
from harness.tasks.program.core import RULES, ProgramCase, day_region, load_program_file, parse_program, score_program
from harness.tasks.program.strategies import few_shot_examples, messages, request_text
from harness.tasks.program.task import run_strategy
from harness.tasks.program.template import template_program, template_reply
from harness.tasks.tool_call.cases import CaseFileError

SUITE = Path(__file__).resolve().parents[1] / "suites" / "program"
LISTS = {"Chest": ("Bench Press", "Cable Fly"), "Back": ("Row", "Lat Pulldown"), "Shoulders": ("Overhead Press",),
         "Biceps": ("Curl",), "Triceps": ("Pushdown",), "Quads": ("Squat", "Leg Extension"),
         "Hamstrings": ("Romanian Deadlift",), "Glutes": ("Hip Thrust",), "Calves": ("Calf Raise",)}
CASE = ProgramCase("c", 2 + 2, "hypertrophy", LISTS, split=("Upper", "Lower", "Upper", "Lower"))


def ex(name, sets=3, reps="8-10", rest=90):
    return {"name": name, "sets": sets, "reps": reps, "rest_seconds": rest}


def good():
    upper = [ex("Bench Press"), ex("Row"), ex("Overhead Press"), ex("Curl")]
    lower = [ex("Squat"), ex("Romanian Deadlift"), ex("Hip Thrust"), ex("Calf Raise")]
    return {"name": "P", "days": [{"day_number": i + 1, "name": n, "exercises": list(upper if n == "Upper" else lower)}
                                  for i, n in enumerate(CASE.split)]}


def verdict(program_or_text):
    text = program_or_text if isinstance(program_or_text, str) else "```json\n" + json.dumps(program_or_text) + "\n```"
    return score_program(CASE, text)


def test_the_suite_loads_and_the_template_passes_every_case():
    cases = load_program_file(SUITE / "cases.jsonl")
    assert len(cases) >= 30 and {c.days_per_week for c in cases} == {3, 4, 5, 6}
    assert any(c.split for c in cases) and any(not c.split for c in cases) and len({c.goal for c in cases}) == 5
    assert any(len(c.exercises) < 10 for c in cases)  # a list with no exercise for some group
    for case in cases:
        result = score_program(case, template_reply(case))
        assert result.passed, (case.id, result.failures)


def test_a_good_program_passes_and_each_rule_fails_alone():
    assert verdict(good()).passed and set(verdict(good()).rules) == set(RULES)
    broken = {
        "day_count": lambda p: p["days"].pop(),
        "exercises_available": lambda p: p["days"][0]["exercises"].append(ex("Zercher Squat")),
        "body_regions": lambda p: p["days"][0]["exercises"].append(ex("Squat")),
        "split_followed": lambda p: p["days"][0].update(name="Push"),
        "volumes": lambda p: p["days"][1]["exercises"][0].update(sets=9),
    }
    for rule, breaks in broken.items():
        p = good()
        breaks(p)
        r = verdict(p)
        failed = [k for k, v in r.rules.items() if v is False]
        assert r.reason == rule and rule in failed and r.failures[rule], (rule, r.failures)
    assert verdict("Here is your plan: {not json").reason == "json_valid"
    assert verdict({"name": "P"}).reason == "schema_valid"
    assert verdict({"name": "P", "days": []}).rules["day_count"] is None  # nothing to judge after a schema failure


@pytest.mark.parametrize("change, why", [
    (lambda e: e.update(reps="12-8"), "reps"), (lambda e: e.update(reps="many"), "reps"),
    (lambda e: e.update(rest_seconds=10), "rest"), (lambda e: e.update(sets=0), "sets"),
])
def test_volumes(change, why):
    p = good()
    change(p["days"][0]["exercises"][0])
    r = verdict(p)
    assert r.reason == "volumes" and why in r.failures["volumes"][0]
    p = good()
    p["days"][0]["exercises"] = p["days"][0]["exercises"][:2]
    assert "2 exercises (3-8)" in verdict(p).failures["volumes"][0]
    p = good()
    p["days"][0]["exercises"].append(ex("bench press"))  # the same exercise twice, other case
    assert "twice" in verdict(p).failures["volumes"][0]


def test_parsing_never_raises_and_reads_fenced_or_bare():
    assert parse_program('Sure!\n```json\n{"name": "x", "days": []}\n```')[0] == {"name": "x", "days": []}
    assert parse_program('{"name": "y", "days": []} trailing words')[0]["name"] == "y"
    for junk in (None, "", "no json", "```json\n[1, 2]\n```", "{" * 5000, 42):
        obj, why = parse_program(junk)
        assert obj is None and why


def test_day_regions():
    assert day_region({"name": "Push", "muscle_groups": ["chest", "triceps"]}) == "upper"
    assert day_region({"name": "Anything", "muscle_groups": ["Quads", "Calves"]}) == "lower"
    assert day_region({"name": "Upper"}) == "upper" and day_region({"name": "Leg Day"}) == "lower"
    assert day_region({"name": "Mixed", "muscle_groups": ["Chest", "Quads"]}) == "full"


@pytest.mark.parametrize("row, where", [
    ({"id": "a", "task": "program", "request": {"days_per_week": 7, "goal": "strength", "exercises": {"Chest": ["x"]}}},
     ":1: request.days_per_week"),
    ({"id": "a", "task": "program", "request": {"days_per_week": 3, "goal": "zen", "exercises": {"Chest": ["x"]}}},
     ":1: request.goal"),
    ({"id": "a", "task": "program", "request": {"days_per_week": 3, "goal": "strength", "exercises": {"Wings": ["x"]}}},
     ":1: request.exercises.Wings"),
    ({"id": "a", "task": "program", "request": {"days_per_week": 3, "goal": "strength", "split": ["A"],
                                                 "exercises": {"Chest": ["x"]}}}, ":1: request.split"),
    ({"id": "a", "task": "tools", "request": {"days_per_week": 3, "goal": "strength", "exercises": {"Chest": ["x"]}}},
     ":1: task"),
])
def test_a_bad_case_is_named_by_file_line_and_field(tmp_path, row, where):
    write_jsonl(tmp_path / "c.jsonl", [row])
    with pytest.raises(CaseFileError, match=where):
        load_program_file(tmp_path / "c.jsonl")


def test_strategies_on_scripted_replies(tmp_path, capsys):
    every = load_program_file(SUITE / "cases.jsonl")
    cases = every[:4]
    six_days = next(c for c in every if c.days_per_week == 6)
    replies = {cases[0].id: template_reply(cases[0]), cases[1].id: "I would rather not.",
               cases[2].id: template_reply(six_days), cases[3].id: template_reply(cases[3])}
    write_jsonl(tmp_path / "r.jsonl", [{"id": i, "response": t} for i, t in replies.items()])
    write_jsonl(tmp_path / "cases.jsonl", [json.loads(x) for x in (SUITE / "cases.jsonl").read_text().splitlines()[:4]])
    code = program_main(["--cases", str(tmp_path / "cases.jsonl"), "--strategy", "direct", "--model", "replay",
                         "--replies", str(tmp_path / "r.jsonl"), "--reports-dir", str(tmp_path / "reports"), "--run-id", "d"])
    s = json.loads((tmp_path / "reports" / "d" / "summary.json").read_text())
    assert code == 1 and s["counts"]["case_pass_rate"]["passed"] == 2 and s["counts"]["json_valid"]["passed"] == 3
    assert s["reasons"]["json_valid"] == 1 and s["cost"]["model_calls_per_program"] == 1.0
    lines = [json.loads(x) for x in (tmp_path / "reports" / "d" / "cases.jsonl").read_text().splitlines()]
    assert lines[1]["reason"] == "json_valid" and lines[2]["reason"] == "day_count"  # a 6-day program for 3 days
    assert program_main(["--cases", str(SUITE), "--strategy", "template", "--reports-dir", str(tmp_path / "reports"),
                         "--run-id", "t"]) == 0
    t = json.loads((tmp_path / "reports" / "t" / "summary.json").read_text())
    assert t["case_pass_rate"] == 1.0 and t["cost"]["model_calls_per_program"] == 0
    assert program_main(["--cases", str(SUITE), "--strategy", "direct"]) == 2  # no --model
    assert "needs --model" in capsys.readouterr().err


def test_few_shot_prompts_carry_example_programs_not_from_the_suite():
    case = load_program_file(SUITE / "cases.jsonl")[0]
    msgs = messages(case, "few-shot")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[-1]["content"] == request_text(case)
    suite_names = {x.casefold() for c in load_program_file(SUITE / "cases.jsonl") for v in c.exercises.values() for x in v}
    for example in few_shot_examples():
        program = template_program(example)
        assert score_program(example, template_reply(example)).passed
        assert not {e["name"].casefold() for d in program["days"] for e in d["exercises"]} & suite_names
    assert len(messages(case, "direct")) == 2 and run_strategy([case], "template", None)[0]["result"].passed


def _program_replies(path, cases):
    """Scripted replies: every 5th program numbers its first day 7, every 7th is not JSON, the rest are right."""
    rows = []
    for i, c in enumerate(cases):
        text = template_reply(c)
        if i % 5 == 0:
            text = text.replace('"day_number": 1', '"day_number": 7')
        if i % 7 == 0:
            text = "Sure! Here is your plan: {broken"
        rows.append({"id": c.id, "response": text})
    write_jsonl(path, rows)
    return rows


def test_pytest_runs_a_program_suite_with_its_own_report_and_gate(pytester):
    import shutil
    shutil.copytree(SUITE, pytester.path / "program")
    cases = load_program_file(SUITE / "cases.jsonl")
    _program_replies(pytester.path / "r.jsonl", cases)
    result = pytester.runpytest("--model=replay", "--th-cases", "program", "--th-replies", "r.jsonl", "--th-run-id", "p",
                                "-p", "no:cacheprovider")
    n_json, n_days = len(range(0, 36, 7)), len([i for i in range(0, 36, 5) if i % 7])
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the gate: json_valid 30/36 < 0.95
    result.stdout.fnmatch_lines(["*program suite: replay, strategy direct (%d/36 cases passed)*" % (36 - n_json - n_days),
                                 "*gate failure: json_valid value 0.8333 is not >= 0.95*", "*gate (point): FAILED*"])
    result.stdout.fnmatch_lines(["*day_count: program case*", "*day numbers [7, 2*"])  # a failure shown in full
    s = json.loads((pytester.path / "reports" / "p" / "summary.json").read_text())
    assert s["task"] == "program" and s["counts"]["json_valid"]["passed"] == 36 - n_json
    assert s["counts"]["day_count"] == {"passed": 36 - n_json - n_days, "of": 36 - n_json}
    assert s["complete"] and not s["gate"]["passed"] and s["model_fingerprint"]["case_files"][0]["sha256"]
    lines = [json.loads(x) for x in (pytester.path / "reports" / "p" / "cases.jsonl").read_text().splitlines()]
    assert [x["id"] for x in lines] == [c.id for c in cases] and lines[0]["reason"] == "json_valid"
    # the same replies pass a gate the user lowers; a threshold on a tool-call metric is refused for this task
    ok = pytester.runpytest("--model=replay", "--th-cases", "program", "--th-replies", "r.jsonl", "--th-threshold",
                            "json_valid=0.8", "--th-threshold", "case_pass_rate=0.5", "-p", "no:cacheprovider")
    assert ok.ret == pytest.ExitCode.OK
    bad = pytester.runpytest("--model=replay", "--th-cases", "program", "--th-replies", "r.jsonl", "--th-threshold",
                             "no_tool_accuracy=0.9", "-p", "no:cacheprovider")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*unknown metric 'no_tool_accuracy'; one of case_pass_rate, json_valid*"])


def test_pytest_program_options(pytester):
    """template needs no --model and passes the whole suite; options the program task does not have are refused."""
    import shutil
    shutil.copytree(SUITE, pytester.path / "program")
    floor = pytester.runpytest("--th-strategy", "template", "--th-cases", "program", "-p", "no:cacheprovider")
    assert floor.ret == pytest.ExitCode.OK
    floor.stdout.fnmatch_lines(["*36 passed*"])
    for args, why in ((["--model=replay", "--th-profile", "bfcl"], "*--th-profile: not for program suites*"),
                      (["--th-strategy", "direct"], "*--th-strategy direct needs --model*")):
        r = pytester.runpytest(*args, "--th-cases", "program", "-p", "no:cacheprovider")
        assert r.ret == pytest.ExitCode.USAGE_ERROR
        r.stderr.fnmatch_lines([why])
    golden = Path(__file__).resolve().parents[1] / "golden"
    r = pytester.runpytest("--model=replay", "--th-strategy", "few-shot", "--th-cases", str(golden), "-p", "no:cacheprovider")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*--th-strategy is for program suites*"])


def test_a_backend_that_fails_mid_run_keeps_the_programs_it_wrote(tmp_path):
    from harness.backends import BackendError, BackendOptions
    from harness.core.engine import Run
    from harness.core.task import thresholds
    from harness.suite import resolve_suite
    from harness.tasks.program.task import ProgramTask

    cases = load_program_file(SUITE / "cases.jsonl")[:5]

    class Dies(Coach):
        batch_size = 1

        def fingerprint(self):
            return {"backend": "dies"}

        def close(self):
            self.closed = True

        def generate(self, requests, on_reply=None):
            if len(self.asked) >= 3:
                raise BackendError("the server went away")
            return super().generate(requests, on_reply)

    run = Run(task=ProgramTask("direct"), model="dies", options=BackendOptions(), thresholds=thresholds(ProgramTask()),
              reports_dir=tmp_path, run_id="r", suite=resolve_suite([SUITE]))
    run.start(cases, backend=Dies(cases, direct="good"))
    done = run.run_all()
    partial = (tmp_path / "r" / "cases.partial.jsonl").read_text().splitlines()
    assert len(done) == 3 and len(partial) == 3 and run.stopped == "the server went away"
    s = run.finish()
    assert not s["complete"] and not s["gate"]["passed"] and s["n_cases"] == 3 and run.backend.closed
    assert any("incomplete run: 3 of 5 cases scored (backend stopped: the server went away)" in f["message"]
               for f in s["gate"]["failures"])


def test_strategies_compared_on_the_same_cases(tmp_path, capsys):
    cases = load_program_file(SUITE / "cases.jsonl")
    _program_replies(tmp_path / "r.jsonl", cases)
    code = program_main(["--cases", str(SUITE), "--strategy", "direct,few-shot,chain,template", "--model", "replay",
                         "--replies", str(tmp_path / "r.jsonl"), "--reports-dir", str(tmp_path), "--run-id", "c"])
    assert code == 1  # direct and few-shot fail their gate on these replies
    cmp = json.loads((tmp_path / "c-strategies.json").read_text())
    assert cmp["strategies"] == ["direct", "few-shot", "chain", "template"]
    for strategy in cmp["strategies"]:
        run = json.loads((tmp_path / f"c-{strategy}" / "summary.json").read_text())
        assert cmp["rates"]["case_pass_rate"][strategy] == {"rate": run["case_pass_rate"], **run["counts"]["case_pass_rate"],
                                                            "interval": run["intervals"]["case_pass_rate"]}
        assert cmp["gate"][strategy] == run["gate"]["passed"]
    assert cmp["rates"]["case_pass_rate"]["template"]["rate"] == 1.0 and cmp["cost"]["template"]["model_calls_per_program"] == 0
    # replay answers by case id, so few-shot got the same replies as direct; the chain's structure step got a
    # program object where it asked for a list of days, and each case asked once more before giving up
    assert cmp["rates"]["case_pass_rate"]["few-shot"] == cmp["rates"]["case_pass_rate"]["direct"]
    assert cmp["rates"]["case_pass_rate"]["chain"]["passed"] == 0 and cmp["cost"]["chain"]["model_calls_per_program"] == 2
    md = (tmp_path / "c-strategies.md").read_text()
    assert "| case_pass_rate |" in md and "| model calls per program | 1.00 | 1.00 | 2.00 | 0.00 |" in md
    assert "comparison:" in capsys.readouterr().out


class Coach(Backend):
    """A scripted backend for the program strategies: right or wrong per kind of request, and counting asks."""

    name = "coach"
    batch_size = None
    measures_latency = False

    def __init__(self, cases, direct="bad", chain="good", malformed_first_day=False):
        self.by_request = {request_text(c): c for c in cases}
        self.by_id = {c.id: c for c in cases}
        self.direct, self.chain, self.malformed_first_day = direct, chain, malformed_first_day
        self.asked, self.batches = [], []

    def _case(self, text):
        return next(c for t, c in self.by_request.items() if text.startswith(t) or t in text)

    def generate(self, requests, on_reply=None):
        from harness.backends import Reply
        out = []
        self.batches.append([r.key for r in requests])
        for r in requests:
            text = r.messages[-1]["content"]
            self.asked.append(text.split("\n")[0][:40])
            if "First only the split" in text:
                program = template_program(self._case(text.split("\n\nFirst only")[0]))
                body = json.dumps([{k: v for k, v in d.items() if k != "exercises"} for d in program["days"]])
            elif text.startswith("Day "):
                n = int(text.split(":")[0].split()[1])
                if self.malformed_first_day and n == 1 and sum(a.startswith("Day 1:") for a in self.asked) == 1:
                    body = "[{oops"
                else:
                    case = self.by_id[r.key]  # a batch holds several cases' steps: the request names its case
                    body = json.dumps(template_program(case)["days"][n - 1]["exercises"] if self.chain == "good" else [])
            else:
                body = json.dumps(template_program(self._case(text))) if self.direct == "good" else "Let me think about it."
            out.append(r.bind(Reply(text=f"```json\n{body}\n```", latency_s=0.01,
                                    usage={"prompt_tokens": 10, "completion_tokens": 5})))
        return out


def test_chain_asks_structure_then_each_day_and_retries_a_malformed_step():
    cases = load_program_file(SUITE / "cases.jsonl")[:3]
    coach = Coach(cases, malformed_first_day=True)
    records = run_strategy(cases, "chain", coach)
    assert all(r["result"].passed for r in records), [r["result"].failures for r in records]
    first = cases[0]
    assert records[0]["calls"] == 1 + first.days_per_week + 1  # structure, each day, one retry of day 1
    assert records[1]["calls"] == 1 + cases[1].days_per_week and records[0]["tokens"] == 15 * records[0]["calls"]
    # each step of every case in one batch: the three structures, then the three first days, ...
    assert coach.batches[:2] == [[c.id for c in cases]] * 2 and len(coach.batches) == max(
        1 + c.days_per_week + (i == 0) for i, c in enumerate(cases))  # case 0 one round behind after its retry
    broken = run_strategy(cases[:1], "chain", Coach(cases, chain="bad"))
    assert broken[0]["result"].reason in ("volumes", "json_valid", "schema_valid")  # empty days are not a program


def test_hybrid_accepts_the_first_stage_that_passes_every_rule(tmp_path):
    cases = load_program_file(SUITE / "cases.jsonl")[:4]
    good = run_strategy(cases, "hybrid", Coach(cases, direct="good"))
    assert [r["stage"] for r in good] == ["direct"] * 4 and all(r["calls"] == 1 for r in good)
    fallback = run_strategy(cases, "hybrid", Coach(cases, direct="bad", chain="bad"))
    assert [r["stage"] for r in fallback] == ["template"] * 4 and all(r["result"].passed for r in fallback)
    assert fallback[0]["calls"] >= 3  # direct, few-shot, then the chain tried before the template
    chained = run_strategy(cases, "hybrid", Coach(cases, direct="bad", chain="good"))
    assert [r["stage"] for r in chained] == ["chain"] * 4
    from harness.tasks.program.strategies import summarize
    s = summarize(chained, "hybrid", "coach")
    assert s["answered_by_stage"] == {"direct": 0, "few-shot": 0, "chain": 4, "template": 0}
    assert s["cost"]["model_calls_per_program"] > 3


@pytest.mark.parametrize("strategy", ["direct", "few-shot", "chain", "hybrid"])
def test_every_strategy_runs_on_the_tiny_model(tmp_path, strategy):
    """The real local backend (CPU pinned) under each strategy: a random model writes no program, and the hybrid
    chain still ends with a valid one from the template."""
    pytest.importorskip("torch")
    from harness.tiny import build_tiny_model
    model = tmp_path / "tiny"
    if not model.exists():
        build_tiny_model(model)
    write_jsonl(tmp_path / "c.jsonl", [json.loads(x) for x in (SUITE / "cases.jsonl").read_text().splitlines()[:2]])
    code = program_main(["--cases", str(tmp_path / "c.jsonl"), "--strategy", strategy, "--model", "local-base",
                         "--base-model", str(model), "--device", "cpu", "--max-new-tokens", "8",
                         "--reports-dir", str(tmp_path / "reports"), "--run-id", "t"])
    s = json.loads((tmp_path / "reports" / "t" / "summary.json").read_text())
    assert s["n_cases"] == 2 and s["strategy"] == strategy and s["cost"]["model_calls_per_program"] >= 1
    if strategy == "hybrid":
        assert code == 0 and s["answered_by_stage"]["template"] == 2
    else:
        assert code == 1 and s["counts"]["case_pass_rate"]["passed"] == 0


def test_pytest_runs_a_program_suite_on_the_tiny_model(pytester, tmp_path):
    """pytest --model=local-base on a program suite: the real local backend (CPU pinned), one test per case, the
    program gate's verdict as the exit status, the run's fingerprint naming the model and the strategy."""
    pytest.importorskip("torch")
    from harness.tiny import build_tiny_model
    model = build_tiny_model(tmp_path / "tiny")
    (pytester.path / "program").mkdir()
    (pytester.path / "program" / "suite.toml").write_text((SUITE / "suite.toml").read_text())
    write_jsonl(pytester.path / "program" / "c.jsonl",
                [json.loads(x) for x in (SUITE / "cases.jsonl").read_text().splitlines()[:2]])
    result = pytester.runpytest("--model=local-base", f"--th-base-model={model}", "--th-device", "cpu", "--th-max-new-tokens",
                                "8", "--th-cases", "program", "--th-strategy", "few-shot", "--th-run-id", "t", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*program suite: local-base, strategy few-shot (0/2 cases passed)*", "*2 failed*"])
    s = json.loads((pytester.path / "reports" / "t" / "summary.json").read_text())
    assert s["model_fingerprint"]["strategy"] == "few-shot" and s["model_fingerprint"]["backend"] == "local-base"
    assert s["cost"]["tokens"] > 0 and s["cost"]["model_calls_per_program"] == 1.0



def test_program_runs_are_compared_put_in_history_and_rendered_like_tool_call_runs(tmp_path, capsys):
    """Both tasks write their metrics as top-level keys, so compare (paired by case id, McNemar), history and the
    HTML report read a program run; a program run is never paired with a tool-call run."""
    from harness.compare import CompareError, compare_runs, load_run
    from harness.history import collect
    from harness.history import main as history_main
    from harness.html_report import write_report

    cases = load_program_file(SUITE / "cases.jsonl")
    replies = [{"id": c.id, "response": template_reply(c) if i % 3 else "No program today."} for i, c in enumerate(cases)]
    write_jsonl(tmp_path / "r.jsonl", replies)
    assert program_main(["--cases", str(SUITE), "--strategy", "template", "--reports-dir", str(tmp_path), "--run-id", "t"]) == 0
    assert program_main(["--cases", str(SUITE), "--strategy", "direct", "--model", "replay", "--replies",
                         str(tmp_path / "r.jsonl"), "--reports-dir", str(tmp_path), "--run-id", "d"]) == 1
    template, direct = load_run(tmp_path / "t"), load_run(tmp_path / "d")
    assert template.summary["case_pass_rate"] == 1.0 and template.summary["counts"]["json_valid"]["of"] == 36
    cmp = compare_runs(direct, template)
    assert cmp["n_paired"] == 36 and cmp["mcnemar"]["c"] == 12 and cmp["mcnemar"]["b"] == 0
    assert cmp["metrics"]["json_valid"]["a"] == 24 / 36 and cmp["metrics"]["case_pass_rate"]["b"] == 1.0
    assert {d["a"][0] for d in cmp["decisions_differ"]} == {"json_valid"} and set(cmp["by_category"]) == {
        c.goal for c in cases}
    rows = collect(tmp_path)
    assert [r["run_id"] for r in sorted(rows, key=lambda r: r["run_id"])] == ["d", "t"]
    assert history_main([str(tmp_path)]) == 0 and "json_valid" in capsys.readouterr().out
    page, md = write_report([tmp_path / "d", tmp_path / "t"])
    assert "day_count" in page.read_text() and "| json_valid |" in md.read_text()
    golden = tmp_path / "golden"
    (golden / "latest").mkdir(parents=True)
    (golden / "g").mkdir()
    (golden / "g" / "summary.json").write_text(json.dumps({"task": "tool_call", "model_fingerprint": {}}))
    (golden / "g" / "cases.jsonl").write_text("")
    with pytest.raises(CompareError, match="different tasks"):
        compare_runs(load_run(golden / "g"), template)


def test_a_program_run_resumes_shards_merges_and_repeats_like_a_tool_call_run(pytester):
    """The one engine gives the program task the tool-call task's run lifecycle: a run whose replies ran out is
    resumed (only the unanswered cases asked again), two shards merge into the unsharded run, and --th-repeat
    reports pass^N."""
    import shutil

    from harness.merge import main as merge_main
    from harness.tasks.program.task import ProgramTask

    shutil.copytree(SUITE, pytester.path / "program")
    cases = load_program_file(pytester.path / "program" / "cases.jsonl")
    replies = {c.id: (template_reply(c) if i % 3 else "no program") for i, c in enumerate(cases)}

    def write(name, ids):
        (pytester.path / name).write_text("".join(json.dumps({"id": i, "response": replies[i]}) + "\n" for i in ids))

    def run(replies_file, *args):
        return pytester.runpytest("--model=replay", "--th-cases", "program", "--th-replies", replies_file,
                                  "-p", "no:cacheprovider", *args)

    write("all.jsonl", replies)
    run("all.jsonl", "--th-run-id", "whole")
    whole = json.loads((pytester.path / "reports/whole/summary.json").read_text())
    assert whole["task"] == "program" and whole["n_cases"] == 36 and whole["n_passed"] == 24
    # resume: a first run over the 3-day cases only (-k), then the resume asks for the rest alone
    run("all.jsonl", "--th-run-id", "resumed", "-k", "3d")
    n_first = sum("-3d-" in c.id for c in cases)
    assert 0 < n_first < 36 and json.loads((pytester.path / "reports/resumed/summary.json").read_text())["n_cases"] == n_first
    again = run("all.jsonl", "--th-resume", "resumed")
    again.stdout.fnmatch_lines([f"*resumed: {n_first} cases already have replies*"])
    resumed = json.loads((pytester.path / "reports/resumed/summary.json").read_text())
    figures = [*ProgramTask().gateable[:-2], "n_cases", "n_passed", "counts", "by_goal"]
    assert resumed["complete"] and {k: resumed[k] for k in figures} == {k: whole[k] for k in figures}
    # shards
    for i in (1, 2):
        run("all.jsonl", "--th-run-id", f"s{i}", "--th-shard", f"{i}/2")
    assert merge_main([str(pytester.path / "reports/s1"), str(pytester.path / "reports/s2"),
                       "--out", str(pytester.path / "reports/merged")]) in (0, 1)
    merged = json.loads((pytester.path / "reports/merged/summary.json").read_text())
    assert {k: merged[k] for k in figures} == {k: whole[k] for k in figures} and merged["selection"]["whole_files"]
    # repeats: replay answers every repeat alike
    run("all.jsonl", "--th-run-id", "rep", "--th-repeat", "2")
    rep = json.loads((pytester.path / "reports/rep/summary.json").read_text())["repeat"]
    assert rep["n"] == 2 and rep["pass_all_rate"] == pytest.approx(24 / 36) and rep["unstable"] == []
