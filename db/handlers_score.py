"""The `score` job: SEAM for a score run, committed chunk by chunk so a killed worker resumes exactly.

Payload: ``{"score_run_id": int, "chunk_size": 64}``. Everything else comes from the store: the
run's dataset, variants, settings (template, weighting, aggregate, max_*_tokens, batch_tokens,
device, dtype) and its registered PM and RM. Chunks are fixed by the dataset's import order and
``chunk_size``, so a resumed job splits the work exactly as the first attempt did; each chunk's
rows and its done-marker are written in one transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seam.errors import SeamError

if TYPE_CHECKING:
    from .jobs import JobContext

SETTING_KEYS = ("template", "weighting", "aggregate", "max_prompt_tokens", "max_response_tokens", "batch_tokens")


def _model_row(store, model_id, role: str) -> dict[str, Any]:
    if model_id is None:
        raise SeamError(f"the score run has no {role.upper()}; register one and create the run with it")
    models = store.models()
    row = models[models["id"] == int(model_id)]
    if row.empty:
        raise SeamError(f"registered model {model_id} ({role}) not found in {store.display}")
    return row.iloc[0].to_dict()


def load_run_models(store, run: dict, settings: dict):
    from seam.models.loading import load_pm, load_rm

    pm_row = _model_row(store, run.get("pm_model_id"), "pm")
    rm_row = _model_row(store, run.get("rm_model_id"), "rm")
    device = settings.get("device", "auto")
    pm = load_pm(pm_row["path"], pm_row.get("adapter"), device, settings.get("dtype") or pm_row.get("dtype") or "auto")
    rm = load_rm(rm_row["path"], rm_row.get("adapter"), device, settings.get("dtype") or rm_row.get("dtype") or "auto")
    return pm, rm


def score_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    from seam.score.pipeline import ScoreConfig, SeamScorer

    store = ctx.store
    try:
        run_id = int(payload["score_run_id"])
    except (KeyError, TypeError, ValueError):
        raise SeamError(f"score payload needs an integer score_run_id, got {payload!r}") from None
    size = int(payload.get("chunk_size", 64))
    run = store.score_run(run_id)
    settings = dict(run.get("settings") or {})
    variants = list(run["variants"])
    instructions = store.instructions(run["dataset_id"])
    negatives = store.negatives(run["dataset_id"])
    negatives = negatives[negatives["variant"].isin(variants)]
    missing = set(variants) - set(negatives["variant"])
    if missing:
        raise SeamError(f"the dataset has no negatives for variant(s) {', '.join(sorted(missing))}; build them first")
    ids = instructions["id"].tolist()
    chunks = [ids[i:i + size] for i in range(0, len(ids), size)]
    done = ctx.done_chunks()
    if done:
        ctx.log(f"resuming: {len(done)} of {len(chunks)} chunks already committed")
    ctx.progress(len(done) / max(len(chunks), 1), "loading models")
    pm, rm = load_run_models(store, run, settings)
    cfg = ScoreConfig(**{k: settings[k] for k in SETTING_KEYS if settings.get(k) is not None},
                      chunk_instructions=size, variants=tuple(variants))
    scorer = SeamScorer(pm, rm, cfg)
    ctx.log(f"scoring {len(ids)} instructions x {len(variants)} variants on {pm.info['device']}/{pm.info['dtype']}")
    store.set_score_run_status(run_id, "running")
    by_id = instructions.set_index("id", drop=False)
    written = 0
    for index, chunk_ids in enumerate(chunks):
        key = str(index)
        if key in done:
            continue
        ctx.check_cancelled()
        inst = by_id.loc[chunk_ids].reset_index(drop=True)
        negs = negatives[negatives["id"].isin(set(chunk_ids))]

        def tick(d: int, total: int, step: str, index=index) -> None:
            ctx.progress((index + d / max(total, 1)) / len(chunks), f"chunk {index + 1}/{len(chunks)}: {step}")

        results = list(scorer.iter_chunks(inst, negs, progress=tick))
        details = [r.details for r in results if len(r.details)]
        scores = [r.scores for r in results if len(r.scores)]

        def write(conn, details=details, scores=scores) -> None:  # noqa: ANN001
            import pandas as pd

            if details:
                store.save_score_results(run_id, pd.concat(details, ignore_index=True),
                                         pd.concat(scores, ignore_index=True), conn=conn)

        if ctx.commit_chunk(key, write):
            written += sum(len(d) for d in details)
        ctx.progress((index + 1) / len(chunks), f"chunk {index + 1}/{len(chunks)} committed")
    s = scorer.stats
    if s.pm_truncated or s.rm_truncated:
        ctx.log(f"truncated responses: {s.pm_truncated} for the PM, {s.rm_truncated} for the RM")
    if s.without_negatives:
        ctx.log(f"{s.without_negatives} instructions have no negatives and get no SEAM row")
    store.set_score_run_status(run_id, "done")
    return {"chunks": len(chunks), "details_written": written, "pm_truncated": s.pm_truncated,
            "rm_truncated": s.rm_truncated}
