"""Issue 21: deploy check/export on broken adapter files: a FAIL line naming the problem, never a traceback, and
export never leaves a half bundle."""
import json
import struct

import pytest

pytest.importorskip("peft")

from test_secrets_and_faults import adapter, tiny  # noqa: E402,F401 -- the same random adapter (a fixture)

from deploy.check import CheckFailed, checks, export  # noqa: E402

CF = "@cf/meta/llama-3.2-3b-instruct"
WEIGHTS = "adapter_model.safetensors"


def _header(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _write(path, header, data):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-4000])


def _claims_128mb(path):
    _write(path, {"base_model.model.x.lora_A.weight": {"dtype": "F32", "shape": [4, 8 * 2**20],
                                                        "data_offsets": [0, 128 * 2**20]}}, b"")


def _negative(path):
    header, data = _header(path)
    key = next(k for k in header if k != "__metadata__")
    header[key]["shape"] = [-header[key]["shape"][0], -header[key]["shape"][1]]
    _write(path, header, data)


def _list_header(path):
    _write(path, [1, 2, 3], b"")


def _one_d_lora_b(path):
    header, data = _header(path)
    key = next(k for k in header if ".lora_B." in k)
    begin, end = header[key]["data_offsets"]
    header[key]["shape"] = [(end - begin) // 4]
    _write(path, header, data)


BREAKS = {"truncated": _truncate, "claims-128-MB": _claims_128mb, "negative-dims": _negative,
          "header-is-a-list": _list_header, "1-D-lora_B": _one_d_lora_b}


@pytest.mark.parametrize("kind", sorted(BREAKS))
def test_a_broken_safetensors_file_fails_check_and_export_writes_nothing(adapter, tmp_path, kind):
    BREAKS[kind](adapter / WEIGHTS)
    with pytest.raises(CheckFailed) as err:
        list(checks(adapter, CF, require_model_type=False))
    assert err.value.name in ("safetensors", "tensors")
    with pytest.raises(CheckFailed):
        export(adapter, tmp_path / "bundle", CF)
    assert not (tmp_path / "bundle").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]  # no staging folder left


@pytest.mark.parametrize("kind", ["truncated", "claims-128-MB", "negative-dims", "header-is-a-list"])
def test_the_safetensors_library_refuses_the_same_files(adapter, kind):
    safetensors = pytest.importorskip("safetensors")
    BREAKS[kind](adapter / WEIGHTS)
    with pytest.raises(safetensors.SafetensorError):
        with safetensors.safe_open(str(adapter / WEIGHTS), framework="pt") as f:
            [f.get_tensor(k) for k in f.keys()]


def test_deploy_check_prints_a_fail_line_not_a_traceback(adapter, capsys):
    from deploy.__main__ import main

    _list_header(adapter / WEIGHTS)
    assert main(["check", str(adapter), f"--cf-model={CF}"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "Traceback" not in out


@pytest.mark.parametrize("job", ["{not json", "[1, 2]", "link"])
def test_a_bad_job_json_is_found_before_anything_is_written(adapter, tmp_path, job):
    if job == "link":
        outside = tmp_path / "elsewhere.json"
        outside.write_text('{"provenance": {"secret": "outside"}}')
        (adapter / "job.json").symlink_to(outside)
    else:
        (adapter / "job.json").write_text(job)
    with pytest.raises(CheckFailed, match="job.json"):
        export(adapter, tmp_path / "bundle", CF)
    assert not (tmp_path / "bundle").exists()


def test_a_good_export_replaces_an_earlier_bundle_whole_and_refuses_a_foreign_folder(adapter, tmp_path):
    (adapter / "job.json").write_text(json.dumps({"provenance": {"git": "abc"}}))
    first = export(adapter, tmp_path / "bundle", CF)
    again = export(adapter, tmp_path / "bundle", CF)
    assert first["adapter_sha256"] == again["adapter_sha256"] and again["training_job"] == {"git": "abc"}
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == sorted(
        ["adapter_config.json", WEIGHTS, "manifest.json"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(CheckFailed, match="holds more than a bundle"):
        export(adapter, tmp_path / "mine", CF)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
