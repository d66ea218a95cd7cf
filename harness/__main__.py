"""python -m harness COMMAND: the harness's own command-line tools (the evaluation itself runs under pytest).

    python -m harness merge REPORT_DIR... --out DIR     join the reports of a run split with --shard I/N
    python -m harness compare RUN_A RUN_B [--out FILE]   paired comparison (McNemar), fixed/broken cases, parity
    python -m harness report RUN [RUN_B] [--open]        report.html (plots inline) and report.md
    python -m harness history [REPORTS_DIR]              the gate metrics over all runs, by model/adapter
    python -m harness program --cases DIR --strategy S   the workout-program task (template, direct, few-shot)
    python -m harness bfcl import DATA [ANSWERS] --out DIR   a BFCL data file -> a suite folder
"""
from __future__ import annotations

import sys

COMMANDS = {"merge": "harness.merge", "compare": "harness.compare", "report": "harness.html_report",
            "history": "harness.history", "program": "harness.tasks.program.cli",
            "bfcl": "harness.tasks.tool_call.bfcl"}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    import importlib

    return importlib.import_module(COMMANDS[args[0]]).main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
