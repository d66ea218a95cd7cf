"""The optional extras express installable sets. CI resolves them against the index (`make check-extras`,
metadata only); this offline test holds the reasons: what Unsloth 2026.10 requires of its neighbours (from
its metadata, docs/platform-notes.md) and the sets that ran, checked against what each extra declares."""
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
UNSLOTH_2026_10_NEEDS = {"trl": "<=1.15.0", "datasets": "<5", "transformers": "<=5.17.0", "torch": "<2.15"}
RAN_ON_H100 = {"torch": "2.11.0", "transformers": "5.17.0", "trl": "1.15.0", "datasets": "4.3.0",
               "bitsandbytes": "0.50.2", "unsloth": "2026.10.9", "unsloth-zoo": "2026.10.9", "peft": "0.18.0"}
RAN_ON_CPU = {"torch": "2.13.0", "transformers": "5.23.0", "trl": "1.16.0", "datasets": "5.2.0", "peft": "0.21.0",
              "accelerate": "1.15.0", "tokenizers": "0.23.0"}


def closure(extra: str) -> list[Requirement]:
    """Every requirement an extra brings, its own extras (toolcall-harness[...]) expanded."""
    out = [Requirement(r) for r in PROJECT["dependencies"]]
    todo, seen = [extra], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for raw in PROJECT["optional-dependencies"][name]:
            req = Requirement(raw)
            if req.name == PROJECT["name"]:
                todo += sorted(req.extras)
            else:
                out.append(req)
    return out


def admits(reqs: list[Requirement], versions: dict[str, str]) -> list[str]:
    """The requirements that refuse one of these versions (normalised names)."""
    norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # noqa: E731
    wanted = {norm(k): Version(v) for k, v in versions.items()}
    return [str(r) for r in reqs if norm(r.name) in wanted and wanted[norm(r.name)] not in r.specifier]


def test_the_gpu_extra_admits_unsloths_neighbours_and_the_set_that_ran():
    gpu = closure("gpu")
    assert admits(gpu, RAN_ON_H100) == []
    for name, spec in UNSLOTH_2026_10_NEEDS.items():
        ours = [r for r in gpu if r.name == name]
        assert ours, f"the gpu extra leaves {name} to unsloth's range {spec}; pin it so pip does not backtrack"
    assert any(r.name == "unsloth" and Version("2026.10.9") in r.specifier for r in gpu)


def test_the_cpu_extra_keeps_the_trl_that_works_on_cpu():
    assert admits(closure("train"), RAN_ON_CPU) == []
    assert admits(closure("train"), {"trl": "1.15.0"}), "[train] keeps trl >= 1.16 (the CPU traps of older TRLs)"


def test_gpu_does_not_include_train_whose_trl_would_conflict():
    assert not any(Requirement(r).extras & {"train"} for r in PROJECT["optional-dependencies"]["gpu"])


def test_ci_resolves_the_extras():
    assert "make check-extras" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "uv pip compile pyproject.toml --extra gpu" in makefile
