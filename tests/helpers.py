"""Test helpers shared by several test files (not fixtures)."""

from __future__ import annotations

import json

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


def write_score_files(folder, n_prompts: int, seed: int, max_negs: int, variants=("contrast",), meta: bool = False):
    """rl.jsonl and negs.jsonl in `folder` from `random_texts`: the inputs of a small `seam score` run.
    Negatives cycle through `variants`; with `meta`, each carries {"k": its index}. Returns (instructions, negatives)."""
    prompts, responses = random_texts(n_prompts, seed=seed, max_negs=max_negs)
    ids = {p: f"q{i}" for i, p in enumerate(dict.fromkeys(prompts))}
    inst = [{"id": ids[p], "prompt": p, "chosen": "two plus two is four"} for p in ids]
    negs = [{"id": ids[p], "variant": variants[k % len(variants)], "text": r, **({"meta": {"k": k}} if meta else {})}
            for k, (p, r) in enumerate(zip(prompts, responses))]
    (folder / "rl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in inst))
    (folder / "negs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in negs))
    return inst, negs

