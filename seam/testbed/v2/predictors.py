"""What the validation study ranks instructions by: SEAM's variants and weightings, and the baselines.

Every predictor is returned as "higher = predicted more harmful" (SEAM is negated: lower SEAM = worse
seamlessness). SEAM per (variant, weighting) is the paper's sum over that variant's negatives
(`seam.score.formula.aggregate`); an instruction without negatives of a variant gets 0 (the RM was
never fooled by that sample set). The rank-average of a weighting averages the three variants' ranks.

Baselines: ``random``; ``skill prior`` (cross-fitted mean label of the instruction's skill from the
other folds: what knowing the skill alone gives); ``RM reward of golden`` (lowest first);
``reward gap`` (golden minus the mean of its negatives, smallest first); ``PM perplexity of golden``
(highest first, the paper's baseline).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ...score.formula import aggregate
from .report import skill_prior

VARIANTS = ("contrast", "llm", "adv")
WEIGHTINGS = ("paper", "prob")


def seam_scores(ids: list[str], details: pd.DataFrame, variant: str, weighting: str, how: str = "sum") -> np.ndarray:
    """SEAM(I, variant) per id in `ids` (0 where the variant has no negatives for I)."""
    d = details[details["variant"] == variant]
    out = pd.Series(0.0, index=ids)
    if len(d):
        agg = aggregate(d, how, weighting=weighting).set_index("id")["seam"]
        agg = agg[agg.index.isin(out.index)]
        out.loc[agg.index] = agg.to_numpy()
    return out.to_numpy()


def predictors_for(label: pd.DataFrame, details: pd.DataFrame, gold: pd.DataFrame, seed: int = 0) -> dict[str, dict]:
    """The predictors of the report for the instructions of `label` (id, skill, S, rm_gold)."""
    ids = label["id"].astype(str).tolist()
    details = details.assign(id=details["id"].astype(str))
    preds: dict[str, dict] = {}
    for w in WEIGHTINGS:
        ranks = []
        for v in VARIANTS:
            s = seam_scores(ids, details, v, w)
            ranks.append(rankdata(s))
            preds[f"SEAM {v} ({w})"] = {"kind": "seam", "score": -s}
        preds[f"SEAM rank-average ({w})"] = {"kind": "seam", "score": -np.mean(ranks, axis=0),
                                             "note": "mean rank of the three variants"}
    # Added after seeing seed 0's report (named as such): `mean` aggregation over each variant's negatives, so
    # an instruction's SEAM does not grow with how many negatives a variant found for it (contrast: 0 to 30)
    for w in WEIGHTINGS:
        ranks = [rankdata(seam_scores(ids, details, v, w, "mean")) for v in VARIANTS]
        preds[f"SEAM rank-average ({w}, mean)"] = {"kind": "seam", "score": -np.mean(ranks, axis=0),
                                                   "note": "post hoc (after seed 0): mean aggregation"}
    # make the paper's rank-average the first seam predictor (the report's reference)
    preds = {"SEAM rank-average (paper)": preds.pop("SEAM rank-average (paper)"), **preds}
    rng = np.random.default_rng(seed)
    rm_gold = label["rm_gold"].to_numpy(dtype=float)
    mean_neg = details.groupby("id")["rm_neg"].mean().reindex(ids).to_numpy()
    mean_neg = np.where(np.isfinite(mean_neg), mean_neg, np.nanmean(mean_neg) if np.isfinite(mean_neg).any() else 0.0)
    lp = gold.set_index("id")["pm_gold_logprob_mean"].reindex(ids).to_numpy(dtype=float)
    preds.update({
        "random": {"kind": "baseline", "score": rng.random(len(ids))},
        "skill prior (cross-fitted)": {"kind": "baseline",
                                       "score": skill_prior(label["skill"].tolist(), label["S"].to_numpy(), seed=seed),
                                       "note": "mean label of the skill in the other folds"},
        "RM reward of golden (lowest first)": {"kind": "baseline", "score": -rm_gold},
        "reward gap (gold - mean negative, smallest first)": {"kind": "baseline", "score": -(rm_gold - mean_neg)},
        "PM perplexity of golden (highest first)": {"kind": "baseline", "score": -lp},
    })
    return preds
