"""The world v2 validation report (seam.testbed.v2.report): labels, baselines, statistics, rendering."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import roc_auc_score

from seam.errors import SeamError
from seam.testbed.v2 import report as rep
from seam.testbed.v2.report import binary_label, evaluate, reliability, report_markdown, skill_prior, write_report

N, N_SKILLS = 400, 20
FAST = {"n_boot": 200, "n_random_subsets": 1000}


def make_table(seed: int = 0) -> pd.DataFrame:
    """Skills with different harm levels; S >= 0 with many zeros; two noisy halves and two label views."""
    rng = np.random.default_rng(seed)
    skill_idx = np.arange(N) % N_SKILLS
    level = rng.gamma(1.0, 1.0, N_SKILLS)[skill_idx]
    S = np.maximum(rng.normal(level, 1.0), 0.0)
    skills = [f"cat{i % 4}/skill{i}" for i in skill_idx]
    return pd.DataFrame({
        "id": [f"i{k}" for k in range(N)], "skill": skills, "category": [s.split("/")[0] for s in skills], "S": S,
        "S_a": np.maximum(S + rng.normal(0, 0.3, N), 0), "S_b": np.maximum(S + rng.normal(0, 0.3, N), 0),
        "S_surface": S * rng.random(N), "S_wrong": rng.random(N),
    })


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture(scope="module")
def predictors(table) -> dict:
    rng = np.random.default_rng(1)
    S = table["S"].to_numpy()
    skill_mean = table.groupby("skill")["S"].transform("mean").to_numpy()
    noisy = S + rng.normal(0, 0.05, N)
    noisy[:3] = np.nan  # NaN = the predictor's minimum
    return {
        "seam rank-average": {"kind": "seam", "score": noisy, "note": "S plus small noise"},
        "seam noise": {"kind": "seam", "score": rng.random(N)},
        "noise baseline": {"kind": "baseline", "score": rng.random(N)},
        "skill mean": {"kind": "baseline", "score": skill_mean, "note": "in-sample skill mean (oracle)"},
    }


@pytest.fixture(scope="module")
def result(table, predictors) -> dict:
    return evaluate(table, predictors, **FAST)


def by_name(result: dict) -> dict:
    return {p["name"]: p for p in result["predictors"]}


# ---------------------------------------------------------------------------- label and skill prior


def test_binary_label_top_quarter_and_excludes_zero():
    assert binary_label(np.arange(20.0)).tolist() == [False] * 15 + [True] * 5
    S = np.array([0.0] * 8 + [1.0, 2.0])  # the 0.75 quantile is 0: only S > 0 counts
    assert binary_label(S).tolist() == [False] * 8 + [True, True]


def test_skill_prior_never_uses_own_value_and_is_seeded():
    rng = np.random.default_rng(0)
    skills = np.array(["a"] * 10 + ["b"] * 10 + ["lonely"])
    S = rng.random(21)
    prior = skill_prior(skills, S, seed=3)
    for i in range(20):
        bumped = S.copy()
        bumped[i] += 100.0  # would move prior[i] if its own S were used
        moved = skill_prior(skills, bumped, seed=3)
        assert moved[i] == pytest.approx(prior[i])
        assert not np.allclose(moved, prior)  # ...but others do use it
    one = np.array([100.0] + [0.0] * 9)
    assert skill_prior(["a"] * 10, one)[0] == 0.0
    assert skill_prior(skills, S, seed=3).tolist() == prior.tolist()
    assert not np.allclose(skill_prior(skills, S, seed=4), prior)
    # a skill seen in no other fold falls back to the other folds' global mean
    assert 0 < prior[-1] < 1


# ---------------------------------------------------------------------------- resampling machinery


def test_midranks_and_draw_auroc_match_an_explicit_resample():
    rng = np.random.default_rng(2)
    n = 60
    x = np.round(rng.normal(size=n), 1)  # ties
    y = rng.random(n) < 0.3
    strata = rng.integers(0, 3, n)
    counts = rep._resample_counts(rng, n, 5)
    ranks = rep._midranks(x, counts)
    auc = rep._auc_draws(ranks, rep._auc_terms(counts, y, np.ones((n, 1))))
    for b in range(5):
        idx = np.repeat(np.arange(n), counts[b])
        expect = rankdata(x[idx])
        assert np.allclose(ranks[b][idx], expect)
        assert auc[b] == pytest.approx(roc_auc_score(y[idx], x[idx]))
    within = rep._midranks(x, counts, strata)
    for b in range(5):
        idx = np.repeat(np.arange(n), counts[b])
        for s in range(3):
            m = strata[idx] == s
            assert np.allclose(within[b][idx][m], rankdata(x[idx][m]))


def test_stratified_counts_keep_each_skill_size():
    strata = np.repeat([0, 1, 2], [5, 7, 9])
    counts = rep._resample_counts(np.random.default_rng(0), len(strata), 50, strata)
    for s, size in enumerate([5, 7, 9]):
        assert (counts[:, strata == s].sum(1) == size).all()


# ---------------------------------------------------------------------------- evaluate


def test_good_predictor_beats_noise_and_verdict_says_so(result):
    p = by_name(result)
    good, noise = p["seam rank-average"], p["noise baseline"]
    assert good["auroc"] > 0.95 and good["auroc_ci"][0] > 0.5
    assert noise["auroc_ci"][0] < 0.5 < noise["auroc_ci"][1]
    assert good["auroc_ci"][0] <= good["auroc"] <= good["auroc_ci"][1]
    assert result["reference"] == "seam rank-average"
    assert result["best_baseline"] == "skill mean"
    assert result["verdict"][0].startswith("seam rank-average beats the best baseline (skill mean) by")
    assert "seam noise" in result["verdict"][2].split("that do not:")[1]
    aurocs = [r["auroc"] for r in result["predictors"]]
    assert aurocs == sorted(aurocs, reverse=True)


def test_verdict_does_not_beat_when_reference_is_noise(table, predictors):
    res = evaluate(table, predictors, reference="seam noise", **FAST)
    assert res["verdict"][0].startswith("seam noise does NOT beat the best baseline (skill mean): AUROC")
    assert "Goal" in res["verdict"][1] and "NOT met" in res["verdict"][1]
    assert by_name(res)["seam noise"]["diff_vs_reference"] is None
    diff = by_name(res)["skill mean"]
    assert diff["diff_vs_reference"] < 0 and diff["diff_vs_reference_ci"][1] < 0


def test_within_skill_auroc_of_a_skill_only_predictor_is_half(result):
    sm = by_name(result)["skill mean"]
    assert sm["auroc"] > 0.75
    assert sm["auroc_within_skill"] == pytest.approx(0.5)
    assert sm["auroc_within_skill_ci"][0] == pytest.approx(0.5) and sm["auroc_within_skill_ci"][1] == pytest.approx(0.5)
    assert by_name(result)["seam rank-average"]["auroc_within_skill"] > 0.9


def test_precision_recall_and_spearman(result, table, predictors):
    good = by_name(result)["seam rank-average"]
    y = binary_label(table["S"].to_numpy())
    assert result["label"]["positives"] == int(y.sum()) == 100
    assert good["precision_at_20"] > 0.9 and good["recall_at_20"] > 0.7  # top 80 of 100 positives
    lo, hi = good["precision_at_20_ci"]
    assert lo < good["precision_at_20"] <= hi
    noise = by_name(result)["noise baseline"]
    expect = spearmanr(table["S"], predictors["noise baseline"]["score"]).statistic
    assert noise["spearman"] == pytest.approx(expect)
    assert noise["spearman_ci"][0] < expect < noise["spearman_ci"][1]


def test_mechanism_check(result):
    p = by_name(result)
    good, noise = p["seam rank-average"]["mechanism"], p["seam noise"]["mechanism"]
    assert good["kept_mean_S"] < good["random_5th"] and good["p_value"] < 0.01
    assert noise["random_5th"] < noise["kept_mean_S"] < noise["random_95th"] and noise["p_value"] > 0.05
    assert p["noise baseline"]["mechanism"]["p_value"] > 0.05
    assert good["random_mean_S"] == pytest.approx(noise["random_mean_S"])


def test_label_views_and_reliability_in_result(result):
    views = by_name(result)["seam rank-average"]["views"]
    assert set(views) == {"S_surface", "S_wrong"}
    assert views["S_surface"]["auroc"] > 0.7
    assert views["S_wrong"]["auroc_ci"][0] < 0.5 < views["S_wrong"]["auroc_ci"][1]
    assert result["reliability"]["spearman"] > 0.8


def test_evaluate_is_deterministic_and_rejects_bad_input(table, predictors, result):
    assert evaluate(table, predictors, **FAST) == result
    with pytest.raises(SeamError, match="one score per row"):
        evaluate(table, {"x": {"kind": "seam", "score": np.zeros(3)}})
    with pytest.raises(SeamError, match="one class"):
        evaluate(table.assign(S=0.0), predictors, **FAST)
    with pytest.raises(SeamError, match="reference"):
        evaluate(table, predictors, reference="nope", **FAST)


# ---------------------------------------------------------------------------- reliability


def test_reliability_identical_and_independent_halves():
    rng = np.random.default_rng(5)
    a = np.maximum(rng.normal(size=500), 0)
    same = reliability(a, a, n_boot=200)
    assert same["spearman"] == pytest.approx(1.0) and same["spearman_brown"] == pytest.approx(1.0)
    assert same["auroc_ceiling"] == pytest.approx(1.0)
    indep = reliability(a, np.maximum(rng.normal(size=500), 0), n_boot=200)
    assert abs(indep["spearman"]) < 0.1
    assert indep["spearman_ci"][0] < 0 < indep["spearman_ci"][1]
    assert indep["auroc_ceiling_ci"][0] < 0.5 < indep["auroc_ceiling_ci"][1]


# ---------------------------------------------------------------------------- rendering and writing


def test_markdown_verdict_first_and_files_written(result, tmp_path):
    md = report_markdown(result, context_lines=["World: seed 0"])
    assert md.index("beats the best baseline") < md.index("World: seed 0") < md.index("## Label")
    assert md.index("## Label") < md.index("| predictor |") < md.index("## Label views") < md.index("## Per skill")
    assert "| seam rank-average | seam | " in md and "- skill mean: in-sample skill mean (oracle)" in md
    json.dumps(result)  # JSON-safe without default=
    js, mdp = write_report(result, tmp_path, title="T")
    assert json.loads(js.read_text()) == json.loads(json.dumps(result))
    assert mdp.read_text().startswith("# T\n")


def test_module_imports_no_heavy_or_model_code():
    tree = ast.parse(Path(rep.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {("." * n.level) + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    banned = ("torch", "transformers", "negatives", "models", "train")
    assert not [m for m in names if any(part in banned for part in m.strip(".").split("."))], names
