"""--th-repeat N: every case asked N times; pass^N, the pass rate of each repeat, and the cases answered differently."""
import json

from golden_replies import replies as golden_replies
from test_compare import _golden

from conftest import write_jsonl
from harness.backends import Backend, BackendOptions, Reply
from harness.core.engine import Run
from harness.gate import resolve_thresholds
from harness.suite import resolve_suite
from harness.tasks.tool_call.metrics import DEFAULT_THRESHOLDS
from harness.tasks.tool_call.task import ToolCallTask


class Flaky(Backend):
    """Answers right, except that every third ask of the cases named `flaky` gets an abstention instead."""

    name = "flaky"
    batch_size = 4

    def __init__(self, right, flaky):
        self.right, self.flaky, self.asked = right, flaky, {}

    def generate(self, requests, on_reply=None):
        out = []
        for r in requests:
            n = self.asked[r.case_id] = self.asked.get(r.case_id, 0) + 1
            reply = r.bind(Reply(text="No." if r.case_id in self.flaky and n == 3 else self.right[r.case_id],
                                 latency_s=0.01))
            if on_reply:
                on_reply(reply)
            out.append(reply)
        return out


def test_a_flaky_backend_shows_in_pass_n_and_the_unstable_cases(make_cases, tmp_path):
    from pathlib import Path
    golden = Path(__file__).resolve().parents[1] / "golden" / "assistant.jsonl"
    from harness.tasks.tool_call.cases import load_case_file
    suite = resolve_suite([golden])
    cases = load_case_file(golden, suite.catalogue).cases
    right = golden_replies()
    first = load_case_file(golden, suite.catalogue).cases[0].id  # scripted right ("Done." + calls)
    flaky = {first, cases[4].id}
    run = Run(task=ToolCallTask(), model="flaky", options=BackendOptions(),
              thresholds=resolve_thresholds({}, DEFAULT_THRESHOLDS), reports_dir=tmp_path,
              run_id="r", suite=suite, repeat=3)
    backend = Flaky(right, flaky)
    run.start(cases, backend=backend)
    run.run_all()
    summary = run.finish()
    assert all(n == 3 for n in backend.asked.values()) and len(backend.asked) == len(cases)
    rep = summary["repeat"]
    assert rep["n"] == 3 and sorted(rep["unstable"]) == sorted(flaky)
    assert rep["pass_rate_per_repeat"][0] == rep["pass_rate_per_repeat"][1] == summary["case_pass_rate"]
    assert rep["counts"]["passed"] == summary["n_passed"] - sum(run.results[i].passed for i in flaky)
    records = {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "r" / "cases.jsonl").read_text().splitlines()}
    assert records[first]["repeats"]["responses_differ"] and records[first]["repeats"]["responses"][2] == "No."
    assert records[first]["repeats"]["passed"] == [True, True, False]


def test_replay_repeated_is_stable(pytester):
    cases = _golden(pytester)
    write_jsonl(pytester.path / "r.jsonl", [{"id": i, "response": t} for i, t in golden_replies().items()])
    result = pytester.runpytest("--model=replay", "--th-cases", "golden", "--th-replies", "r.jsonl", "--th-repeat", "3",
                                "-p", "no:cacheprovider")
    s = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert s["repeat"]["pass_all_rate"] == s["case_pass_rate"] and s["repeat"]["unstable"] == []
    assert s["n_cases"] == len(cases)
    result.stdout.fnmatch_lines(["repeat 3: pass^3 * against pass@1 *; every case answered identically each time"])
    bad = pytester.runpytest("--model=replay", "--th-cases", "golden", "--th-replies", "r.jsonl", "--th-repeat", "2",
                             "--th-resume", "x", "-p", "no:cacheprovider")
    assert bad.ret == 4  # usage error
