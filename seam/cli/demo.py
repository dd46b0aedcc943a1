"""`seam demo`: build the offline demo project (files + store) and serve the dashboard on it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import example_epilog

DEFAULT_DIR = "demo-project"


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="build the offline demo project and serve the dashboard",
        description="Build a complete SEAM study from nothing downloaded: a demo world with a gold judge, "
                    "SmolLM2-135M-Instruct as the PM, a reward model trained on the world's pairs (with known blind "
                    "spots), contrast / LLM / adversarial negatives, SEAM scores, a validation report and gold-judge "
                    "annotations; then serve the dashboard. A re-run reuses every stage already built.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog(
            "seam demo                                  # ~15 min on 2 CPU cores, then http://127.0.0.1:8501",
            "seam demo --tiny --no-serve --dir /tmp/d   # tiny models, under a minute (tests)",
        ),
    )
    p.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=f"project folder (default ./{DEFAULT_DIR})")
    p.add_argument("--tiny", action="store_true", help="tiny random models and a small world (fast; for tests)")
    p.add_argument("--seed", type=int, default=0, help="seed of the world, training and sampling (default 0)")
    p.add_argument("--no-serve", action="store_true", help="build only; do not start the dashboard")
    p.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8501, help="dashboard port (default 8501)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import DemoConfig, build_demo

    cfg = DemoConfig.tiny_config(args.seed) if args.tiny else DemoConfig(seed=args.seed)
    root = Path(args.dir).resolve()
    t0 = time.time()
    print(f"building the demo project in {root} ({'tiny' if args.tiny else 'default'} configuration)", file=sys.stderr)
    result = build_demo(root, cfg)
    info = load_into_store(root, cfg)
    print(f"demo ready in {time.time() - t0:.0f}s: {info['instructions']} instructions, {info['negatives']} negatives, "
          f"score run {info['score_run']}, {info['annotations']} annotations")
    print(f"validation report: {root / 'report' / 'validation.md'}")
    if args.no_serve:
        return 0
    from app.server import ServeConfig, serve

    print(f"serving the dashboard on http://{args.host}:{args.port} (Ctrl-C stops it)")
    return serve(ServeConfig(db=str(root), host=args.host, port=args.port, worker=True, quiet=False))


def load_into_store(root: Path, cfg) -> dict:
    """Put the demo files into `<root>/seam.db` (idempotent: a dataset per build key)."""
    from db import open_store
    from ..data import load_instructions, load_negatives, read_table
    from ..demo import VARIANTS, DemoPaths
    from ..models.loading import fingerprint

    paths = DemoPaths(root)
    manifest = json.loads((root / "demo.json").read_text())
    key = manifest["stages"]["annotations"]["key"][:8]
    name = f"demo-rl-{key}"
    store = open_store(root)
    try:
        existing = store.datasets()
        if len(existing) and name in set(existing["name"]):
            return _summary(store, store.dataset_id(name))
        inst = load_instructions(paths.rl)
        ds = store.import_instructions(name, inst, source_path=str(paths.rl))
        negs = load_negatives(paths.negatives, known_ids=inst["id"])
        store.import_negatives(ds, negs)
        pm_id = store.register_model("pm", str(paths.pm), name="demo-pm", template="stackllama",
                                     fingerprint=fingerprint(paths.pm))
        rm_id = store.register_model("rm", str(paths.rm), name="demo-rm", template="stackllama",
                                     fingerprint=fingerprint(paths.rm))
        run_id = store.create_score_run(ds, list(VARIANTS), {"template": "stackllama", "weighting": "paper",
                                                             "aggregate": "sum", "device": "auto"},
                                        pm_model_id=pm_id, rm_model_id=rm_id, name="demo")
        store.save_score_results(run_id, read_table(paths.details), read_table(paths.scores))
        store.set_score_run_status(run_id, "done")
        ids = store.instruction_ids(ds)
        ann = read_table(paths.annotations)
        for row in ann.to_dict("records"):
            store.add_annotation(ids[row["id"]], row["response_a"], row["response_b"], row["choice"], row["annotator"],
                                 source=row["source"], response_a_ref=row["response_a_ref"],
                                 response_b_ref=row["response_b_ref"], score_run_id=run_id, meta=row["meta"])
        # lineage: the RM training run and the validation report
        rm_run = store.create_run("rm", manifest["stages"]["models"]["stats"], name="demo-rm",
                                  inputs=[{"role": "train", "ref_kind": "file", "path": str(paths.rm_train)},
                                          {"role": "eval", "ref_kind": "file", "path": str(paths.rm_test)},
                                          {"role": "base", "ref_kind": "model", "ref_id": pm_id}])
        metrics_file = paths.rm / "metrics.jsonl"
        if metrics_file.is_file():
            for line in metrics_file.read_text().splitlines():
                rec = json.loads(line)
                step = int(rec.pop("step", 0))
                vals = {k: v for k, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                if vals:
                    store.log_metrics(rm_run, step, vals)
        store.update_run(rm_run, status="done", artifacts={"model": str(paths.rm)})
        report = json.loads(paths.validation_json.read_text())
        ev = store.create_run("eval", {"what": "demo validation", "seed": report["seed"], "command": report.get("command")},
                              name="demo-validation",
                              inputs=[{"role": "scores", "ref_kind": "score_run", "ref_id": run_id},
                                      {"role": "probes", "ref_kind": "file", "path": str(paths.probes)}])
        store.log_metrics(ev, 0, {f"auroc/{m['method']}": m["auroc"] for m in report["methods"] if m["auroc"] is not None})
        store.update_run(ev, status="done", artifacts={"report_md": str(paths.validation_md),
                                                       "report_json": str(paths.validation_json)})
        return _summary(store, ds)
    finally:
        store.close()


def _summary(store, ds: int) -> dict:
    from sqlalchemy import select

    from db.models import ScoreRun

    with store.read() as conn:
        run_id = conn.execute(select(ScoreRun.id).where(ScoreRun.dataset_id == ds).order_by(ScoreRun.id.desc())).scalar()
    return {"dataset": ds, "instructions": len(store.instruction_ids(ds)), "negatives": len(store.negatives(ds)),
            "score_run": run_id, "annotations": len(store.annotations(score_run_id=run_id)) if run_id else 0}
