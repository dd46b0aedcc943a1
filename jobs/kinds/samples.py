"""The `generate-samples` job: PM samples for blind annotation, stored as negatives of variant ``policy``.

Payload ``{"pm_model_id", "dataset_id", "n_instructions": 20, "samples": 2, "max_new_tokens": 48,
"seed": 0, "temperature": 1.0, "order": "lowest-seam"|"random", "score_run_id": int|null,
"variant": str|null, "rm_model_id": int|null}``. Each sample's meta is ``{"source": "pm-sample",
"seed", "sample", "job_id", "pm_model_id"[, "rm_reward", "rm_model_id"]}``: with an RM, each
sample's reward is stored too, so the Annotate page can say whether the RM agrees with the
annotator. Instructions that already hold policy samples from another job are skipped; chunks of
8 instructions are committed one by one, so a resumed job redoes only the missing chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from db.queries import instruction, ordered_instructions, policy_samples
from db.store import Store
from seam.errors import SeamError

from ..context import JobContext
from .common import int_field, load_model, model_row

SAMPLE_CHUNK = 8
ORDERS = ("lowest-seam", "random")


def _sample_candidates(store: Store, payload: dict, job_id: int) -> list[int]:
    """Instruction row ids to sample, in order, skipping those holding other jobs' policy samples."""
    dataset_id = int_field(payload, "dataset_id", "generate-samples")
    order = payload.get("order", "lowest-seam")
    if order not in ORDERS:
        raise SeamError(f"generate-samples order {order!r} is not one of {', '.join(ORDERS)}")
    ids = list(store.instruction_ids(dataset_id).values())
    if not ids:
        raise SeamError(f"dataset {dataset_id} has no instructions; import an RL set first")
    if order == "lowest-seam":
        run_id, variant = payload.get("score_run_id"), payload.get("variant")
        if run_id is None or not variant:
            raise SeamError("generate-samples with order lowest-seam needs score_run_id and variant; "
                            "pick a score run, or use order random")
        ranked = ordered_instructions(store, int(run_id), str(variant), limit=len(ids))["instruction_id"].tolist()
        ids = ranked + sorted(set(ids) - set(ranked))
    else:
        rng = np.random.default_rng(int(payload.get("seed", 0)))
        ids = [ids[i] for i in rng.permutation(len(ids))]
    existing = policy_samples(store, dataset_id)
    taken = {int(i) for i, m in zip(existing["instruction_id"], existing["meta"]) if m.get("job_id") != job_id}
    n = int(payload.get("n_instructions", 20))
    return [i for i in ids if i not in taken][:n]


def generate_samples(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    # lazy: these pull in torch and transformers, which the dashboard's import of the registry does not need
    from seam.models.scoring import RewardScorer
    from seam.models.templates import get_template
    from seam.train.eval import generate

    store = ctx.store
    dataset_id = int_field(payload, "dataset_id", "generate-samples")
    pm_row = model_row(store, int_field(payload, "pm_model_id", "generate-samples"), "pm")
    rm_id = payload.get("rm_model_id")
    rm_row = model_row(store, int(rm_id), "rm") if rm_id is not None else None
    samples, seed = int(payload.get("samples", 2)), int(payload.get("seed", 0))
    if samples < 2:
        raise SeamError(f"generate-samples needs at least 2 samples per instruction for a pair, got {samples}")
    chosen = _sample_candidates(store, payload, ctx.job_id)
    chunks = [chosen[a:a + SAMPLE_CHUNK] for a in range(0, len(chosen), SAMPLE_CHUNK)]
    done = ctx.done_chunks()
    ctx.progress(len(done) / max(len(chunks), 1), "loading the PM", force=True)
    device = payload.get("device", "auto")
    pm = load_model(pm_row, device)
    template = get_template(pm_row.get("template") or "stackllama", pm.tokenizer)
    rm = load_model(rm_row, device) if rm_row else None
    rm_scorer = RewardScorer(rm, get_template(rm_row.get("template") or "stackllama", rm.tokenizer)) if rm else None
    ctx.log(f"sampling {samples} responses for {len(chosen)} instructions with {pm_row['name']}"
            + (f", rewards by {rm_row['name']}" if rm_row else ""))
    written = 0
    for k, chunk in enumerate(chunks):
        if str(k) in done:
            continue
        ctx.check_cancelled()
        rows = [instruction(store, i) for i in chunk]
        prompts = [r["prompt"] for r in rows for _ in range(samples)]
        texts = generate(pm, prompts, template, max_new_tokens=int(payload.get("max_new_tokens", 48)),
                         temperature=float(payload.get("temperature", 1.0)), seed=seed + k)
        rewards = rm_scorer.score(prompts, texts) if rm_scorer else None
        frame = pd.DataFrame({
            "id": [r["id"] for r in rows for _ in range(samples)],
            "variant": "policy",
            "text": texts,
            "neg_index": [j for _ in rows for j in range(samples)],
            "meta": [{"source": "pm-sample", "seed": seed + k, "sample": j, "job_id": ctx.job_id,
                      "pm_model_id": int(pm_row["id"]),
                      **({"rm_reward": float(rewards[n * samples + j]), "rm_model_id": int(rm_row["id"])} if rm_scorer else {})}
                     for n in range(len(rows)) for j in range(samples)],
        })
        if ctx.commit_chunk(str(k), lambda conn, frame=frame: store.import_negatives(dataset_id, frame, conn=conn)):
            written += len(frame)
        ctx.progress((k + 1) / len(chunks), f"chunk {k + 1}/{len(chunks)}")
    return {"instructions": len(chosen), "samples_written": written, "variant": "policy"}
