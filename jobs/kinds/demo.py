"""The `demo-build` job: `seam demo`'s build, run by the project's own worker while the dashboard is up.

Payload: ``{"dir": str, "world": "v2" | "v1", "tiny": bool, "seed": int, "size": int | None, "study": bool,
"keep_going": bool}``: the project folder (absolute) and the configuration (`keep_going`: world v2
carries on past a failed planting check, and the report says it failed). World v2 (the default) builds the world-v2 study
(`seam.testbed.v2.study.Study`, `StudyConfig.preset(tiny, seed, size, study)`: SmolLM2 as the PM
unless --tiny, --study or --size) and loads each stage with `db.load.study_stage`: world -> the RL set with its skills
(Data, Explore), rm -> the RM, its training run and the planting report (Models, Runs), pm -> the PM
(Models), label -> nothing (the hidden ground truth stays in files), negatives, score -> the score run
(Score, Explore), report -> the validation report as an eval run (Overview, Runs). World v1 (a
payload without "world" is v1: jobs queued before v2) builds `seam.demo.build_demo` and loads with
`db.load.demo_stage`.

Each stage's rows are one chunk (key: the stage name), so a requeued or reclaimed job skips the
stages it loaded and the build skips the stages it built: nothing is built or stored twice.
Progress is weighted by each stage's expected build time, so the job's ETA is meaningful; a cancel
is noticed between stages and inside the long ones. `ensure_demo_job` is what `seam demo` calls
before it serves: one job per folder and configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db import load, queries
from db.store import Store
from seam.demo import STAGES, DemoConfig, build_demo, read_manifest
from seam.errors import SeamError
from seam.testbed.v2.study import STAGES as STUDY_STAGES
from seam.testbed.v2.study import Study, StudyConfig

from ..context import JobContext
from ..queue import enqueue_job, requeue_job

KIND = "demo-build"
WORLDS = ("v2", "v1")


DEFAULTS = {"world": "v1", "size": None, "study": False, "keep_going": False}  # of a payload that lacks them


def demo_payload(root: str | Path, tiny: bool, seed: int, world: str = "v2", *, size: int | None = None,
                 study: bool = False, keep_going: bool = False) -> dict[str, Any]:
    return {"dir": str(Path(root).resolve()), "world": world, "tiny": bool(tiny), "seed": int(seed), "size": size,
            "study": bool(study), "keep_going": bool(keep_going)}


@dataclass(frozen=True)
class DemoBuild:
    """One demo build: which world, where, and its configuration (`DemoConfig` for v1, `StudyConfig` for v2)."""

    root: Path
    world: str
    config: DemoConfig | StudyConfig

    @property
    def stages(self) -> tuple[str, ...]:
        return STUDY_STAGES if self.world == "v2" else STAGES

    def expected_seconds(self) -> dict[str, float]:
        return self.config.expected_seconds()

    def built(self) -> dict[str, dict[str, Any]]:
        """Stages already built in the folder for this configuration: {stage: {"seconds", "built_at"}}."""
        if not self.root.is_dir():
            return {}
        if self.world == "v2":
            return self.config.built_stages(self.root)
        stages = read_manifest(self.root).get("stages", {})
        return {name: e for name, e in stages.items()
                if e.get("done") and e.get("key") == self.config.stage_key(name)}

    def describe(self) -> str:
        """Which build, in words (for the job's log)."""
        if self.world == "v1":
            return f"the demo project (world v1, {'tiny' if self.config.tiny else 'default'} configuration)"
        if self.config == StudyConfig.tiny(self.config.seed):
            return "the tiny world-v2 study"
        if self.config.pm_backbone == "smollm2":
            return "the world-v2 demo (SmolLM2 as the PM)"
        return "the world-v2 validation study (small from-scratch PM)"

    def dataset_name(self) -> str:
        if self.world == "v2":
            return load.study_dataset_name(self.root)
        return load.demo_dataset_name(self.config.stage_key("annotations"))


def parse_payload(payload: dict[str, Any]) -> DemoBuild:
    """The build a payload names, or a one-line error naming the bad field."""
    folder = payload.get("dir")
    if not isinstance(folder, str) or not folder.strip():
        raise SeamError(f"{KIND} payload needs the project folder as a string dir, got {folder!r}")
    payload = {**DEFAULTS, **payload}
    world, tiny, seed, size, study, keep_going = (payload["world"], payload.get("tiny", False), payload.get("seed", 0),
                                                  payload["size"], payload["study"], payload["keep_going"])
    if world not in WORLDS:
        raise SeamError(f"{KIND} payload world must be one of {', '.join(WORLDS)}, got {world!r}")
    if not isinstance(tiny, bool):
        raise SeamError(f"{KIND} payload tiny must be true or false, got {tiny!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SeamError(f"{KIND} payload seed must be an integer, got {seed!r}")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or world != "v2"):
        raise SeamError(f"{KIND} payload size must be null or an integer (world v2 only), got {size!r}")
    if not isinstance(study, bool) or (study and world != "v2"):
        raise SeamError(f"{KIND} payload study must be true or false (true: world v2 only), got {study!r}")
    if not isinstance(keep_going, bool):
        raise SeamError(f"{KIND} payload keep_going must be true or false, got {keep_going!r}")
    if world == "v2":
        cfg = StudyConfig.preset(tiny, seed, size, study)
        cfg.keep_going = cfg.keep_going or keep_going
        return DemoBuild(Path(folder), world, cfg)
    return DemoBuild(Path(folder), world, DemoConfig.preset(tiny, seed))


def stage_spans(build: DemoBuild) -> dict[str, tuple[float, float]]:
    """Each stage's share of the whole build, as (start, end) fractions by expected build time."""
    seconds = build.expected_seconds()
    total = sum(seconds[s] for s in build.stages)
    spans, t = {}, 0.0
    for stage in build.stages:
        spans[stage] = (t / total, (t + seconds[stage]) / total)
        t += seconds[stage]
    return spans


def demo_build(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    build = parse_payload(payload)
    root, cfg, store = build.root, build.config, ctx.store
    spans = stage_spans(build)
    loaded = ctx.done_chunks()
    if loaded:
        ctx.log(f"resuming: stage(s) {', '.join(s for s in build.stages if s in loaded)} already in the store")
    ctx.log(f"building {build.describe()} in {root} (seed {cfg.seed})")
    ctx.progress(step="starting", force=True)
    measuring = False  # the ETA is measured from the first stage actually built (reused ones take no time)
    name = ""  # the dataset's name (v2: known once the first stage has written the study's config)

    def on_stage(stage: str, index: int, total: int, event: str, seconds: float) -> None:
        nonlocal measuring, name
        lo, hi = spans[stage]
        if event == "start":
            ctx.check_cancelled()
            measuring = True
            ctx.progress(lo, f"{stage} ({index}/{total}): building", force=True)
            return
        if stage not in loaded:
            name = name or build.dataset_name()
            loader = load.study_stage if build.world == "v2" else load.demo_stage
            what = loader(store, root, stage, name, commit=lambda writer: ctx.commit_chunk(stage, writer))
            if not what:  # in the store already (loaded by `seam demo --no-serve`): mark the stage all the same
                ctx.commit_chunk(stage, lambda conn: None)
            loaded.add(stage)
            ctx.log(f"{stage}: " + (f"loaded into the store: {_describe(what)}" if what else "nothing new for the store"))
        step = f"{stage} ({index}/{total}): " + ("reused" if event == "reused" else f"done in {seconds:.0f}s")
        ctx.progress(hi if measuring else None, step, force=True)
        ctx.check_cancelled()

    def progress(stage: str, fraction: float, step: str) -> None:
        lo, hi = spans[stage]
        ctx.progress(lo + (hi - lo) * min(max(fraction, 0.0), 1.0), f"{stage}: {step}")
        if ctx.cancel_event.is_set() or ctx.lost_event.is_set():  # set by the worker's heartbeat
            ctx.check_cancelled()

    if build.world == "v2":
        state = Study(cfg, root, say=ctx.log).run(on_stage=on_stage, progress=progress)
        seconds = sum(e["seconds"] for e in state["stages"].values())
        stages = {s: {"seconds": e.get("seconds")} for s, e in state["stages"].items()}
    else:
        result = build_demo(root, cfg, say=ctx.log, on_stage=on_stage, progress=progress)
        seconds = result.seconds
        stages = {s: {"seconds": e.get("seconds"), "reused": bool(e.get("cached"))} for s, e in result.stages.items()}
    summary = load.demo_summary(store, store.dataset_id(build.dataset_name()))
    ctx.log(f"demo ready in {seconds:.0f}s: {summary['instructions']} instructions, {summary['negatives']} "
            f"negatives, score run {summary['score_run']}")
    return {**summary, "world": build.world, "seconds": round(seconds, 1), "stages": stages}


def _describe(what: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in what.items())


def find_demo_job(store: Store, root: str | Path, tiny: bool, seed: int, world: str = "v2",
                  **options: Any) -> dict[str, Any] | None:
    """The newest `demo-build` job for this folder and configuration (`options`: `demo_payload`'s), or None."""
    want = demo_payload(root, tiny, seed, world, **options)
    for job in queries.latest_jobs(store, kind=KIND, limit=200).to_dict("records"):
        payload = {**DEFAULTS, **(job.get("payload") or {})}
        if {k: payload.get(k) for k in want} == want:
            return job
    return None


def ensure_demo_job(store: Store, root: str | Path, tiny: bool, seed: int, world: str = "v2",
                    **options: Any) -> tuple[int, str]:
    """Make sure a `demo-build` job for this folder and configuration is queued, running or done.

    Returns (job id, what was done): "enqueued" (a new job), "requeued" (a failed or cancelled one,
    which resumes after the stages it loaded), or the status of the job already there ("queued",
    "running" or "done").
    """
    job = find_demo_job(store, root, tiny, seed, world, **options)
    if job is None:
        return enqueue_job(store, KIND, demo_payload(root, tiny, seed, world, **options)), "enqueued"
    if job["status"] in ("failed", "cancelled"):
        requeue_job(store, int(job["id"]))
        return int(job["id"]), "requeued"
    return int(job["id"]), str(job["status"])
