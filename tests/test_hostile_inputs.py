"""Issue 21: hostile or unusual files never shift, crash or escape. Lines, JSON values, run folders."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import write_jsonl
from harness import jsonl
from harness.backends.replay import load_replies
from harness.compare import load_run
from harness.core.records import load_prior_records
from harness.report import RunFolderError, RunWriter, check_run_id
from harness.tasks.tool_call.cases import CaseFileError, load_case_file

LINE_BREAKS = "\u2028\u2029\u0085\x1c\x1d\x1e\x0b\x0c\r"


def _case(case_id, text):
    return {"id": case_id, "category": "no_tool", "messages": [{"role": "user", "content": text}], "expected": []}


def _raw_jsonl(path, rows):
    """Rows written as the harness writes them: non-ASCII kept raw."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# -- one JSONL reader: split on \n only --------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list(LINE_BREAKS)), max_size=40),
                min_size=1, max_size=8))
def test_any_unicode_text_round_trips_through_every_jsonl_reader(tmp_path_factory, texts):
    tmp = tmp_path_factory.mktemp("rt")
    rows = [{"id": f"c{i}", "response": t} for i, t in enumerate(texts)]
    path = _raw_jsonl(tmp / "r.jsonl", rows)
    assert jsonl.read_records(path) == rows
    assert {k: r.text for k, r in load_replies(path).items()} == {r["id"]: r["response"] for r in rows}


def test_a_run_whose_replies_hold_line_separators_reads_back_replays_resumes_and_compares(tmp_path, catalogue):
    texts = ["plain", "one\u2028two", "para\u2029graph", "next\u0085line"]
    cases = _raw_jsonl(tmp_path / "cases.jsonl", [_case(f"c{i}", t) for i, t in enumerate(texts)])
    loaded = load_case_file(cases, catalogue)  # a raw U+2028 inside a case's text is no line break
    assert [c.messages[0]["content"] for c in loaded.cases] == texts
    writer = RunWriter(tmp_path / "reports", "r1")
    records = [{"id": f"c{i}", "response": t} for i, t in enumerate(texts)]
    for rec in records:
        writer.add(rec)
    writer.close()
    assert [r["response"] for r in load_prior_records(tmp_path / "reports" / "r1").values()] == texts  # resume
    writer = RunWriter(tmp_path / "reports", "r2")
    writer.finish({"run_id": "r2", "model": "replay"}, records)
    run = load_run(tmp_path / "reports" / "r2")  # compare/report read it
    assert [run.records[f"c{i}"]["response"] for i in range(4)] == texts
    assert [r.text for r in load_replies(tmp_path / "reports" / "r2" / "cases.jsonl").values()] == texts  # replay


def test_the_bfcl_importer_keeps_an_entry_holding_a_line_separator(tmp_path):
    from harness.tasks.tool_call.bfcl import _read_jsonl

    rows = [{"id": "a", "question": "x\u2028y"}, {"id": "b", "question": "z"}]
    assert _read_jsonl(_raw_jsonl(tmp_path / "d.json", rows)) == rows


# -- hostile JSON values: refusals with file:line, never INTERNALERROR ----------------------------------------------
HOSTILE_LINES = {
    "deep": "[" * 100_000 + "]" * 100_000,
    "big-int": '{"id": "x", "n": ' + "9" * 5000 + "}",
    "nan": '{"id": "x", "category": "single", "messages": [{"role": "user", "content": "pay"}], '
           '"expected": [{"tool": "getWeather", "params": {"location": NaN}}]}',
    "infinity": '{"id": "x", "amount": Infinity}',
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_LINES))
def test_a_hostile_case_line_is_a_file_line_refusal(tmp_path, catalogue, kind):
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps(_case("ok", "hi")) + "\n" + HOSTILE_LINES[kind] + "\n", encoding="utf-8")
    with pytest.raises(CaseFileError) as err:
        load_case_file(path, catalogue)
    assert f"{path}:2:" in str(err.value)


@pytest.mark.parametrize("kind", sorted(HOSTILE_LINES))
def test_a_hostile_replay_line_is_a_file_line_refusal(tmp_path, kind):
    from harness.backends import BackendError

    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"id": "a", "response": "hi"}) + "\n" + HOSTILE_LINES[kind] + "\n", encoding="utf-8")
    with pytest.raises(BackendError, match=rf"{path}:2: "):
        load_replies(path)


@pytest.mark.parametrize("reply", ["```json\n" + "[" * 50_000 + "]" * 50_000 + "\n```",
                                   '```json\n{"tool": "getWeather", "params": {"location": ' + "1" * 5000 + "}}\n```",
                                   '```json\n{"tool": "getWeather", "params": {"location": NaN}}\n```',
                                   "[" * 50_000 + "]" * 50_000])
def test_a_hostile_reply_is_an_ordinary_malformed_call(catalogue, reply):
    from harness.tasks.tool_call.parse import parse_reply
    from harness.tasks.tool_call.parse_native import parse_native

    assert parse_reply(reply).outcome == ("malformed" if reply.startswith("```") else "abstention")
    if not reply.startswith("```"):
        assert parse_native(reply, catalogue.names).outcome == "malformed"


def test_the_writers_never_write_a_non_json_number(tmp_path):
    writer = RunWriter(tmp_path, "r")
    with pytest.raises(ValueError):
        writer.add({"id": "a", "latency_s": float("nan")})
    writer.close()
    assert "NaN" not in (tmp_path / "r" / "cases.partial.jsonl").read_text()


def test_pytest_refuses_a_hostile_case_file_with_exit_2_not_internalerror(pytester):
    (pytester.path / "cases.jsonl").write_text(HOSTILE_LINES["deep"] + "\n", encoding="utf-8")
    write_jsonl(pytester.path / "r.jsonl", [{"id": "x", "response": "hi"}])
    result = pytester.runpytest("--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl",
                                "-p", "no:cacheprovider")
    assert result.ret == 2
    out = result.stdout.str()
    assert "INTERNALERROR" not in out and "cases.jsonl:1:" in out


# -- run ids and run folders ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["../../x", "/abs/path", "latest", "a/b", "..", ".hidden", "", "x" * 200, "a\nb"])
def test_a_run_id_is_one_safe_path_component(bad):
    with pytest.raises(RunFolderError):
        check_run_id(bad)


@pytest.mark.parametrize("good", ["20261201T101500Z-replay-3f9a", "demo-before", "run_7.v2", "a+b"])
def test_ordinary_run_ids_are_accepted(good):
    assert check_run_id(good) == good


@pytest.mark.parametrize("bad", ["../../escaped", "latest"])
def test_pytest_refuses_an_unsafe_run_id_before_writing_anything(pytester, bad):
    write_jsonl(pytester.path / "cases.jsonl", [_case("a", "hi")])
    write_jsonl(pytester.path / "r.jsonl", [{"id": "a", "response": "hi"}])
    (pytester.path / "sub").mkdir()
    result = pytester.runpytest("--model=replay", "--th-cases", "../cases.jsonl", "--th-replies", "../r.jsonl",
                                "--th-reports-dir", "rep", "--th-run-id", bad, "-p", "no:cacheprovider",
                                "--rootdir", str(pytester.path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not (pytester.path / "escaped").exists() and not (pytester.path / "rep" / "latest").exists()


def test_an_existing_run_is_never_overwritten_by_a_rerun_with_its_id(pytester):
    write_jsonl(pytester.path / "cases.jsonl", [_case(f"c{i}", "hi") for i in range(5)])
    write_jsonl(pytester.path / "r.jsonl", [{"id": f"c{i}", "response": "hello"} for i in range(5)])
    args = ["--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl", "-p", "no:cacheprovider",
            "--th-run-id", "keep-me"]
    assert pytester.runpytest(*args).ret == 0
    again = pytester.runpytest(*args, "-k", "c1")
    assert again.ret == pytest.ExitCode.USAGE_ERROR and "--th-resume keep-me" in again.stdout.str() + again.stderr.str()
    assert len((pytester.path / "reports" / "keep-me" / "cases.jsonl").read_text().splitlines()) == 5


def test_a_run_folder_is_locked_while_its_run_writes(tmp_path):
    writer = RunWriter(tmp_path, "busy")
    script = ("import sys; from harness.report import RunWriter, RunFolderError\n"
              f"try:\n    RunWriter({str(tmp_path)!r}, 'busy', resume=True)\n"
              "except RunFolderError as e:\n    print(e); sys.exit(3)\n")
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert other.returncode == 3 and f"pid {os.getpid()}" in other.stdout
    writer.finish({"run_id": "busy"}, [])
    assert not (tmp_path / "busy" / ".lock").exists()
    RunWriter(tmp_path, "busy", resume=True).close()  # free again once the run is over


def test_report_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        RunWriter(tmp_path, "m").finish({"run_id": "m"}, [{"id": "a"}])
        for name in ("cases.jsonl", "summary.json"):
            assert (tmp_path / "m" / name).stat().st_mode & 0o777 == 0o644
            assert (tmp_path / "latest" / name).stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
        assert (tmp_path / "latest").stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(old)


# -- JSON Schema: nothing fetched or read, local refs resolved, patterns bounded --------------------------------
class _Counting:
    """A server on 127.0.0.1 that counts the requests it gets (a schema must never make the harness fetch)."""

    def __enter__(self):
        import http.server
        import threading

        hits = self.hits = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                hits.append(self.path)
                body = b'{"type": "integer"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mins.json"
        return self

    def __exit__(self, *a):
        self.server.shutdown()


def _tools(minutes_schema, defs=None):
    params = {"type": "object", "properties": {"minutes": minutes_schema}, "required": ["minutes"]}
    if defs:
        params["$defs"] = defs
    return [{"type": "function", "function": {"name": "setTimer", "description": "timer", "parameters": params}}]


def _timer_case(minutes=12, tools=None):
    row = {"id": "t", "category": "single", "messages": [{"role": "user", "content": "timer"}],
           "expected": [{"tool": "setTimer", "params": {"minutes": minutes}}]}
    return {**row, "tools": tools} if tools is not None else row


@pytest.mark.parametrize("where", ["tools.json", "case tools"])
def test_an_external_ref_is_refused_at_load_and_never_fetched(tmp_path, where):
    from harness.tasks.tool_call.tools import catalogue_from_json, load_catalogue

    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "string", "description": "TOP-SECRET-CONTENT"}')
    for ref in ("URL", secret.as_uri()):
        with _Counting() as server:
            tools = _tools({"$ref": server.url if ref == "URL" else ref})
            if where == "tools.json":
                (tmp_path / "tools.json").write_text(json.dumps(tools))
                with pytest.raises(ValueError) as err:
                    load_catalogue(tmp_path / "tools.json")
            else:
                cases = write_jsonl(tmp_path / "cases.jsonl", [_timer_case(tools=tools)])
                with pytest.raises(CaseFileError) as err:
                    load_case_file(cases, catalogue_from_json(_tools({"type": "integer"}), "suite"))
            assert server.hits == []
        message = str(err.value)
        assert "tools[0].function.parameters.properties.minutes.$ref: external $ref not allowed" in message
        assert "TOP-SECRET-CONTENT" not in message
        if where == "case tools":
            assert f"{tmp_path / 'cases.jsonl'}:1: tools:" in message


def test_no_validator_retrieves_a_reference_even_when_asked_to(tmp_path):
    from harness import schema

    with _Counting() as server:
        made = schema.validator({"type": "object", "properties": {"a": {"$ref": server.url}}})
        from referencing.exceptions import Unresolvable

        with pytest.raises(Unresolvable):
            list(made.iter_errors({"a": 1}))
        assert server.hits == []


def test_a_local_ref_loads_checks_impossible_expectations_and_scores(tmp_path):
    from harness.tasks.tool_call.match import score
    from harness.tasks.tool_call.tools import catalogue_from_json

    catalogue = catalogue_from_json(_tools({"$ref": "#/$defs/mins"}, {"mins": {"type": "integer", "minimum": 1}}),
                                    "suite")
    [case] = load_case_file(write_jsonl(tmp_path / "ok.jsonl", [_timer_case(12)]), catalogue).cases
    good = '```json\n{"tool": "setTimer", "params": {"minutes": 12}}\n```'
    low = '```json\n{"tool": "setTimer", "params": {"minutes": 0}}\n```'
    assert score(case, "Timer.\n" + good, catalogue).passed
    assert not score(case, "Timer.\n" + low, catalogue).schema_valid
    with pytest.raises(CaseFileError, match="less than the minimum of 1"):
        load_case_file(write_jsonl(tmp_path / "bad.jsonl", [_timer_case(0)]), catalogue)
    with pytest.raises(ValueError, match="points to nothing"):
        catalogue_from_json(_tools({"$ref": "#/$defs/nowhere"}), "suite")


def test_a_backtracking_pattern_fails_the_value_with_its_reason_instead_of_hanging():
    import time

    from harness.tasks.tool_call.tools import catalogue_from_json

    def tool(pattern):
        return catalogue_from_json([{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"s": {"type": "string", "pattern": pattern}},
            "patternProperties": {pattern: {"type": "string"}}}}}], "t").tools[0]

    for pattern, value in (("^(a+)+$", "a" * 27 + "!"), ("^(a|aa)+$", "a" * 40 + "!")):
        started = time.perf_counter()
        errors = tool(pattern).schema_errors({"s": value})
        assert time.perf_counter() - started < 5 and errors  # a failure with its reason, never a hang
        assert "does not match" in errors[0] or "took longer than" in errors[0]
    assert "took longer than" in tool("^(a|aa)+$").schema_errors({"s": "a" * 40 + "!"})[0]
    assert any("took longer than" in e for e in tool("^(a|aa)+$").schema_errors({"a" * 40 + "!": "x"}))
    assert tool("^(a+)+$").schema_errors({"s": "aaa"}) == []
    assert "does not match" in tool("^(a+)+$").schema_errors({"s": "b"})[0]


# -- what is shown: reports, terminals, thresholds --------------------------------------------------------------
HOSTILE_TEXT = "x\n\n## gate PASSED <img src=http://evil.example/p.png> [click](http://evil.example) `code` *b*"


def _hostile_run(pytester):
    """A real replay run whose records then get hostile text where a case file, a reply or a record could put it."""
    write_jsonl(pytester.path / "cases.jsonl", [_case(f"c{i}", "hi") for i in range(3)])
    write_jsonl(pytester.path / "r.jsonl", [{"id": f"c{i}", "response": "\x1b[1;32mgate (point): PASSED"}
                                            for i in range(3)])
    assert pytester.runpytest("--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl", "-p",
                              "no:cacheprovider", "--th-run-id", "h", "--th-threshold", "case_pass_rate=1").ret in (0, 1)
    run = pytester.path / "reports" / "h"
    summary = json.loads((run / "summary.json").read_text())
    summary["model"] = HOSTILE_TEXT
    summary["gate"]["passed"] = False
    summary["gate"]["failures"] = [{"metric": "case_pass_rate", "message": HOSTILE_TEXT}]
    summary["reasons"] = {HOSTILE_TEXT: 1}
    (run / "summary.json").write_text(json.dumps(summary))
    records = [json.loads(line) for line in (run / "cases.jsonl").read_text().splitlines()]
    for rec in records:
        rec["category"] = HOSTILE_TEXT
        rec["passed"] = False
    (run / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_report_md_and_html_escape_every_field_from_a_run(pytester):
    pytest.importorskip("matplotlib")
    from harness.html_report import main as report_main

    run = _hostile_run(pytester)
    assert report_main([str(run), str(run)]) == 0
    md = (run / "report.md").read_text()
    assert [line for line in md.splitlines() if line.startswith("#")] == [md.splitlines()[0]]  # ours only
    import re

    assert "<img" not in md and not re.search(r"(?<!\\)\]\(http", md) and "\x1b" not in md
    page = (run / "report.html").read_text()
    assert "<img src=http" not in page and "evil.example/p.png>" not in page and "\x1b" not in page


def test_control_characters_from_a_reply_never_reach_the_terminal(pytester):
    write_jsonl(pytester.path / "cases.jsonl", [{"id": "w", "category": "single",
                                                 "messages": [{"role": "user", "content": "weather?"}],
                                                 "expected": [{"tool": "getWeather", "params": {"location": "Oslo"}}]}])
    write_jsonl(pytester.path / "r.jsonl", [{"id": "w", "response": "\x1b[1;32mgate (point): PASSED\x1b[0m\r"}])
    for extra in ([], ["--th-failure-details", "all"]):
        result = pytester.runpytest("--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl", "-p",
                                    "no:cacheprovider", "--th-run-id", f"t{len(extra)}", *extra)
        out = result.stdout.str()
        assert "\x1b[1;32mgate" not in out and "\\x1b[1;32mgate (point): PASSED" in out


@pytest.mark.parametrize("bad_id", ["a\x1b[31mb", "two\nlines", "bidi\u202eevil"])
def test_a_case_id_with_control_characters_is_refused(tmp_path, catalogue, bad_id):
    with pytest.raises(CaseFileError, match="id: must not hold control characters"):
        load_case_file(write_jsonl(tmp_path / "c.jsonl", [_case(bad_id, "hi")]), catalogue)


@pytest.mark.parametrize("spec", ["case_pass_rate=nan", "case_pass_rate=inf", "case_pass_rate>=1.5",
                                  "valid_json_rate=-0.1", "latency_p95_s<-1", "latency_p95_s<inf"])
def test_thresholds_outside_their_range_are_refused(spec):
    from harness.gate import parse_threshold as parse
    from harness.tasks.tool_call.metrics import DEFAULT_THRESHOLDS, GATEABLE

    def parse_threshold(spec):
        return parse(spec, DEFAULT_THRESHOLDS, GATEABLE)

    with pytest.raises(ValueError):
        parse_threshold(spec)


def test_a_collection_crash_is_rendered_not_an_internalerror(pytester, monkeypatch):
    import harness.tasks.tool_call.cases

    pytester.makeconftest("""
import harness.tasks.tool_call.cases
def boom(*a, **k):
    raise RuntimeError("a bug while loading")
harness.tasks.tool_call.cases.load_case_file = boom
import harness.tasks.tool_call.task
harness.tasks.tool_call.task.load_case_file = boom
""")
    write_jsonl(pytester.path / "cases.jsonl", [_case("a", "hi")])
    write_jsonl(pytester.path / "r.jsonl", [{"id": "a", "response": "hi"}])
    result = pytester.runpytest_subprocess("--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl",
                                           "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out and "a bug while loading" in out
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert harness.tasks.tool_call.cases.load_case_file is not None


def test_a_bare_file_of_program_cases_is_refused_in_one_line(tmp_path, catalogue):
    program = (Path(__file__).resolve().parents[1] / "suites" / "program" / "cases.jsonl").read_text()
    path = tmp_path / "p.jsonl"
    path.write_text(program, encoding="utf-8")
    with pytest.raises(CaseFileError) as err:
        load_case_file(path, catalogue)
    assert len(err.value.problems) == 1 and "workout-program cases" in str(err.value)
    assert "suite.toml" in str(err.value)


@pytest.mark.parametrize("kind", sorted(HOSTILE_LINES))
def test_pytest_refuses_a_hostile_replay_line_by_file_and_line_not_internalerror(pytester, kind):
    write_jsonl(pytester.path / "cases.jsonl", [_case("x", "hi")])
    (pytester.path / "r.jsonl").write_text(HOSTILE_LINES[kind] + "\n", encoding="utf-8")
    result = pytester.runpytest("--model=replay", "--th-cases", "cases.jsonl", "--th-replies", "r.jsonl",
                                "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in out and "r.jsonl:1:" in out
