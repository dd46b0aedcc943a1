"""Files into the store: the one place the CLI, the demo and the dashboard load data files from.

    from db import load, open_store
    store = open_store("runs/")
    ds = load.instructions_file(store, "rl.jsonl").dataset_id        # DESIGN.md section 3 files -> tables
    load.negatives_file(store, ds, "negatives.jsonl")
    run = load.score_files(store, ds, "seam.jsonl", "details.jsonl", pm_model_id=pm, rm_model_id=rm)

Reading and validating a file is the data layer's job (`seam.data`: formats by extension,
importers, one-line errors); this module maps the result onto `Store` calls and reports counts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import delete, select

from seam.data import IMPORTERS, ImportConfig, ImportStats, iter_import, load_instructions, load_negatives, read_table
from seam.data.columns import InstructionColumns, NegativeColumns
from seam.data.contract import SCORE_COLUMNS
from seam.demo import VARIANTS, DemoPaths
from seam.errors import SeamError

from .bulk import require_columns
from .files import file_sha256
from .models import ScoreRun
from .store import Store

CONTRACT = "instructions file"  # a file already in the instructions contract (columns can be mapped)
FORMATS = (CONTRACT, *sorted(IMPORTERS))
_ABSENT = "\x00absent"  # an unmapped optional column: never matches a file column


@dataclass
class ImportReport:
    """What a load did: the dataset, the rows stored, counts to show and problems met."""

    dataset_id: int | None = None
    rows: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def instructions_file(store: Store, path: str | Path, name: str | None = None, *, fmt: str = CONTRACT,
                      mapping: Mapping[str, str | None] | None = None, config: ImportConfig | None = None) -> ImportReport:
    """Load `path` as dataset `name` (default: the file's stem).

    `fmt` is CONTRACT (an instructions file: JSONL / CSV / Parquet / HF folder, its columns
    optionally renamed by `mapping` field -> column) or an importer name (`seam import` formats).
    A contract file read as it is keeps its file hash as the dataset's content hash.
    """
    path = Path(path)
    name = name or path.stem
    report = ImportReport()
    content_hash = None
    if fmt == CONTRACT:
        if mapping:
            cols = InstructionColumns(**{f: c for f, c in mapping.items() if c})
            cols.rejected = cols.rejected if mapping.get("rejected") else _ABSENT
            cols.meta = cols.meta if mapping.get("meta") else _ABSENT
            df = load_instructions(path, cols)
        else:
            df = load_instructions(path)
            content_hash = file_sha256(path)
        report.counts = {"rows read": len(df), "rows imported": len(df)}
    elif fmt in IMPORTERS:
        stats = ImportStats(fmt, str(path))
        df = pd.DataFrame(list(iter_import(fmt, path, config or ImportConfig(), stats)))
        if df.empty:
            raise SeamError(f"{path}: nothing to import ({stats.rows_read} rows read); check that it is a {fmt} file")
        d = stats.as_dict()
        report.counts = {"rows read": d["rows_read"], "rows imported": d["pairs_written"], "rows skipped": d["rows_skipped"]}
        report.problems = [f"{count} skipped: {reason}" for reason, count in d["skipped"].items()]
    else:
        raise SeamError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    report.dataset_id = store.import_instructions(name, df, source_path=path, content_hash=content_hash)
    report.rows = len(df)
    return report


def negatives_file(store: Store, dataset_id: int, path: str | Path, *, mapping: Mapping[str, str | None] | None = None,
                   replace: bool = False) -> ImportReport:
    """Load a negatives file into dataset `dataset_id` (columns optionally renamed by `mapping`)."""
    cols = None
    if mapping:
        cols = NegativeColumns(**{f: c for f, c in mapping.items() if c})
        cols.meta = cols.meta if mapping.get("meta") else _ABSENT
    df = load_negatives(path, known_ids=store.instruction_ids(dataset_id), columns=cols)
    n = store.import_negatives(dataset_id, df, replace=replace)
    by_variant = Counter(df["variant"])
    return ImportReport(dataset_id, n, {"negatives": n, **{f"variant {v}": c for v, c in sorted(by_variant.items())}})


def score_files(store: Store, dataset_id: int, scores_path: str | Path, details_path: str | Path | None = None, *,
                pm_model_id: int | None = None, rm_model_id: int | None = None,
                settings: Mapping[str, Any] | None = None, name: str | None = None) -> int:
    """Load `seam score` outputs (scores, optional details) as a new score run; returns its id."""
    scores = read_table(scores_path)
    details = read_table(details_path) if details_path else None
    require_columns(scores, SCORE_COLUMNS, f"scores file {scores_path}")
    variants = set(scores["variant"].astype(str))
    if details is not None and "variant" in details.columns:
        variants |= set(details["variant"].astype(str))
    run_id = store.create_score_run(dataset_id, sorted(variants), {**(settings or {}), "scores_file": str(scores_path)},
                                    pm_model_id=pm_model_id, rm_model_id=rm_model_id, name=name)
    try:
        with store.write() as conn:
            store.save_score_results(run_id, details, scores, conn=conn)
            store.set_score_run_status(run_id, "done", conn=conn)
    except BaseException:
        with store.write() as conn:
            conn.execute(delete(ScoreRun).where(ScoreRun.id == run_id))
        raise
    return run_id


def demo_project(store: Store, root: str | Path) -> dict[str, Any]:
    """Put a built `seam demo` project's files into `store` (idempotent: one dataset per build key).

    Stores the RL set, its negatives, the PM and RM, the score run, the annotations, the RM's
    training run with its curve and the validation report as an eval run. Returns counts.
    """
    from seam.models.loading import fingerprint  # lazy: pulls in torch and transformers

    root = Path(root)
    paths = DemoPaths(root)
    manifest = json.loads((root / "demo.json").read_text())
    name = f"demo-rl-{manifest['stages']['annotations']['key'][:8]}"
    existing = store.datasets()
    if len(existing) and name in set(existing["name"]):
        return _demo_summary(store, store.dataset_id(name))
    inst = load_instructions(paths.rl)
    ds = store.import_instructions(name, inst, source_path=str(paths.rl))
    store.import_negatives(ds, load_negatives(paths.negatives, known_ids=inst["id"]))
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
    for row in read_table(paths.annotations).to_dict("records"):
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
    return _demo_summary(store, ds)


def _demo_summary(store: Store, ds: int) -> dict[str, Any]:
    with store.read() as conn:
        run_id = conn.execute(select(ScoreRun.id).where(ScoreRun.dataset_id == ds).order_by(ScoreRun.id.desc())).scalar()
    return {"dataset": ds, "instructions": len(store.instruction_ids(ds)), "negatives": len(store.negatives(ds)),
            "score_run": run_id, "annotations": len(store.annotations(score_run_id=run_id)) if run_id else 0}
