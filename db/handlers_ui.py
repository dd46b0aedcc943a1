"""Job kinds the dashboard enqueues besides scoring: validate a checkpoint, sample the PM, map embeddings.

* ``validate-model``   ``{"model_id": int, "device": "auto"}``: loads the registered checkpoint in the
  worker, runs one forward pass through its template, stores the fingerprint and a report on the
  model row (``meta["validation"]``); the job result is the report. A checkpoint that fails to
  load fails the job with the loader's message (also recorded on the model row).
* ``generate-samples`` ``{"pm_model_id", "dataset_id", "n_instructions": 20, "samples": 2,
  "max_new_tokens": 48, "seed": 0, "temperature": 1.0, "order": "lowest-seam"|"random",
  "score_run_id": int|null, "variant": str|null, "rm_model_id": int|null}``: PM samples for blind
  annotation, stored as negatives of variant ``policy`` (meta ``{"source": "pm-sample", "seed",
  "sample", "job_id", "pm_model_id"[, "rm_reward", "rm_model_id"]}``). With an RM, each sample's
  reward is stored too, so the Annotate page can say whether the RM agrees with the annotator.
  Instructions that already hold policy samples from another job are skipped; chunks of 8
  instructions are committed one by one, so a resumed job redoes only the missing chunks.
* ``embed-map``        ``{"dataset_id": int, "max_points": 20000, "seed": 0, "embedder": null}``:
  sentence embeddings of the prompts (cached on disk) projected to 2-D by PCA; the result holds
  ``instruction_id``, ``x``, ``y`` lists that the Explore page colours by SEAM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from seam.errors import SeamError

if TYPE_CHECKING:
    from .jobs import JobContext

SAMPLE_CHUNK = 8
ORDERS = ("lowest-seam", "random")


def _int(payload: dict, key: str, kind: str) -> int:
    try:
        return int(payload[key])
    except (KeyError, TypeError, ValueError):
        raise SeamError(f"{kind} payload needs an integer {key}, got {payload.get(key)!r}") from None


def _model(store, model_id: int, role: str | None = None) -> dict[str, Any]:  # noqa: ANN001
    models = store.models()
    row = models[models["id"] == int(model_id)]
    if row.empty:
        raise SeamError(f"no registered model {model_id} in {store.display}; register it on the Models page")
    out = row.iloc[0].to_dict()
    if role and out["role"] != role:
        raise SeamError(f"model {model_id} ({out['name']}) is registered as {out['role'].upper()}, not {role.upper()}")
    return out


def _load(row: dict, device: str):  # noqa: ANN202
    from seam.models.loading import load_pm, load_rm

    loader = load_pm if row["role"] == "pm" else load_rm
    return loader(row["path"], row.get("adapter") or None, device, row.get("dtype") or "auto")


# --- validate-model -------------------------------------------------------------------------------

def validate_model(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    from seam.models.scoring import PolicyScorer, RewardScorer
    from seam.models.templates import get_template

    from .queries import set_model_validation

    store = ctx.store
    model_id = _int(payload, "model_id", "validate-model")
    row = _model(store, model_id)
    ctx.progress(0.1, f"loading {row['role'].upper()} {row['path']}", force=True)
    try:
        loaded = _load(row, payload.get("device", "auto"))
        ctx.progress(0.7, "one forward pass")
        template = get_template(row.get("template") or "stackllama", loaded.tokenizer)
        prompt, response = "What is two plus two?", "Two plus two is four."
        if row["role"] == "pm":
            lp, tokens, _ = PolicyScorer(loaded, template).score([prompt], [response])
            check = {"prompt": prompt, "response": response, "logprob_mean": float(lp[0] / max(tokens[0], 1)),
                     "tokens": int(tokens[0])}
        else:
            check = {"prompt": prompt, "response": response,
                     "reward": float(RewardScorer(loaded, template).score([prompt], [response])[0])}
    except SeamError as exc:
        set_model_validation(store, model_id, fingerprint=None, report={"ok": False, "error": str(exc)})
        raise
    cfg = loaded.model.config
    report = {
        "ok": True,
        "fingerprint": loaded.fingerprint,
        "architecture": ", ".join(getattr(cfg, "architectures", None) or [type(loaded.model).__name__]),
        "model_type": getattr(cfg, "model_type", None),
        "parameters": int(sum(p.numel() for p in loaded.model.parameters())),
        "dtype": loaded.info.get("dtype"),
        "device": loaded.info.get("device"),
        "vocab_size": len(loaded.tokenizer),
        "eos_token": loaded.tokenizer.eos_token,
        "max_positions": getattr(cfg, "max_position_embeddings", None),
        "template": row.get("template"),
        "adapter": row.get("adapter"),
        "check": check,
    }
    set_model_validation(store, model_id, fingerprint=loaded.fingerprint, report=report)
    ctx.log(f"validated {row['name']}: {report['architecture']}, {report['parameters']:,} parameters, "
            f"{report['dtype']} on {report['device']}")
    return report


# --- generate-samples -----------------------------------------------------------------------------

def _sample_candidates(store, payload: dict, job_id: int) -> list[int]:  # noqa: ANN001
    """Instruction row ids to sample, in order, skipping those holding other jobs' policy samples."""
    from .queries import ordered_instructions, policy_samples

    dataset_id = _int(payload, "dataset_id", "generate-samples")
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
    from seam.models.scoring import RewardScorer
    from seam.models.templates import get_template
    from seam.train.eval import generate

    from .queries import instruction

    store = ctx.store
    dataset_id = _int(payload, "dataset_id", "generate-samples")
    pm_row = _model(store, _int(payload, "pm_model_id", "generate-samples"), "pm")
    rm_id = payload.get("rm_model_id")
    rm_row = _model(store, int(rm_id), "rm") if rm_id is not None else None
    samples, seed = int(payload.get("samples", 2)), int(payload.get("seed", 0))
    if samples < 2:
        raise SeamError(f"generate-samples needs at least 2 samples per instruction for a pair, got {samples}")
    chosen = _sample_candidates(store, payload, ctx.job_id)
    chunks = [chosen[a:a + SAMPLE_CHUNK] for a in range(0, len(chosen), SAMPLE_CHUNK)]
    done = ctx.done_chunks()
    ctx.progress(len(done) / max(len(chunks), 1), "loading the PM", force=True)
    device = payload.get("device", "auto")
    pm = _load(pm_row, device)
    template = get_template(pm_row.get("template") or "stackllama", pm.tokenizer)
    rm = _load(rm_row, device) if rm_row else None
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


# --- embed-map ------------------------------------------------------------------------------------

def embed_map(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    from seam.negatives.embedding import Embedder

    store = ctx.store
    dataset_id = _int(payload, "dataset_id", "embed-map")
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


KINDS = {"validate-model": validate_model, "generate-samples": generate_samples, "embed-map": embed_map}
