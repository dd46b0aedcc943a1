"""Does SEAM find the instructions where the RM truly misjudges? (ground truth from a gold judge)

Ground truth per instruction: a set of *probe* responses that a gold judge rates worse than the
golden one (the demo world's typed corruptions, one of each kind). The RM misjudges the
instruction when it scores at least one probe at or above the golden response; the instruction's
mismatch rate is the share of probes it ranks that way.

Each method orders instructions from "most likely misjudged" down: SEAM per variant and
weighting (lowest first), a rank average of the variants, and three baselines: random, highest
PM perplexity of the golden response (the paper's baseline), and the smallest RM reward gap
between the golden response and the mean of its negatives. Metrics: AUROC against the binary
label, precision and recall among the top 20%, and Spearman correlation with the mismatch rate.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from .score.formula import aggregate

TOP_FRACTION = 0.2


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None when only one class is present."""
    labels = np.asarray(labels, dtype=bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def top_fraction_mask(scores: np.ndarray, fraction: float = TOP_FRACTION, seed: int = 0) -> np.ndarray:
    """The `fraction` highest-scoring items (ties broken at random, reproducibly)."""
    n = len(scores)
    m = max(1, int(round(n * fraction)))
    tiebreak = np.random.default_rng(seed).random(n)
    order = np.lexsort((tiebreak, -np.asarray(scores, dtype=float)))
    mask = np.zeros(n, dtype=bool)
    mask[order[:m]] = True
    return mask


def _metrics(name: str, kind: str, scores: np.ndarray, labels: np.ndarray, rate: np.ndarray, seed: int) -> dict:
    top = top_fraction_mask(scores, TOP_FRACTION, seed)
    rho = spearmanr(scores, rate).statistic if np.std(scores) > 0 and np.std(rate) > 0 else None
    return {
        "method": name, "kind": kind, "auroc": auroc(scores, labels),
        "precision_at_20": float(labels[top].mean()),
        "recall_at_20": float(labels[top].sum() / labels.sum()) if labels.sum() else None,
        "spearman_mismatch": None if rho is None or np.isnan(rho) else float(rho),
    }


def validation_report(ids: Sequence[str], categories: Sequence[str], rm_gold: np.ndarray, probes: pd.DataFrame,
                      gold_logprob_mean: np.ndarray, details: pd.DataFrame, seed: int = 0,
                      variants: Sequence[str] = ("contrast", "llm", "adv"),
                      weightings: Sequence[str] = ("paper", "prob")) -> dict:
    """Compute the report. `probes`: id, rm (reward), meta {corruption}; `details`: SEAM details rows."""
    ids = list(ids)
    index = {i: k for k, i in enumerate(ids)}
    gold = pd.Series(np.asarray(rm_gold, dtype=float), index=ids)
    pr = probes.assign(fooled=probes["rm"].to_numpy() >= gold.loc[probes["id"]].to_numpy())
    rate = pr.groupby("id")["fooled"].mean().reindex(ids).fillna(0.0).to_numpy()
    labels = rate > 0
    kinds = pr["meta"].map(lambda m: (m or {}).get("corruption", "?"))
    cats = pd.Series(list(categories), index=ids)
    pr = pr.assign(kind=kinds.to_numpy(), category=cats.loc[pr["id"]].to_numpy())
    blind = (pr.groupby(["category", "kind"])["fooled"].mean().unstack("kind").round(3))

    methods = []
    per_variant_scores = {}
    for w in weightings:
        ranks = []
        for v in variants:
            d = details[details["variant"] == v]
            s = np.zeros(len(ids))
            if len(d):
                agg = aggregate(d, "sum", weighting=w)
                for iid, val in zip(agg["id"], agg["seam"]):
                    if iid in index:
                        s[index[iid]] = val
            per_variant_scores[(v, w)] = s
            methods.append(_metrics(f"SEAM {v} ({w})", "seam", -s, labels, rate, seed))
            ranks.append(rankdata(s))
        methods.append(_metrics(f"SEAM rank-average ({w})", "seam", -np.mean(ranks, axis=0), labels, rate, seed))
    rng = np.random.default_rng(seed)
    methods.append(_metrics("random", "baseline", rng.random(len(ids)), labels, rate, seed))
    methods.append(_metrics("PM perplexity of golden (highest first)", "baseline",
                            -np.asarray(gold_logprob_mean, dtype=float), labels, rate, seed))
    mean_neg = details.groupby("id")["rm_neg"].mean().reindex(ids).to_numpy()
    gap = gold.to_numpy() - np.nan_to_num(mean_neg, nan=np.nanmean(mean_neg) if np.isfinite(mean_neg).any() else 0.0)
    methods.append(_metrics("smallest RM reward gap (gold - mean negative)", "baseline", -gap, labels, rate, seed))
    methods.sort(key=lambda m: -1 if m["auroc"] is None else m["auroc"], reverse=True)
    return {
        "n": len(ids), "positives": int(labels.sum()), "base_rate": float(labels.mean()),
        "mean_mismatch_rate": float(rate.mean()), "top_fraction": TOP_FRACTION, "seed": seed,
        "positives_by_category": {str(k): int(v) for k, v in pd.Series(labels, index=cats.to_numpy()).groupby(level=0).sum().items()},
        "rm_fooled_rate_by_category_and_kind": {str(c): {str(k): (None if pd.isna(v) else float(v)) for k, v in row.items()}
                                                 for c, row in blind.iterrows()},
        "methods": methods,
    }


def report_markdown(report: dict) -> str:
    """The report as Markdown (written next to the JSON and shown on the dashboard)."""
    def f(x, spec=".3f"):
        return "n/a" if x is None else format(x, spec)

    lines = [
        "# SEAM validation on the demo world",
        "",
        f"Instructions: {report['n']}; truly misjudged by the RM (it scores at least one gold-judge-worse "
        f"probe at or above the golden answer): **{report['positives']}** (base rate {report['base_rate']:.1%}); "
        f"mean probe mismatch rate {report['mean_mismatch_rate']:.1%}.",
        "",
        f"Ranking quality (top {report['top_fraction']:.0%} = the share the paper drops):",
        "",
        "| method | AUROC | precision@20% | recall@20% | Spearman vs mismatch rate |",
        "|---|---|---|---|---|",
    ]
    for m in report["methods"]:
        lines.append(f"| {m['method']} | {f(m['auroc'])} | {f(m['precision_at_20'])} | {f(m['recall_at_20'])} | "
                     f"{f(m['spearman_mismatch'])} |")
    kinds = sorted({k for row in report["rm_fooled_rate_by_category_and_kind"].values() for k in row})
    lines += ["", "Where the RM is fooled (share of probes scored at or above the golden answer):", "",
              "| category | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for cat, row in report["rm_fooled_rate_by_category_and_kind"].items():
        lines.append(f"| {cat} | " + " | ".join(f(row.get(k), ".2f") for k in kinds) + " |")
    lines += ["", f"Seed {report['seed']}. Reproduce with `{report.get('command', 'seam demo')}`.", ""]
    return "\n".join(lines)
