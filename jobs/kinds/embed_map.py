"""The `embed-map` job: sentence embeddings of a dataset's prompts projected to 2-D by PCA.

Payload ``{"dataset_id": int, "max_points": 20000, "seed": 0, "embedder": null}``. Embeddings are
cached on disk; the result holds ``instruction_id``, ``x``, ``y`` lists that the Explore page
colours by SEAM.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seam.errors import SeamError

from ..context import JobContext
from .common import int_field


def embed_map(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    from seam.negatives.embedding import Embedder  # lazy: pulls in torch and sentence-transformers

    store = ctx.store
    dataset_id = int_field(payload, "dataset_id", "embed-map")
    max_points = int(payload.get("max_points", 20000))
    frame = store.instructions(dataset_id)
    row_ids = np.asarray(list(store.instruction_ids(dataset_id).values()))
    if len(frame) < 3:
        raise SeamError(f"dataset {dataset_id} has {len(frame)} instructions; a map needs at least 3")
    keep = np.arange(len(frame))
    if len(keep) > max_points:
        keep = np.sort(np.random.default_rng(int(payload.get("seed", 0))).choice(len(keep), max_points, replace=False))
    prompts = frame["prompt"].iloc[keep].tolist()
    embedder = Embedder(payload.get("embedder"), device=payload.get("device", "auto"))
    ctx.log(f"embedding {len(prompts)} prompts with {embedder.name}")

    def tick(done: int, total: int, step: str) -> None:
        ctx.check_cancelled()
        ctx.progress(0.95 * done / max(total, 1), step)

    vectors = embedder.encode(prompts, progress=tick)
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    explained = (s[:2] ** 2 / max(float((s ** 2).sum()), 1e-12)).tolist()
    return {"dataset_id": dataset_id, "method": "pca", "embedder": embedder.name,
            "explained_variance": [round(e, 4) for e in explained],
            "instruction_id": row_ids[keep].tolist(),
            "x": np.round(xy[:, 0], 5).tolist(), "y": np.round(xy[:, 1], 5).tolist()}
