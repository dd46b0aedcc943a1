"""The SEAM formula, checked against numbers computed by hand."""

import math

import numpy as np
import pytest

from seam.errors import SeamError
from seam.score import aggregate, details_frame, negative_terms


def test_single_negative_paper_weighting():
    # R(gold)=1, R(neg)=3 -> eps=2 ; logP=-4 over T=2 -> ell=-2 ; term = -2*2 = -4
    eps, ell, term = negative_terms([1.0], [3.0], [-4.0], [2], "paper")
    assert eps.tolist() == [2.0] and ell.tolist() == [-2.0] and term.tolist() == [-4.0]


def test_single_negative_prob_weighting():
    # term = -exp(ell) * eps = -exp(-2) * 2
    _, _, term = negative_terms([1.0], [3.0], [-4.0], [2], "prob")
    assert term[0] == pytest.approx(-2 * math.exp(-2), abs=1e-12)


def test_eps_zero_when_rm_prefers_gold():
    # the RM ranks the negative below (or equal to) gold: no misjudgement, term 0 (not -0)
    eps, _, term = negative_terms([2.0, 2.0], [1.5, 2.0], [-3.0, -1.0], [3, 1], "paper")
    assert eps.tolist() == [0.0, 0.0]
    assert term.tolist() == [0.0, 0.0]
    assert all(math.copysign(1, t) == 1 for t in term)


def test_signs_terms_never_positive():
    rng = np.random.default_rng(0)
    n = 1000
    for w in ("paper", "prob"):
        _, _, term = negative_terms(rng.normal(size=n), rng.normal(size=n), -rng.gamma(2, size=n) * 10, rng.integers(1, 50, size=n), w)
        assert (term <= 0).all()


def _details():
    # instruction a: gold reward 0.5; negatives: (R=1.5, logP=-6, T=3), (R=0.0, ...), (R=2.5, logP=-2, T=4)
    # eps = 1.0, 0, 2.0 ; ell = -2, -1, -0.5 ; paper terms = -2, 0, -1 -> sum -3, mean -1
    # instruction b (variant v): one negative not misjudged -> SEAM 0
    return details_frame(
        ids=["a", "a", "a", "b"], variants=["v", "v", "v", "v"], neg_index=[0, 1, 2, 0],
        rm_gold=[0.5, 0.5, 0.5, 1.0], rm_neg=[1.5, 0.0, 2.5, 0.2],
        logprob_sum=[-6.0, -3.0, -2.0, -5.0], tokens=[3, 3, 4, 5], weighting="paper",
    )


def test_aggregate_sum_and_mean():
    d = _details()
    s = aggregate(d, "sum").set_index("id")
    assert s.loc["a", "seam"] == pytest.approx(-3.0)
    assert s.loc["a", "n_negatives"] == 3 and s.loc["a", "n_misjudged"] == 2
    assert s.loc["a", "rm_gold"] == 0.5
    assert s.loc["b", "seam"] == 0.0 and s.loc["b", "n_misjudged"] == 0
    m = aggregate(d, "mean").set_index("id")
    assert m.loc["a", "seam"] == pytest.approx(-1.0)


def test_reweighting_from_stored_details():
    # prob weighting recomputed from stored per-negative values without a model:
    # -(exp(-2)*1 + 0 + exp(-0.5)*2)
    s = aggregate(_details(), "sum", weighting="prob").set_index("id")
    assert s.loc["a", "seam"] == pytest.approx(-(math.exp(-2) + 2 * math.exp(-0.5)))


def test_variants_are_separate_rows():
    d = details_frame(["a", "a"], ["contrast", "adv"], [0, 0], [0.0, 0.0], [1.0, 3.0], [-2.0, -2.0], [1, 2])
    s = aggregate(d).set_index("variant")
    assert s.loc["contrast", "seam"] == pytest.approx(-2.0)  # ell=-2, eps=1
    assert s.loc["adv", "seam"] == pytest.approx(-3.0)  # ell=-1, eps=3


def test_unknown_weighting_and_aggregate():
    with pytest.raises(SeamError, match="--weighting"):
        negative_terms([0], [1], [-1], [1], "bogus")
    with pytest.raises(SeamError, match="--aggregate"):
        aggregate(_details(), "median")


def test_zero_tokens_rejected():
    with pytest.raises(ValueError):
        negative_terms([0], [1], [-1], [0])


def test_detail_columns_contract():
    assert list(_details().columns) == ["id", "variant", "neg_index", "rm_gold", "rm_neg", "epsilon", "pm_logprob_sum",
                                        "pm_tokens", "pm_logprob_mean", "term"]
    assert list(aggregate(_details()).columns) == ["id", "variant", "seam", "n_negatives", "n_misjudged", "rm_gold"]
