"""BFCL import: the shipped samples (tests/fixtures/bfcl, Apache-2.0, see NOTICE) become suites whose verdicts on
scripted replies are the ones BFCL's documented checker gives for them (reasoned case by case below), under the
`bfcl` scoring profile; the default profile keeps this harness's stricter rules, and both verdicts are checked."""
import json
from pathlib import Path

import pytest

from conftest import write_jsonl
from harness.suite import resolve_suite
from harness.tasks.tool_call.bfcl import Unsupported, import_suite, json_schema, to_case
from harness.tasks.tool_call.cases import load_case_file
from harness.tasks.tool_call.match import score
from harness.tasks.tool_call.profiles import BFCL, DEFAULT, bfcl_standardize

SAMPLE = Path(__file__).parent / "fixtures" / "bfcl"
CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Every sample imported as its own suite: {category: (suite folder, import report)}."""
    root = tmp_path_factory.mktemp("bfcl")
    out = {}
    for name in CATEGORIES:
        answers = SAMPLE / f"BFCL_v4_{name}.answers.sample.json"
        out[name] = (root / name, import_suite(SAMPLE / f"BFCL_v4_{name}.sample.json",
                                               answers if answers.exists() else None, root / name))
    return out


@pytest.fixture(scope="module")
def bfcl_cases(imported):
    """{case id: (case, catalogue)} over every imported sample."""
    cases = {}
    for folder, _ in imported.values():
        suite = resolve_suite([folder])
        for case in load_case_file(folder / "cases.jsonl", suite.catalogue, system_messages=True).cases:
            cases[case.id] = (case, suite.catalogue)
    return cases


def test_bfcl_types_become_json_schema():
    got = json_schema({"type": "dict", "properties": {"x": {"type": "float"}, "t": {"type": "tuple", "items": {"type": "integer"}},
                                                      "a": {"type": "any", "description": "anything"}}, "required": ["x"]})
    assert got == {"type": "object", "properties": {"x": {"type": "number"}, "t": {"type": "array", "items": {"type": "integer"}},
                                                    "a": {"description": "anything"}},
                   "required": ["x"], "additionalProperties": False}


def test_answers_become_matchers_and_what_cannot_be_expressed_is_refused():
    entry = {"id": "simple_1", "question": [[{"role": "user", "content": "q"}]],
             "function": [{"name": "f", "parameters": {"type": "dict", "properties": {
                 "u": {"type": "string"}, "o": {"type": "dict", "properties": {"k": {"type": "string"}}},
                 "extra": {"type": "string"}}}}]}
    case = to_case(entry, {"id": "simple_1", "ground_truth": [{"f": {"u": ["cm", ""], "o": [{"k": ["v", ""]}]}}]})
    assert case["expected"] == [{"tool": "f", "params": {
        "u": {"any_of": ["cm", {"present": False}]},
        "o": {"fields": {"k": {"any_of": ["v", {"present": False}]}}},
        "extra": {"present": False},  # defined by the function, named by no answer: BFCL fails it when given
    }}]
    assert to_case({**entry, "id": "irrelevance_3"}, None)["expected"] == []
    with pytest.raises(Unsupported, match="list of objects"):
        to_case(entry, {"id": "simple_1", "ground_truth": [{"f": {"u": [[{"k": ["v"]}]]}}]})
    with pytest.raises(Unsupported, match="relevance"):
        to_case({**entry, "id": "live_relevance_0"}, None)


def test_the_samples_import_and_name_what_they_left_out(imported):
    kept = {name: report["kept"] for name, (_, report) in imported.items()}
    assert kept == {"simple_python": 5, "multiple": 6, "parallel": 3, "parallel_multiple": 2, "irrelevance": 4}
    # BFCL's own answer for simple_python_17 allows leaving out "formatted", which its schema requires.
    folder, report = imported["simple_python"]
    assert list(report["left_out"]) == ["simple_python_17"]
    readme = (folder / "README.md").read_text()
    assert "Apache License 2.0" in readme and "simple_python_17" in readme
    settings = (folder / "suite.toml").read_text()
    assert 'format = "native"' in settings and 'profiles = ["bfcl"]' in settings


def test_bfcl_string_standardisation():
    """BFCL's documented rule: drop spaces and , . / - _ * ^, lower-case, read ' as "."""
    assert bfcl_standardize("April 1, 2024") == bfcl_standardize("april 1 2024") == "april12024"
    assert bfcl_standardize("2019/12/13") == bfcl_standardize("2019-12-13")
    assert bfcl_standardize("it's") == 'it"s'
    assert bfcl_standardize("Brazil!") != bfcl_standardize("Brazil")  # ! is not in the list


def call(name, **params):
    return json.dumps({"name": name, "parameters": params})


def calls(*objs):
    return json.dumps([json.loads(o) for o in objs])


TRIANGLE = dict(side1=5, side2=4, side3=3)
HOUSE = dict(location="San Diego", propertyType="villa", bedrooms=3)
GRADES = {"math": 90, "science": 75, "history": 82, "music": 89}

# (case, reply, (passes, reason) under the default profile, passes under BFCL's rules), each BFCL verdict from its
# documented AST checker: the function name must be the answer's; every required parameter present; no parameter
# the answer does not name; each value of the declared type (an int is accepted for a float, a float never for an
# integer) and in the answer's list after string standardisation ("" in the list: may be left out); an object
# value key by key (no key beyond the answer's, each named key's value in its list); parallel calls in any order,
# as many as the answer has; on an irrelevance entry, a reply that decodes to no call passes.
REPLIES = [
    ("simple_python_0", call("calculate_triangle_area", base=10, height=5), (True, None), True),
    ("simple_python_0", call("calculate_triangle_area", base=10, height=5, unit="units"), (True, None), True),
    # a function the entry does not define: in the native format a malformed call here
    ("simple_python_0", call("calculate_area", base=10, height=5), (False, "invalid_json"), False),
    ("simple_python_1", call("math.factorial"), (False, "schema_error"), False),  # required parameter missing
    ("simple_python_1", call("math.factorial", number="5"), (False, "schema_error"), False),  # wrong type
    ("simple_python_1", call("math.factorial", number=6), (False, "param_mismatch:number"), False),  # not in the list
    ("simple_python_1", call("math.factorial", number=5.0), (True, None), False),  # 5.0 is no integer for BFCL
    ("simple_python_2", call("math.hypot", x=4, y=5, z=0), (True, None), True),
    ("simple_python_2", call("math.hypot", x=4, y=5, w=1), (False, "schema_error"), False),  # not a parameter of it
    ("simple_python_7", call("calculate_circumference", radius=4, unit="in"), (True, None), True),
    ("simple_python_7", calls(call("calculate_circumference", radius=4, unit="in"))[:-1] + ", "
     + call("calculate_circumference", radius=4, unit="in") + "]", (False, "extra_call"), False),
    ("simple_python_13", call("calculate_area_under_curve", function="x**2", interval=[1.0, 3.0]), (True, None), True),
    # multiple: one call, chosen among several functions
    ("multiple_0", call("triangle_properties.get", **TRIANGLE), (True, None), True),
    ("multiple_0", call("triangle_properties.get", **TRIANGLE, get_area=True), (True, None), True),
    ("multiple_0", call("triangle_properties.get", **TRIANGLE, get_area=False), (False, "param_mismatch:get_area"), False),
    ("multiple_0", call("circle_properties.get", radius=3.0), (False, "wrong_tool"), False),
    ("multiple_2", call("country_info.capital", country=" brazil "), (True, None), True),
    ("multiple_2", call("country_info.capital", country="Bra-zil."), (False, "param_mismatch:country"), True),
    ("multiple_2", call("country_info.largest_city", country="Brazil"), (False, "wrong_tool"), False),
    ("multiple_4", call("kinematics.calculate_displacement", initial_speed=20, acceleration=10, time=5, rounding=2),
     (True, None), True),
    ("multiple_4", call("kinematics.calculate_displacement", initial_speed=20, acceleration=10, time=5, rounding=3),
     (False, "param_mismatch:rounding"), False),
    ("multiple_5", call("weather.get_by_coordinates_date", coordinates=[46.603354, 1.888334], date="2019-12-13"),
     (True, None), True),
    ("multiple_5", call("weather.get_by_coordinates_date", coordinates=[46.603354, 1.888334], date="2019/12/13"),
     (False, "param_mismatch:date"), True),
    ("multiple_8", call("realestate.find_properties", **HOUSE, budget={"min": 300000, "max": 400000}), (True, None), True),
    ("multiple_8", call("realestate.find_properties", **HOUSE, budget={"max": 400000.0, "min": 300000.0}), (True, None), True),
    ("multiple_8", call("realestate.find_properties", **HOUSE, budget={"min": 300000}), (False, "param_mismatch:budget"), False),
    ("multiple_8", call("realestate.find_properties", **HOUSE, budget={"min": 300000, "max": 500000}),
     (False, "param_mismatch:budget"), False),
    ("multiple_8", call("realestate.find_properties", **HOUSE, budget={"min": 300000, "max": 400000, "currency": "USD"}),
     (False, "schema_error"), False),  # a key the object does not define
    ("multiple_9", call("calculate_average", gradeDict=GRADES), (True, None), True),
    ("multiple_9", call("calculate_average", gradeDict={**GRADES, "art": 70}), (False, "param_mismatch:gradeDict"), False),
    # parallel: several calls of one function, in any order
    ("parallel_0", calls(call("spotify.play", artist="Maroon 5", duration=15), call("spotify.play", artist="Taylor Swift", duration=20)),
     (True, None), True),
    ("parallel_0", call("spotify.play", artist="Taylor Swift", duration=20), (False, "missing_call"), False),
    ("parallel_0", calls(call("spotify.play", artist="Maroon 5", duration=20), call("spotify.play", artist="Taylor Swift", duration=15)),
     (False, "param_mismatch:artist"), False),  # each call must match one answer, not the union of them
    ("parallel_2", calls(call("calculate_resistance", length=5, area=0.01),
                         call("calculate_resistance", length=5, area=0.01, resistivity="Aluminum")), (True, None), True),
    # parallel multiple: several functions
    ("parallel_multiple_1", calls(call("area_circle.calculate", radius=5), call("area_rectangle.calculate", length=7, breadth=3)),
     (True, None), True),  # an int for a float param
    ("parallel_multiple_1", calls(call("area_circle.calculate", radius=5), call("volume_cylinder.calculate", radius=7, height=3)),
     (False, "wrong_tool"), False),
    # irrelevance: no call wanted
    ("irrelevance_0", "I can only compute body mass index; the triangle's area is 25 square meters.", (True, None), True),
    ("irrelevance_0", call("determine_body_mass_index", weight=10.0, height=5.0), (False, "unexpected_call"), False),
    # a broken attempt: malformed here (never "no tool"); BFCL cannot decode it and counts no call
    ("irrelevance_0", '{"name": "determine_body_mass_index", "parameters": {"weight": 10', (False, "invalid_json"), True),
    # a well-formed call of a function the entry lacks: BFCL decodes it, so it is a call there too
    ("irrelevance_0", call("triangle_area", base=10, height=5), (False, "invalid_json"), False),
]


@pytest.mark.parametrize("case_id, reply, default, bfcl", REPLIES, ids=[f"{r[0]}-{i}" for i, r in enumerate(REPLIES)])
def test_scripted_replies_get_bfcls_verdicts(bfcl_cases, case_id, reply, default, bfcl):
    case, catalogue = bfcl_cases[case_id]
    result = score(case, reply, catalogue, reply_format="native", profile=DEFAULT)
    assert (result.passed, result.reason) == default, result.details
    under_bfcl = score(case, reply, catalogue, reply_format="native", profile=BFCL)
    assert under_bfcl.passed == bfcl, under_bfcl.details


def test_the_bfcl_profile_does_not_enforce_enums_and_reads_integers_literally(tmp_path):
    """BFCL compares a value with its answer list, never with the schema's enum; and `10.0` is no integer there."""
    entry = {"id": "simple_9", "question": [[{"role": "user", "content": "q"}]],
             "function": [{"name": "f", "parameters": {"type": "dict", "required": ["m", "n"], "properties": {
                 "m": {"type": "string", "enum": ["Bronze", "Marble"]}, "n": {"type": "integer"}}}}]}
    data, answers = tmp_path / "d.json", tmp_path / "a.json"
    write_jsonl(data, [entry])
    write_jsonl(answers, [{"id": "simple_9", "ground_truth": [{"f": {"m": ["Bronze"], "n": [10]}}]}])
    import_suite(data, answers, tmp_path / "s")
    suite = resolve_suite([tmp_path / "s"])
    [case] = load_case_file(tmp_path / "s" / "cases.jsonl", suite.catalogue, system_messages=True).cases
    verdicts = lambda reply: tuple(score(case, reply, suite.catalogue, reply_format="native", profile=p).passed  # noqa: E731
                                   for p in (DEFAULT, BFCL))
    assert verdicts(call("f", m="Bronze", n=10)) == (True, True)
    assert verdicts(call("f", m="bronze", n=10)) == (False, True)
    assert verdicts(call("f", m="Bronze", n=10.0)) == (True, False)


def test_the_suites_run_under_pytest_with_both_figures(pytester, imported):
    import shutil
    for name in ("multiple", "irrelevance"):
        shutil.copytree(imported[name][0], pytester.path / name)
    chosen = [r for r in REPLIES if r[0].startswith("multiple_")]
    # one reply per case: the first scripted reply for it
    replies = {}
    for case_id, reply, _, _ in chosen:
        replies.setdefault(case_id, reply)
    replies["multiple_2"] = call("country_info.capital", country="Bra-zil.")  # passes only under BFCL's rules
    write_jsonl(pytester.path / "r.jsonl", [{"id": i, "response": r} for i, r in replies.items()])
    result = pytester.runpytest("--model=replay", "--th-cases", "multiple", "--th-replies", "r.jsonl", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(["profile bfcl: case_pass_rate 1.000 (6/6; default 0.833) -- by category: single 1.000"])
    s = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert s["case_pass_rate"] == pytest.approx(5 / 6) and s["profiles"]["bfcl"]["case_pass_rate"] == 1.0
    assert s["model_fingerprint"]["reply_format"] == "native"  # the suite's setting
    records = {r["id"]: r for r in map(json.loads, (pytester.path / "reports/latest/cases.jsonl").read_text().splitlines())}
    assert records["multiple_2"]["passed"] is False and records["multiple_2"]["profiles"]["bfcl"]["passed"] is True

    # irrelevance: a broken call is malformed by default, no call under BFCL's rules; both figures are shown
    write_jsonl(pytester.path / "i.jsonl", [
        {"id": "irrelevance_0", "response": '{"name": "determine_body_mass_index", "parameters": {'},
        {"id": "irrelevance_1", "response": "No tool for that."},
        {"id": "irrelevance_2", "response": "No tool for that."},
        {"id": "irrelevance_3", "response": call("find_critical_points", function="3x+2", variable="x")}])
    result = pytester.runpytest("--model=replay", "--th-cases", "irrelevance", "--th-replies", "i.jsonl", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    s = json.loads((pytester.path / "reports/latest/summary.json").read_text())
    assert (s["no_tool_accuracy"], s["profiles"]["bfcl"]["no_tool_accuracy"]) == (0.5, 0.75)


def test_an_unknown_profile_is_refused(pytester, imported):
    import shutil
    shutil.copytree(imported["multiple"][0], pytester.path / "multiple")
    write_jsonl(pytester.path / "r.jsonl", [{"id": "multiple_2", "response": "x"}])
    result = pytester.runpytest("--model=replay", "--th-cases", "multiple", "--th-replies", "r.jsonl", "--th-profile", "bfcl-v9",
                                "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no scoring profile 'bfcl-v9'; known: bfcl*"])


def test_a_bfcl_suite_has_no_catalogue_of_its_own(imported, tmp_path):
    """Every BFCL case brings its functions: the suite has no catalogue, the neutral prompt lists the case's own
    functions (never the assistant suite's persona or tools), and a case without `tools` is refused."""
    from harness.suite import SuiteError
    from harness.tasks.tool_call.cases import CaseFileError
    from harness.tasks.tool_call.prompt import build_messages
    folder = imported["multiple"][0]
    suite = resolve_suite([folder])
    assert (suite.catalogue.names, suite.reply_format, suite.profiles) == ((), "native", ("bfcl",))
    case = load_case_file(folder / "cases.jsonl", suite.catalogue, system_messages=True).cases[0]
    system = build_messages(case, suite.catalogue, suite.template)[0]["content"]
    assert "triangle_properties.get" in system and "circle_properties.get" in system
    assert "createTask" not in system and "personal assistant" not in system.lower()
    lines = (folder / "cases.jsonl").read_text().splitlines()
    broken = tmp_path / "s"
    broken.mkdir()
    (broken / "suite.toml").write_text((folder / "suite.toml").read_text())
    no_tools = {k: v for k, v in json.loads(lines[0]).items() if k != "tools"}
    (broken / "cases.jsonl").write_text(lines[1] + "\n" + json.dumps(no_tools) + "\n")
    with pytest.raises(CaseFileError, match=r"cases.jsonl:2: tools: required"):
        load_case_file(broken / "cases.jsonl", resolve_suite([broken]).catalogue, system_messages=True)
    with pytest.raises(SuiteError, match="own_tools"):
        resolve_suite([folder], tools=Path("harness/spec/tools.json"))
