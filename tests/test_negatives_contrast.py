"""contrast negatives: exact band search, exclusions, k, determinism, embedding cache, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seam.cli import main
from seam.data import load_negatives
from seam.errors import SeamError
from seam.negatives import ContrastBuilder, ContrastConfig, build_negatives
from seam.negatives.search import Exclusions, band_search

SE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "stackexchange"


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _brute(q, c, lo, hi, k, forbid):
    s = q @ c.T
    out = []
    for i in range(len(q)):
        cand = [(-float(s[i, j]), j) for j in range(len(c)) if lo <= s[i, j] <= hi and (i, j) not in forbid]
        out.append([j for _, j in sorted(cand)[:k]])
    return out


@pytest.mark.parametrize("block", [1024, 4096, 1 << 20])
def test_band_search_is_exact_for_any_chunking(block):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16))
    c = _unit(centres[rng.integers(0, 5, 700)] + 0.6 * rng.normal(size=(700, 16)))
    q = c[:90]
    lo, hi, k = 0.55, 0.9, 7
    forbid = {(i, i) for i in range(90)}
    ex = Exclusions(pairs=[(np.arange(90), np.arange(700))], names=["same_row"])
    res = band_search(q, c, lo, hi, k, ex, block_entries=block)
    want = _brute(q, c, lo, hi, k, forbid)
    for i in range(90):
        got = [j for j in res.index[i] if j >= 0]
        assert got == want[i], i
        sims = res.similarity[i][: len(got)]
        assert np.all((sims >= lo) & (sims <= hi))
        assert np.all(np.diff(sims) <= 0)
    assert res.excluded["same_row"] == sum(1 for i in range(90) if lo <= float(q[i] @ c[i]) <= hi)


def test_band_search_dedups_and_returns_empty_rows():
    rng = np.random.default_rng(1)
    c = _unit(rng.normal(size=(50, 8)))
    c[10] = c[11]  # two corpus rows with the same vector and the same response key
    dedup = np.arange(50)
    dedup[11] = dedup[10]
    res = band_search(c[10:11], c, -1.0, 1.0, 50, Exclusions(dedup=dedup))
    got = [j for j in res.index[0] if j >= 0]
    assert 10 in got and 11 not in got and len(got) == 49
    assert res.duplicates == 1
    none = band_search(c[:3], c, 0.999999, 1.0, 5, Exclusions(pairs=[(np.arange(3), np.arange(50))], names=["self"]))
    assert (none.index == -1).all() and np.isnan(none.similarity).all()


def _frame(rows):
    df = pd.DataFrame(rows)
    if "rejected" not in df:
        df["rejected"] = None
    df["meta"] = [{} for _ in range(len(df))]
    return df


class FakeEmbedder:
    """Deterministic vectors from a dict text -> vector (no model), counting encode calls."""

    def __init__(self, table):
        self.table = table
        self.folder = Path("fake")
        self.hits = self.misses = 0

    def encode(self, texts, progress=None, step="embed"):
        self.misses += len(texts)
        return _unit(np.array([self.table[t] for t in texts], dtype=np.float32))


def test_builder_excludes_self_duplicates_and_gold_copies():
    table = {"q0": [1, 0.0], "q0 ": [1, 0.0], "q1": [1, 0.3], "q2": [1, 0.45], "q3": [1, 0.6], "q4": [0, 1.0]}
    df = _frame([
        {"id": "a", "prompt": "q0", "chosen": "A"},
        {"id": "b", "prompt": "Q0 ", "chosen": "B"},  # exact duplicate instruction of a (case/space)
        {"id": "c", "prompt": "q1", "chosen": "C"},
        {"id": "d", "prompt": "q2", "chosen": "A"},  # same response as a's gold
        {"id": "e", "prompt": "q3", "chosen": "C"},  # same response as c: duplicate of a better one
        {"id": "f", "prompt": "q4", "chosen": "F"},
    ])
    table["Q0 "] = table["q0 "]
    neg, stats = ContrastBuilder(ContrastConfig(k=5, band=(0.5, 1.0)), embedder=FakeEmbedder(table)).build(df)
    got = neg[neg["id"] == "a"]
    assert got["meta"].map(lambda m: m["source_id"]).tolist() == ["c"]
    assert got["text"].tolist() == ["C"]
    assert "a" not in neg["meta"].map(lambda m: m["source_id"])[neg["id"] == "a"].tolist()
    assert stats["excluded"]["same_id"] == 6 and stats["excluded"]["duplicate_instruction"] == 2
    assert stats["excluded"]["same_response_as_gold"] >= 2  # a<->d both ways
    assert stats["duplicate_responses"] >= 1
    assert stats["fewer_than_k"] == 6  # k=5 is never reached here, and nothing is padded
    assert set(neg.columns) == {"id", "variant", "text", "meta"} and (neg["variant"] == "contrast").all()


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _demo_rows(n=40):
    from seam.testbed import WorldConfig, generate_tasks, instructions_rows

    return instructions_rows(generate_tasks(WorldConfig(seed=3, n_tasks=n)))


def test_real_embedder_band_k_and_determinism(cache_env):
    df = _frame([{k: r[k] for k in ("id", "prompt", "chosen")} for r in _demo_rows(40)])
    cfg = ContrastConfig(k=4, band=(0.6, 0.95))
    neg1, s1 = build_negatives("contrast", df, cfg)
    assert s1["embed_cache"] == {"hits": 0, "misses": 40}
    assert len(neg1) > 0
    sims = neg1["meta"].map(lambda m: m["similarity"])
    assert sims.between(0.6, 0.95).all()
    assert neg1.groupby("id").size().max() <= 4
    prompt_of = dict(zip(df["id"], df["prompt"]))
    src = neg1["meta"].map(lambda m: m["source_id"])
    assert (src != neg1["id"]).all()
    assert all(prompt_of[s].strip().lower() != prompt_of[i].strip().lower() for s, i in zip(src, neg1["id"]))
    # second run: every embedding comes from the cache, and the output is identical
    neg2, s2 = build_negatives("contrast", df, cfg)
    assert s2["embed_cache"] == {"hits": 40, "misses": 0}
    pd.testing.assert_frame_equal(neg1, neg2)
    # a fresh cache (recomputed embeddings) gives the same output too
    neg3, _ = build_negatives("contrast", df, ContrastConfig(k=4, band=(0.6, 0.95), cache=False))
    pd.testing.assert_frame_equal(neg1, neg3)
    assert sum(s1["similarity_histogram"]["counts"]) == len(neg1)
    assert s1["fewer_than_k"] == sum(1 for i in df["id"] if (neg1["id"] == i).sum() < 4)


def test_contrast_with_separate_corpus(cache_env):
    rows = _demo_rows(60)
    rl = _frame([{k: r[k] for k in ("id", "prompt", "chosen")} for r in rows[:10]])
    corpus = _frame([{"id": f"sft-{i}", "prompt": r["prompt"], "chosen": r["chosen"] + " (sft)"} for i, r in enumerate(rows)])
    corpus.loc[:9, "prompt"] = corpus.loc[:9, "prompt"].str.upper() + "  "  # duplicates up to case/space
    neg, stats = ContrastBuilder(ContrastConfig(k=3, band=(0.5, 1.0)), corpus=corpus).build(rl)
    assert stats["corpus_rows"] == 60 and len(neg) > 0
    # the corpus holds each RL prompt (modulo case/space): that row is an exact duplicate, never used
    src_prompt = dict(zip(corpus["id"], corpus["prompt"]))
    own = dict(zip(rl["id"], rl["prompt"]))
    norm = lambda t: " ".join(t.casefold().split())  # noqa: E731
    assert all(norm(src_prompt[m["source_id"]]) != norm(own[i]) for i, m in zip(neg["id"], neg["meta"]))


def test_config_validation():
    with pytest.raises(SeamError, match="--band"):
        ContrastConfig(band=(0.9, 0.8)).validate()
    with pytest.raises(SeamError, match="--k"):
        ContrastConfig(k=0).validate()
    with pytest.raises(SeamError, match="--embedder"):
        ContrastBuilder(ContrastConfig(embedder="/nonexistent/model")).build(_frame([{"id": "1", "prompt": "p", "chosen": "c"}]))


def test_cli_contrast_writes_a_valid_negatives_file(cache_env, tmp_path, capsys):
    rows = _demo_rows(30)
    data = tmp_path / "rl.jsonl"
    data.write_text("".join(json.dumps({k: r[k] for k in ("id", "prompt", "chosen")}) + "\n" for r in rows))
    out, stats = tmp_path / "negs.parquet", tmp_path / "stats.json"
    code = main(["negatives", "contrast", "--data", str(data), "--out", str(out), "--k", "3", "--band", "0.6", "0.95",
                 "--stats", str(stats), "--quiet"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "similarity histogram" in cap.out and "contrast:" in cap.out
    neg = load_negatives(out, known_ids=[r["id"] for r in rows])
    assert (neg["variant"] == "contrast").all() and len(neg) == json.loads(stats.read_text())["negatives"]
    # bad band: exit 2, one error line, no output file
    bad = tmp_path / "bad.jsonl"
    code = main(["negatives", "contrast", "--data", str(data), "--out", str(bad), "--band", "0.9", "0.1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().startswith("error: --band") and len(err.strip().splitlines()) == 1
    assert not bad.exists()


def test_cli_help_has_examples(capsys):
    for sub in ("contrast", "llm", "adv"):
        with pytest.raises(SystemExit) as exc:
            main(["negatives", sub, "--help"])
        assert exc.value.code == 0
        assert "example:" in capsys.readouterr().out


def se_rows(limit, site="beer"):
    """Real StackExchange pairs through the project's importer (skips when the data is absent)."""
    path = SE_DIR / f"{site}.Posts.xml"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    from seam.data import ImportConfig, iter_import

    return list(iter_import("stackexchange", path, ImportConfig(limit=limit, max_pairs_per_question=1)))


def test_contrast_on_real_stackexchange_questions(cache_env):
    rows = se_rows(100)
    df = _frame([{k: r[k] for k in ("id", "prompt", "chosen")} for r in rows])
    neg, stats = build_negatives("contrast", df, ContrastConfig(k=5, band=(0.5, 0.9)))
    assert len(neg) > 0, stats
    assert neg["meta"].map(lambda m: 0.5 <= m["similarity"] <= 0.9).all()
    assert (neg["meta"].map(lambda m: m["source_id"]) != neg["id"]).all()
    assert neg.groupby("id").size().max() <= 5
    gold = dict(zip(df["id"], df["chosen"]))
    assert all(t != gold[i] for i, t in zip(neg["id"], neg["text"]))
