"""The on-policy ground truth of world v2: the paper's Definition 1 by Monte Carlo.

For each RL instruction I with golden answer g and n policy samples s_1..s_n (temperature 1):

    S(I) = 1/n * sum_j max(R(I∘s_j) - R(I∘g), 0) * [judge(s_j) < judge(g)]

R is the reward model, `judge` the programmatic gold judge (every golden answer scores 1.0). S is
the RM's over-reward of the policy's own worse answers: the harm RL on I would do. Two views split
it by why the sample is worse (the judge says whether the sample states the right answer):

* ``S_surface``: samples with the correct answer and a worse form (the planted, surface flaws);
* ``S_wrong``: samples with a wrong answer or none (computation and content errors, not planted).

``S = S_surface + S_wrong``. ``S_a`` / ``S_b`` are S over the even / odd samples: two independent
halves whose agreement is the label's split-half reliability. Nothing here is shown to a negative
generator or a SEAM score; it is computed before them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ...errors import SeamError
from ..gold_judge import judge_explain
from ..task import Task

GOLD_SCORE = 1.0


def judge_samples(tasks: Sequence[Task], samples: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(gold score [N, n], states the correct answer [N, n]) for every sample."""
    n = len(samples[0]) if samples else 0
    if any(len(s) != n for s in samples) or len(samples) != len(tasks):
        raise SeamError("judge_samples: give one list of n samples per task, the same n for all")
    score = np.zeros((len(tasks), n))
    correct = np.zeros((len(tasks), n), dtype=bool)
    for i, (task, row) in enumerate(zip(tasks, samples)):
        for j, text in enumerate(row):
            verdict = judge_explain(task, text)
            score[i, j] = verdict["score"]
            correct[i, j] = verdict["correct"]
    return score, correct


def on_policy_label(ids: Sequence[str], rm_gold: np.ndarray, rm_samples: np.ndarray, gold_score: np.ndarray,
                    correct: np.ndarray) -> pd.DataFrame:
    """Per instruction: S, its views and halves, and what went into them (see the module docstring)."""
    rm_gold = np.asarray(rm_gold, dtype=float)
    rm_samples = np.asarray(rm_samples, dtype=float)
    if rm_samples.shape != gold_score.shape or rm_samples.shape[0] != len(rm_gold) or rm_samples.shape[1] < 2:
        raise SeamError(f"on_policy_label: shapes {rm_samples.shape}, {gold_score.shape}, {rm_gold.shape} do not "
                        "match (need [N, n] samples with n >= 2 and N gold rewards)")
    eps = np.maximum(rm_samples - rm_gold[:, None], 0.0)
    worse = gold_score < GOLD_SCORE - 1e-9
    harm = eps * worse
    return pd.DataFrame({
        "id": list(ids),
        "S": harm.mean(axis=1),
        "S_surface": (harm * correct).mean(axis=1),
        "S_wrong": (harm * ~correct).mean(axis=1),
        "S_a": harm[:, 0::2].mean(axis=1),
        "S_b": harm[:, 1::2].mean(axis=1),
        "rm_gold": rm_gold,
        "worse_share": worse.mean(axis=1),
        "fooled_share": (worse & (eps > 0)).mean(axis=1),
        "correct_share": correct.mean(axis=1),
        "gold_score_mean": gold_score.mean(axis=1),
    })
