"""Statistics for comparing runs: bootstrap confidence intervals, win rates, paired tests.

    >>> ci = bootstrap_ci([1.0, 2.0, 3.0, 4.0], seed=0)
    >>> ci.low <= 2.5 <= ci.high
    True
    >>> paired_test([1.0, 2.0, 3.0], [1.5, 2.6, 3.4], method="t").p_value < 0.05
    True

Everything is numpy/scipy over plain arrays; NaNs are dropped (pairwise for paired functions).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import SeamError

PAIRED_TESTS = ("t", "wilcoxon", "permutation", "sign")


@dataclass
class CI:
    estimate: float
    low: float
    high: float
    level: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TestResult:
    method: str
    statistic: float
    p_value: float
    n: int
    mean_diff: float  # mean of a - b

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class WinRate:
    wins: int
    ties: int
    losses: int
    rate: float  # (wins + ties/2) / n
    ci: CI

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses

    def to_dict(self) -> dict:
        return {"wins": self.wins, "ties": self.ties, "losses": self.losses, "n": self.n, "rate": self.rate,
                "ci_low": self.ci.low, "ci_high": self.ci.high, "level": self.ci.level}


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if len(x) != len(y):
        raise SeamError(f"paired values need equal lengths, got {len(x)} and {len(y)}; pair each run A with its run B")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise SeamError(f"confidence level must be in (0, 1), got {level}")


def bootstrap_ci(values: Sequence[float], stat: Callable[[np.ndarray], float] | None = None, level: float = 0.95,
                 n_boot: int = 10000, seed: int = 0) -> CI:
    """Percentile bootstrap CI of `stat` (default: the mean) over finite `values`."""
    _check_level(level)
    x = _finite(values)
    if len(x) == 0:
        return CI(math.nan, math.nan, math.nan, level, 0)
    rng = np.random.default_rng(seed)
    if stat is None:
        est = float(x.mean())
        idx = rng.integers(0, len(x), size=(n_boot, len(x)))
        boots = x[idx].mean(axis=1)
    else:
        est = float(stat(x))
        boots = np.array([stat(x[rng.integers(0, len(x), len(x))]) for _ in range(n_boot)])
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return CI(est, float(low), float(high), level, int(len(x)))


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95, n_boot: int = 10000,
                        seed: int = 0) -> CI:
    """Bootstrap CI of mean(a - b), resampling pairs."""
    x, y = _paired(a, b)
    return bootstrap_ci(x - y, level=level, n_boot=n_boot, seed=seed)


def paired_test(a: Sequence[float], b: Sequence[float], method: str = "t") -> TestResult:
    """Two-sided paired test of a vs b (e.g. one metric per seed, or one score per prompt).

    t: paired t-test; wilcoxon: signed-rank; permutation: exact sign-flip test of the mean
    difference (all 2^n flips up to n=16, else 20,000 random flips); sign: exact binomial sign test."""
    from scipy import stats

    if method not in PAIRED_TESTS:
        raise SeamError(f"paired test must be one of {', '.join(PAIRED_TESTS)}, got {method!r}")
    x, y = _paired(a, b)
    d = x - y
    n = len(d)
    mean_diff = float(d.mean()) if n else math.nan
    if n < 2:
        return TestResult(method, math.nan, math.nan, n, mean_diff)
    if not np.any(d):
        return TestResult(method, 0.0, 1.0, n, mean_diff)
    if method == "t":
        if np.allclose(d, d[0]):  # constant non-zero difference: zero variance, the effect is exact
            return TestResult(method, math.copysign(math.inf, d[0]), 0.0, n, mean_diff)
        r = stats.ttest_rel(x, y)
        return TestResult(method, float(r.statistic), float(r.pvalue), n, mean_diff)
    if method == "wilcoxon":
        r = stats.wilcoxon(x, y)
        return TestResult(method, float(r.statistic), float(r.pvalue), n, mean_diff)
    if method == "sign":
        nz = d[d != 0]
        k = int((nz > 0).sum())
        r = stats.binomtest(k, len(nz), 0.5)
        return TestResult(method, float(k), float(r.pvalue), n, mean_diff)
    observed = abs(d.mean())
    if n <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(0).choice((1.0, -1.0), size=(20000, n))
    means = np.abs((signs * d).mean(axis=1))
    p = float((means >= observed - 1e-12).mean())
    return TestResult(method, float(d.mean()), p, n, mean_diff)


def win_rate(a: Sequence[float], b: Sequence[float], level: float = 0.95, n_boot: int = 10000, seed: int = 0,
             tie_tol: float = 0.0) -> WinRate:
    """Share of items where a beats b (ties count half), with a bootstrap CI over items."""
    x, y = _paired(a, b)
    d = x - y
    outcome = np.where(d > tie_tol, 1.0, np.where(d < -tie_tol, 0.0, 0.5))
    wins, ties = int((outcome == 1).sum()), int((outcome == 0.5).sum())
    ci = bootstrap_ci(outcome, level=level, n_boot=n_boot, seed=seed)
    rate = float(outcome.mean()) if len(outcome) else math.nan
    return WinRate(wins, ties, len(outcome) - wins - ties, rate, ci)
