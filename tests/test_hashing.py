"""The weights hash is computed once per file version: cached on disk by (path, size, mtime)."""
import json
import os

import harness.hashing as hashing


def test_a_big_file_is_hashed_once_and_again_when_it_changes(tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "sha256.json"
    monkeypatch.setattr(hashing, "_CACHE", cache)
    weights = tmp_path / "model" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"\x01" * (17 << 20))  # above the 16 MiB worth remembering
    first = hashing.sha256_file(weights)
    key, = json.loads(cache.read_text())
    assert key.startswith(str(weights.resolve())) and json.loads(cache.read_text())[key] == first
    # the cached value is what a second call returns: plant a marker to see it is read, not recomputed
    cache.write_text(json.dumps({key: "cached"}))
    assert hashing.sha256_file(weights) == "cached" and hashing.weights_sha256(weights.parent) is not None
    # a new version of the file (other mtime) is hashed again
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert hashing.sha256_file(weights) == first


def test_small_files_are_not_cached_and_an_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    monkeypatch.setattr(hashing, "_CACHE", tmp_path / "file-not-dir" / "x.json")
    (tmp_path / "file-not-dir").write_text("")  # a file where the cache folder would go
    small = tmp_path / "a.bin"
    small.write_bytes(b"abc")
    assert hashing.sha256_file(small) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "b.bin"
    big.write_bytes(b"\x00" * (17 << 20))
    assert len(hashing.sha256_file(big)) == 64
