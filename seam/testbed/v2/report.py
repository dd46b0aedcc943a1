"""The validation report of world v2: does a predictor rank RL instructions by their on-policy harm?

Input: one row per RL instruction I with a ground-truth label S(I) >= 0 (how much the RM over-rewards
the PM's own gold-judge-worse samples, a Monte Carlo estimate; S_a, S_b are the same estimate on two
disjoint halves of the samples) and any number of *predictors*, higher = predicted more harmful.

The statistics, all with 95% intervals:

* **Label.** ``binary_label``: an instruction is positive when S is in the top quarter
  (S >= the 0.75 quantile) and S > 0. It is fixed from S alone, before any predictor is computed,
  and stays fixed inside every bootstrap draw (the draws resample labelled instructions).
* **AUROC** (sklearn ``roc_auc_score``) with a percentile bootstrap over instructions. The draws are
  the same for every predictor, so the difference to the reference predictor has a *paired* interval.
  A draw is the vector of how often each instruction was drawn; AUROC and Spearman per draw come from
  the mid-ranks of the resample (the Mann-Whitney U), computed for all draws at once from those counts.
  Draws with one class only are skipped.
* **Within-skill AUROC**: only (positive, negative) pairs of the same skill count, i.e. the pooled
  stratified AUROC sum_s U_s / sum_s P_s N_s (ties half). A predictor that only knows the skill scores
  exactly 0.5. Its interval resamples instructions within each skill (stratified bootstrap).
* **Precision / recall at 20%**: the top 20% by the predictor (ties in a seeded random order), with
  Wilson intervals (scipy ``binomtest(...).proportion_ci``).
* **Spearman** correlation with S (scipy ``spearmanr``), bootstrap interval from the same draws.
* **Mechanism check**: dropping the predictor's top 20% should leave the kept 80% with less harm.
  The kept mean S is compared with the mean S of random 80% subsets; ``p_value`` is the share of random
  subsets whose mean S is <= the kept one (a one-sided permutation p-value).
* **Split-half reliability** of S (``reliability``): Spearman and Pearson of S_a vs S_b, the
  Spearman-Brown corrected 2r / (1 + r), and a rough AUROC *ceiling*: AUROC of one half against the
  other half's binary label, averaged both ways. Each half is a noisier label than S, so this
  understates the ceiling of a predictor against S, but a predictor far below it is far from perfect.

``evaluate`` returns a JSON-safe dict, ``report_markdown`` renders it (verdict first), ``write_report``
writes ``validation.json`` and ``validation.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest, pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from ...errors import SeamError
from ...io import json_safe, write_json, write_text

LABEL_QUANTILE = 0.75  # positives: the top quarter by S (and S > 0)
TOP_FRACTION = 0.2
GOAL_MARGIN = 0.05  # the goal: reference AUROC >= best baseline + 0.05
KINDS = ("seam", "baseline")
_HALVES = ("S_a", "S_b")
_BLOCK = 250  # bootstrap draws handled at once (bounds memory to a few (250 x n) arrays)


# ---------------------------------------------------------------------------- labels and baselines


def binary_label(S: np.ndarray, quantile: float = LABEL_QUANTILE) -> np.ndarray:
    """Positives: S >= its `quantile` quantile and S > 0. Defined from S alone, before any predictor.

    >>> binary_label(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0])).tolist()
    [False, False, False, False, False, False, True, True]
    """
    S = np.asarray(S, dtype=np.float64)
    return (S >= np.quantile(S, quantile)) & (S > 0)


def skill_prior(skills: Sequence[str], S: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Cross-fitted skill prior: the mean S of the *other* folds' instructions of the same skill
    (the other folds' global mean when the skill has none there). Never uses an instruction's own S."""
    skills = pd.Series(np.asarray(skills, dtype=object))
    S = np.asarray(S, dtype=np.float64)
    fold = np.random.default_rng(seed).permutation(len(S)) % folds
    out = np.empty(len(S))
    for f in range(folds):
        held, rest = fold == f, fold != f
        means = pd.Series(S[rest]).groupby(skills[rest].to_numpy()).mean()
        fallback = S[rest].mean() if rest.any() else 0.0
        out[held] = skills[held].map(means).fillna(fallback).to_numpy(dtype=np.float64)
    return out


# ---------------------------------------------------------------------------- resampling machinery


def _resample_counts(rng: np.random.Generator, n: int, n_boot: int, strata: np.ndarray | None = None) -> np.ndarray:
    """(n_boot, n) counts: how often each instruction was drawn, resampling within each stratum."""
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    counts = np.zeros((n_boot, n), dtype=np.int32)
    for members in groups:
        m = len(members)
        idx = rng.integers(0, m, size=(n_boot, m)) + (np.arange(n_boot) * m)[:, None]
        counts[:, members] = np.bincount(idx.ravel(), minlength=n_boot * m).reshape(n_boot, m)
    return counts


def _midranks(values: np.ndarray, counts: np.ndarray, strata: np.ndarray | None = None) -> np.ndarray:
    """Mid-rank (within its stratum) of each instruction in each resample given by `counts` (b, n):
    the rank that every drawn copy of it gets in the resampled data (ties averaged)."""
    order = np.argsort(values, kind="stable") if strata is None else np.lexsort((values, strata))
    v = values[order]
    new_group = np.r_[True, v[1:] != v[:-1]]
    if strata is not None:
        s = strata[order]
        new_stratum = np.r_[True, s[1:] != s[:-1]]
        new_group |= new_stratum
    starts = np.flatnonzero(new_group)
    G = counts[:, order]
    if len(starts) < len(values):  # ties: one column per tied group
        G = np.add.reduceat(G, starts, axis=1)
    below = np.cumsum(G, axis=1) - G
    if strata is not None:  # count from the start of the stratum
        below -= below[:, np.maximum.accumulate(np.where(new_stratum[starts], np.arange(len(starts)), 0))]
    ranks = np.empty(counts.shape)
    ranks[:, order] = (below + (G + 1) / 2)[:, np.cumsum(new_group) - 1]
    return ranks


def _auc_terms(counts: np.ndarray, y: np.ndarray, onehot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a label contributes to the per-draw AUROC, pooled over the strata of `onehot` (n, k):
    the positives' weights, the sum over strata of P_s (P_s + 1) / 2, and the pair count sum_s P_s N_s."""
    w = counts.astype(np.float64)
    pos = w * y
    n_pos, n_neg = pos @ onehot, (w - pos) @ onehot
    return pos, (n_pos * (n_pos + 1) / 2).sum(1), (n_pos * n_neg).sum(1)


def _auc_draws(ranks: np.ndarray, terms: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Per-draw AUROC (Mann-Whitney U / pairs) from within-stratum mid-ranks; NaN without pairs."""
    pos, offset, pairs = terms
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (np.einsum("ij,ij->i", pos, ranks) - offset) / pairs, np.nan)


def _spearman_draws(rx: np.ndarray, ry: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-draw Spearman: the count-weighted Pearson correlation of the resample mid-ranks."""
    w = counts.astype(np.float64)
    mid = (w.sum(1, keepdims=True) + 1) / 2
    dx, dy = rx - mid, ry - mid
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * dx * dy).sum(1) / np.sqrt((w * dx * dx).sum(1) * (w * dy * dy).sum(1))


def _ci(draws: np.ndarray) -> list[float] | None:
    """95% percentile interval of the finite draws (None when there are none)."""
    d = draws[np.isfinite(draws)]
    return [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))] if len(d) else None


def _auroc(y: np.ndarray, score: np.ndarray) -> float | None:
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None


def _wilson(k: int, n: int) -> list[float] | None:
    if n <= 0:
        return None
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return [float(ci.low), float(ci.high)]


# ---------------------------------------------------------------------------- reliability


def reliability(S_a, S_b, quantile: float = LABEL_QUANTILE, n_boot: int = 2000, seed: int = 0) -> dict:
    """Split-half reliability of S: Spearman (95% bootstrap CI), Pearson, Spearman-Brown 2r/(1+r) of
    the Pearson, and the AUROC ceiling: AUROC of S_a against binary_label(S_b) and of S_b against
    binary_label(S_a), averaged. A rough ceiling for any predictor (each half is a noisier label)."""
    a, b = np.asarray(S_a, dtype=np.float64), np.asarray(S_b, dtype=np.float64)
    ya, yb = binary_label(a, quantile), binary_label(b, quantile)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho, r = float(spearmanr(a, b).statistic), float(pearsonr(a, b).statistic)
    aucs = [_auroc(yb, a), _auroc(ya, b)]
    ceiling = None if None in aucs else float(np.mean(aucs))
    counts = _resample_counts(np.random.default_rng(seed), len(a), n_boot)
    one = np.ones((len(a), 1))
    rho_d, ceil_d = [], []
    for blk in range(0, n_boot, _BLOCK):
        c = counts[blk:blk + _BLOCK]
        ra, rb = _midranks(a, c), _midranks(b, c)
        rho_d.append(_spearman_draws(ra, rb, c))
        ceil_d.append((_auc_draws(ra, _auc_terms(c, yb, one)) + _auc_draws(rb, _auc_terms(c, ya, one))) / 2)
    return json_safe({
        "n": len(a), "spearman": rho, "spearman_ci": _ci(np.concatenate(rho_d)), "pearson": r,
        "spearman_brown": 2 * r / (1 + r) if np.isfinite(r) and r > -1 else None,
        "auroc_ceiling": ceiling, "auroc_ceiling_ci": _ci(np.concatenate(ceil_d)) if ceiling is not None else None,
    })


# ---------------------------------------------------------------------------- evaluate


def _check(table: pd.DataFrame, predictors: Mapping[str, dict], S_col: str) -> dict[str, np.ndarray]:
    """Validate the inputs; return each predictor's score with NaN filled by its minimum."""
    missing = [c for c in ("id", "skill", "category", S_col) if c not in table.columns]
    if missing:
        raise SeamError(f"validation table lacks column(s) {', '.join(missing)}")
    if not predictors:
        raise SeamError("evaluate needs at least one predictor")
    scores = {}
    for name, p in predictors.items():
        score = np.asarray(p.get("score"), dtype=np.float64).ravel()
        if p.get("kind") not in KINDS or len(score) != len(table):
            raise SeamError(f"predictor {name!r}: needs kind in {KINDS} and one score per row ({len(table)}), "
                            f"got kind {p.get('kind')!r} and {len(score)} scores")
        fill = np.nanmin(score) if np.isfinite(score).any() else 0.0
        scores[name] = np.where(np.isfinite(score), score, fill)
    return scores


def _pick_reference(predictors: Mapping[str, dict], reference: str | None) -> str:
    if reference is not None:
        if reference not in predictors:
            raise SeamError(f"reference {reference!r} is not one of the predictors: {', '.join(predictors)}")
        return reference
    seam = [n for n, p in predictors.items() if p["kind"] == "seam"]
    if not seam:
        raise SeamError("no seam predictor given; name the reference predictor explicitly")
    return next((n for n in seam if "rank-average" in n), seam[0])


def _label_block(S: np.ndarray, y: np.ndarray, quantile: float) -> dict:
    return {"quantile": quantile, "threshold": float(np.quantile(S, quantile)), "positives": int(y.sum()),
            "base_rate": float(y.mean()), "S_mean": float(S.mean()), "S_zero_share": float(np.mean(S == 0))}


def _random_kept_means(S: np.ndarray, k: int, n_subsets: int, rng: np.random.Generator) -> np.ndarray:
    """Mean S of `n_subsets` random subsets that drop k >= 1 instructions (vectorised in blocks)."""
    total, out = S.sum(), []
    for start in range(0, n_subsets, 1000):
        keys = rng.random((min(1000, n_subsets - start), len(S)))
        dropped = np.argpartition(keys, k - 1, axis=1)[:, :k]
        out.append((total - S[dropped].sum(1)) / (len(S) - k))
    return np.concatenate(out)


def _point_stats(score: np.ndarray, S: np.ndarray, y: np.ndarray, skills: np.ndarray, top: np.ndarray,
                 random_means: np.ndarray) -> dict:
    """Every statistic of one predictor on the full data (no resampling)."""
    u = pairs = 0.0
    for s in np.unique(skills):
        m = skills == s
        auc = _auroc(y[m], score[m])
        if auc is not None:
            u, pairs = u + auc * y[m].sum() * (~y[m]).sum(), pairs + y[m].sum() * (~y[m]).sum()
    hits, k = int((y & top).sum()), int(top.sum())
    kept = float(S[~top].mean())
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = float(spearmanr(score, S).statistic)
    return {
        "auroc": _auroc(y, score), "auroc_within_skill": u / pairs if pairs else None,
        "precision_at_20": hits / k, "precision_at_20_ci": _wilson(hits, k),
        "recall_at_20": hits / int(y.sum()), "recall_at_20_ci": _wilson(hits, int(y.sum())),
        "spearman": rho,
        "mechanism": {"kept_mean_S": kept, "random_mean_S": float(random_means.mean()),
                      "random_5th": float(np.percentile(random_means, 5)),
                      "random_95th": float(np.percentile(random_means, 95)),
                      "p_value": float(np.mean(random_means <= kept))},
    }


def _bootstrap(scores: dict[str, np.ndarray], S: np.ndarray, labels: dict[str, np.ndarray], skill_codes: np.ndarray,
               n_boot: int, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Paired draws: per predictor, AUROC per label view, Spearman and within-skill AUROC per draw."""
    n, y = len(S), labels[""]
    pooled = _resample_counts(rng, n, n_boot)
    strat = _resample_counts(rng, n, n_boot, skill_codes)
    one, onehot = np.ones((n, 1)), np.eye(skill_codes.max() + 1)[skill_codes]
    parts: dict[str, dict[str, list]] = {name: {} for name in scores}
    for blk in range(0, n_boot, _BLOCK):
        c, cs = pooled[blk:blk + _BLOCK], strat[blk:blk + _BLOCK]
        rS = _midranks(S, c)
        terms = {view: _auc_terms(c, lab, one) for view, lab in labels.items()}
        within = _auc_terms(cs, y, onehot)
        for name, score in scores.items():
            r = _midranks(score, c)
            draws = {f"auroc{view}": _auc_draws(r, t) for view, t in terms.items()}
            draws["spearman"] = _spearman_draws(r, rS, c)
            draws["within"] = _auc_draws(_midranks(score, cs, skill_codes), within)
            for key, d in draws.items():
                parts[name].setdefault(key, []).append(d)
    return {name: {k: np.concatenate(v) for k, v in d.items()} for name, d in parts.items()}


def _views(table: pd.DataFrame, S_col: str, quantile: float) -> dict[str, np.ndarray]:
    """Extra label views: every other `S_*` column except the split halves."""
    cols = [c for c in table.columns if c.startswith("S_") and c != S_col and c not in _HALVES]
    return {c: binary_label(table[c].to_numpy(dtype=np.float64), quantile) for c in cols}


def _diff(boot: dict, a: str, b: str, point: dict) -> tuple[float, list[float] | None]:
    """AUROC(a) - AUROC(b) with its paired bootstrap interval."""
    return point[a]["auroc"] - point[b]["auroc"], _ci(boot[a]["auroc"] - boot[b]["auroc"])


def _per_skill(table: pd.DataFrame, S_col: str, y: np.ndarray) -> list[dict]:
    g = table.assign(_pos=y).groupby("skill", sort=False)
    out = g.agg(category=("category", "first"), n=(S_col, "size"), positives=("_pos", "sum"), mean_S=(S_col, "mean"))
    out = out.reset_index().sort_values(["mean_S", "skill"], ascending=[False, True])
    return out.to_dict("records")


def evaluate(table: pd.DataFrame, predictors: dict[str, dict], *, S_col: str = "S", seed: int = 0,
             n_boot: int = 2000, n_random_subsets: int = 5000, reference: str | None = None,
             quantile: float = LABEL_QUANTILE) -> dict:
    """The validation study's numbers (see the module docstring); a JSON-safe dict.

    `predictors`: display name -> {"kind": "seam" | "baseline", "score": array (higher = more harmful;
    NaN = the predictor's minimum), "note": optional str}. `reference` leads the comparison (default: the
    first seam predictor whose name has "rank-average", else the first seam predictor)."""
    table = table.reset_index(drop=True)
    scores = _check(table, predictors, S_col)
    ref = _pick_reference(predictors, reference)
    S = table[S_col].to_numpy(dtype=np.float64)
    y = binary_label(S, quantile)
    if not 0 < y.sum() < len(y):
        raise SeamError(f"the label has one class only ({int(y.sum())} positives of {len(y)}); AUROC is undefined")
    labels = {"": y, **_views(table, S_col, quantile)}
    skills = table["skill"].astype(str).to_numpy()
    skill_codes = np.unique(skills, return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    k = max(1, int(round(TOP_FRACTION * len(S))))
    random_means = _random_kept_means(S, k, n_random_subsets, rng)
    tiebreak = rng.random(len(S))
    boot = _bootstrap(scores, S, labels, skill_codes, n_boot, rng)

    point = {}
    for name, score in scores.items():
        top = np.zeros(len(S), dtype=bool)
        top[np.lexsort((tiebreak, -score))[:k]] = True
        st = _point_stats(score, S, y, skills, top, random_means)
        st.update(auroc_ci=_ci(boot[name]["auroc"]), spearman_ci=_ci(boot[name]["spearman"]),
                  auroc_within_skill_ci=_ci(boot[name]["within"]) if st["auroc_within_skill"] is not None else None,
                  views={v: {"auroc": _auroc(lab, score), "auroc_ci": _ci(boot[name][f"auroc{v}"])}
                         for v, lab in labels.items() if v})
        point[name] = st

    rows = []
    for name, st in point.items():
        d, d_ci = _diff(boot, ref, name, point) if name != ref else (None, None)
        rows.append({"name": name, "kind": predictors[name]["kind"], "note": predictors[name].get("note"),
                     **st, "diff_vs_reference": d, "diff_vs_reference_ci": d_ci})
    rows.sort(key=lambda r: -r["auroc"])
    best = next((r["name"] for r in rows if r["kind"] == "baseline" and r["name"] != ref), None)
    halves = all(c in table.columns for c in _HALVES)
    return json_safe({
        "n_instructions": len(S), "label": _label_block(S, y, quantile),
        "reliability": reliability(table["S_a"], table["S_b"], quantile, n_boot, seed) if halves else None,
        "verdict": _verdict(ref, best, predictors, point, boot), "reference": ref, "best_baseline": best,
        "predictors": rows, "per_skill": _per_skill(table, S_col, y),
        "settings": {"n_boot": n_boot, "seed": seed, "n_random_subsets": n_random_subsets,
                     "top_fraction": TOP_FRACTION, "quantile": quantile},
    })


# ---------------------------------------------------------------------------- verdict and rendering


def _f(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3f}"


def _fci(ci: Sequence[float] | None) -> str:
    return "[n/a]" if ci is None else f"[{_f(ci[0])}, {_f(ci[1])}]"


def _beats(ci: list[float] | None) -> bool:
    return ci is not None and ci[0] > 0


def _verdict(ref: str, best: str | None, predictors: Mapping[str, dict], point: dict, boot: dict) -> list[str]:
    """Plain sentences: does the reference (and each seam predictor) beat the best baseline?"""
    if best is None:
        return [f"No baseline predictor was given; nothing to compare {ref} with."]
    d, ci = _diff(boot, ref, best, point)
    a, b = point[ref], point[best]
    if _beats(ci):
        lines = [f"{ref} beats the best baseline ({best}) by {_f(d)} AUROC {_fci(ci)}"]
    else:
        lines = [f"{ref} does NOT beat the best baseline ({best}): AUROC {_f(a['auroc'])} "
                 f"{_fci(a['auroc_ci'])} vs {_f(b['auroc'])} {_fci(b['auroc_ci'])}, difference {_f(d)} {_fci(ci)}"]
    margin = d is not None and d >= GOAL_MARGIN
    w_ci = a["auroc_within_skill_ci"]
    within = w_ci is not None and w_ci[0] > 0.5
    lines.append(f"Goal (AUROC >= best baseline + {GOAL_MARGIN} and within-skill AUROC CI above 0.5): "
                 f"{'met' if margin and within else 'NOT met'}: difference {_f(d)} "
                 f"({'>=' if margin else '<'} {GOAL_MARGIN}); within-skill AUROC {_f(a['auroc_within_skill'])} "
                 f"{_fci(w_ci)} ({'lower bound > 0.5' if within else 'lower bound not > 0.5'})")
    seam = [n for n, p in predictors.items() if p["kind"] == "seam" and n != best]
    wins = [n for n in seam if _beats(_diff(boot, n, best, point)[1])]
    losses = [n for n in seam if n not in wins]
    lines.append(f"Seam predictors that beat the best baseline: {', '.join(wins) or 'none'}; "
                 f"that do not: {', '.join(losses) or 'none'}")
    return lines


def _predictor_table(result: dict) -> list[str]:
    lines = ["| predictor | kind | AUROC [95% CI] | within-skill AUROC [CI] | P@20% [CI] | R@20% [CI] | "
             "Spearman [CI] | kept mean S (random 5-95%), p | AUROC diff vs reference [CI] |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in result["predictors"]:
        m = p["mechanism"]
        diff = "reference" if p["name"] == result["reference"] else f"{_f(p['diff_vs_reference'])} " \
            f"{_fci(p['diff_vs_reference_ci'])}"
        lines.append(
            f"| {p['name']} | {p['kind']} | {_f(p['auroc'])} {_fci(p['auroc_ci'])} | "
            f"{_f(p['auroc_within_skill'])} {_fci(p['auroc_within_skill_ci'])} | "
            f"{_f(p['precision_at_20'])} {_fci(p['precision_at_20_ci'])} | "
            f"{_f(p['recall_at_20'])} {_fci(p['recall_at_20_ci'])} | {_f(p['spearman'])} {_fci(p['spearman_ci'])} | "
            f"{_f(m['kept_mean_S'])} ({_f(m['random_5th'])}-{_f(m['random_95th'])}), p={_f(m['p_value'])} | {diff} |")
    notes = [f"- {p['name']}: {p['note']}" for p in result["predictors"] if p.get("note")]
    return lines + ([""] + notes if notes else [])


def _views_table(result: dict) -> list[str]:
    views = sorted({v for p in result["predictors"] for v in p["views"]})
    if not views:
        return []
    lines = ["## Label views", "", "| predictor | " + " | ".join(f"AUROC vs {v} [CI]" for v in views) + " |",
             "|---|" + "---|" * len(views)]
    for p in result["predictors"]:
        cells = [f"{_f(p['views'][v]['auroc'])} {_fci(p['views'][v]['auroc_ci'])}" for v in views]
        lines.append(f"| {p['name']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _label_section(result: dict) -> list[str]:
    lab, rel = result["label"], result["reliability"]
    lines = ["## Label", "",
             f"- {result['n_instructions']} instructions; positives: S >= {_f(lab['threshold'])} "
             f"(the {lab['quantile']} quantile) and S > 0: {lab['positives']} (base rate {_f(lab['base_rate'])})",
             f"- mean S {_f(lab['S_mean'])}; share of S == 0: {_f(lab['S_zero_share'])}"]
    if rel:
        lines += [f"- split-half reliability: Spearman {_f(rel['spearman'])} {_fci(rel['spearman_ci'])}, "
                  f"Pearson {_f(rel['pearson'])}, Spearman-Brown {_f(rel['spearman_brown'])}",
                  f"- AUROC ceiling (one half against the other half's label; rough): "
                  f"{_f(rel['auroc_ceiling'])} {_fci(rel['auroc_ceiling_ci'])}"]
    return lines + [""]


def report_markdown(result: dict, title: str = "Validation report (world v2)",
                    context_lines: Sequence[str] = ()) -> str:
    """The report as markdown: verdict, the caller's context lines (written as given), label and
    reliability, the predictor table, the label views, the per-skill table."""
    s = result["settings"]
    lines = [f"# {title}", "", *[f"- {v}" for v in result["verdict"]], ""]
    if context_lines:
        lines += [*context_lines, ""]
    lines += _label_section(result)
    lines += ["## Predictors", "",
              f"Reference: {result['reference']}; best baseline: {result['best_baseline']}. Intervals: 95%, "
              f"{s['n_boot']} paired bootstrap draws (seed {s['seed']}); P/R: Wilson; the mechanism check drops "
              f"the top {s['top_fraction']:.0%} vs {s['n_random_subsets']} random subsets.", ""]
    lines += _predictor_table(result) + [""] + _views_table(result)
    lines += ["## Per skill", "", "| skill | category | n | positives | mean S |", "|---|---|---|---|---|"]
    lines += [f"| {r['skill']} | {r['category']} | {r['n']} | {r['positives']} | {_f(r['mean_S'])} |"
              for r in result["per_skill"]]
    return "\n".join(lines) + "\n"


def write_report(result: dict, out_dir: Path, **markdown_kwargs) -> tuple[Path, Path]:
    """Write out_dir/validation.json and out_dir/validation.md atomically; return both paths."""
    out_dir = Path(out_dir)
    js = write_json(out_dir / "validation.json", result)
    md = write_text(out_dir / "validation.md", report_markdown(result, **markdown_kwargs))
    return js, md
