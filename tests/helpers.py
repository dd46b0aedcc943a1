"""Test helpers shared by several test files (not fixtures)."""

from __future__ import annotations

import numpy as np

WORDS = ("the a quick brown fox two plus four six letters banana capital France Paris list sort "
         "answer question is of in and 3 17 71 kilometres metres").split()


def random_texts(n_prompts: int, seed: int = 0, max_negs: int = 6):
    """Random prompts (longer) with a few random responses (shorter) each."""
    rng = np.random.default_rng(seed)
    prompts, responses = [], []
    for _ in range(n_prompts):
        p = " ".join(rng.choice(WORDS, rng.integers(8, 30)))
        for _ in range(rng.integers(1, max_negs + 1)):
            prompts.append(p)
            responses.append(" ".join(rng.choice(WORDS, rng.integers(1, 15))))
    return prompts, responses
