"""The harness beside pytest plugins a team is likely to have installed: pytest-profiling (whose --profile the
harness once also claimed, breaking every pytest run), pytest-randomly, pytest-repeat and pytest-xdist. They are
installed outside the venv's site-packages (`make venv`: .venv/coexist) and put on the path of the runs started here.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_jsonl

PLUGINS = Path(sys.prefix) / "coexist"
CASES = [
    {"id": "w-1", "category": "single", "messages": [{"role": "user", "content": "weather in Oslo?"}],
     "expected": [{"tool": "getWeather", "params": {"location": "oslo"}}]},
    {"id": "n-1", "category": "no_tool", "messages": [{"role": "user", "content": "thanks"}], "expected": []},
]
REPLIES = {"w-1": 'Checking.\n\n```json\n{"tool": "getWeather", "params": {"location": "Oslo"}}\n```',
           "n-1": "You're welcome!"}


@pytest.fixture
def folder(tmp_path):
    if not (PLUGINS / "pytest_randomly").is_dir():
        pytest.fail(f"the other plugins are not installed in {PLUGINS}: run `make venv` (the Makefile installs them)")
    write_jsonl(tmp_path / "cases.jsonl", CASES)
    write_jsonl(tmp_path / "r.jsonl", [{"id": k, "response": v} for k, v in REPLIES.items()])
    return tmp_path


def pytest_run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_plugin_loads_beside_the_harness_and_a_run_passes(folder):
    done = pytest_run(folder, "--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl",
                      "--th-run-id", "r1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(name in done.stdout for name in ("profiling", "randomly", "repeat", "xdist"))  # pytest's plugins line
    summary = json.loads((folder / "reports" / "r1" / "summary.json").read_text())
    assert summary["n_cases"] == 2 and summary["case_pass_rate"] == 1.0 and summary["complete"]


def test_profile_is_pytest_profilings_and_the_harness_profile_is_prefixed(folder):
    done = pytest_run(folder, "--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl",
                      "--th-profile", "bfcl", "--profile", "--th-run-id", "r2", "-p", "no:randomly")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (folder / "prof").is_dir()  # pytest-profiling wrote its profiles
    summary = json.loads((folder / "reports" / "r2" / "summary.json").read_text())
    assert "bfcl" in summary["profiles"]


def test_an_old_flag_still_works_with_a_warning_that_names_the_new_one(folder):
    done = pytest_run(folder, "--model=replay", "--cases", "cases.jsonl", "--replies=r.jsonl", "--th-run-id", "r3")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "--cases is deprecated" in out and "use --th-cases" in out and "use --th-replies" in out


def test_xdist_is_refused_with_the_supported_way_to_split_a_run(folder):
    done = pytest_run(folder, "--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl", "-n", "2")
    assert done.returncode == 4  # a usage error, before any backend or run folder
    assert "--th-shard I/N" in done.stderr and not (folder / "reports").exists()


def test_without_the_harness_flags_pytest_runs_the_unit_tests_with_every_plugin(folder):
    (folder / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    done = pytest_run(folder, "test_one.py", "-p", "randomly", "--count", "2")
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout + done.stderr
