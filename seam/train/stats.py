"""Statistics for comparing runs: bootstrap confidence intervals, win rates, paired tests.

    >>> ci = bootstrap_ci([1.0, 2.0, 3.0, 4.0], seed=0)
    >>> ci.low <= 2.5 <= ci.high
    True
    >>> paired_test([1.0, 2.0, 3.0], [1.5, 2.6, 3.4], method="t").p_value < 0.05
    True

Everything is scipy.stats over plain arrays (`bootstrap`, `permutation_test`, `ttest_rel`, `wilcoxon`,
`binomtest`); NaNs are dropped (pairwise for paired functions).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import SeamError

PAIRED_TESTS = ("t", "wilcoxon", "permutation", "sign")

# Bootstrap resamples are drawn in batches of about this many values (2**22 indices: 32 MiB), so 10,000
# resamples of a large eval set do not need n_boot x n in memory at once. Batches draw the same stream
# from the seeded generator, so the interval does not depend on this.
_BOOT_CELLS = 2 ** 22


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
    """Percentile bootstrap CI of `stat` (default: the mean) over finite `values` (scipy.stats.bootstrap).

    Resamples are drawn from `np.random.default_rng(seed)`, so a seed gives the same interval every time."""
    from scipy import stats

    _check_level(level)
    x = _finite(values)
    if len(x) == 0:
        return CI(math.nan, math.nan, math.nan, level, 0)
    est = float(x.mean() if stat is None else stat(x))
    if len(x) == 1 or np.all(x == x[0]):
        # scipy refuses one observation and warns on constant data; every resample is the sample itself
        return CI(est, est, est, level, int(len(x)))
    # stat(sample) sees one 1-D resample at a time; the mean is computed over all resamples at once
    res = stats.bootstrap((x,), np.mean if stat is None else stat, vectorized=stat is None, n_resamples=n_boot,
                          batch=max(1, _BOOT_CELLS // len(x)), confidence_level=level, method="percentile",
                          rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return CI(est, float(ci.low), float(ci.high), level, int(len(x)))


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
    # Sign-flip permutation test of the mean difference: exact (all 2^n flips) up to n = 16, else 20,000
    # random flips from a fixed seed. scipy's two-sided p is 2 * min(P(T <= t), P(T >= t)), which equals
    # P(|T| >= |t|) here since the sign-flip null distribution is symmetric.
    exact = n <= 16
    r = stats.permutation_test((d,), np.mean, permutation_type="samples", vectorized=True,
                               n_resamples=2 ** n if exact else 20000, alternative="two-sided",
                               rng=np.random.default_rng(0))
    return TestResult(method, float(r.statistic), min(1.0, float(r.pvalue)), n, mean_diff)


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


def mean_t_ci(values: Sequence[float], level: float = 0.95) -> CI:
    """Student-t CI of the mean of a few values (per-seed means: a percentile bootstrap of 3-5 of them would
    be far too narrow); NaNs dropped."""
    from scipy import stats

    _check_level(level)
    x = _finite(values)
    est = float(x.mean()) if len(x) else math.nan
    if len(x) < 2:
        return CI(est, math.nan, math.nan, level, int(len(x)))
    if np.allclose(x, x[0]):
        return CI(est, est, est, level, int(len(x)))
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence_level=level)
    return CI(est, float(ci.low), float(ci.high), level, int(len(x)))


def paired_t_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> CI:
    """Student-t CI of mean(a - b) over pairs (the seed-level interval of a difference)."""
    x, y = _paired(a, b)
    return mean_t_ci(x - y, level)


def min_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8, paired_t: bool = True) -> float:
    """The smallest true mean difference a two-sided paired test of `n` pairs whose differences have standard
    deviation `sd` detects with probability `power` at level `alpha`.

    paired_t: the t test's exact power from the noncentral t (seed level, few pairs); else the normal
    approximation (z_{1-alpha/2} + z_power) * sd / sqrt(n) (prompt level, many pairs). Written here because it
    is two scipy calls and a root search; statsmodels' power classes would be a new dependency for them."""
    from scipy import optimize, stats

    if not (sd >= 0 and n >= 2) or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0
    if not paired_t:
        return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * sd / math.sqrt(n))
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(delta: float) -> float:
        nc = delta / sd * math.sqrt(n)
        far = float(stats.nct.cdf(-crit, df, nc))  # the wrong-sign tail: underflows to NaN far out
        return float(stats.nct.sf(crit, df, nc)) + (far if math.isfinite(far) else 0.0) - power

    hi = sd
    while shortfall(hi) < 0:  # widen until the power is reached
        hi *= 2
    return float(optimize.brentq(shortfall, 0.0, hi))
