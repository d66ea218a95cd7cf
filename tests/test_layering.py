"""The import direction (STYLE.md): util <- backends <- the tasks' code <- {reports, plugin, cli} <- {training,
deploy, benchmarks}; nothing imports the pytest plugin. Read from the code's own import statements, so a module
that reaches the wrong way fails here with the line that does it."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a backend may import from the harness: other backends, and the stdlib-level helpers they share.
BACKEND_MAY_IMPORT = ("harness.backends", "harness.jsonl", "harness.chat_format", "harness.hashing", "harness.models",
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
    found = [o for folder in ("harness", "training", "deploy", "benchmarks")
             for o in offenders(folder, lambda m: m.startswith("harness.pytest_plugin"))]
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
