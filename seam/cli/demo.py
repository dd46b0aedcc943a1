"""`seam demo`: the offline demo project (files + store) and the dashboard on it.

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
from . import example_epilog

DEFAULT_DIR = "demo-project"


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="build the offline demo project and serve the dashboard",
        description="Build a complete SEAM study from nothing downloaded: a demo world with a gold judge, "
                    "SmolLM2-135M-Instruct as the PM, a reward model trained on the world's pairs (with known blind "
                    "spots), contrast / LLM / adversarial negatives, SEAM scores, a validation report and gold-judge "
                    "annotations. Without --no-serve the dashboard is up at once and its worker builds the "
                    "demo as a job, each stage showing up as it lands (progress and ETA on the Overview). "
                    "A re-run reuses every stage already built.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog(
            "seam demo                                  # http://127.0.0.1:8501 at once; the build takes ~13 min on 2 CPU cores",
            "seam demo --tiny --no-serve --dir /tmp/d   # tiny models, under a minute (tests)",
            "seam demo --world v2 --no-serve --dir /tmp/v2 --size 1500   # the world-v2 validation study (~40 min)",
            "seam demo --world v2 --dir /tmp/v2                          # the same, then loaded and served",
        ),
    )
    p.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=f"project folder (default ./{DEFAULT_DIR})")
    p.add_argument("--tiny", action="store_true", help="tiny random models and a small world (fast; for tests)")
    p.add_argument("--seed", type=int, default=0, help="seed of the world, training and sampling (default 0)")
    p.add_argument("--no-serve", action="store_true", help="build only; do not start the dashboard")
    p.add_argument("--world", choices=("v1", "v2"), default="v1",
                   help="v1: the demo project (SmolLM2 PM; default); v2: the world-v2 validation study (small "
                        "from-scratch PM and RM, on-policy label, report/validation.md), built in this process, then "
                        "loaded into the project store and served unless --no-serve")
    p.add_argument("--size", type=int, default=None, metavar="N",
                   help="--world v2: at least N RL instructions (default 1,548)")
    p.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8501, help="dashboard port (default 8501)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.world == "v2":
        return run_v2(args)
    if args.size is not None:
        raise SeamError("--size applies to --world v2 only")
    root = Path(args.dir).resolve()
    if root.exists() and not root.is_dir():
        raise SeamError(f"--dir {args.dir}: not a folder; pass a folder for the demo project (created if missing)")
    if args.no_serve:
        return build_and_load(root, DemoConfig.preset(args.tiny, args.seed))
    check_port(args)
    job_id, state = prepare_served_build(root, args.tiny, args.seed)
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
    """`--no-serve`: build every stage here and now, then load the project into its store."""
    t0 = time.time()
    print(f"building the demo project in {root} ({'tiny' if cfg.tiny else 'default'} configuration)", file=sys.stderr)
    build_demo(root, cfg)
    with open_store(root) as store:
        info = load.demo_project(store, root)
    print(f"demo ready in {time.time() - t0:.0f}s: {info['instructions']} instructions, {info['negatives']} negatives, "
          f"score run {info['score_run']}, {info['annotations']} annotations")
    print(f"validation report: {root / 'report' / 'validation.md'}")
    return 0


def prepare_served_build(root: Path, tiny: bool, seed: int) -> tuple[int, str]:
    """Create the project folder and store and make sure one `demo-build` job for this configuration is
    queued, running or done. Returns (job id, what `ensure_demo_job` did or found)."""
    built = (read_manifest(root) if root.is_dir() else {}).get("config", {})
    root.mkdir(parents=True, exist_ok=True)
    with open_store(root) as store:
        job_id, state = ensure_demo_job(store, root, tiny, seed)
    if built and state in ("enqueued", "requeued") and (built.get("tiny"), built.get("seed")) != (tiny, seed):
        flags = f"{'--tiny ' if built.get('tiny') else ''}--seed {built.get('seed')}"
        print(f"note: {root} holds a demo built with {flags}; the stages whose settings differ are built again",
              file=sys.stderr)
    return job_id, state


def run_v2(args) -> int:
    """The world-v2 validation study (seam.testbed.v2.study) in --dir: data/rl.jsonl, models/pm and models/rm,
    results/seam.jsonl, report/validation.{md,json}; a re-run reuses every finished stage."""
    from ..testbed.v2.study import Study, StudyConfig  # lazy: pulls in the trainers (TRL); only --world v2 needs it

    if args.tiny and args.size is not None:
        raise SeamError("--tiny and --size do not go together: --tiny fixes a small world")
    cfg = StudyConfig.tiny(args.seed) if args.tiny else (
        StudyConfig.for_size(args.seed, args.size) if args.size is not None else StudyConfig(seed=args.seed))
    root = Path(args.dir).resolve()
    if not args.no_serve:
        check_port(args)
    t0 = time.time()
    print(f"building the world-v2 study in {root}", file=sys.stderr)
    Study(cfg, root, say=lambda m: print(m, file=sys.stderr, flush=True)).run()
    verdict = json.loads((root / "report" / "validation.json").read_text())["verdict"]
    print(f"study ready in {time.time() - t0:.0f}s: {root / 'report' / 'validation.md'}")
    for line in verdict:
        print(f"  {line}")
    if args.no_serve:
        return 0
    with open_store(root) as store:
        info = load.study_project(store, root)
    print(f"loaded into {root / 'seam.db'}: {info['instructions']} instructions, {info['negatives']} negatives, "
          f"score run {info['score_run']}")
    print(f"serving the dashboard on http://{args.host}:{args.port} (Ctrl-C stops it)")
    return serve(ServeConfig(db=str(root), host=args.host, port=args.port, worker=True, quiet=False))
