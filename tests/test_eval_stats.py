"""Bootstrap CIs, paired tests and win rates on synthetic data with a known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seam.errors import SeamError
from seam.train.stats import bootstrap_ci, paired_bootstrap_ci, paired_test, win_rate


def test_bootstrap_ci_covers_the_true_mean():
    rng = np.random.default_rng(0)
    hits = 0
    trials = 200
    for t in range(trials):
        x = rng.normal(1.0, 2.0, size=60)
        ci = bootstrap_ci(x, n_boot=2000, seed=t)
        assert ci.low <= ci.estimate <= ci.high and ci.n == 60
        hits += ci.low <= 1.0 <= ci.high
    assert 0.88 <= hits / trials <= 0.99  # nominal 95%


def test_bootstrap_ci_width_shrinks_and_level_matters():
    rng = np.random.default_rng(1)
    small, big = rng.normal(size=20), rng.normal(size=2000)
    w = lambda ci: ci.high - ci.low  # noqa: E731
    assert w(bootstrap_ci(big)) < w(bootstrap_ci(small))
    assert w(bootstrap_ci(small, level=0.5)) < w(bootstrap_ci(small, level=0.99))
    ci = bootstrap_ci([1.0, np.nan, 3.0])
    assert ci.n == 2 and ci.estimate == 2.0
    assert math.isnan(bootstrap_ci([]).estimate)
    with pytest.raises(SeamError, match="level"):
        bootstrap_ci([1.0], level=1.5)


def test_custom_statistic():
    ci = bootstrap_ci([1, 2, 3, 100], stat=np.median, n_boot=500)
    assert ci.estimate == 2.5


def test_paired_tests_detect_a_shift():
    rng = np.random.default_rng(2)
    base = rng.normal(size=30)
    a, b = base + 0.5 + rng.normal(0, 0.2, 30), base
    for method in ("t", "wilcoxon", "permutation", "sign"):
        r = paired_test(a, b, method=method)
        assert r.p_value < 0.01 and r.mean_diff > 0 and r.n == 30, method
    ci = paired_bootstrap_ci(a, b)
    assert ci.low <= 0.5 <= ci.high and ci.low > 0


def test_paired_t_false_positive_rate_is_nominal():
    rng = np.random.default_rng(3)
    p = np.array([paired_test(rng.normal(size=3), rng.normal(size=3)).p_value for _ in range(400)])
    assert 0.02 <= (p < 0.05).mean() <= 0.09  # 3 "seeds", no true difference


def test_exact_permutation_and_edge_cases():
    r = paired_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.5], method="permutation")
    assert r.p_value == pytest.approx(2 / 8)  # all three differences positive: 2 of 8 sign flips as extreme
    assert paired_test([1, 2], [1, 2]).p_value == 1.0
    const = paired_test([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert const.p_value == 0.0 and const.mean_diff == 1.0
    assert math.isnan(paired_test([1.0], [0.0]).p_value)
    with pytest.raises(SeamError, match="equal lengths"):
        paired_test([1, 2, 3], [1, 2])
    with pytest.raises(SeamError, match="paired test"):
        paired_test([1, 2], [2, 1], method="z")


def test_win_rate_counts_ties_half():
    w = win_rate([3, 2, 1, 5, np.nan], [1, 2, 4, 4, 0])
    assert (w.wins, w.ties, w.losses, w.n) == (2, 1, 1, 4)
    assert w.rate == pytest.approx((2 + 0.5) / 4)
    assert 0 <= w.ci.low <= w.rate <= w.ci.high <= 1
    rng = np.random.default_rng(4)
    x = rng.normal(size=400)
    w = win_rate(x + 0.5, x + rng.normal(0, 1, 400))  # P(0.5 + e > 0) for e ~ N(0,1) = 0.69
    assert w.ci.low <= 0.6915 <= w.ci.high
