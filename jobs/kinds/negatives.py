"""The `negatives` job: build one variant's negatives for a stored dataset, committed chunk by chunk.

Payload: ``{"dataset_id": int, "builder": "contrast"|"llm"|"adv", "config": {...}, "rm_model_id": int,
"replace": false, "chunk_size": 50}``. ``config`` holds the builder's config fields (see
`seam.negatives`). Instructions are processed in fixed chunks of the dataset's import order; each
chunk's negatives and its done-marker are written in one transaction, so a killed worker resumes
without losing or duplicating rows. The contrast builder searches the whole dataset as its corpus
whatever the chunk. With ``replace``, the variant's old negatives are removed in the first chunk's
transaction.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from db.store import Store
from seam.errors import SeamError
from seam.negatives import BUILDERS, make_builder

from ..context import JobContext
from .common import load_model, model_row


def _builder(store: Store, payload: dict, instructions: pd.DataFrame):
    name = payload.get("builder")
    if name not in BUILDERS:
        raise SeamError(f"negatives payload: builder {name!r} is not one of {', '.join(BUILDERS)}")
    raw = payload.get("config") or {}
    if not isinstance(raw, dict):
        raise SeamError(f"negatives payload: config must be an object of {name} settings, got {raw!r}")
    cfg = BUILDERS[name].Config.from_dict(raw, where=f"negatives payload: {name} config")
    kwargs: dict[str, Any] = {}
    if name == "contrast" and not cfg.corpus:
        kwargs["corpus"] = instructions  # the whole dataset, whichever chunk is being built
    if name == "adv":
        if payload.get("rm_model_id") is None and not cfg.rm:
            raise SeamError("the adv builder needs a reward model: pass rm_model_id (a registered RM)")
        if payload.get("rm_model_id") is not None:
            row = model_row(store, payload["rm_model_id"], "rm")
            kwargs["rm"] = load_model(row, cfg.device, cfg.dtype)
    return make_builder(name, cfg, **kwargs), name


def negatives_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    try:
        ds = int(payload["dataset_id"])
    except (KeyError, TypeError, ValueError):
        raise SeamError(f"negatives payload needs an integer dataset_id, got {payload!r}") from None
    size = int(payload.get("chunk_size", 50))
    instructions = store.instructions(ds)
    if instructions.empty:
        raise SeamError(f"dataset {ds} has no instructions")
    builder, name = _builder(store, payload, instructions)
    ids = instructions["id"].tolist()
    chunks = [ids[i:i + size] for i in range(0, len(ids), size)]
    done = ctx.done_chunks()
    if done:
        ctx.log(f"resuming: {len(done)} of {len(chunks)} chunks already committed")
    by_id = instructions.set_index("id", drop=False)
    written, stats_all = 0, []
    for index, chunk_ids in enumerate(chunks):
        key = str(index)
        if key in done:
            continue
        ctx.check_cancelled()

        def tick(d: int, total: int, step: str = "", index=index) -> None:
            ctx.progress((index + d / max(total, 1)) / len(chunks), f"{name} chunk {index + 1}/{len(chunks)} {step}".strip())

        frame, stats = builder.build(by_id.loc[chunk_ids].reset_index(drop=True), tick)
        stats_all.append(stats)
        replace = bool(payload.get("replace")) and index == 0

        def write(conn, frame=frame, replace=replace) -> None:  # noqa: ANN001
            if replace:  # drop the variant's old negatives for the whole dataset, in this same transaction
                all_ids = store.instruction_ids(ds, conn=conn).values()
                store._delete_negatives(conn, ds, {(i, name) for i in all_ids})  # noqa: SLF001
            if len(frame):
                store.import_negatives(ds, frame, conn=conn)

        if ctx.commit_chunk(key, write):
            written += len(frame)
        ctx.log(f"chunk {index + 1}/{len(chunks)}: {len(frame)} {name} negatives for {len(chunk_ids)} instructions")
        ctx.progress((index + 1) / len(chunks), f"{name} chunk {index + 1}/{len(chunks)} committed")
    fewer = sum(int(s.get("fewer_than_k", 0) or 0) for s in stats_all)
    return {"builder": name, "chunks": len(chunks), "negatives_written": written, "instructions_with_fewer_than_k": fewer}
