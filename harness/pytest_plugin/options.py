"""The plugin's flags: every one but --model under --th-, the old spellings as deprecated aliases, each
backend's own flags from its option table (harness.backends.options), and the checks on their values."""
from __future__ import annotations

import re
from typing import Any

import pytest

from harness.backends import BackendOptions, specs
from harness.backends.options import Option, first_problem, flag
from harness.backends.registry import all_options
from harness.core.task import Task, thresholds
from harness.gate import GATE_ON, Threshold
from harness.suite import REPLY_FORMATS
from harness.tasks.program.strategies import STRATEGIES

# Every flag but --model carries this prefix, so it cannot collide with another plugin's (pytest-profiling owns
# --profile; --seed, --device, --repeat and --shard are names other plugins use or may use).


# Every flag but --model carries this prefix, so it cannot collide with another plugin's (pytest-profiling owns
# --profile; --seed, --device, --repeat and --shard are names other plugins use or may use).
PREFIX = "--th-"


# The old unprefixed spellings, kept for one release as deprecated aliases (old -> new); --profile is not among
# them: it is the clash, so it went at once (--th-profile).
DEPRECATED: dict[str, str] = {}


GONE = {"--profile": "--th-profile"}


DEST = "th_"


def _add(group: Any, name: str, **kwargs: Any) -> None:
    """Add `--th-<name>` (dest `th_<name>`) and, unless it is gone, the deprecated `--<name>` beside it."""
    old, new = "--" + name.replace("_", "-"), PREFIX + name.replace("_", "-")
    if old not in GONE:
        DEPRECATED[old] = new
    group.addoption(new, *(() if old in GONE else (old,)), dest=DEST + name, **kwargs)


def _opt(config: pytest.Config, name: str) -> Any:
    """The value of the harness option `name` (its dest is namespaced too: pytest-profiling's is `profile`)."""
    return config.getoption(DEST + name)


DEFAULT_FAILURE_DETAILS = 10


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("toolcall", f"tool-calling golden suite (runs only with --model; every other flag is {PREFIX}...)")
    group.addoption("--model", default=None, metavar="BACKEND",
                    help=f"evaluate this backend on the case files: {', '.join(sorted(specs()))}. "
                         "Without it, case files are not run (plain pytest runs the unit tests).")
    _add(group, "cases", action="append", default=[], metavar="PATH",
         help="case file or folder of *.jsonl (repeatable; default: golden/, or positional paths)")
    _add(group, "reply_format", default=None, choices=REPLY_FORMATS,
         help="how replies carry calls: fenced json blocks (the default), or the model's native JSON "
              "({\"name\", \"parameters\"}); default: the suite's (suite.toml [reply] format)")
    _add(group, "strategy", default=None, choices=STRATEGIES,
         help="program suites (suite.toml [task] kind = \"program\"): how each program is asked for: direct (default), "
              "few-shot, chain, hybrid, or template (no model: then --model may be left out). python -m harness "
              "program --strategy all compares them")
    _add(group, "profile", action="append", default=[], metavar="NAME",
         help="also score the replies under this named profile and show its figures beside the default ones: bfcl "
              "(BFCL's checker rules; see docs/contract.md). Repeatable; a suite's suite.toml [scoring] profiles adds "
              "its own")
    _add(group, "tools", default=None, metavar="FILE",
         help="the tool catalogue (an OpenAI function-tools list) when the case files' folder has no tools.json "
              "(default: the assistant suite's)")
    for option in all_options():  # each backend's own table (harness.backends.options); the chosen one reads its own
        _add(group, option.name, **option.argparse_kwargs())
    _add(group, "reports_dir", default="reports", metavar="DIR",
         help="where reports/<run-id>/ and reports/latest/ go (default: reports)")
    _add(group, "run_id", default=None, help="name of the run folder (default: UTC time + model)")
    _add(group, "resume", default=None, metavar="RUN_ID",
         help="continue that run: keep its replies, ask the backend only for cases with none")
    _add(group, "threshold", action="append", default=[], metavar="METRIC=VALUE",
         help="override a gate threshold: metric=0.95 (default direction), metric>=0.8, latency_p95_s<3, metric=off "
              "(repeatable)")
    _add(group, "thresholds_file", default=None, metavar="TOML",
         help="thresholds from a TOML file ([thresholds] metric = 0.95 or \">= 0.8\" or \"off\")")
    _add(group, "failure_details", default=str(DEFAULT_FAILURE_DETAILS), metavar="N|all",
         help=f"show the full diff (expected, got, reply) of the first N failed cases (default: "
              f"{DEFAULT_FAILURE_DETAILS}); every failed case's id and reason is listed either way. 'all', or an "
              "explicit --tb, gives pytest's own failure report for every case")
    _add(group, "max_unanswered", type=int, default=0, metavar="N",
         help="cases the backend may leave without a reply (after its retries) before the run counts as incomplete "
              "and fails the gate (default: 0)")
    _add(group, "compare_to", default=None, metavar="REPORT_DIR",
         help="after the run, compare it with that run (python -m harness compare REPORT_DIR <this run>)")
    _add(group, "repeat", type=int, default=1, metavar="N",
         help="ask every case N times: the first reply is the verdict; the summary adds pass^N (every repeat "
              "passed) and the cases whose replies differ (at temperature 0: a backend finding)")
    _add(group, "shard", default=None, metavar="I/N",
         help="run only shard I of N of the selected cases (a deterministic split, for several machines); join the "
              "shards' reports with: python -m harness merge REPORT_DIR... --out DIR")
    _add(group, "gate_on", default="point", choices=GATE_ON,
         help="judge '>' thresholds on the point estimate (default) or the 95%% Wilson lower bound")


def _thresholds(config: pytest.Config, task: Task) -> dict[str, Threshold]:
    try:
        return thresholds(task, _opt(config, "threshold"), _opt(config, "thresholds_file"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _failure_details(config: pytest.Config) -> int | None:
    """How many failed cases get a full diff from the harness. pytest's own failure report looks up each
    failure's teardown sections among all reports (quadratic: minutes at 10,000 cases), so unless the user
    asks for it (`--failure-details all`, or any explicit `--tb`), it is off and the harness shows the first
    N diffs itself; the short summary still lists every failed case with its reason."""
    raw = str(_opt(config, "failure_details")).strip().lower()
    if raw == "all" or config.option.tbstyle != "auto":
        return None
    try:
        n = int(raw)
        if n < 0:
            raise ValueError
    except ValueError:
        raise pytest.UsageError(f"{flag('failure_details')} {raw!r}: a number >= 0, or all") from None
    config.option.tbstyle = "no"
    return n


def _check_numbers(config: pytest.Config) -> None:
    """A number below its option's minimum is a usage error before anything runs, not a crash in every case."""
    checked = [*all_options(), Option("max_unanswered", "", int, minimum=0)]
    problem = first_problem(checked, {o.name: _opt(config, o.name) for o in checked})
    if problem:
        raise pytest.UsageError(problem)


def _warn_deprecated(config: pytest.Config) -> None:
    """An old unprefixed flag still works for this release, with a warning that names its new spelling."""
    used = sorted({arg.split("=", 1)[0] for arg in config.invocation_params.args if isinstance(arg, str)}
                  & set(DEPRECATED))
    for old in used:
        config.issue_config_time_warning(pytest.PytestDeprecationWarning(
            f"{old} is deprecated and goes in the next release: use {DEPRECATED[old]}"), stacklevel=2)


def _backend_options(config: pytest.Config) -> BackendOptions:
    """Every backend flag's value; the chosen backend reads its own."""
    return BackendOptions({option.name: _opt(config, option.name) for option in all_options()})


def _shard(config: pytest.Config) -> tuple[int, int] | None:
    raw = _opt(config, "shard")
    if raw is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", raw)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise pytest.UsageError(f"{flag('shard')} {raw!r}: write I/N with 1 <= I <= N, e.g. {flag('shard')} 2/4")
    return int(m.group(1)), int(m.group(2))

