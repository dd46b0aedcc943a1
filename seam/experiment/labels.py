"""Filter arms that read a hidden label file: `oracle` (the positive control) and `skill-prior`.

The label file is JSONL with one row per instruction: ``id``, ``S`` (the on-policy label: how much
training on the instruction hurts; higher = more harmful) and ``skill``. A world-v2 study writes
exactly this at ``<study>/hidden/label.jsonl`` (`seam.testbed.v2.study`, stage label).

Selection drops the lowest p% by a keep score (low = bad), so both arms use keep = -harm:

* ``oracle``       keep = -S: the round(p * n) instructions with the highest S are dropped.
* ``skill-prior``  keep = -prior, where prior is the cross-fitted mean S of the instruction's skill in
                   the *other* folds (`seam.testbed.v2.report.skill_prior`, 5 folds): an instruction's
                   own S never enters its score.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import read_table
from ..errors import SeamError
from ..select import Selection, select_by_scores
from ..testbed.v2.report import skill_prior

PROJECT_LABEL = Path("hidden") / "label.jsonl"  # where a world-v2 study (a project folder) keeps its label


def project_label(project: str | os.PathLike | None) -> Path | None:
    """The on-policy label file of a project folder (what the oracle arm drops by), when it has one."""
    path = Path(project) / PROJECT_LABEL if project else None
    return path if path is not None and path.is_file() else None

LABEL_COLUMNS = ("id", "S", "skill")
PRIOR_FOLDS = 5


def load_label(path: str | os.PathLike) -> pd.DataFrame:
    """The label file as a table with str ids, float S and str skill; one-line errors for bad files."""
    df = read_table(path)  # a missing or unreadable file: read_table's one-line SeamError
    missing = [c for c in LABEL_COLUMNS if c not in df.columns]
    if missing:
        raise SeamError(f"--label {path}: no {', '.join(missing)} column; the label file needs id, S and skill "
                        "(a world-v2 study's hidden/label.jsonl)")
    out = pd.DataFrame({"id": df["id"].astype(str), "S": pd.to_numeric(df["S"], errors="coerce"),
                        "skill": df["skill"].astype(str)})
    if out["S"].isna().any() or not np.isfinite(out["S"].to_numpy(np.float64)).all():
        bad = out.loc[~np.isfinite(out["S"].to_numpy(np.float64)), "id"].iloc[0]
        raise SeamError(f"--label {path}: S is not a finite number for id {bad!r}")
    if out["id"].duplicated().any():
        raise SeamError(f"--label {path}: id {out.loc[out['id'].duplicated(), 'id'].iloc[0]!r} appears twice")
    return out


def label_keep_scores(ids: pd.Series, label: pd.DataFrame, method: str, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Keep scores (lower = dropped first) of the instructions `ids` for the oracle / skill-prior arm."""
    ids = ids.astype(str)
    table = label.set_index("id").reindex(ids)
    absent = ids[table["S"].isna().to_numpy()]
    if len(absent):
        raise SeamError(f"--label: {len(absent)} RL instructions have no label row (first: id {absent.iloc[0]!r}); "
                        "use the label file of the study that built this RL set")
    S = table["S"].to_numpy(np.float64)
    if method == "oracle":
        return -S, {"label": "S", "drop": "highest S"}
    if method == "skill-prior":
        prior = skill_prior(table["skill"].tolist(), S, folds=PRIOR_FOLDS, seed=seed)
        return -prior, {"label": "skill prior (cross-fitted mean S of the skill in the other folds)",
                        "folds": PRIOR_FOLDS, "fold_seed": seed, "drop": "highest prior"}
    raise SeamError(f"{method!r} is not a label arm; use oracle or skill-prior")


def label_selection(df: pd.DataFrame, label: pd.DataFrame, method: str, p: float, paths: dict,
                    seed: int = 0) -> Selection:
    """Drop the `round(p * len(df))` instructions with the lowest keep score (as `seam.select.select`)."""
    values, info = label_keep_scores(df["id"], label, method, seed)
    return select_by_scores(df, values, method, p, {"method": method, "p": p, "fold_seed": seed}, info, paths)
