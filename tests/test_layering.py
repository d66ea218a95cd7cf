"""The import direction (STYLE.md): util <- backends <- the tasks' code <- {reports, plugin, cli} <- {training,
deploy, benchmarks}; nothing imports the pytest plugin. Read from the code's own import statements, so a module
that reaches the wrong way fails here with the line that does it."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a backend may import from the harness: other backends, and the stdlib-level helpers they share.
BACKEND_MAY_IMPORT = ("harness.backends", "harness.jsonl", "harness.chat_format", "harness.hashing", "harness.models", "harness.grammar",
                      "harness.isotime", "harness.escape", "harness")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, top level or inside a function."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, node.module)]
    return out


def offenders(folder: str, bad) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}: imports {module}"
            for path in sorted((ROOT / folder).rglob("*.py")) for line, module in imports(path) if bad(module)]


def test_nothing_imports_the_pytest_plugin():
    """Only the plugin's own modules import one another."""
    found = [o for folder in ("harness", "training", "deploy", "benchmarks")
             for o in offenders(folder, lambda m: m.startswith("harness.pytest_plugin"))
             if not o.startswith("harness/pytest_plugin/")]
    assert found == []


def test_the_harness_imports_neither_training_deploy_nor_benchmarks():
    assert offenders("harness", lambda m: m.split(".")[0] in ("training", "deploy", "benchmarks")) == []


def test_backends_import_only_backends_and_shared_helpers():
    def bad(module: str) -> bool:
        return module.startswith("harness") and not any(
            module == allowed or module.startswith(allowed + ".") for allowed in BACKEND_MAY_IMPORT if allowed != "harness"
        ) and module != "harness"
    assert offenders("harness/backends", bad) == []


def test_the_option_tables_need_nothing_but_the_standard_library():
    """The plugin reads every backend's option table at start-up: the table module may not pull torch or httpx."""
    assert [m for _, m in imports(ROOT / "harness/backends/options.py") if not m.startswith(("__future__", "contextlib",
            "contextvars", "dataclasses", "typing"))] == []
    registry = [m for _, m in imports(ROOT / "harness/backends/registry.py")]
    assert not any(m.startswith(("torch", "transformers", "httpx", "harness.backends.local", "harness.backends.remote"))
                   for m in registry)


def test_loading_the_plugin_imports_no_model_or_http_stack():
    """pytest loads the plugin in every session of the environment (entry point): it must stay cheap."""
    import subprocess
    import sys
    code = ("import sys, harness.pytest_plugin; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'httpx', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


# The shared helpers below the engine (STYLE.md's util layer): nothing here imports a backend, the engine or a task.
UTIL = ("harness.jsonl", "harness.hashing", "harness.isotime", "harness.escape", "harness.chat_format", "harness.stats",
        "harness.casefile", "harness.fenced", "harness.schema", "harness.gate", "harness.grammar")


def test_the_util_layer_imports_nothing_above_it():
    found = [o for m in UTIL for o in offenders_of(ROOT / (m.replace(".", "/") + ".py"),
                                                  lambda mod: mod.startswith(("harness.backends", "harness.core", "harness.tasks")))]
    assert found == []


def test_the_engine_imports_no_task_and_no_layer_above_it():
    """harness.core sees a task only through the Task protocol and the registry's import strings."""
    above = ("harness.tasks", "harness.suite", "harness.pytest_plugin", "harness.compare", "harness.history",
             "harness.html_report", "harness.merge")
    assert offenders("harness/core", lambda m: m.startswith(above)) == []


def test_neither_task_imports_the_other():
    assert offenders("harness/tasks/program", lambda m: m.startswith("harness.tasks.tool_call")) == []
    assert offenders("harness/tasks/tool_call", lambda m: m.startswith("harness.tasks.program")) == []


def test_the_tasks_import_no_front_end_or_report_module():
    front = ("harness.pytest_plugin", "harness.compare", "harness.history", "harness.html_report", "harness.merge")
    assert [o for o in offenders("harness/tasks", lambda m: m.startswith(front)) if not o.startswith("harness/tasks/program/cli.py")] == []


def offenders_of(path: Path, bad) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}: imports {module}" for line, module in imports(path) if bad(module)]


def test_no_request_is_built_and_no_scorer_called_outside_the_tasks_and_the_engine():
    """The one evaluation path: a backend request is made (Request(...)) and a reply scored (score, score_reply,
    score_program, case_request) only in harness/tasks and harness/core/engine.py; everyone else asks the engine."""
    names = {"Request", "score", "score_reply", "score_program", "case_request"}
    allowed = (ROOT / "harness" / "tasks", ROOT / "harness" / "core" / "engine.py")
    found = []
    for folder in ("harness", "training", "deploy", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == allowed[1] or allowed[0] in path.parents or "testing" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call):
                    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                    if name in names:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}(...)")
    assert found == []
