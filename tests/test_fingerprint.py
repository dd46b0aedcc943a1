"""Fingerprints hash whole files (issue 15, item 2): weights that differ only in the middle differ;
each file's hash is cached by path, size and times, so a second call reads nothing."""

import hashlib
import json
import os

import numpy as np
import pytest

import seam.cache
from seam.cache import file_hash, hash_file_uncached
from seam.models.loading import fingerprint

LAYERS = 10
LAYER_FLOATS = 512 * 1024  # 2 MB of float32 per layer: ~20 MB files


def _model_folder(path, middle_value: float | None = None):
    """A folder with config.json and a ~20 MB model.safetensors; `middle_value` changes one number of layer 5."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors = {f"model.layers.{i}.weight": rng.standard_normal(LAYER_FLOATS, dtype=np.float32) for i in range(LAYERS)}
    if middle_value is not None:
        tensors["model.layers.5.weight"][1000] = middle_value
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    save_file(tensors, str(path / "model.safetensors"))
    return path


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """A private seam cache, an empty in-process memo, and a count of whole-file hashes computed."""
    monkeypatch.setenv("SEAM_CACHE_DIR", str(tmp_path / "seam-cache"))
    monkeypatch.setattr(seam.cache, "_memo", {})
    calls = []

    def counting(path):
        calls.append(os.path.basename(path))
        return hash_file_uncached(path)

    monkeypatch.setattr(seam.cache, "hash_file_uncached", counting)
    return calls


def test_files_that_differ_only_in_the_middle_get_different_fingerprints(tmp_path, counted):
    a = _model_folder(tmp_path / "a")
    b = _model_folder(tmp_path / "b", middle_value=123.0)
    wa, wb = (a / "model.safetensors").read_bytes(), (b / "model.safetensors").read_bytes()
    assert len(wa) == len(wb) > 20_000_000
    sample = 4 << 20  # what the old fingerprint read: the first and last 4 MB, which these files share
    assert wa[:sample] == wb[:sample] and wa[-sample:] == wb[-sample:] and wa != wb
    assert fingerprint(a) != fingerprint(b)
    assert file_hash(a / "model.safetensors") != file_hash(b / "model.safetensors")
    # the same bytes elsewhere give the same fingerprint
    c = _model_folder(tmp_path / "c")
    assert fingerprint(c) == fingerprint(a)


def test_second_call_is_served_from_the_cache(tmp_path, counted):
    a = _model_folder(tmp_path / "a")
    first = fingerprint(a)
    assert sorted(counted) == ["config.json", "model.safetensors"]
    counted.clear()
    assert fingerprint(a) == first and counted == []  # this process's memo
    seam.cache._memo.clear()  # a new process: answered from the JSON file on disk
    assert fingerprint(a) == first and counted == []
    store = json.loads((tmp_path / "seam-cache" / seam.cache.HASH_FILE).read_text())
    assert str((a / "model.safetensors").resolve()) in store["files"]


def test_touching_or_replacing_a_file_invalidates_its_entry(tmp_path, counted):
    a = _model_folder(tmp_path / "a")
    weights = a / "model.safetensors"
    first = fingerprint(a)
    counted.clear()
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched: hashed again, same value
    assert fingerprint(a) == first and counted == ["model.safetensors"]
    counted.clear()
    # replaced by a file of the same size with its mtime copied back: the inode and ctime still tell
    other = _model_folder(tmp_path / "b", middle_value=7.0) / "model.safetensors"
    st = weights.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, weights)
    assert weights.stat().st_size == st.st_size and weights.stat().st_mtime_ns == st.st_mtime_ns
    assert fingerprint(a) != first and counted == ["model.safetensors"]


def test_whole_file_hash_is_xxh3_of_every_byte(tmp_path, counted):
    import xxhash

    p = tmp_path / "blob.bin"
    data = os.urandom(40 << 20)  # more than one 16 MB read
    p.write_bytes(data)
    assert file_hash(p) == xxhash.xxh3_128(data).hexdigest()
    link = tmp_path / "link.bin"
    link.symlink_to(p)  # a hub-cache snapshot links to its blob: one entry, no second read
    counted.clear()
    assert file_hash(link) == file_hash(p) and counted == []


def test_unreadable_or_foreign_cache_file_is_ignored(tmp_path, counted):
    a = _model_folder(tmp_path / "a")
    (tmp_path / "seam-cache").mkdir(exist_ok=True)
    store = tmp_path / "seam-cache" / seam.cache.HASH_FILE
    store.write_text("{not json")
    first = fingerprint(a)
    assert json.loads(store.read_text())["version"] == seam.cache.HASH_VERSION
    seam.cache._memo.clear()
    data = json.loads(store.read_text())
    data["version"] = 0  # an older layout: nothing of it is trusted
    store.write_text(json.dumps(data))
    counted.clear()
    assert fingerprint(a) == first and sorted(counted) == ["config.json", "model.safetensors"]


def test_embedding_cache_is_versioned(tmp_path, monkeypatch):
    """Old embedding caches (named by the old fingerprint) are simply not found: the file name carries a version."""
    from seam.negatives.embedding import CACHE_VERSION, Embedder

    monkeypatch.setenv("SEAM_CACHE_DIR", str(tmp_path / "cache"))
    emb = Embedder(use_cache=True)
    emb.encode(["one text"])
    names = [p.name for p in (tmp_path / "cache" / "embeddings").iterdir() if p.suffix == ".sqlite"]
    assert names == [f"{CACHE_VERSION}-{emb.fingerprint}.sqlite"] and CACHE_VERSION == "v2"


def test_fingerprint_covers_the_adapter_and_the_chat_template(tmp_path, counted):
    a = _model_folder(tmp_path / "a")
    base = fingerprint(a)
    (a / "chat_template.jinja").write_text("{{ messages }}")
    with_template = fingerprint(a)
    assert with_template != base
    ad = tmp_path / "adapter"
    ad.mkdir()
    (ad / "adapter_config.json").write_text("{}")
    (ad / "adapter_model.safetensors").write_bytes(hashlib.sha256(b"x").digest())
    assert fingerprint(a, ad) != with_template
