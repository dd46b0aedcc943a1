"""RL data selection: drop the lowest p% of instructions by SEAM, or by a baseline.

Methods (a registry; each gives every instruction a *keep score*, and the `round(p * n)` rows with
the lowest keep scores are dropped; ties are broken by file order):

* ``seam``        SEAM of one variant; with several variants, the average of the per-variant
                  ranks (rank 1 = lowest SEAM). Instructions without a SEAM row for a variant
                  count as SEAM 0 (the RM was never shown fooled on them) unless missing="error".
* ``random``      a seeded random permutation (the paper's random-removal baseline).
* ``perplexity``  the PM's perplexity of the golden response given the instruction; the highest
                  perplexity is dropped first (the paper's LLaMA-perplexity baseline).
* ``reward-gap``  R(I∘chosen) - R(I∘rejected), or - max R(I∘negative) for rows without a rejected
                  response; the smallest gap is dropped first.

The kept rows are written unchanged; a ``<out>.lineage.json`` sidecar records the method, the
inputs (paths, content hashes, model fingerprints), the counts and every dropped id, and links
to the source file's own lineage when it has one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from .data import write_table
from .errors import SeamError
from .io import describe_file, new_lineage, write_lineage
from .models.scoring import PolicyScorer, RewardScorer
from .models.templates import get_template
from .settings import Settings, setting

MISSING_POLICIES = ("keep", "error")


# ============================================================================ counts


def drop_count(n: int, p: float) -> int:
    """round(p * n), halves rounded up: the number of rows a p-fraction drop removes."""
    return int(math.floor(p * n + 0.5 + 1e-9))


def check_fraction(p: float, flag: str = "--p") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1 or not math.isfinite(p):
        raise SeamError(f"{flag} must be a fraction in [0, 1] (0.2 = 20%), got {p!r}")
    return float(p)


# ============================================================================ config and inputs


@dataclass
class SelectConfig(Settings):
    """How to choose the instructions to drop."""

    method: str = setting("seam", "seam | random | perplexity | reward-gap")
    p: float = setting(0.2, "fraction to drop (paper: 0.2)")
    variants: tuple[str, ...] = setting((), "seam: variants to use (default: all in the scores file); several = rank average")
    seed: int = setting(0, "random: the permutation seed")
    missing: str = setting("keep", "seam: rows without a score: keep (SEAM 0) | error")
    template: str = setting("stackllama", "perplexity / reward-gap: text template")
    max_prompt_tokens: int | None = setting(None, "model baselines: cut prompts to N tokens")
    max_response_tokens: int | None = setting(None, "model baselines: cut responses to N tokens")
    batch_tokens: int = setting(16384, "model baselines: padded tokens per batch")

    def validate(self) -> None:
        if self.method not in SELECT_METHODS:
            raise SeamError(f"--method {self.method!r}: unknown; use one of {', '.join(SELECT_METHODS)}")
        check_fraction(self.p)
        if self.missing not in MISSING_POLICIES:
            raise SeamError(f"--missing must be one of {', '.join(MISSING_POLICIES)}, got {self.missing!r}")
        self.variants = tuple(self.variants or ())


@dataclass
class SelectInputs:
    """What the methods may use; each method checks for what it needs."""

    scores: pd.DataFrame | None = None  # SEAM scores table (id, variant, seam, ...)
    pm: Any = None  # seam.models.loading.LoadedModel (perplexity)
    rm: Any = None  # LoadedModel (reward-gap)
    negatives: pd.DataFrame | None = None  # reward-gap for rows without a rejected response
    paths: dict = field(default_factory=dict)  # for the lineage: {"data": ..., "scores": ..., ...}


@dataclass
class Selection:
    kept: pd.DataFrame  # the kept instruction rows, in file order
    dropped: pd.DataFrame  # id, keep_score, order (0 = dropped first)
    keep_scores: pd.DataFrame  # id, keep_score for every row
    lineage: dict


# ============================================================================ methods


def _seam_scores(df: pd.DataFrame, cfg: SelectConfig, inputs: SelectInputs) -> tuple[np.ndarray, dict]:
    from scipy.stats import rankdata

    scores = inputs.scores
    if scores is None:
        raise SeamError("--method seam needs --scores FILE (the output of `seam score`)")
    need = {"id", "variant", "seam"}
    if not need <= set(map(str, scores.columns)):
        raise SeamError(f"--scores: needs columns id, variant, seam (found: {', '.join(map(str, scores.columns))}); "
                        "pass the --out file of `seam score`")
    s = scores[["id", "variant", "seam"]].copy()
    s["id"] = s["id"].astype(str)
    s["variant"] = s["variant"].astype(str)
    s["seam"] = pd.to_numeric(s["seam"], errors="coerce")
    if s["seam"].isna().any():
        bad = s.loc[s["seam"].isna()].iloc[0]
        raise SeamError(f"--scores: seam is not a number for id {bad['id']!r} variant {bad['variant']!r}; re-run seam score")
    if s.duplicated(["id", "variant"]).any():
        bad = s.loc[s.duplicated(["id", "variant"])].iloc[0]
        raise SeamError(f"--scores: id {bad['id']!r} variant {bad['variant']!r} appears twice; one row per (id, variant)")
    known = set(df["id"])
    unknown = sorted(set(s["id"]) - known)
    if unknown:
        raise SeamError(f"--scores: {len(unknown)} ids are not in --data (first: {unknown[0]!r}); "
                        "score and select the same instruction file")
    available = sorted(s["variant"].unique())
    variants = list(cfg.variants) or available
    absent = [v for v in variants if v not in available]
    if absent:
        raise SeamError(f"--variants {absent[0]!r} is not in the scores file (variants there: {', '.join(available) or 'none'})")
    table = s.pivot(index="id", columns="variant", values="seam").reindex(index=df["id"], columns=variants)
    missing = {v: int(table[v].isna().sum()) for v in variants}
    if cfg.missing == "error" and any(missing.values()):
        v = next(k for k, n in missing.items() if n)
        first = table.index[table[v].isna()][0]
        raise SeamError(f"--scores: no {v} SEAM for {missing[v]} instructions (first: id {first!r}); "
                        "score them, or use --missing keep to treat them as SEAM 0")
    values = table.fillna(0.0).to_numpy(np.float64)
    if len(variants) == 1:
        keep = values[:, 0]
        how = "seam"
    else:
        keep = np.mean([rankdata(values[:, j], method="average") for j in range(len(variants))], axis=0)
        how = "rank-average"
    return keep, {"variants": variants, "combine": how, "missing": missing}


def _random_scores(df, cfg, inputs):
    rng = np.random.default_rng(cfg.seed)
    return rng.permutation(len(df)).astype(np.float64), {"seed": cfg.seed}


def _perplexity_scores(df, cfg, inputs):
    if inputs.pm is None:
        raise SeamError("--method perplexity needs --pm DIR (the policy model whose perplexity ranks the data)")
    scorer = PolicyScorer(inputs.pm, get_template(cfg.template, inputs.pm.tokenizer), cfg.max_prompt_tokens,
                          cfg.max_response_tokens, cfg.batch_tokens)
    logp, tokens, trunc = scorer.score(df["prompt"].tolist(), df["chosen"].tolist())
    ppl = np.exp(-logp / np.maximum(tokens, 1))
    return -ppl, {"truncated": int(trunc.sum()), "perplexity_mean": float(ppl.mean()),
                  "pm_fingerprint": inputs.pm.fingerprint}


def _reward_gap_scores(df, cfg, inputs):
    if inputs.rm is None:
        raise SeamError("--method reward-gap needs --rm DIR (the reward model whose margin ranks the data)")
    has_rej = df["rejected"].notna().to_numpy()
    negs = inputs.negatives
    neg_ids = set(negs["id"].astype(str)) if negs is not None else set()
    lacking = [i for i, ok in zip(df["id"], has_rej) if not ok and i not in neg_ids]
    if lacking:
        raise SeamError(f"--method reward-gap: {len(lacking)} rows have no rejected response and no negatives "
                        f"(first: id {lacking[0]!r}); add rejected responses or pass --negatives FILE")
    scorer = RewardScorer(inputs.rm, get_template(cfg.template, inputs.rm.tokenizer), cfg.max_prompt_tokens,
                          cfg.max_response_tokens, cfg.batch_tokens)
    prompts, chosen = df["prompt"].tolist(), df["chosen"].tolist()
    r_gold = scorer.score(prompts, chosen)
    worse = np.full(len(df), np.nan)
    idx = np.flatnonzero(has_rej)
    if len(idx):
        worse[idx] = scorer.score([prompts[i] for i in idx], df["rejected"].iloc[idx].tolist())
    n_from_negatives = 0
    rest = np.flatnonzero(~has_rej)
    if len(rest):
        pos = {rid: i for i, rid in enumerate(df["id"])}
        sub = negs[negs["id"].astype(str).isin({df["id"].iloc[i] for i in rest})]
        rows = [pos[str(r)] for r in sub["id"]]
        rewards = scorer.score([prompts[i] for i in rows], sub["text"].tolist())
        best = pd.Series(rewards).groupby(np.asarray(rows)).max()
        worse[best.index.to_numpy()] = best.to_numpy()
        n_from_negatives = len(rest)
    return r_gold - worse, {"from_rejected": int(has_rej.sum()), "from_negatives": n_from_negatives,
                            "rm_fingerprint": inputs.rm.fingerprint, "truncated": int(scorer.truncated)}


SELECT_METHODS: dict[str, Callable[[pd.DataFrame, SelectConfig, SelectInputs], tuple[np.ndarray, dict]]] = {
    "seam": _seam_scores,
    "random": _random_scores,
    "perplexity": _perplexity_scores,
    "reward-gap": _reward_gap_scores,
}


# ============================================================================ selection


def keep_scores(df: pd.DataFrame, cfg: SelectConfig, inputs: SelectInputs | None = None) -> tuple[np.ndarray, dict]:
    """One keep score per row of `df` (lower = dropped first) and method details."""
    cfg.validate()
    values, info = SELECT_METHODS[cfg.method](df, cfg, inputs or SelectInputs())
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(df),) or not np.isfinite(values).all():
        raise SeamError(f"--method {cfg.method}: could not score every row (got {int((~np.isfinite(values)).sum())} "
                        "non-finite scores); check the inputs")
    return values, info


def select(df: pd.DataFrame, cfg: SelectConfig, inputs: SelectInputs | None = None) -> Selection:
    """Drop the `round(cfg.p * len(df))` rows with the lowest keep scores; record the lineage."""
    inputs = inputs or SelectInputs()
    values, info = keep_scores(df, cfg, inputs)
    return select_by_scores(df, values, cfg.method, cfg.p, cfg.to_dict(), info, inputs.paths)


def select_by_scores(df: pd.DataFrame, values: np.ndarray, method: str, p: float, config: dict, info: dict,
                     paths: dict) -> Selection:
    """Drop the `round(p * len(df))` rows with the lowest `values` (ties: input order); the Selection with
    its lineage (`config`, `info` and the input files `paths` recorded)."""
    n_drop = drop_count(len(df), p)
    order = np.argsort(values, kind="stable")
    drop_idx = order[:n_drop]
    mask = np.ones(len(df), dtype=bool)
    mask[drop_idx] = False
    kept = df.loc[mask].reset_index(drop=True)
    dropped = pd.DataFrame({"id": df["id"].to_numpy()[drop_idx], "keep_score": values[drop_idx],
                            "order": np.arange(n_drop)})
    all_scores = pd.DataFrame({"id": df["id"], "keep_score": values})
    lineage = new_lineage(
        "select", method=method, p=p, n_in=len(df), n_dropped=int(n_drop), n_kept=int(mask.sum()),
        config=config, info=info,
        inputs={k: describe_file(v, len(df) if k == "data" else None) for k, v in paths.items() if v},
        dropped_ids=dropped["id"].tolist(),
        cutoff=float(values[order[n_drop - 1]]) if n_drop else None)
    return Selection(kept, dropped, all_scores, lineage)


def write_selection(sel: Selection, out: str | os.PathLike, dropped_out: str | os.PathLike | None = None,
                    inputs: Iterable[Any] = ()) -> list[Path]:
    """Write the kept rows to `out`, its lineage sidecar and optionally the dropped ids + scores.
    Neither output may be one of `inputs` (default: the paths recorded in the lineage)."""
    inputs = list(inputs) or [v["path"] for v in sel.lineage.get("inputs", {}).values() if v]
    paths = [write_table(sel.kept, out, inputs)]
    lineage = dict(sel.lineage, output=str(Path(out).resolve()))
    if dropped_out:
        paths.append(write_table(sel.dropped, dropped_out, inputs, "--dropped"))
        lineage["dropped_file"] = str(Path(dropped_out).resolve())
    paths.append(write_lineage(out, lineage))
    return paths
