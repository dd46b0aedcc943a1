"""Small statistics for the dashboard: proportion and mean CIs, kappas, AUROC, rank correlation.

    >>> round(wilson_ci(3, 10).low, 3), round(wilson_ci(3, 10).high, 3)
    (0.108, 0.603)
    >>> cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"])
    1.0
    >>> auroc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    1.0

Pure numpy/scipy over plain sequences; NaN (or None) inputs are dropped where it makes sense.
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


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


def wilson_ci(k: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a proportion k/n (NaN when n = 0)."""
    if n <= 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    z = _z(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n, level)


def mean_ci(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean with a Student-t interval (no interval for fewer than two finite values)."""
    from scipy.stats import t

    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    m = float(x.mean())
    if len(x) < 2:
        return Interval(m, math.nan, math.nan, 1, level)
    half = float(t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return Interval(m, m - half, m + half, len(x), level)


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two raters' labels on the same items (NaN without items; 1.0 for perfect agreement)."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa needs paired labels, got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return math.nan
    cats = sorted(set(a) | set(b))
    idx = {c: i for i, c in enumerate(cats)}
    m = np.zeros((len(cats), len(cats)))
    for x, y in zip(a, b):
        m[idx[x], idx[y]] += 1
    po = np.trace(m) / n
    pe = float((m.sum(axis=1) / n) @ (m.sum(axis=0) / n))
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else math.nan
    return float((po - pe) / (1 - pe))


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an items x categories matrix of rating counts.

    Items may have different numbers of raters (at least two each; others are ignored), using the
    usual generalisation: per-item agreement sum n_ij(n_ij - 1) / (n_i(n_i - 1)), category shares
    pooled over all ratings.
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
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    keep = np.isfinite(s)
    s, y = s[keep], y[keep]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


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

