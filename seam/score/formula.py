"""The SEAM formula (DESIGN.md section 2): pure functions over per-negative arrays.

For instruction I with golden response r and negatives r*_1..r*_n of one variant:
    eps_i  = max(R(I∘r*_i) - R(I∘r), 0)                 RM misjudgement
    ell_i  = logP_PM(r*_i | I) / T_i                     PM length-normalised log-likelihood
    term_i = ell_i * eps_i              (weighting "paper", <= 0)
           = -exp(ell_i) * eps_i        (weighting "prob",  <= 0)
    SEAM(I, variant) = sum_i term_i     (aggregate "sum")  or  mean_i term_i  ("mean")
Lower SEAM = worse seamlessness; 0 means the RM was never fooled by that sample set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.contract import DETAIL_COLUMNS, SCORE_COLUMNS
from ..errors import SeamError

WEIGHTINGS = ("paper", "prob")
AGGREGATES = ("sum", "mean")



def negative_terms(rm_gold, rm_neg, logprob_sum, tokens, weighting: str = "paper"):
    """Per-negative (epsilon, ell, term) arrays.

    >>> e, l, t = negative_terms([1.0], [3.0], [-4.0], [2])
    >>> float(e[0]), float(l[0]), float(t[0])
    (2.0, -2.0, -4.0)
    """
    if weighting not in WEIGHTINGS:
        raise SeamError(f"--weighting {weighting!r}: choose one of {', '.join(WEIGHTINGS)}")
    rm_gold = np.asarray(rm_gold, dtype=np.float64)
    rm_neg = np.asarray(rm_neg, dtype=np.float64)
    logprob_sum = np.asarray(logprob_sum, dtype=np.float64)
    tokens = np.asarray(tokens, dtype=np.float64)
    if np.any(tokens <= 0):
        raise ValueError("every negative must have at least one scored token (T >= 1)")
    eps = np.maximum(rm_neg - rm_gold, 0.0)
    ell = logprob_sum / tokens
    term = ell * eps if weighting == "paper" else -np.exp(ell) * eps
    # -0.0 -> 0.0 so that "never fooled" prints as 0
    return eps, ell, term + 0.0


def details_frame(ids, variants, neg_index, rm_gold, rm_neg, logprob_sum, tokens, weighting="paper") -> pd.DataFrame:
    """The per-negative details table (DESIGN.md section 3)."""
    eps, ell, term = negative_terms(rm_gold, rm_neg, logprob_sum, tokens, weighting)
    return pd.DataFrame({
        "id": pd.Series(ids, dtype=object), "variant": pd.Series(variants, dtype=object),
        "neg_index": np.asarray(neg_index, dtype=np.int64),
        "rm_gold": np.asarray(rm_gold, dtype=np.float64), "rm_neg": np.asarray(rm_neg, dtype=np.float64),
        "epsilon": eps, "pm_logprob_sum": np.asarray(logprob_sum, dtype=np.float64),
        "pm_tokens": np.asarray(tokens, dtype=np.int64), "pm_logprob_mean": ell, "term": term,
    })[list(DETAIL_COLUMNS)]


def aggregate(details: pd.DataFrame, how: str = "sum", weighting: str | None = None) -> pd.DataFrame:
    """Per-(id, variant) SEAM from a details table. With `weighting`, terms are recomputed first."""
    if how not in AGGREGATES:
        raise SeamError(f"--aggregate {how!r}: choose one of {', '.join(AGGREGATES)}")
    d = details
    if weighting is not None:
        _, _, term = negative_terms(d["rm_gold"], d["rm_neg"], d["pm_logprob_sum"], d["pm_tokens"], weighting)
        d = d.assign(term=term)
    g = d.assign(_mis=(d["epsilon"] > 0).astype(np.int64)).groupby(["id", "variant"], sort=False)
    out = g.agg(seam=("term", how), n_negatives=("term", "size"), n_misjudged=("_mis", "sum"), rm_gold=("rm_gold", "first"))
    out = out.reset_index()
    out["seam"] = out["seam"].astype(np.float64) + 0.0
    return out[list(SCORE_COLUMNS)]
