"""The engine's Run outside pytest: what a crashing backend leaves behind."""
from pathlib import Path

import pytest

from harness.backends import Backend, BackendOptions, Reply
from harness.core.engine import Run
from harness.gate import resolve_thresholds
from harness.suite import resolve_suite
from harness.tasks.tool_call.metrics import DEFAULT_THRESHOLDS
from harness.tasks.tool_call.task import ToolCallTask


class Crashing(Backend):
    """Answers the first batch, then crashes like a bug would (not a BackendError)."""
    name = "crashing"
    batch_size = 2

    def __init__(self):
        self.calls = 0

    def generate(self, requests, on_reply=None):
        self.calls += 1
        if self.calls > 1:
            raise KeyError("logits")
        return [r.bind(Reply(text="Hello!", latency_s=0.1)) for r in requests]


def test_a_crash_stops_the_run_with_its_traceback_and_the_run_is_incomplete(make_cases, tmp_path: Path):
    cases = make_cases([{"id": f"n{i}", "category": "no_tool", "messages": [{"role": "user", "content": "hi"}],
                         "expected": []} for i in range(5)])
    run = Run(task=ToolCallTask(), model="crashing", options=BackendOptions(), thresholds=resolve_thresholds({}, DEFAULT_THRESHOLDS),
                  reports_dir=tmp_path, suite=resolve_suite(), run_id="r1")
    backend = Crashing()
    run.start(cases, backend=backend)
    assert run.result_for(cases[0]).passed
    with pytest.raises(KeyError):
        run.result_for(cases[2])
    with pytest.raises(Exception, match="backend crashed: KeyError"):
        run.result_for(cases[3])  # no second attempt on a crashed backend
    assert backend.calls == 2
    summary = run.finish()
    assert summary["complete"] is False and not summary["gate"]["passed"]
    assert "2 of 5 cases scored" in summary["gate"]["failures"][-1]["message"]
