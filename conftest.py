"""Shared fixtures for the project's own tests (the harness plugin itself loads via its pytest11 entry point)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import httpcore  # noqa: F401 -- see below
import pytest

# httpx imports httpcore lazily and keeps a table of its exception classes. pytester's in-process runs drop
# modules first imported inside them from sys.modules afterwards; if httpcore were first imported there, a
# later client would import a fresh copy whose exceptions that table no longer maps (they escape as raw
# httpcore errors). Importing it here, once, keeps one copy for the whole session. matplotlib's pyplot the
# same way: a second copy of it beside the first copy's figure classes cannot make subplots.
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
except ImportError:  # the [train] extra brings it; the report tests skip without it
    pass

from harness.suite import Suite, resolve_catalogue, resolve_suite
from harness.tasks.tool_call.cases import Case, load_case_file
from harness.tasks.tool_call.tools import Catalogue


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return resolve_catalogue()


@pytest.fixture(scope="session")
def suite() -> Suite:
    return resolve_suite()


def assistant_prompt(now: Any, reply_format: str = "fenced") -> str:
    """The assistant suite's system prompt for `now` (what the harness sends and the training data holds)."""
    from harness.tasks.tool_call.prompt import build_system_prompt
    suite = resolve_suite(reply_format=reply_format)
    return build_system_prompt(now, suite.catalogue, suite.template)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def case_row(expected: list[dict[str, Any]], category: str = "single", **extra: Any) -> dict[str, Any]:
    return {"id": extra.pop("id", "c"), "category": category,
            "messages": extra.pop("messages", [{"role": "user", "content": "hi"}]), "expected": expected, **extra}


@pytest.fixture
def make_cases(tmp_path: Path, catalogue: Catalogue) -> Callable[[list[dict[str, Any]]], list[Case]]:
    """Build Cases through the real loader from rows made by `case_row` (ids numbered when left out)."""
    counter = iter(range(10**6))

    def make(rows: list[dict[str, Any]]) -> list[Case]:
        n = next(counter)
        rows = [{**r, "id": f"c{i}"} if r["id"] == "c" else r for i, r in enumerate(rows)]
        return list(load_case_file(write_jsonl(tmp_path / f"cases{n}.jsonl", rows), catalogue).cases)

    return make


@pytest.fixture
def make_case(make_cases: Callable[[list[dict[str, Any]]], list[Case]]) -> Callable[..., Case]:
    """One Case through the real loader: make_case(expected=[...], category=..., messages=...)."""
    return lambda expected, category="single", **extra: make_cases([case_row(expected, category, **extra)])[0]


def labelled_spans(tokenized: Any) -> list[list[int]]:
    """The runs of tokens that carry labels (each label equal to its token), in order."""
    spans: list[list[int]] = []
    current: list[int] = []
    for token, label in zip(tokenized.input_ids, tokenized.labels):
        if label != -100:
            assert label == token
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    return spans + ([current] if current else [])
