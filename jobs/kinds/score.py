"""The `score` job: SEAM for a score run, committed chunk by chunk so a killed worker resumes exactly.

Payload: ``{"score_run_id": int, "chunk_size": N}`` (default: the settings' chunk_instructions).
Everything else comes from the store: the run's dataset, variants, settings (a `ScoreConfig` as a
dict: checked again here with `ScoreConfig.from_dict`) and its registered PM and RM. Chunks are fixed by the dataset's import order and
``chunk_size``, so a resumed job splits the work exactly as the first attempt did; each chunk's
rows and its done-marker are written in one transaction.

The pieces are shared with the Ray backend (jobs.ray_backend), which runs `score_chunk` in Ray
actors instead of this process: `plan_score_job` (inputs, settings, the chunks and their keys),
`load_models`, `score_chunk` (the model work of one chunk) and `chunk_writer` (its rows), so
both backends compute and store the same numbers under the same chunk keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from db.store import Store
from seam.errors import SeamError
from seam.score.config import ScoreConfig

from ..context import JobContext
from .common import model_row, rm_label

def model_specs(store: Store, run: dict, config: ScoreConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pm, rm) as plain dicts (path, adapter, device, dtype): what `load_models` needs, anywhere."""
    specs = []
    for role in ("pm", "rm"):
        if run.get(f"{role}_model_id") is None:
            raise SeamError(f"the score run has no {role.upper()}; register one and create the run with it")
        row = model_row(store, run[f"{role}_model_id"], role)
        dtype = config.dtype if config.dtype != "auto" else (row.get("dtype") or "auto")  # the model's own default
        specs.append({"path": row["path"], "adapter": row.get("adapter"), "device": config.device, "dtype": dtype,
                      **({"label": rm_label(row)} if role == "rm" else {})})
    return specs[0], specs[1]


def load_models(pm_spec: dict[str, Any], rm_spec: dict[str, Any]):
    from seam.models.loading import load_pm, load_rm  # lazy: pulls in torch and transformers

    pm = load_pm(pm_spec["path"], pm_spec["adapter"], pm_spec["device"], pm_spec["dtype"])
    rm = load_rm(rm_spec["path"], rm_spec["adapter"], rm_spec["device"], rm_spec["dtype"], label=rm_spec.get("label"))
    return pm, rm


def load_run_models(store: Store, run: dict, config: ScoreConfig):
    return load_models(*model_specs(store, run, config))


@dataclass
class ScorePlan:
    """Everything a backend needs to run one `score` job; a pure function of the payload and the store."""

    run_id: int
    run: dict[str, Any]
    config: ScoreConfig  # the run's settings, with its variants and this job's chunk size
    variants: list[str]
    chunk_size: int
    instructions: pd.DataFrame  # indexed by external id (the id column kept)
    negatives: pd.DataFrame  # the run's variants only
    chunks: list[list[str]]  # instruction ids per chunk; chunk k has key str(k)

    def config_kwargs(self) -> dict[str, Any]:
        """The `ScoreConfig` as plain values (they travel to a Ray actor)."""
        return self.config.to_dict()

    def chunk_inputs(self, index: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(instructions, negatives) of chunk `index`."""
        ids = self.chunks[index]
        inst = self.instructions.loc[ids].reset_index(drop=True)
        return inst, self.negatives[self.negatives["id"].isin(set(ids))]


def plan_score_job(store: Store, payload: dict[str, Any]) -> ScorePlan:
    try:
        run_id = int(payload["score_run_id"])
    except (KeyError, TypeError, ValueError):
        raise SeamError(f"score payload needs an integer score_run_id, got {payload!r}") from None
    run = store.score_run(run_id)
    settings = dict(run.get("settings") or {})
    # runs created before chunk_instructions was stored were chunked by 64
    size = int(payload.get("chunk_size") or settings.get("chunk_instructions") or 64)
    if size < 1:
        raise SeamError(f"score payload chunk_size must be >= 1, got {size}")
    variants = list(run["variants"])
    config = ScoreConfig.from_dict({**settings, "chunk_instructions": size, "variants": variants},
                                   where=f"score run {run_id} settings")
    instructions = store.instructions(run["dataset_id"])
    negatives = store.negatives(run["dataset_id"])
    negatives = negatives[negatives["variant"].isin(variants)]
    missing = set(variants) - set(negatives["variant"])
    if missing:
        raise SeamError(f"the dataset has no negatives for variant(s) {', '.join(sorted(missing))}; build them first")
    ids = instructions["id"].tolist()
    return ScorePlan(run_id=run_id, run=run, config=config, variants=variants,
                     chunk_size=size, instructions=instructions.set_index("id", drop=False), negatives=negatives,
                     chunks=[ids[i:i + size] for i in range(0, len(ids), size)])


def make_scorer(pm, rm, config_kwargs: dict[str, Any]):
    from seam.score.pipeline import SeamScorer  # lazy: pulls in torch

    return SeamScorer(pm, rm, ScoreConfig.from_dict(config_kwargs))


def score_chunk(scorer, inst: pd.DataFrame, negs: pd.DataFrame,
                progress: Callable[[int, int, str], None] | None = None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The model work of one chunk: (details, scores) frames, or (None, None) when it has no negatives."""
    results = list(scorer.iter_chunks(inst, negs, progress=progress))
    details = [r.details for r in results if len(r.details)]
    scores = [r.scores for r in results if len(r.scores)]
    if not details:
        return None, None
    return pd.concat(details, ignore_index=True), pd.concat(scores, ignore_index=True)


def chunk_writer(store: Store, run_id: int, details: pd.DataFrame | None, scores: pd.DataFrame | None):
    """`writer(conn)` for `ctx.commit_chunk`: the chunk's rows in the chunk's transaction."""

    def write(conn) -> None:  # noqa: ANN001
        if details is not None:
            store.save_score_results(run_id, details, scores, conn=conn)

    return write


def score_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    plan = plan_score_job(store, payload)
    run_id, chunks = plan.run_id, plan.chunks
    done = ctx.done_chunks()
    if done:
        ctx.log(f"resuming: {len(done)} of {len(chunks)} chunks already committed")
    ctx.progress(len(done) / max(len(chunks), 1), "loading models")
    pm, rm = load_run_models(store, plan.run, plan.config)
    scorer = make_scorer(pm, rm, plan.config_kwargs())
    ctx.log(f"scoring {len(plan.instructions)} instructions x {len(plan.variants)} variants "
            f"on {pm.info['device']}/{pm.info['dtype']}")
    store.set_score_run_status(run_id, "running")
    written = 0
    for index in range(len(chunks)):
        key = str(index)
        if key in done:
            continue
        ctx.check_cancelled()

        def tick(d: int, total: int, step: str, index=index) -> None:
            ctx.progress((index + d / max(total, 1)) / len(chunks), f"chunk {index + 1}/{len(chunks)}: {step}")

        details, scores = score_chunk(scorer, *plan.chunk_inputs(index), progress=tick)
        if ctx.commit_chunk(key, chunk_writer(store, run_id, details, scores)):
            written += 0 if details is None else len(details)
        ctx.progress((index + 1) / len(chunks), f"chunk {index + 1}/{len(chunks)} committed")
    s = scorer.stats
    if s.pm_truncated or s.rm_truncated:
        ctx.log(f"truncated responses: {s.pm_truncated} for the PM, {s.rm_truncated} for the RM")
    if s.without_negatives:
        ctx.log(f"{s.without_negatives} instructions have no negatives and get no SEAM row")
    store.set_score_run_status(run_id, "done")
    return {"chunks": len(chunks), "details_written": written, "pm_truncated": s.pm_truncated,
            "rm_truncated": s.rm_truncated}
