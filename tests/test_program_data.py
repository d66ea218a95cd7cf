"""Training data for the workout-program task: rule-valid programs for generated requests, the seed's
{prompt, completion} lines converted, decontamination against the golden program suite, a split by request."""
import json
from pathlib import Path

from conftest import write_jsonl
from harness.tasks.program.core import load_program_file, parse_program, score_program
from harness.tasks.program.strategies import SYSTEM, request_text
from harness.tasks.program.template import template_reply
from training.data.__main__ import main as data_cli
from training.data.program import build_program_set, random_case, request_key, varied_program

SUITE = Path(__file__).resolve().parents[1] / "suites" / "program" / "cases.jsonl"


def test_generated_programs_pass_every_rule_and_vary():
    import random
    rng = random.Random(3)
    programs = []
    for i in range(60):
        case = random_case(rng, i)
        program = varied_program(case, rng)
        assert score_program(case, json.dumps(program)).passed
        programs.append(json.dumps(program["days"][0]["exercises"]))
    assert len(set(programs)) > 50  # not the template's one program again and again


def test_the_cli_builds_a_split_set_in_the_tasks_chat_format(tmp_path, capsys):
    out = tmp_path / "data"
    assert data_cli(["build", "--task", "program", "--out", str(out), "--n", "120", "--golden", str(SUITE)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["total"] == sum(f["examples"] for f in manifest["files"].values()) > 100
    groups = {}
    for split in ("train", "val", "holdout"):
        for line in (out / f"{split}.jsonl").read_text().splitlines():
            ex = json.loads(line)
            assert [m["role"] for m in ex["messages"]] == ["system", "user", "assistant"]
            assert ex["messages"][0]["content"] == SYSTEM and parse_program(ex["messages"][2]["content"])[0]
            groups.setdefault(ex["group"], set()).add(split)
    assert all(len(s) == 1 for s in groups.values())  # a request never straddles two splits
    assert "built" in capsys.readouterr().out


def test_a_request_identical_to_a_golden_case_is_dropped(tmp_path, monkeypatch):
    import training.data.program as program
    golden = load_program_file(SUITE)
    real = program.random_case
    monkeypatch.setattr(program, "random_case", lambda rng, n: golden[0] if n == 0 else real(rng, n))
    manifest = build_program_set(tmp_path / "d", n=10, golden=[SUITE])
    assert manifest["counts"]["decontaminated"] == 1 and "gen-0" in manifest["decontaminated_examples"][0]
    assert request_key(golden[0]) != request_key(golden[1])


def test_seed_prompt_completion_lines_are_converted_or_refused_by_line(tmp_path):
    case = load_program_file(SUITE)[0]
    seed = tmp_path / "seed.jsonl"
    write_jsonl(seed, [{"prompt": request_text(case), "completion": template_reply(case)},
                       {"prompt": "x", "completion": "{\"name\": \"P\", \"days\": [{\"day_number\": 1}]}"},
                       {"prompt": "x"}])
    manifest = build_program_set(tmp_path / "d", n=5, golden=[], seed_files=[seed])
    assert manifest["counts"]["seed_refused"] == 2
    assert manifest["seed_refused"][0].startswith(f"{seed}:2: completion:") and f"{seed}:3:" in manifest["seed_refused"][1]
    kept = [json.loads(x) for s in ("train", "val", "holdout") for x in (tmp_path / "d" / f"{s}.jsonl").read_text().splitlines()]
    assert sum(ex["source"] == "seed:seed.jsonl" for ex in kept) == 1
