"""The IVF index of the contrast search (faiss): recall against the exact search, exact similarities,
the band and the exclusions kept, determinism, and the automatic choice between the two."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seam.errors import SeamError
from seam.negatives import ContrastBuilder, ContrastConfig, ivf
from seam.negatives.search import (IVF_MIN_QUERIES, IVF_MIN_ROWS, Exclusions, band_search, choose_index,
                                   ivf_band_search, search)

faiss = pytest.importorskip("faiss")


def planted(rows: int, d: int = 384, seed: int = 0) -> np.ndarray:
    """Random unit vectors in groups of 1-8 around uniform random centres: members of a group have
    cosines of about 0.77-0.92 to each other and about 0 to everything else. No structure beyond the
    groups, so the IVF lists cut through them: harder for the index than clustered embeddings."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, rows)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), rows)) + 1]
    group = np.repeat(np.arange(len(sizes)), sizes)[:rows]
    centres = rng.standard_normal((len(sizes), d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = rng.uniform(0.3, 0.55, len(sizes)).astype(np.float32)
    x = centres[group] + (spread[group, None] / np.sqrt(d)) * rng.standard_normal((rows, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def self_exclusion(n: int, m: int) -> Exclusions:
    return Exclusions(pairs=[(np.arange(n), np.arange(m))], names=["self"])


def recall(exact, approx) -> float:
    hits = sum(len(set(e[e >= 0]) & set(a[a >= 0])) for e, a in zip(exact.index, approx.index))
    return hits / max(1, int((exact.index >= 0).sum()))


@pytest.fixture(scope="module")
def corpus50k():
    c = planted(50_000, seed=7)
    return c, ivf.IVFIndex.build(c, seed=0)


def test_recall_against_exact_at_50k(corpus50k):
    c, index = corpus50k
    n, lo, hi, k = 5_000, 0.8, 0.9, 30
    q, ex = c[:n], self_exclusion(n, len(c))
    exact = band_search(q, c, lo, hi, k, ex)
    approx = ivf_band_search(q, c, lo, hi, k, ex, index=index)
    assert approx.method["index"] == "ivf" and approx.method["nlist"] == 1024
    assert int((exact.index >= 0).sum()) > 10_000  # planted neighbours: about 3 per query in the band
    assert recall(exact, approx) >= 0.99
    cal = approx.method["calibration"]
    assert cal["tried"][-1]["recall"] >= cal["goal"] == 0.995 and cal["pairs"] >= 100
    # what is found is exact: the band, the similarity, the order, no excluded row
    found = approx.index >= 0
    rows = np.nonzero(found)[0]
    sims = np.einsum("ij,ij->i", q[rows], c[approx.index[found]])
    np.testing.assert_allclose(approx.similarity[found], sims, atol=1e-5)
    assert (approx.similarity[found] >= lo).all() and (approx.similarity[found] <= hi).all()
    assert (approx.index[found] != rows).all()
    assert ((np.diff(approx.similarity, axis=1) <= 0) | ~found[:, 1:]).all()  # most similar first
    # deterministic: the same index and queries give the same result
    again = ivf_band_search(q, c, lo, hi, k, ex, index=index)
    assert np.array_equal(again.index, approx.index) and again.method["nprobe"] == approx.method["nprobe"]


def test_all_lists_probed_equals_exact_with_exclusions_and_dedup(corpus50k):
    """With every list probed, the only approximation left is which candidates are re-scored, and the
    stop rule fetches more until none can be missing: the result is the exact one."""
    c, index = corpus50k
    rng = np.random.default_rng(1)
    n, lo, hi, k = 600, 0.75, 0.88, 3
    q = c[:n]
    dedup = rng.integers(0, 40_000, len(c))  # many corpus rows share a "response"
    other = (rng.integers(0, 3, n), rng.integers(0, 3, len(c)))  # a key that forbids a third of the pairs
    ex = Exclusions(pairs=[(np.arange(n), np.arange(len(c))), other], names=["self", "other"], dedup=dedup)
    exact = band_search(q, c, lo, hi, k, ex)
    full = ivf_band_search(q, c, lo, hi, k, ex, index=index, nprobe=index.nlist)
    assert [set(r[r >= 0]) for r in full.index] == [set(r[r >= 0]) for r in exact.index]
    np.testing.assert_allclose(np.sort(full.similarity, axis=1), np.sort(exact.similarity, axis=1), atol=1e-5)
    assert full.method["nprobe"] == index.nlist
    # a band below the nearest neighbours, in the dense middle of the distribution: the first
    # candidates are all above it, so the queries are searched again with more
    low = ivf_band_search(q[:40], c, -1.0, 0.0, 20, Exclusions(), index=index, nprobe=index.nlist)
    ref = band_search(q[:40], c, -1.0, 0.0, 20)
    assert [set(r) for r in low.index] == [set(r) for r in ref.index]
    assert low.method["escalated"] > 0


def test_empty_band_and_small_inputs(corpus50k):
    c, index = corpus50k
    res = ivf_band_search(c[:1000], c, 0.999, 1.0, 5, self_exclusion(1000, len(c)), index=index)
    assert (res.index == -1).all() and np.isnan(res.similarity).all()
    cal = res.method["calibration"]  # nothing in the band: measured on a band lowered by up to 0.3
    assert cal["band_lo"] <= 0.9 and cal["pairs"] >= 100 and res.method["nprobe"] <= index.nlist // 4
    few = ivf_band_search(c[:100], c, 0.8, 0.9, 5, self_exclusion(100, len(c)), index=index)
    assert few.method["index"] == "exact"  # every query would be in the calibration sample anyway
    assert np.array_equal(few.index, band_search(c[:100], c, 0.8, 0.9, 5, self_exclusion(100, len(c))).index)
    tiny = ivf_band_search(c[:500], c[:999], 0.8, 0.9, 5, self_exclusion(500, 999))
    assert tiny.method == {"index": "exact", "why": "corpus too small for an index"}


def test_falls_back_to_exact_when_no_nprobe_is_good_enough(corpus50k, monkeypatch):
    from seam.negatives import search as search_module

    c, index = corpus50k
    monkeypatch.setattr(search_module, "_calibrate", lambda *a, **kw: {"nprobe": None, "goal": 0.995, "tried": []})
    ex = self_exclusion(1000, len(c))
    res = ivf_band_search(c[:1000], c, 0.8, 0.9, 5, ex, index=index)
    assert res.method["index"] == "exact" and "no nprobe" in res.method["why"]
    assert np.array_equal(res.index, band_search(c[:1000], c, 0.8, 0.9, 5, ex).index)


def test_choose_index(monkeypatch):
    assert choose_index(100_000, IVF_MIN_ROWS - 1) == "exact"
    assert choose_index(IVF_MIN_QUERIES - 1, 10 * IVF_MIN_ROWS) == "exact"
    assert choose_index(IVF_MIN_QUERIES, IVF_MIN_ROWS) == "ivf"
    assert choose_index(IVF_MIN_QUERIES, IVF_MIN_ROWS, device="cuda:0") == "exact"
    assert choose_index(10, 10, index="ivf") == "ivf" and choose_index(10**6, 10**6, index="exact") == "exact"
    with pytest.raises(SeamError, match="auto, exact or ivf"):
        choose_index(10, 10, index="hnsw")
    with pytest.raises(SeamError, match="index"):
        ContrastConfig(index="hnsw").validate()
    monkeypatch.setattr(ivf, "available", lambda: False)
    assert choose_index(IVF_MIN_QUERIES, IVF_MIN_ROWS) == "exact"
    with pytest.raises(SeamError, match="faiss"):
        choose_index(10, 10, index="ivf")


def test_search_dispatch_small_is_exact():
    c = planted(3_000, d=32, seed=2)
    res = search(c[:500], c, 0.8, 0.9, 5, self_exclusion(500, len(c)))
    assert res.method == {"index": "exact"}
    forced = search(c[:500], c, 0.8, 0.9, 5, self_exclusion(500, len(c)), index="ivf")
    assert forced.method["index"] == "ivf" and forced.method["nlist"] == 64
    assert recall(res, forced) >= 0.99


class TableEmbedder:
    """Vectors looked up by text (no model)."""

    folder, hits, misses = Path("table"), 0, 0

    def __init__(self, table):
        self.table = table

    def encode(self, texts, progress=None, step="embed"):
        return np.stack([self.table[t] for t in texts])


def test_contrast_builder_with_the_index():
    vecs = planted(4_000, d=64, seed=5)
    df = pd.DataFrame({"id": [f"i{j}" for j in range(4_000)], "prompt": [f"p{j}" for j in range(4_000)],
                       "chosen": [f"r{j % 3_000}" for j in range(4_000)], "rejected": None})
    df["meta"] = [{} for _ in range(len(df))]
    emb = TableEmbedder(dict(zip(df["prompt"], vecs)))
    out = {}
    for index in ("exact", "ivf"):
        neg, stats = ContrastBuilder(ContrastConfig(k=5, band=(0.8, 0.9), index=index), embedder=emb).build(df)
        out[index] = set(zip(neg["id"], neg["meta"].map(lambda m: m["source_id"])))
        assert stats["search"]["index"] == index
        assert ("IVF index, nlist" in stats["lines"][0]) == (index == "ivf")
    assert len(out["exact"]) > 3_000
    assert len(out["exact"] & out["ivf"]) >= 0.99 * len(out["exact"])
    assert ContrastConfig().index == "auto"


@pytest.mark.slow
def test_recall_against_exact_at_300k_and_same_index_twice():
    c = planted(300_000, seed=11)
    n = 20_000
    q, ex = c[:n], self_exclusion(n, len(c))
    a = ivf.IVFIndex.build(c, seed=0)
    b = ivf.IVFIndex.build(c, seed=0)
    approx = ivf_band_search(q, c, 0.8, 0.9, 30, ex, index=a)
    assert np.array_equal(approx.index, ivf_band_search(q, c, 0.8, 0.9, 30, ex, index=b).index)
    sample = np.arange(0, n, 10)
    exact = band_search(q[sample], c, 0.8, 0.9, 30, Exclusions(pairs=[(sample, np.arange(len(c)))], names=["self"]))
    sub = type(approx)(approx.index[sample], approx.similarity[sample], {}, 0, 0, 0.0)
    assert recall(exact, sub) >= 0.99


@pytest.mark.parametrize("flag, want", [([], "auto"), (["--index", "ivf"], "ivf"), (["--index", "exact"], "exact")])
def test_cli_index_flag_reaches_the_config(monkeypatch, tmp_path, flag, want):
    import seam.cli.negatives as negatives_cmd
    from seam.cli import main

    seen = {}
    monkeypatch.setattr(negatives_cmd, "_run", lambda args, name, cfg: seen.setdefault("cfg", cfg) and 0)
    assert main(["negatives", "contrast", "--data", str(tmp_path / "rl.jsonl"), "--out", str(tmp_path / "n.jsonl"),
                 *flag]) == 0
    assert seen["cfg"].index == want
