"""The `demo-build` job: `seam demo`'s build, run by the project's own worker while the dashboard is up.

Payload: ``{"dir": str, "tiny": bool, "seed": int}``: the project folder (absolute) and the
configuration (`DemoConfig.preset(tiny, seed)`). The job runs `seam.demo.build_demo` in `dir`, which
reuses every stage already built there, and after each stage lands (built or reused) loads what
that stage made into the store (`db.load.demo_stage`), so the dashboard's pages fill in stage by
stage: world -> the RL set (Data, Explore), models -> the PM, the RM and its training run (Models,
Runs), negatives, score -> the score run (Score, Explore), validation -> the eval run,
annotations -> the gold judge's judgements (Annotate).

Each stage's rows are one chunk (key: the stage name), so a requeued or reclaimed job skips the
stages it loaded and `build_demo` skips the stages it built: nothing is built or stored twice.
Progress is weighted by each stage's expected build time (`DemoConfig.expected_seconds`), so the
job's ETA is meaningful; a cancel is noticed between stages and inside the long ones.
`ensure_demo_job` is what `seam demo` calls before it serves: one job per folder and configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from db import load, queries
from db.store import Store
from seam.demo import STAGES, DemoConfig, build_demo
from seam.errors import SeamError

from ..context import JobContext
from ..queue import enqueue_job, requeue_job

KIND = "demo-build"


def demo_payload(root: str | Path, tiny: bool, seed: int) -> dict[str, Any]:
    return {"dir": str(Path(root).resolve()), "tiny": bool(tiny), "seed": int(seed)}


def parse_payload(payload: dict[str, Any]) -> tuple[Path, DemoConfig]:
    """(project folder, configuration) of a payload, or a one-line error naming the bad field."""
    folder = payload.get("dir")
    if not isinstance(folder, str) or not folder.strip():
        raise SeamError(f"{KIND} payload needs the project folder as a string dir, got {folder!r}")
    tiny, seed = payload.get("tiny", False), payload.get("seed", 0)
    if not isinstance(tiny, bool):
        raise SeamError(f"{KIND} payload tiny must be true or false, got {tiny!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SeamError(f"{KIND} payload seed must be an integer, got {seed!r}")
    return Path(folder), DemoConfig.preset(tiny, seed)


def stage_spans(cfg: DemoConfig) -> dict[str, tuple[float, float]]:
    """Each stage's share of the whole build, as (start, end) fractions by expected build time."""
    seconds = cfg.expected_seconds()
    total = sum(seconds[s] for s in STAGES)
    spans, t = {}, 0.0
    for stage in STAGES:
        spans[stage] = (t / total, (t + seconds[stage]) / total)
        t += seconds[stage]
    return spans


def demo_build(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    root, cfg = parse_payload(payload)
    store = ctx.store
    name = load.demo_dataset_name(cfg.stage_key("annotations"))
    spans = stage_spans(cfg)
    loaded = ctx.done_chunks()
    if loaded:
        ctx.log(f"resuming: stage(s) {', '.join(s for s in STAGES if s in loaded)} already in the store")
    ctx.log(f"building the demo project in {root} ({'tiny' if cfg.tiny else 'default'} configuration, seed {cfg.seed})")
    ctx.progress(step="starting", force=True)
    measuring = False  # the ETA is measured from the first stage actually built (reused ones take no time)

    def on_stage(stage: str, index: int, total: int, event: str, seconds: float) -> None:
        nonlocal measuring
        lo, hi = spans[stage]
        if event == "start":
            ctx.check_cancelled()
            measuring = True
            ctx.progress(lo, f"{stage} ({index}/{total}): building", force=True)
            return
        if stage not in loaded:
            what = load.demo_stage(store, root, stage, name, commit=lambda writer: ctx.commit_chunk(stage, writer))
            if not what:  # in the store already (loaded by `seam demo --no-serve`): mark the stage all the same
                ctx.commit_chunk(stage, lambda conn: None)
            loaded.add(stage)
            ctx.log(f"{stage}: " + (f"loaded into the store: {_describe(what)}" if what else "already in the store"))
        step = f"{stage} ({index}/{total}): " + ("reused" if event == "reused" else f"done in {seconds:.0f}s")
        ctx.progress(hi if measuring else None, step, force=True)
        ctx.check_cancelled()

    def progress(stage: str, fraction: float, step: str) -> None:
        lo, hi = spans[stage]
        ctx.progress(lo + (hi - lo) * min(max(fraction, 0.0), 1.0), f"{stage}: {step}")
        if ctx.cancel_event.is_set() or ctx.lost_event.is_set():  # set by the worker's heartbeat
            ctx.check_cancelled()

    result = build_demo(root, cfg, say=ctx.log, on_stage=on_stage, progress=progress)
    summary = load.demo_summary(store, store.dataset_id(name))
    ctx.log(f"demo ready in {result.seconds:.0f}s: {summary['instructions']} instructions, {summary['negatives']} "
            f"negatives, score run {summary['score_run']}, {summary['annotations']} annotations")
    stages = {s: {"seconds": e.get("seconds"), "reused": bool(e.get("cached"))} for s, e in result.stages.items()}
    return {**summary, "seconds": round(result.seconds, 1), "stages": stages}


def _describe(what: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in what.items())


def find_demo_job(store: Store, root: str | Path, tiny: bool, seed: int) -> dict[str, Any] | None:
    """The newest `demo-build` job for this folder and configuration, or None."""
    want = demo_payload(root, tiny, seed)
    for job in queries.latest_jobs(store, kind=KIND, limit=200).to_dict("records"):
        payload = job.get("payload") or {}
        if {k: payload.get(k) for k in want} == want:
            return job
    return None


def ensure_demo_job(store: Store, root: str | Path, tiny: bool, seed: int) -> tuple[int, str]:
    """Make sure a `demo-build` job for this folder and configuration is queued, running or done.

    Returns (job id, what was done): "enqueued" (a new job), "requeued" (a failed or cancelled one,
    which resumes after the stages it loaded), or the status of the job already there ("queued",
    "running" or "done").
    """
    job = find_demo_job(store, root, tiny, seed)
    if job is None:
        return enqueue_job(store, KIND, demo_payload(root, tiny, seed)), "enqueued"
    if job["status"] in ("failed", "cancelled"):
        requeue_job(store, int(job["id"]))
        return int(job["id"]), "requeued"
    return int(job["id"]), str(job["status"])
