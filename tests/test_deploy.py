"""deploy: check / export offline, upload / list / verify against the fake Cloudflare on 127.0.0.1."""
import json
import shutil

import pytest

pytest.importorskip("peft")

from deploy.__main__ import main as deploy  # noqa: E402
from harness.hashing import sha256_file  # noqa: E402
from harness.testing.fake_cloudflare import FakeCloudflare, Fault  # noqa: E402
from harness.tiny import build_tiny_model, make_random_adapter  # noqa: E402

CF = "@cf/meta/llama-3.2-3b-instruct"
LORA_CAPABLE = "@cf/meta/llama-3.1-8b-instruct-fast"
CALL = 'Sure.\n\n```json\n{"tool": "getWeather", "params": {"location": "Oslo"}}\n```'


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def adapter_like(tiny, folder, *, r=4, base="unsloth/Llama-3.2-3B-Instruct", drop=()):
    make_random_adapter(tiny, folder, r=r)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base
    for key in drop:
        config.pop(key, None)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="session")
def good(tiny, tmp_path_factory):
    return adapter_like(tiny, tmp_path_factory.mktemp("good") / "adapter")


def run(capsys, *argv):
    code = deploy(list(argv))
    return code, capsys.readouterr().out


def test_check_passes_a_good_adapter_but_wants_model_type(good, capsys):
    code, out = run(capsys, "check", str(good), f"--cf-model={CF}")
    assert code == 1 and "ok    LoRA: peft_type LORA, r 4" in out
    assert "FAIL  model_type" in out and "python -m deploy export" in out


def test_export_adds_model_type_and_keeps_every_field(good, tmp_path, capsys):
    code, out = run(capsys, "export", str(good), "--out", str(tmp_path / "bundle"), f"--cf-model={CF}")
    assert code == 0, out
    before = json.loads((good / "adapter_config.json").read_text())
    after = json.loads((tmp_path / "bundle" / "adapter_config.json").read_text())
    assert after == {**before, "model_type": "llama"}
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["adapter_sha256"] == sha256_file(good / "adapter_model.safetensors")  # = the local fingerprint's
    assert manifest["files"]["adapter_config.json"]["sha256"] == sha256_file(tmp_path / "bundle" / "adapter_config.json")
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "manifest.json"]
    code, out = run(capsys, "check", str(tmp_path / "bundle"), f"--cf-model={CF}")
    assert code == 0 and "FAIL" not in out and "ok    tensors" in out and "ok    size" in out


def merged(tiny, folder):
    shutil.copytree(tiny, folder)
    return folder


@pytest.mark.parametrize("make, expect", [
    (lambda tiny, d: merged(tiny, d), "full model weights found: model.safetensors"),
    (lambda tiny, d: adapter_like(tiny, d, r=64), "r = 64, the limit is 32"),
    (lambda tiny, d: adapter_like(tiny, d, base="meta-llama/Llama-3.1-8B-Instruct"), "which is @cf/meta/llama-3.1-8b"),
    (lambda tiny, d: adapter_like(tiny, d, base="/tmp/some/local-model"), "not in the table"),
], ids=["merged", "rank-64", "wrong-base", "unknown-base"])
def test_bad_adapters_are_refused_with_a_fix(tiny, tmp_path, capsys, make, expect):
    folder = make(tiny, tmp_path / "a")
    code, out = run(capsys, "export", str(folder), "--out", str(tmp_path / "b"), f"--cf-model={CF}")
    assert code == 1 and expect in out and "fix:" in out
    assert not (tmp_path / "b" / "adapter_model.safetensors").exists()


def test_oversized_adapter_is_refused(good, tmp_path, capsys):
    folder = tmp_path / "big"
    shutil.copytree(good, folder)
    with open(folder / "adapter_model.safetensors", "r+b") as f:
        f.truncate(301 * 1000 * 1000)  # sparse: no 300 MB of real data on disk
    code, out = run(capsys, "check", str(folder), f"--cf-model={CF}")
    assert code == 1 and "FAIL  size: 301.0 MB, the limit is 300 MB" in out


def test_missing_or_misnamed_files(good, tmp_path, capsys):
    folder = tmp_path / "renamed"
    shutil.copytree(good, folder)
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model (1).safetensors")
    code, out = run(capsys, "check", str(folder), f"--cf-model={CF}")
    assert code == 1 and "adapter_model.safetensors: missing (found adapter_model (1).safetensors)" in out


def test_forced_unknown_base_exports(tiny, tmp_path, capsys):
    folder = adapter_like(tiny, tmp_path / "a", base="/models/my-llama")
    code, out = run(capsys, "export", str(folder), "--out", str(tmp_path / "b"), f"--cf-model={CF}", "--force-base")
    assert code == 0 and "(forced)" in out


@pytest.fixture
def cloud(monkeypatch):
    reply = lambda body: CALL if "lora" in body else "I can help with that."  # noqa: E731
    with FakeCloudflare(reply=reply, models={CF, LORA_CAPABLE}, lora_models={LORA_CAPABLE}) as fake:
        monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", fake.account_id)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", fake.token)
        yield fake


@pytest.fixture
def bundle(tiny, tmp_path, capsys):
    folder = adapter_like(tiny, tmp_path / "adapter", base="unsloth/Meta-Llama-3.1-8B-Instruct")
    assert deploy(["export", str(folder), "--out", str(tmp_path / "bundle"), f"--cf-model={LORA_CAPABLE}"]) == 0
    capsys.readouterr()
    return tmp_path / "bundle"


def test_upload_list_and_verify(cloud, bundle, capsys):
    api = ["--cf-api-base", cloud.api_base]
    code, out = run(capsys, "upload", str(bundle), "--name", "assistant-1", f"--cf-model={LORA_CAPABLE}", *api)
    assert code == 0, out
    assert "ok    catalog" in out and "npx wrangler ai finetune create @cf/meta/llama-3.1-8b-instruct-fast assistant-1" in out
    stored = next(iter(cloud.store.values()))
    assert stored["name"] == "assistant-1" and stored["model"] == LORA_CAPABLE
    assert stored["files"]["adapter_model.safetensors"] == (bundle / "adapter_model.safetensors").read_bytes()
    assert json.loads(stored["files"]["adapter_config.json"])["model_type"] == "llama"
    assert json.loads((bundle / "upload.json").read_text())["status"] == "complete"
    code, out = run(capsys, "list", *api)
    assert code == 0 and "assistant-1" in out and stored["id"] in out
    code, out = run(capsys, "verify", f"--cf-model={LORA_CAPABLE}", "--lora", "assistant-1", "--probes", "5", *api)
    assert code == 0 and "the adapter changes 5/5 replies" in out
    code, out = run(capsys, "upload", str(bundle), "--name", "assistant-1", f"--cf-model={LORA_CAPABLE}", *api)
    assert code == 1 and "exists and finetunes cannot be updated" in out and len(cloud.store) == 1
    assert cloud.token not in out


def test_verify_fails_when_the_adapter_is_not_applied(cloud, bundle, capsys):
    api = ["--cf-api-base", cloud.api_base]
    assert deploy(["upload", str(bundle), "--name", "quiet", f"--cf-model={LORA_CAPABLE}", *api]) == 0
    cloud.apply_lora = False
    code, out = run(capsys, "verify", f"--cf-model={LORA_CAPABLE}", "--lora", "quiet", "--probes", "4", *api)
    assert code == 1 and "probably not applied" in out


def test_upload_refuses_a_model_the_catalog_does_not_mark_lora_capable(cloud, tiny, tmp_path, capsys):
    folder = adapter_like(tiny, tmp_path / "a")
    assert deploy(["export", str(folder), "--out", str(tmp_path / "b"), f"--cf-model={CF}"]) == 0
    code, out = run(capsys, "upload", str(tmp_path / "b"), "--name", "x", f"--cf-model={CF}", "--cf-api-base", cloud.api_base)
    assert code == 1 and "does not mark @cf/meta/llama-3.2-3b-instruct as LoRA-capable" in out and LORA_CAPABLE in out
    assert not cloud.store


def test_a_failed_second_upload_leaves_a_record(cloud, bundle, capsys):
    cloud.inject(Fault("500", times=10, match="adapter_config.json\r\n"))
    code, out = run(capsys, "upload", str(bundle), "--name", "half", f"--cf-model={LORA_CAPABLE}",
                    "--cf-api-base", cloud.api_base, "--max-attempts", "2")
    record = json.loads((bundle / "upload.json").read_text())
    assert code == 1 and "exists without all its files" in out and record["finetune_id"] in out
    assert record["uploaded"] == ["adapter_model.safetensors"] and record["status"].startswith("incomplete")
    code, out = run(capsys, "verify", f"--cf-model={LORA_CAPABLE}", "--lora", "half", "--cf-api-base", cloud.api_base)
    assert code == 1 and "3039" in out  # the half-made finetune is missing files


def test_verify_reports_parity_with_the_local_adapter(cloud, bundle, tiny, tmp_path, capsys):
    local = make_random_adapter(tiny, tmp_path / "local")  # loadable here: its base is the tiny model's folder
    api = ["--cf-api-base", cloud.api_base]
    assert deploy(["upload", str(bundle), "--name", "p", f"--cf-model={LORA_CAPABLE}", *api]) == 0
    code, out = run(capsys, "verify", f"--cf-model={LORA_CAPABLE}", "--lora", "p", "--probes", "3",
                    "--local-adapter", str(local), "--max-new-tokens", "8", *api)
    assert code == 0 and "local vs deployed:" in out and "local-adapter" in out


def test_missing_credentials(monkeypatch, capsys):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    code, out = run(capsys, "list")
    assert code == 1 and "set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN" in out


@pytest.mark.parametrize("fault", [Fault("cf_error", code=5006, times=1000, match='"lora"'),
                                   Fault("500", times=1000, match='"lora"')], ids=["5006", "http-500"])
def test_verify_fails_when_the_adapter_never_answered(cloud, bundle, capsys, fault):
    """A failed LoRA request has no text; "no text != base text" must not pass as "the adapter changes replies"."""
    api = ["--cf-api-base", cloud.api_base]
    assert deploy(["upload", str(bundle), "--name", "broken", f"--cf-model={LORA_CAPABLE}", *api]) == 0
    cloud.inject(fault)
    code, out = run(capsys, "verify", f"--cf-model={LORA_CAPABLE}", "--lora", "broken", "--probes", "5",
                    "--max-attempts", "1", *api)
    assert code == 1, out
    assert "the adapter changes" not in out
    assert "cloudflare-lora: the first 3 requests all failed the same way" in out  # the run stops, with the reason
    assert ("5006" in out) if fault.kind == "cf_error" else ("HTTP 500" in out)


def test_parity_is_not_reported_when_the_lora_side_failed_some_probes(cloud, bundle, tiny, tmp_path, capsys):
    local = make_random_adapter(tiny, tmp_path / "local")
    api = ["--cf-api-base", cloud.api_base]
    assert deploy(["upload", str(bundle), "--name", "p2", f"--cf-model={LORA_CAPABLE}", *api]) == 0
    cloud.inject(Fault("cf_error", code=5006, times=1, match='"lora"'))
    code, out = run(capsys, "verify", f"--cf-model={LORA_CAPABLE}", "--lora", "p2", "--probes", "3",
                    "--local-adapter", str(local), "--max-new-tokens", "8", "--max-attempts", "1", *api)
    assert code == 1 and "LoRA answered 2/3 probes" in out and "cases decided alike" not in out

