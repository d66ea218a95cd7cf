"""pytest wiring: case files -> one item per case -> scored by the engine -> report + gate. Only wiring.

With `--model`, pytest collects case files (`--th-cases`, positional paths, or `golden/`) instead of the unit
tests; each case is one test whose id is the case id. The session's exit status is the gate's verdict, not "did
every case pass" (use `--strict` for that). The hooks live beside what they wire: options.py (the flags),
session.py (configure, collect, start, finish), items.py (case files and cases), terminal.py (what is printed).
"""
from harness.pytest_plugin.items import pytest_runtest_protocol
from harness.pytest_plugin.options import pytest_addoption
from harness.pytest_plugin.session import (
    pytest_collect_file,
    pytest_collection_finish,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_sessionfinish,
    pytest_unconfigure,
)
from harness.pytest_plugin.terminal import pytest_report_header, pytest_terminal_summary

__all__ = ["pytest_addoption", "pytest_configure", "pytest_collect_file", "pytest_collection_modifyitems",
           "pytest_collection_finish", "pytest_runtest_protocol", "pytest_sessionfinish", "pytest_unconfigure",
           "pytest_report_header", "pytest_terminal_summary"]
