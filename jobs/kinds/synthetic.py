"""The `synthetic-score` job: fills a score run with deterministic made-up SEAM numbers (a pure function
of the payload seed and the instruction ids) in committed chunks. It exercises the whole job
path (claim, progress, chunked commits, cancel, crash-resume) without a model, and is what the
job tests and the store benchmark use.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from seam.errors import SeamError

from ..context import JobContext


def synthetic_frames(ext_ids: Sequence[str], variants: Sequence[str], n_negatives: int,
                     seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Made-up (details, scores) frames in DESIGN.md section 3 layout, a pure function of the inputs.

    Numbers follow the `paper` weighting and `sum` aggregation, so they are internally
    consistent (epsilon = max(rm_neg - rm_gold, 0), term = pm_logprob_mean * epsilon, seam = sum).
    """
    key = zlib.crc32("\x1f".join(ext_ids).encode())
    rng = np.random.default_rng([int(seed), key, len(variants), n_negatives])
    n_inst, n_var, k = len(ext_ids), len(variants), n_negatives
    shape = (n_inst, n_var, k)
    rm_gold = np.repeat(rng.normal(size=(n_inst, 1, 1)), n_var, axis=1)  # same gold reward for every variant
    rm_neg = rm_gold + rng.normal(-0.8, 1.0, size=shape)
    rm_gold_full = np.broadcast_to(rm_gold, shape)
    epsilon = np.maximum(rm_neg - rm_gold_full, 0.0)
    tokens = rng.integers(4, 80, size=shape)
    mean = -rng.uniform(0.3, 3.0, size=shape)
    logprob_sum = mean * tokens
    term = mean * epsilon
    details = pd.DataFrame({
        "id": np.repeat(np.asarray(ext_ids, dtype=object), n_var * k),
        "variant": np.tile(np.repeat(np.asarray(variants, dtype=object), k), n_inst),
        "neg_index": np.tile(np.arange(k), n_inst * n_var),
        "rm_gold": rm_gold_full.ravel(), "rm_neg": rm_neg.ravel(), "epsilon": epsilon.ravel(),
        "pm_logprob_sum": logprob_sum.ravel(), "pm_tokens": tokens.ravel(), "pm_logprob_mean": mean.ravel(),
        "term": term.ravel(),
    })
    scores = pd.DataFrame({
        "id": np.repeat(np.asarray(ext_ids, dtype=object), n_var),
        "variant": np.tile(np.asarray(variants, dtype=object), n_inst),
        "seam": term.sum(axis=2).ravel(),
        "n_negatives": np.full(n_inst * n_var, k),
        "n_misjudged": (epsilon > 0).sum(axis=2).ravel(),
        "rm_gold": rm_gold[:, :, 0].ravel(),
    })
    return details, scores


def synthetic_score(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Fill score run `score_run_id` with `synthetic_frames`, `chunk_size` instructions per chunk.

    Payload: score_run_id (required), seed (0), chunk_size (50), n_negatives (4); for tests:
    sleep_s (pause before each chunk), hold_s (pause inside each chunk's transaction, after its
    rows are written and before commit), fail_at_chunk (raise at that chunk index).
    """
    store = ctx.store
    try:
        run_id = int(payload["score_run_id"])
    except (KeyError, TypeError, ValueError):
        raise SeamError(f"synthetic-score payload needs an integer score_run_id, got {payload!r}") from None
    seed, size = int(payload.get("seed", 0)), int(payload.get("chunk_size", 50))
    k, sleep_s, hold_s = int(payload.get("n_negatives", 4)), float(payload.get("sleep_s", 0)), float(payload.get("hold_s", 0))
    fail_at = payload.get("fail_at_chunk")
    run = store.score_run(run_id)
    variants = list(run["variants"])
    ext_ids = list(store.instruction_ids(run["dataset_id"]))  # import order
    chunks = [ext_ids[i:i + size] for i in range(0, len(ext_ids), size)]
    done = ctx.done_chunks()
    if done:
        ctx.log(f"resuming: {len(done)} of {len(chunks)} chunks already committed")
    store.set_score_run_status(run_id, "running")
    written = 0
    for index, chunk in enumerate(chunks):
        key = str(index)
        if key in done:
            continue
        ctx.check_cancelled()
        if fail_at is not None and index == int(fail_at):
            raise RuntimeError(f"synthetic failure at chunk {index}")
        if sleep_s:
            time.sleep(sleep_s)
        details, scores = synthetic_frames(chunk, variants, k, seed)
        ctx.log(f"chunk {index} writing")

        def write(conn, details=details, scores=scores) -> None:  # noqa: ANN001
            store.save_score_results(run_id, details, scores, conn=conn)
            if hold_s:
                time.sleep(hold_s)

        if ctx.commit_chunk(key, write):
            written += len(details)
        ctx.progress((index + 1) / len(chunks), f"chunk {index + 1}/{len(chunks)}")
    store.set_score_run_status(run_id, "done")
    return {"chunks": len(chunks), "details_written": written}
