"""`seam augment`: contrast-instruction augmentation counts, baselines, retrieval, lineage, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seam.augment import AugmentConfig, augment, write_augmentation
from seam.cli import main
from seam.data import load_instructions, write_table
from seam.errors import SeamError
from seam.io import lineage_path

N = 20


def _rows(n=N):
    return [{"id": f"q{i:02d}", "prompt": f"What is {i} times 3?", "chosen": f"{i} times 3 is {3 * i}.",
             "rejected": f"It is {3 * i + 1}."} for i in range(n)]


def _contrast(rows, per_row: dict[int, int]):
    """Neighbours j != i (nearest index first) with decreasing similarity; per_row[i] of them (default 7)."""
    out = []
    for i, r in enumerate(rows):
        others = sorted((j for j in range(len(rows)) if j != i), key=lambda j: abs(j - i))[: per_row.get(i, 7)]
        for rank, j in enumerate(others):
            out.append({"id": r["id"], "variant": "contrast", "text": rows[j]["chosen"],
                        "meta": {"source_id": rows[j]["id"], "similarity": round(0.9 - 0.01 * rank, 3), "rank": rank + 1}})
    return out


@pytest.fixture
def world(tmp_path):
    rows = _rows()
    seam = -np.linspace(3, 0, N)  # q00 lowest ... q19 highest
    write_table(rows, tmp_path / "rl.jsonl")
    write_table([{"id": r["id"], "variant": "contrast", "seam": float(s), "n_negatives": 7, "n_misjudged": 1,
                  "rm_gold": 0.0} for r, s in zip(rows, seam)], tmp_path / "seam.jsonl")
    write_table(_contrast(rows, {1: 3}), tmp_path / "contrast.jsonl")
    return tmp_path, rows


def _load(tmp):
    from seam.data import load_negatives, read_table

    df = load_instructions(tmp / "rl.jsonl")
    return df, load_negatives(tmp / "contrast.jsonl", known_ids=df["id"]), read_table(tmp / "seam.jsonl")


def test_seam_anchors_get_k_rows_and_pairs(world):
    tmp, rows = world
    df, contrast, scores = _load(tmp)
    aug = augment(df, AugmentConfig(), contrast=contrast, scores=scores)
    assert aug.anchors == ["q00", "q01", "q02", "q03"]  # lowest 20% by SEAM
    assert len(aug.sft_rows) == 5 + 3 + 5 + 5 and len(aug.rm_pairs) == 18  # q01 has only 3 neighbours
    assert aug.short == {"q01": 3}
    per_anchor = aug.rm_pairs["meta"].map(lambda m: m["augment"]["anchor"]).value_counts().to_dict()
    assert per_anchor == {"q00": 5, "q01": 3, "q02": 5, "q03": 5}
    by_id = {r["id"]: r for r in rows}
    for row in aug.rm_pairs.to_dict("records"):
        a = row["meta"]["augment"]
        assert row["prompt"] == by_id[a["anchor"]]["prompt"] and row["chosen"] == by_id[a["anchor"]]["chosen"]
        assert row["rejected"] == by_id[a["source_id"]]["chosen"] != row["chosen"]
    for row in aug.sft_rows.to_dict("records"):
        src = by_id[row["meta"]["augment"]["source_id"]]
        assert (row["prompt"], row["chosen"]) == (src["prompt"], src["chosen"]) and row["rejected"] is None
    # most similar neighbours first
    q00 = [m["augment"]["similarity"] for m in aug.rm_pairs["meta"] if m["augment"]["anchor"] == "q00"]
    assert q00 == sorted(q00, reverse=True) and q00[0] == 0.9
    assert aug.sft_rows["id"].is_unique and aug.rm_pairs["id"].is_unique


def test_random_and_full_baselines(world):
    tmp, _ = world
    df, contrast, _ = _load(tmp)
    rand = augment(df, AugmentConfig(method="random", seed=3), contrast=contrast)
    assert len(rand.anchors) == 4 and rand.anchors == augment(df, AugmentConfig(method="random", seed=3),
                                                              contrast=contrast).anchors
    full = augment(df, AugmentConfig(method="full", k=2), contrast=contrast)
    assert full.anchors == df["id"].tolist() and len(full.rm_pairs) == 2 * N and len(full.sft_rows) == 2 * N


def test_neighbours_without_prompt_in_corpus(world):
    tmp, rows = world
    df, _, scores = _load(tmp)
    contrast = pd.DataFrame([{"id": "q00", "variant": "contrast", "text": f"Other answer {j}.",
                              "meta": {"source_id": f"elsewhere-{j}", "similarity": 0.85}} for j in range(5)])
    aug = augment(df, AugmentConfig(p=0.05), contrast=contrast, scores=scores)
    assert aug.anchors == ["q00"] and len(aug.rm_pairs) == 5 and len(aug.sft_rows) == 0
    assert aug.lineage["sft_without_prompt"] == 5
    corpus = pd.DataFrame({"id": [f"elsewhere-{j}" for j in range(5)], "prompt": [f"Q{j}?" for j in range(5)],
                           "chosen": [f"Other answer {j}." for j in range(5)], "rejected": None, "meta": [{}] * 5})
    aug = augment(df, AugmentConfig(p=0.05), contrast=contrast, scores=scores, corpus=corpus)
    assert len(aug.sft_rows) == 5 and aug.sft_rows["prompt"].tolist()[0] == "Q0?"


def test_contrast_file_without_the_variant(world):
    tmp, _ = world
    df, contrast, scores = _load(tmp)
    with pytest.raises(SeamError, match="no rows of variant 'contrast'"):
        augment(df, AugmentConfig(), contrast=contrast.assign(variant="llm"), scores=scores)


class _AngleEmbedder:
    """Prompt 'What is i times 3?' -> unit vector at angle 0.25 * i: cos similarity of i, j = cos(0.25 |i - j|),
    so only |i - j| = 2 falls in the [0.8, 0.9] band."""

    folder = Path("fake-embedder")
    hits = misses = 0

    def encode(self, texts, progress=None, step=""):
        idx = np.array([int(re.search(r"\d+", t).group()) for t in texts], dtype=np.float64)
        return np.stack([np.cos(0.25 * idx), np.sin(0.25 * idx)], axis=1).astype(np.float32)


def test_retrieval_with_the_contrast_builder(world):
    tmp, _ = world
    df, _, scores = _load(tmp)
    aug = augment(df, AugmentConfig(), scores=scores, embedder=_AngleEmbedder())
    pairs = {a: sorted(m["augment"]["source_id"] for m in aug.rm_pairs["meta"] if m["augment"]["anchor"] == a)
             for a in aug.anchors}
    assert pairs == {"q00": ["q02"], "q01": ["q03"], "q02": ["q00", "q04"], "q03": ["q01", "q05"]}
    assert aug.short == {"q00": 1, "q01": 1, "q02": 2, "q03": 2}
    assert aug.lineage["info"]["retrieved"]["band"] == [0.8, 0.9]


def test_write_with_bases_and_lineage(world):
    tmp, rows = world
    df, contrast, scores = _load(tmp)
    write_table([{"id": f"s{i}", "prompt": f"P{i}", "chosen": f"C{i}"} for i in range(3)], tmp / "sft.jsonl")
    write_table([{"id": f"p{i}", "prompt": f"P{i}", "chosen": f"C{i}", "rejected": f"R{i}"} for i in range(4)],
                tmp / "prefs.jsonl")
    aug = augment(df, AugmentConfig(), contrast=contrast, scores=scores,
                  paths={"data": str(tmp / "rl.jsonl"), "scores": str(tmp / "seam.jsonl")})
    write_augmentation(aug, tmp / "sft.aug.jsonl", tmp / "prefs.aug.parquet", str(tmp / "sft.jsonl"),
                       str(tmp / "prefs.jsonl"))
    sft = load_instructions(tmp / "sft.aug.jsonl")
    prefs = load_instructions(tmp / "prefs.aug.parquet")
    assert len(sft) == 3 + 18 and sft["id"].tolist()[:3] == ["s0", "s1", "s2"]
    assert len(prefs) == 4 + 18 and prefs["rejected"].notna().all()
    lin = json.loads(lineage_path(tmp / "prefs.aug.parquet").read_text())
    assert lin["operation"] == "augment" and lin["output_kind"] == "rm-pair"
    assert (lin["base_rows"], lin["added_rows"], lin["n_anchors"]) == (4, 18, 4)
    assert lin["anchors"] == ["q00", "q01", "q02", "q03"] and lin["inputs"]["scores"]["sha256"]


# ----------------------------------------------------------------------------- CLI


def test_cli_augment(world, capsys):
    tmp, _ = world
    code = main(["augment", "--data", str(tmp / "rl.jsonl"), "--scores", str(tmp / "seam.jsonl"), "--contrast",
                 str(tmp / "contrast.jsonl"), "--sft-out", str(tmp / "a.jsonl"), "--rm-out", str(tmp / "b.jsonl")])
    assert code == 0
    out = capsys.readouterr().out
    assert "augmented 4 of 20 instructions" in out and "18 SFT rows, 18 RM pairs" in out and "fewer than 5" in out
    assert lineage_path(tmp / "a.jsonl").is_file() and lineage_path(tmp / "b.jsonl").is_file()


def test_cli_help(capsys):
    with pytest.raises(SystemExit):
        main(["augment", "--help"])
    out = capsys.readouterr().out
    assert "example:" in out and "seam augment" in out


@pytest.mark.parametrize("extra, match", [
    ([], "nothing to write"),
    (["--sft-out", "{t}/o.jsonl"], "needs --scores"),
    (["--sft-out", "{t}/o.jsonl", "--method", "random", "--scores", "{t}/seam.jsonl"], "--scores is not used"),
    (["--sft-out", "{t}/o.jsonl", "--scores", "{t}/seam.jsonl", "--k", "0"], "--k must be a positive integer"),
    (["--sft-out", "{t}/o.jsonl", "--scores", "{t}/seam.jsonl", "--sft-base", "{t}/rl.jsonl"], "clashes"),
])
def test_cli_bad_input(world, capsys, extra, match):
    tmp, _ = world
    # an SFT base whose ids clash with augmented ids is rejected: make one
    if "--sft-base" in extra:
        write_table([{"id": "q00~sft0~q01", "prompt": "p", "chosen": "c"}], tmp / "rl.jsonl.clash.jsonl")
        extra = [e.replace("{t}/rl.jsonl", "{t}/rl.jsonl.clash.jsonl") for e in extra]
    argv = ["augment", "--data", str(tmp / "rl.jsonl"), "--contrast", str(tmp / "contrast.jsonl")]
    argv += [e.replace("{t}", str(tmp)) for e in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    assert not (tmp / "o.jsonl").exists()
