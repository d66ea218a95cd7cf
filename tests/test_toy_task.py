"""A third task is a module and one registration: "the reply equals a string", written here as a user would write
it (no change to the engine, the plugin or another task), runs through pytest, compare and history."""
import json
import textwrap

TOY = textwrap.dedent('''
    """Exact-answer task: each case is {"id", "question", "answer"}; a reply passes when it is the answer."""
    import json
    from dataclasses import dataclass
    from datetime import datetime, timezone

    from harness.backends import Request
    from harness.tasks.tool_call.cases import Problem, CaseFileError
    from harness.hashing import sha256_file
    from harness.tasks.tool_call.metrics import wilson


    @dataclass(frozen=True)
    class Case:
        id: str
        question: str
        answer: str
        source: str
        line: int
        category: str = "exact"


    @dataclass(frozen=True)
    class Result:
        case: Case
        response: str | None
        error: str | None

        @property
        def passed(self):
            return self.response is not None and self.response.strip() == self.case.answer

        @property
        def reason(self):
            return None if self.passed else ("backend_error" if self.response is None else "wrong_answer")


    @dataclass(frozen=True)
    class ExactTask:
        kind: str = "exact"
        gateable: tuple = ("case_pass_rate",)

        @property
        def defaults(self):
            from harness.gate import Threshold
            return {"case_pass_rate": Threshold("case_pass_rate", ">=", 0.5)}

        def asks_model(self):
            return True

        def backend_problem(self, model):
            return None if model else "the exact task needs --model"

        def settings(self):
            return {}

        def load_cases(self, path, suite):
            cases = []
            for n, line in enumerate(path.read_text().splitlines(), start=1):
                raw = json.loads(line)
                if not isinstance(raw.get("answer"), str):
                    raise CaseFileError([Problem(str(path), n, "answer", "a string")])
                cases.append(Case(raw["id"], raw["question"], raw["answer"], str(path), n))
            return str(path), sha256_file(path), cases

        def steps(self, case, suite):
            reply = yield Request(case.id, ({"role": "user", "content": case.question},),
                                  datetime(2026, 1, 1, tzinfo=timezone.utc))
            return Result(case, reply.text, reply.error)

        def from_record(self, case, record, suite):
            return Result(case, record["response"], None) if isinstance(record.get("response"), str) else None

        def record(self, result, suite):
            return {"id": result.case.id, "category": result.case.category, "response": result.response,
                    "passed": result.passed, "reason": result.reason, "error": result.error}

        def summarize(self, results, suite, backend):
            passed = sum(r.passed for r in results)
            return {"n_cases": len(results), "n_passed": passed,
                    "case_pass_rate": passed / len(results) if results else None,
                    "counts": {"case_pass_rate": {"passed": passed, "of": len(results)}},
                    "intervals": {"case_pass_rate": wilson(passed, len(results))}, "reasons": {}}

        def fingerprint(self, suite):
            return {"task": "exact"}

        def describe_failure(self, result):
            return f"{result.case.id}: wanted {result.case.answer!r}, got {result.response!r}"

        def summary_lines(self, summary):
            return [f"  case_pass_rate {summary['case_pass_rate']:.3f} ({summary['n_passed']}/{summary['n_cases']})"]
''')


def _setup(pytester):
    pytester.makepyfile(exact_task=TOY)
    pytester.makeconftest("from harness.core.task import register_task\nfrom exact_task import ExactTask\n"
                          "register_task('exact', ExactTask)\n")
    suite = pytester.mkdir("quiz")
    (suite / "suite.toml").write_text('[task]\nkind = "exact"\n')
    (suite / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in (
        {"id": "q1", "question": "2+2?", "answer": "4"}, {"id": "q2", "question": "Capital of France?", "answer": "Paris"},
        {"id": "q3", "question": "Colour of the sky?", "answer": "blue"})))


def _run(pytester, run_id, replies):
    path = pytester.path / f"{run_id}.jsonl"
    path.write_text("".join(json.dumps({"id": k, "response": v}) + "\n" for k, v in replies.items()))
    pytester.syspathinsert()
    return pytester.runpytest("--model=replay", "--th-cases", "quiz", "--th-replies", str(path), "--th-run-id", run_id,
                              "-p", "no:cacheprovider")


def test_a_registered_toy_task_runs_through_pytest_compare_and_history(pytester, capsys):
    from harness.compare import compare_runs, load_run
    from harness.history import main as history_main

    _setup(pytester)
    weak = _run(pytester, "weak", {"q1": "4", "q2": "Lyon", "q3": "green"})
    weak.assert_outcomes(passed=1, failed=2)
    assert weak.ret == 1  # 1/3 < the task's own default gate (0.5)
    weak.stdout.fnmatch_lines(["*q2: wanted 'Paris', got 'Lyon'*", "*exact suite: replay (1/3 cases passed)*",
                               "*case_pass_rate 0.333 (1/3)*", "*gate failure: case_pass_rate value 0.3333 is not >= 0.5*",
                               "*gate (point): FAILED*"])
    strong = _run(pytester, "strong", {"q1": "4", "q2": "Paris", "q3": "blue"})
    assert strong.ret == 0
    summary = json.loads((pytester.path / "reports" / "strong" / "summary.json").read_text())
    assert summary["task"] == "exact" and summary["case_pass_rate"] == 1.0 and summary["complete"]
    cmp = compare_runs(load_run(pytester.path / "reports" / "weak"), load_run(pytester.path / "reports" / "strong"))
    assert cmp["mcnemar"]["b"] == 0 and cmp["mcnemar"]["c"] == 2
    assert history_main([str(pytester.path / "reports")]) == 0
    out = capsys.readouterr().out
    assert "weak" in out and "strong" in out and "case_pass_rate" in out
