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

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, delete, select

from seam.data import IMPORTERS, ImportConfig, ImportStats, iter_import, load_instructions, load_negatives, read_table
from seam.data.columns import InstructionColumns, NegativeColumns
from seam.data.contract import SCORE_COLUMNS
from seam.demo import STAGES, VARIANTS, DemoPaths, read_manifest
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


# --- the demo project: one loader per `seam demo` stage -----------------------------------------------

Writer = Callable[[Connection], Any]
Commit = Callable[[Writer], Any]  # runs a writer in one write transaction (a job's `ctx.commit_chunk`)


def demo_dataset_name(final_key: str) -> str:
    """The dataset name of a demo build: keyed by its last stage's key (`DemoConfig.stage_key("annotations")`),
    which covers every setting, so another configuration loads into another dataset."""
    return f"demo-rl-{final_key[:8]}"


def demo_project(store: Store, root: str | Path) -> dict[str, Any]:
    """Put a built `seam demo` project's files into `store` (idempotent: one dataset per build key).

    Stores the RL set, its negatives, the PM and RM, the score run, the annotations, the RM's
    training run with its curve and the validation report as an eval run. Returns counts.
    """
    manifest = read_manifest(root)
    if not manifest.get("stages", {}).get("annotations", {}).get("done"):
        raise SeamError(f"{root}: the demo is not fully built ({Path(root) / 'demo.json'} records no finished "
                        "annotations stage); run `seam demo --no-serve --dir DIR` first")
    name = demo_dataset_name(manifest["stages"]["annotations"]["key"])
    for stage in STAGES:
        demo_stage(store, root, stage, name)
    return demo_summary(store, store.dataset_id(name))


def demo_stage(store: Store, root: str | Path, stage: str, dataset_name: str, *,
               commit: Commit | None = None) -> dict[str, Any]:
    """Load what one finished demo stage wrote under `root` into `store`; returns what it loaded ({} if
    it was loaded already: every loader looks first, so a re-run or a resumed job adds no rows).

    world: the RL set as dataset `dataset_name`; models: the PM, the RM and the RM's training run;
    negatives: the three variants; score: the score run with its results; validation: the report as
    an eval run; annotations: the gold judge's A/B judgements. A stage's rows are written by one
    call of `commit(writer)` (default: one write transaction), which a job makes its chunk commit.
    """
    loaders = {"world": _demo_world, "models": _demo_models, "negatives": _demo_negatives, "score": _demo_score,
               "validation": _demo_validation, "annotations": _demo_annotations}
    if stage not in loaders:
        raise SeamError(f"unknown demo stage {stage!r}; the stages are {', '.join(STAGES)}")
    return loaders[stage](store, DemoPaths(Path(root)), dataset_name, commit or _transaction(store))


def demo_summary(store: Store, ds: int) -> dict[str, Any]:
    """Counts of a loaded demo dataset: instructions, negatives, its newest score run and that run's annotations."""
    run_id = _newest_score_run(store, ds)
    return {"dataset": ds, "instructions": len(store.instruction_ids(ds)), "negatives": len(store.negatives(ds)),
            "score_run": run_id, "annotations": len(store.annotations(score_run_id=run_id)) if run_id else 0}


def _transaction(store: Store) -> Commit:
    def commit(writer: Writer) -> Any:
        with store.write() as conn:
            return writer(conn)

    return commit


def _demo_world(store: Store, paths: DemoPaths, name: str, commit: Commit) -> dict[str, Any]:
    existing = store.datasets()
    if len(existing) and name in set(existing["name"]):
        return {}
    inst = load_instructions(paths.rl)
    commit(lambda conn: store.import_instructions(name, inst, source_path=str(paths.rl), conn=conn))
    return {"dataset": name, "instructions": len(inst)}


def _demo_model_ids(store: Store, paths: DemoPaths) -> tuple[int, int]:
    return _register_pm_rm(store, paths.pm, paths.rm, "demo")


def _register_pm_rm(store: Store, pm: Path, rm: Path, prefix: str) -> tuple[int, int]:
    """(pm, rm) registered model ids, named `{prefix}-pm` / `{prefix}-rm`."""
    return _register_model(store, "pm", pm, f"{prefix}-pm"), _register_model(store, "rm", rm, f"{prefix}-rm")


def _register_model(store: Store, role: str, path: Path, name: str) -> int:
    """A demo's or study's model; `register_model` returns the existing row for the same checkpoint."""
    from seam.models.loading import fingerprint  # lazy: pulls in torch and transformers

    return store.register_model(role, str(path), name=name, template="stackllama", fingerprint=fingerprint(path))


def _demo_models(store: Store, paths: DemoPaths, name: str, commit: Commit) -> dict[str, Any]:
    pm_id, rm_id = _demo_model_ids(store, paths)
    stats = read_manifest(paths.root)["stages"]["models"]["stats"]
    rm_run_id = _record_run(store, "rm", "demo-rm", lambda run: run["config"] == stats, stats,
                            [{"role": "train", "ref_kind": "file", "path": str(paths.rm_train)},
                             {"role": "eval", "ref_kind": "file", "path": str(paths.rm_test)},
                             {"role": "base", "ref_kind": "model", "ref_id": pm_id}],
                            _curve(paths.rm / "metrics.jsonl"), {"model": str(paths.rm)}, commit)
    return {} if rm_run_id is None else {"pm": pm_id, "rm": rm_id, "rm_run": rm_run_id}


def _record_run(store: Store, kind: str, name: str, match: Callable[[dict], bool], config: dict[str, Any],
                inputs: list[dict[str, Any]], curve: list[tuple[int, dict[str, float]]], artifacts: dict[str, str],
                commit: Commit) -> int | None:
    """A demo or study stage's run (the RM's training, the validation report), recorded done with its curve and
    artifacts in one `commit`; the newest run of `kind` named `name` that `match`es is reused (one created by an
    attempt that stopped before its metrics were written is finished, not created again). None when it is
    recorded already."""
    run = _find_run(store, kind, name, match)
    if run is not None and run["status"] == "done":
        return None
    run_id = int(run["id"]) if run is not None else store.create_run(kind, config, name=name, inputs=inputs)

    def write(conn: Connection) -> None:
        for step, vals in curve:
            store.log_metrics(run_id, step, vals, conn=conn)
        store.update_run(run_id, status="done", artifacts=artifacts, conn=conn)

    commit(write)
    return run_id


def _demo_negatives(store: Store, paths: DemoPaths, name: str, commit: Commit) -> dict[str, Any]:
    ds = store.dataset_id(name)
    if len(store.negatives(ds)):
        return {}  # the variants are written in one transaction: some rows mean all of them
    negs = load_negatives(paths.negatives, known_ids=store.instruction_ids(ds))
    commit(lambda conn: store.import_negatives(ds, negs, conn=conn))
    return {"negatives": len(negs)}


def _demo_score(store: Store, paths: DemoPaths, name: str, commit: Commit) -> dict[str, Any]:
    return _score_stage(store, store.dataset_id(name), "demo", paths.scores, paths.details, list(VARIANTS),
                        {"template": "stackllama", "weighting": "paper", "aggregate": "sum", "device": "auto"},
                        lambda: _demo_model_ids(store, paths), commit)


def _score_stage(store: Store, ds: int, run_name: str, scores_path: Path, details_path: Path, variants: list[str] | None,
                 settings: dict[str, Any], model_ids: Callable[[], tuple[int, int]], commit: Commit) -> dict[str, Any]:
    """A demo's or study's score stage: the score run `run_name` with its rows (one created before a crash is
    finished, not created again); `variants` None = those in the scores file."""
    run_id = _newest_score_run(store, ds, run_name)
    if run_id is not None and store.score_run(run_id)["status"] == "done":
        return {}
    details, scores = read_table(details_path), read_table(scores_path)
    if run_id is None:
        pm_id, rm_id = model_ids()
        run_id = store.create_score_run(ds, variants or sorted(set(scores["variant"].astype(str))), settings,
                                        pm_model_id=pm_id, rm_model_id=rm_id, name=run_name)

    def write(conn: Connection) -> None:
        store.save_score_results(run_id, details, scores, conn=conn)
        store.set_score_run_status(run_id, "done", conn=conn)

    commit(write)
    return {"score_run": run_id, "seam_rows": len(scores)}


def _demo_validation(store: Store, paths: DemoPaths, name: str, commit: Commit) -> dict[str, Any]:
    run_id = _newest_score_run(store, store.dataset_id(name), "demo")
    if run_id is None:
        raise SeamError(f"the demo's score run is not in {store.display}; load the score stage first")

    def scores_this_run(run: dict) -> bool:
        return any(i["role"] == "scores" and i["ref_id"] == run_id for i in store.run(int(run["id"]))["inputs"])

    report = json.loads(paths.validation_json.read_text())
    aurocs = {f"auroc/{m['method']}": m["auroc"] for m in report["methods"] if m["auroc"] is not None}
    ev_id = _record_run(store, "eval", "demo-validation", scores_this_run,
                        {"what": "demo validation", "seed": report["seed"], "command": report.get("command")},
                        [{"role": "scores", "ref_kind": "score_run", "ref_id": run_id},
                         {"role": "probes", "ref_kind": "file", "path": str(paths.probes)}],
                        [(0, aurocs)], {"report_md": str(paths.validation_md), "report_json": str(paths.validation_json)},
                        commit)
    return {} if ev_id is None else {"eval_run": ev_id}


def _demo_annotations(store: Store, paths: DemoPaths, name: str, commit: Commit) -> dict[str, Any]:
    ds = store.dataset_id(name)
    run_id = _newest_score_run(store, ds, "demo")
    if run_id is None:
        raise SeamError(f"the demo's score run is not in {store.display}; load the score stage first")
    if len(store.annotations(score_run_id=run_id)):
        return {}  # written in one transaction: some rows mean all of them
    ids = store.instruction_ids(ds)
    rows = read_table(paths.annotations).to_dict("records")

    def write(conn: Connection) -> None:
        for row in rows:
            store.add_annotation(ids[row["id"]], row["response_a"], row["response_b"], row["choice"], row["annotator"],
                                 source=row["source"], response_a_ref=row["response_a_ref"],
                                 response_b_ref=row["response_b_ref"], score_run_id=run_id, meta=row["meta"], conn=conn)

    commit(write)
    return {"annotations": len(rows)}


def _newest_score_run(store: Store, ds: int, name: str | None = None) -> int | None:
    query = select(ScoreRun.id).where(ScoreRun.dataset_id == ds).order_by(ScoreRun.id.desc())
    if name is not None:
        query = query.where(ScoreRun.name == name)
    with store.read() as conn:
        return conn.execute(query).scalar()


def _find_run(store: Store, kind: str, name: str, match: Callable[[dict], bool]) -> dict[str, Any] | None:
    """The newest run of `kind` named `name` for which `match(row)` holds, or None."""
    runs = store.runs(kind)
    for row in reversed(runs[runs["name"] == name].to_dict("records")) if len(runs) else []:
        if match(row):
            return row
    return None


# --- a world-v2 study (`seam demo`, the default world) ---------------------------------------------

STUDY_VARIANTS = ("contrast", "llm", "adv")


def study_dataset_name(root: str | Path) -> str:
    """The dataset name of the study in `root`: its seed and a hash of its config (study.json), so another
    configuration loads into another dataset."""
    config = _study_config(Path(root))
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    return f"world-v2-s{config.get('seed', 0)}-{key}"


def _study_config(root: Path) -> dict[str, Any]:
    manifest = root / "study.json"
    if not manifest.is_file():
        raise SeamError(f"{root}: not a world-v2 study (no study.json); build it with `seam demo --no-serve --dir {root}`")
    return json.loads(manifest.read_text(encoding="utf-8")).get("config", {})


def study_project(store: Store, root: str | Path) -> dict[str, Any]:
    """Put a finished world-v2 study's files into `store`, so the dashboard shows the new world: every stage's
    loader in turn (`study_stage`). Idempotent: one dataset per study configuration."""
    root = Path(root)
    need = [root / "study.json", root / "data" / "rl.jsonl", root / "models" / "pm", root / "models" / "rm",
            root / "results" / "seam.jsonl", root / "results" / "details.parquet", root / "report" / "validation.json"]
    missing = [p for p in need if not p.exists()]
    if missing:
        raise SeamError(f"{root}: not a finished world-v2 study (no {missing[0].relative_to(root)}); build it with "
                        f"`seam demo --no-serve --dir {root}`")
    name = study_dataset_name(root)
    for stage in STUDY_STAGES:
        study_stage(store, root, stage, name)
    return demo_summary(store, store.dataset_id(name))


def study_stage(store: Store, root: str | Path, stage: str, dataset_name: str, *,
                commit: Commit | None = None) -> dict[str, Any]:
    """Load what one finished study stage wrote under `root` into `store` ({} when it is there already).

    world: the RL set (meta.skill / category) as dataset `dataset_name`; rm: the RM, its training run (curve)
    and the planting report; pm: the PM; label: nothing (the label is the hidden ground truth: ``hidden/`` is
    never read); negatives: the three variants; score: the score run (details and scores, every variant);
    report: the validation report as an eval run with each predictor's AUROC. A stage's rows are written by
    one call of `commit(writer)`, which a job makes its chunk commit.
    """
    loaders = {"world": _study_world, "rm": _study_rm, "pm": _study_pm, "label": lambda *a: {},
               "negatives": _study_negatives, "score": _study_score, "report": _study_report}
    if stage not in loaders:
        raise SeamError(f"unknown study stage {stage!r}; the stages are {', '.join(STUDY_STAGES)}")
    return loaders[stage](store, Path(root), dataset_name, commit or _transaction(store))


STUDY_STAGES = ("world", "rm", "pm", "label", "negatives", "score", "report")


def _study_world(store: Store, root: Path, name: str, commit: Commit) -> dict[str, Any]:
    existing = store.datasets()
    if len(existing) and name in set(existing["name"]):
        return {}
    inst = load_instructions(root / "data" / "rl.jsonl")
    commit(lambda conn: store.import_instructions(name, inst, source_path=str(root / "data" / "rl.jsonl"), conn=conn))
    return {"dataset": name, "instructions": len(inst)}


def _study_rm(store: Store, root: Path, name: str, commit: Commit) -> dict[str, Any]:
    rm_id = _register_model(store, "rm", root / "models" / "rm", f"{name}-rm")
    stage = json.loads((root / "study.json").read_text(encoding="utf-8"))["stages"].get("rm", {})
    rm_run_id = _record_run(store, "rm", f"{name}-rm", lambda run: True, {"what": "world-v2 RM (planted pairs)", **stage},
                            [{"role": "train", "ref_kind": "file", "path": str(root / "work" / "rm" / "rm_pairs.jsonl")}],
                            _curve(root / "models" / "rm" / "metrics.jsonl"),
                            {"model": str(root / "models" / "rm"), "planting_md": str(root / "report" / "planting.md")},
                            commit)
    return {} if rm_run_id is None else {"rm": rm_id, "rm_run": rm_run_id}


def _curve(metrics_file: Path) -> list[tuple[int, dict[str, float]]]:
    curve = []
    if metrics_file.is_file():
        for line in metrics_file.read_text().splitlines():
            rec = json.loads(line)
            step = int(rec.pop("step", 0))
            vals = {k: v for k, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if vals:
                curve.append((step, vals))
    return curve


def _study_pm(store: Store, root: Path, name: str, commit: Commit) -> dict[str, Any]:
    pm_id = _register_model(store, "pm", root / "models" / "pm", f"{name}-pm")  # the same row on a re-run
    commit(lambda conn: None)  # a job marks the stage done with its chunk
    return {"pm": pm_id}


def _study_negatives(store: Store, root: Path, name: str, commit: Commit) -> dict[str, Any]:
    ds = store.dataset_id(name)
    if len(store.negatives(ds)):
        return {}  # the variants are written in one transaction: some rows mean all of them
    known = store.instruction_ids(ds)
    frames = [load_negatives(root / "negatives" / f"{v}.jsonl", known_ids=known) for v in STUDY_VARIANTS
              if (root / "negatives" / f"{v}.jsonl").is_file()]
    negs = pd.concat(frames, ignore_index=True)
    commit(lambda conn: store.import_negatives(ds, negs, conn=conn))
    return {"negatives": len(negs)}


def _study_score(store: Store, root: Path, name: str, commit: Commit) -> dict[str, Any]:
    scores = root / "results" / "seam.jsonl"
    return _score_stage(store, store.dataset_id(name), name, scores, root / "results" / "details.parquet", None,
                        {"template": "stackllama", "weighting": "paper", "aggregate": "sum", "scores_file": str(scores)},
                        lambda: _register_pm_rm(store, root / "models" / "pm", root / "models" / "rm", name), commit)


def _study_report(store: Store, root: Path, name: str, commit: Commit) -> dict[str, Any]:
    run_id = _newest_score_run(store, store.dataset_id(name), name)
    if run_id is None:
        raise SeamError(f"the study's score run is not in {store.display}; load the score stage first")
    report = json.loads((root / "report" / "validation.json").read_text(encoding="utf-8"))
    aurocs = {f"auroc/{p['name']}": p["auroc"] for p in report["predictors"] if isinstance(p.get("auroc"), (int, float))}
    ev_id = _record_run(store, "eval", f"{name}-validation", lambda run: True,
                        {"what": "world-v2 validation", "seed": _study_config(root).get("seed")},
                        [{"role": "scores", "ref_kind": "score_run", "ref_id": run_id}], [(0, aurocs)],
                        {"report_md": str(root / "report" / "validation.md"),
                         "report_json": str(root / "report" / "validation.json")}, commit)
    return {} if ev_id is None else {"eval_run": ev_id}
