"""Small statistics for the dashboard: proportion and mean CIs, kappas, AUROC, rank correlation.

    >>> round(wilson_ci(3, 10).low, 3), round(wilson_ci(3, 10).high, 3)
    (0.108, 0.603)
    >>> cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"])
    1.0
    >>> auroc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    1.0

Thin wrappers over scipy.stats (`binomtest(...).proportion_ci`, `ttest_1samp(...).confidence_interval`,
`spearmanr`) and scikit-learn (`cohen_kappa_score`, `roc_auc_score`) over plain sequences, which settle
the edge cases the dashboard meets (no items, one class, one category); Fleiss' kappa stays hand-written
(see there). NaN (or None) inputs are dropped where it makes sense.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int
    level: float = 0.95


def wilson_ci(k: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a proportion k/n (NaN when n = 0)."""
    from scipy.stats import binomtest

    if n <= 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return Interval(k / n, max(0.0, float(ci.low)), min(1.0, float(ci.high)), n, level)


def mean_ci(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean with a Student-t interval (no interval for fewer than two finite values)."""
    from scipy.stats import ttest_1samp

    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    m = float(x.mean())
    if len(x) < 2:
        return Interval(m, math.nan, math.nan, 1, level)
    if np.all(x == x[0]):  # zero spread: scipy warns and gives NaN; the interval is the point
        return Interval(m, m, m, len(x), level)
    ci = ttest_1samp(x, 0.0).confidence_interval(confidence_level=level)
    return Interval(m, float(ci.low), float(ci.high), len(x), level)


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two raters' labels on the same items (NaN without items; 1.0 for perfect agreement)."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) != len(b):
        raise ValueError(f"cohen_kappa needs paired labels, got {len(a)} and {len(b)}")
    if len(a) == 0:
        return math.nan
    if len(set(a) | set(b)) == 1:
        # one category used by both raters: chance agreement is 1 and sklearn returns NaN (0/0); the raters
        # agree on every item, so report perfect agreement as before
        return 1.0
    return float(cohen_kappa_score(list(a), list(b)))


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an items x categories matrix of rating counts.

    Items may have different numbers of raters (at least two each; others are ignored), using the
    usual generalisation: per-item agreement sum n_ij(n_ij - 1) / (n_i(n_i - 1)), category shares
    pooled over all ratings.

    Hand-written on purpose: the usual library one, `statsmodels.stats.inter_rater.fleiss_kappa`, needs a
    fixed number of raters per item (it takes n as the largest row sum and asserts every row has it), and
    items here get different numbers of annotators; scikit-learn and scipy have no Fleiss' kappa. With a
    fixed number of raters this is the same formula (tests check the classic 10 x 5 example, 0.210).
    """
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2 or c.size == 0:
        return math.nan
    n_i = c.sum(axis=1)
    c = c[n_i >= 2]
    n_i = n_i[n_i >= 2]
    if len(c) == 0:
        return math.nan
    p_i = ((c * (c - 1)).sum(axis=1)) / (n_i * (n_i - 1))
    p_bar = float(p_i.mean())
    p_j = c.sum(axis=0) / c.sum()
    pe = float((p_j ** 2).sum())
    if pe >= 1.0:
        return 1.0 if p_bar >= 1.0 else math.nan
    return (p_bar - pe) / (1 - pe)


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve of `scores` for binary `labels` (ties count half); NaN with one class."""
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    keep = np.isfinite(s)
    s, y = s[keep], y[keep]
    if y.all() or not y.any():  # sklearn raises with one class; there is no curve
        return math.nan
    return float(roc_auc_score(y, s))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation over pairs where both are finite (NaN for fewer than 3 pairs)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return math.nan
    return float(spearmanr(a[keep], b[keep]).statistic)


def lowest_share(values: Sequence[float], p: float) -> np.ndarray:
    """Boolean mask of the round(p * n) lowest values (ties broken by position), as selection drops them."""
    v = np.asarray(values, dtype=float)
    k = int(round(p * len(v)))
    mask = np.zeros(len(v), dtype=bool)
    if k > 0:
        mask[np.argsort(v, kind="stable")[:k]] = True
    return mask

