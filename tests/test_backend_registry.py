"""Backends declare their options as data and register by name; a package adds one through an entry point."""
import os
import subprocess
import sys
import textwrap

from conftest import write_jsonl
from harness.backends import options as opts
from harness.backends.registry import BUILTIN, all_options


def test_every_builtin_backend_declares_the_table_its_spec_carries_and_its_defaults_match():
    from harness.backends.http import RetryPolicy
    from harness.backends.remote import CLOUDFLARE_API, DEFAULT_MAX_TOKENS, CloudflareBackend, OpenAIBackend
    from harness.backends.replay import ReplayBackend

    classes = {"replay": ReplayBackend, "cloudflare-base": CloudflareBackend, "cloudflare-lora": CloudflareBackend,
               "openai": OpenAIBackend}
    for spec in BUILTIN:
        if spec.name in classes:  # the local backend's module imports torch: its table is checked below
            assert classes[spec.name].OPTIONS is spec.options, spec.name
    by_name = {o.name: o for o in all_options()}
    assert by_name["max_attempts"].default == RetryPolicy.max_attempts
    assert by_name["request_timeout"].default == RetryPolicy.timeout_s
    assert by_name["max_new_tokens"].default == DEFAULT_MAX_TOKENS
    assert by_name["cf_api_base"].default == CLOUDFLARE_API
    assert len(by_name) == len({o.flag for o in by_name.values()})  # one flag per option


def test_the_local_table_is_the_local_backends_and_its_defaults_are_the_backends():
    import pytest
    pytest.importorskip("torch")
    from harness.backends.base import GENERATION_MODES
    from harness.backends.local import GenerationSettings, LocalBackend

    assert LocalBackend.OPTIONS is opts.LOCAL
    by_name = {o.name: o for o in opts.LOCAL}
    assert by_name["batch_size"].default == GenerationSettings.batch_size
    assert by_name["max_new_tokens"].default == GenerationSettings.max_new_tokens
    assert by_name["generation_mode"].choices == GENERATION_MODES


def test_a_message_names_an_option_as_the_running_front_end_spells_it():
    assert opts.flag("base_model") == "--base-model"
    with opts.flag_prefix("--th-"):
        assert opts.flag("base_model") == "--th-base-model"
        assert opts.Option("n", "", int, minimum=1).problem(0) == "--th-n 0: must be >= 1"
    assert opts.flag("base_model") == "--base-model"


def test_a_package_adds_a_backend_through_the_entry_point_group(tmp_path):
    """A third party's backend, installed as a distribution with an entry point: `--model` finds it, the plugin
    offers its own option (prefixed), and its replies are scored like any other's."""
    site = tmp_path / "site"
    (site / "echo_backend").mkdir(parents=True)
    (site / "echo_backend" / "__init__.py").write_text(textwrap.dedent('''
        from harness.backends import Backend, BackendSpec, Reply
        from harness.backends.options import Option

        OPTIONS = (Option("echo_text", "echo: the reply to every request", metavar="TEXT"),)

        class EchoBackend(Backend):
            name = "echo"
            OPTIONS = OPTIONS
            def __init__(self, text):
                self.text = text
            @classmethod
            def from_options(cls, name, options):
                return cls(options.require("echo_text", name))
            def generate(self, requests, on_reply=None):
                out = [r.bind(Reply(text=self.text, latency_s=0.0)) for r in requests]
                for reply in out:
                    if on_reply:
                        on_reply(reply)
                return out

        SPEC = BackendSpec("echo", "echo_backend:EchoBackend", OPTIONS, about="says one thing")
    '''))
    info = site / "echo_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[toolcall_harness.backends]\necho = echo_backend:SPEC\n")
    write_jsonl(tmp_path / "cases.jsonl", [
        {"id": "n-1", "category": "no_tool", "messages": [{"role": "user", "content": "thanks"}], "expected": []}])
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *a],  # noqa: E731
                                    cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    missing = run("--model=echo", "--th-cases", "cases.jsonl")
    assert missing.returncode == 4 and "--model=echo needs --th-echo-text" in missing.stderr
    done = run("--model=echo", "--th-cases", "cases.jsonl", "--th-echo-text", "You're welcome!", "--th-run-id", "e")
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr


def test_an_unknown_backend_names_the_known_ones():
    import pytest

    from harness.backends import BackendError, BackendOptions, create_backend

    with pytest.raises(BackendError, match="unknown --model 'nope'; known: cloudflare-base"):
        create_backend("nope", BackendOptions({}))
