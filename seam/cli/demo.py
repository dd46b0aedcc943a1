"""`seam demo`: the offline demo project (files + store) and the dashboard on it.

World v2 is the default (the world-v2 study with SmolLM2 as the PM: seam/testbed/v2/study.py);
`--world v1` builds the first demo world (seam/demo.py).

Serving (the default), the dashboard starts at once and the project's worker builds the demo as a
`demo-build` job (jobs/kinds/demo.py), loading each stage into the store as it lands; the Overview
shows the stages with progress and ETA. `--no-serve` builds and loads in this process (scripts, tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from app.server import ServeConfig, port_free, serve
from db import load, open_store
from jobs.kinds.demo import ensure_demo_job

from ..demo import DemoConfig, build_demo, read_manifest
from ..errors import SeamError
from ..testbed.v2.study import Study, StudyConfig
from . import example_epilog

DEFAULT_DIR = "demo-project"


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="build the offline demo project and serve the dashboard",
        description="Build a complete SEAM study from nothing downloaded: world v2 (32 skills with planted RM blind "
                    "spots and PM flaws, a gold judge), SmolLM2-135M-Instruct SFT'd with LoRA as the PM, a small RM "
                    "trained on the planted pairs (checked on held-out probes), the on-policy ground truth (PM "
                    "samples judged by the gold judge), contrast / LLM / adversarial negatives, SEAM scores and the "
                    "validation report against that truth with baselines. Without --no-serve the dashboard is up at "
                    "once and its worker builds the demo as a job, each stage showing up as it lands (progress and "
                    "ETA on the Overview). A re-run reuses every stage already built.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog(
            "seam demo                                  # http://127.0.0.1:8501 at once; the build takes ~11 min on 2 CPU cores",
            "seam demo --tiny --no-serve --dir /tmp/d   # tiny models, under a minute (tests)",
            "seam demo --study --no-serve --dir /tmp/v2 --seed 1   # the validation study (small from-scratch PM, ~40 min)",
            "seam demo --world v1 --dir /tmp/v1         # the first demo world (SmolLM2 PM and RM, probe label)",
        ),
    )
    p.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=f"project folder (default ./{DEFAULT_DIR})")
    p.add_argument("--tiny", action="store_true", help="tiny models and a small world (fast; for tests)")
    p.add_argument("--seed", type=int, default=0, help="seed of the world, training and sampling (default 0)")
    p.add_argument("--no-serve", action="store_true", help="build in this process and load the store; no dashboard")
    p.add_argument("--world", choices=("v2", "v1"), default="v2",
                   help="v2 (default): the world-v2 study, SmolLM2 as the PM (the small from-scratch PM with --study "
                        "or --size); "
                        "v1: the first demo world (SmolLM2 PM and RM, probe label)")
    p.add_argument("--study", action="store_true",
                   help="world v2: the validation study instead of the demo: 1,548 RL instructions, the small "
                        "from-scratch PM, ~40 min (docs/demo-validation.md)")
    p.add_argument("--size", type=int, default=None, metavar="N",
                   help="world v2: a validation study with at least N RL instructions (the small from-scratch PM)")
    p.add_argument("--keep-going", action="store_true",
                   help="world v2: carry on past a failed planting check (the report then says it failed)")
    p.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8501, help="dashboard port (default 8501)")
    p.set_defaults(func=run)


WORLD_FILES = {"v1": "demo.json", "v2": "study.json"}


def run(args) -> int:
    if args.world == "v1" and (args.size is not None or args.study or args.keep_going):
        raise SeamError("--study, --size and --keep-going apply to world v2 only (drop --world v1)")
    root = Path(args.dir).resolve()
    if root.exists() and not root.is_dir():
        raise SeamError(f"--dir {args.dir}: not a folder; pass a folder for the demo project (created if missing)")
    other = "v1" if args.world == "v2" else "v2"
    if (root / WORLD_FILES[other]).is_file():
        raise SeamError(f"--dir {args.dir}: holds a world-{other} demo ({WORLD_FILES[other]}); the two worlds write the "
                        f"same files, so pass another --dir for world {args.world} (or --world {other} to use this one)")
    if args.world == "v2":
        cfg = StudyConfig.preset(args.tiny, args.seed, args.size, args.study)
        cfg.keep_going = cfg.keep_going or args.keep_going
        if cfg.holds_another(root):
            raise SeamError(f"--dir {args.dir}: holds a world-v2 study with other settings (study.json); pass another "
                            "--dir, or the same --tiny / --study / --size / --seed as before")
    if args.no_serve:
        return build_v2(root, cfg) if args.world == "v2" else build_and_load(root, DemoConfig.preset(args.tiny, args.seed))
    check_port(args)
    options = {"size": args.size, "study": args.study, "keep_going": args.keep_going} if args.world == "v2" else {}
    job_id, state = prepare_served_build(root, args.tiny, args.seed, args.world, **options)
    note = {"enqueued": "queued", "requeued": "requeued (it resumes after the stages already built)",
            "queued": "already queued", "running": "already running", "done": "done: serving the finished project"}
    print(f"demo project {root}: build job {job_id} {note.get(state, state)}; the Overview page shows its stages",
          file=sys.stderr)
    print(f"serving the dashboard on http://{args.host}:{args.port} (Ctrl-C stops it)")
    return serve(ServeConfig(db=str(root), host=args.host, port=args.port, worker=True, quiet=False))


def check_port(args) -> None:
    """Before any build: the dashboard's port is a TCP port and free (one line otherwise)."""
    if not 0 < args.port < 65536:
        raise SeamError(f"--port {args.port}: not a TCP port; use 1-65535 (default 8501)")
    if not port_free(args.host, args.port):
        raise SeamError(f"--port {args.port}: {args.host}:{args.port} is already in use (another dashboard?); "
                        "stop what runs there or pass --port N")


def build_and_load(root: Path, cfg: DemoConfig) -> int:
    """World v1, `--no-serve`: build every stage here and now, then load the project into its store."""
    t0 = time.time()
    print(f"building the demo project in {root} ({'tiny' if cfg.tiny else 'default'} configuration)", file=sys.stderr)
    build_demo(root, cfg)
    with open_store(root) as store:
        info = load.demo_project(store, root)
    print(f"demo ready in {time.time() - t0:.0f}s: {info['instructions']} instructions, {info['negatives']} negatives, "
          f"score run {info['score_run']}, {info['annotations']} annotations")
    print(f"validation report: {root / 'report' / 'validation.md'}")
    return 0


def build_v2(root: Path, cfg: StudyConfig) -> int:
    """World v2, `--no-serve`: the study in `root` (data/rl.jsonl, models/pm and models/rm, results/seam.jsonl,
    report/validation.{md,json}; a re-run reuses every finished stage), then loaded into the project store."""
    t0 = time.time()
    print(f"building the world-v2 study in {root}", file=sys.stderr)
    Study(cfg, root, say=lambda m: print(m, file=sys.stderr, flush=True)).run()
    verdict = json.loads((root / "report" / "validation.json").read_text())["verdict"]
    with open_store(root) as store:
        info = load.study_project(store, root)
    print(f"demo ready in {time.time() - t0:.0f}s: {info['instructions']} instructions, {info['negatives']} negatives, "
          f"score run {info['score_run']} (loaded into {root / 'seam.db'})")
    print(f"validation report: {root / 'report' / 'validation.md'}")
    for line in verdict:
        print(f"  {line}")
    return 0


def prepare_served_build(root: Path, tiny: bool, seed: int, world: str = "v2", **options) -> tuple[int, str]:
    """Create the project folder and store and make sure one `demo-build` job for this configuration is
    queued, running or done. Returns (job id, what `ensure_demo_job` did or found)."""
    built = (read_manifest(root) if world == "v1" and root.is_dir() else {}).get("config", {})
    root.mkdir(parents=True, exist_ok=True)
    with open_store(root) as store:
        job_id, state = ensure_demo_job(store, root, tiny, seed, world, **options)
    if built and state in ("enqueued", "requeued") and (built.get("tiny"), built.get("seed")) != (tiny, seed):
        flags = f"{'--tiny ' if built.get('tiny') else ''}--seed {built.get('seed')}"
        print(f"note: {root} holds a demo built with {flags}; the stages whose settings differ are built again",
              file=sys.stderr)
    return job_id, state
