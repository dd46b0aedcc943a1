"""The project store: `open_store` and the `Store` calls that load, query and export data.

    store = open_store("runs/")                    # runs/seam.db, created or upgraded
    ds = store.import_instructions("rl", frame)    # frames -> tables (files -> store: db.load)
    sr = store.create_score_run(ds, ["contrast"], settings, pm_model_id=pm, rm_model_id=rm)
    store.lowest_seam(sr, "contrast", limit=100)     # explorer: the worst instructions
    store.instruction_breakdown(sr, "q17")          # why: every negative, its numbers and text
    store.export_dataset(ds, "ppo.jsonl", layout="trl-prompts", ids=kept)

Writes go through `Store.write()` (one transaction: ``BEGIN IMMEDIATE`` on SQLite, the store's
advisory write lock on PostgreSQL, see db.engine); reads through `Store.read()`. Every method
that writes takes an optional `conn` so a job can put several writes and its chunk marker in one
transaction.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from seam.data.contract import DETAIL_COLUMNS, SCORE_COLUMNS
from seam.errors import SeamError

from . import files
from .bulk import bulk_insert, meta_column, number_column, require_columns, text_column
from .engine import WRITE_OPTION, make_engine, read_options, resolve_url
from .migrate import ensure_schema
from .models import (
    ANNOTATION_CHOICES,
    ANNOTATION_SOURCES,
    MODEL_ROLES,
    RUN_KINDS,
    RUN_STATUSES,
    Annotation,
    Base,
    Dataset,
    Instruction,
    Negative,
    RegisteredModel,
    Run,
    RunInput,
    RunMetric,
    ScoreDetail,
    ScoreRun,
    SeamScore,
    utcnow,
)


def open_store(target: str | Path, *, upgrade: bool = True, echo: bool = False) -> Store:
    """Open (creating or upgrading) the store at a folder, a .db file or a SQLAlchemy URL.

    A folder means ``<folder>/seam.db``. With ``upgrade=False`` an older schema is refused with
    the command that upgrades it instead of being upgraded in place.
    """
    url = resolve_url(target)
    engine = make_engine(url, echo=echo)
    display = str(target)
    try:
        ensure_schema(engine, display=display, allow_upgrade=upgrade)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, display=display)


class Store:
    """A handle on one store database. Cheap to keep open; `close()` releases its connections."""

    def __init__(self, engine: Engine, *, display: str | None = None):
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=True)
        self.display = display or self.url
        self._read_options = read_options(engine)
        self._ext_ids: dict[int, dict[str, int]] = {}  # dataset id -> {ext_id: instruction id}

    def __repr__(self) -> str:
        return f"Store({self.display!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (one consistent snapshot until the block ends)."""
        with self.engine.connect() as conn:
            if self._read_options:
                conn.execution_options(**self._read_options)
            yield conn

    @contextlib.contextmanager
    def write(self, conn: Connection | None = None) -> Iterator[Connection]:
        """One write transaction, committed at the end of the block (rolled back on error).

        Given an open `conn` (already in a write transaction), it is reused as is.
        """
        if conn is not None:
            yield conn
            return
        with self.engine.connect() as new:
            new.execution_options(**{WRITE_OPTION: True})
            with new.begin():
                yield new

    @contextlib.contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """An ORM session (committed at the end when `write`)."""
        with self.engine.connect() as conn:
            if write:
                conn.execution_options(**{WRITE_OPTION: True})
            with Session(bind=conn, expire_on_commit=False) as session:
                yield session
                if write:
                    session.commit()

    # --- registered models ----------------------------------------------------------------------

    def register_model(self, role: str, path: str | Path, *, name: str | None = None, adapter: str | None = None,
                       dtype: str = "auto", template: str = "stackllama", fingerprint: str | None = None,
                       meta: Mapping[str, Any] | None = None) -> int:
        """Register a PM or RM checkpoint; the same (role, path, adapter, fingerprint) returns its id."""
        if role not in MODEL_ROLES:
            raise SeamError(f"model role {role!r} is not one of {', '.join(MODEL_ROLES)}")
        path, adapter = str(path), (str(adapter) if adapter else None)
        with self.write() as conn:
            found = conn.execute(
                select(RegisteredModel.id).where(
                    RegisteredModel.role == role, RegisteredModel.path == path,
                    RegisteredModel.adapter.is_(None) if adapter is None else RegisteredModel.adapter == adapter,
                    RegisteredModel.fingerprint.is_(None) if fingerprint is None
                    else RegisteredModel.fingerprint == fingerprint,
                )
            ).scalar()
            if found is not None:
                return int(found)
            return int(conn.execute(insert(RegisteredModel).values(
                role=role, path=path, adapter=adapter, name=name or Path(path).name, dtype=dtype,
                template=template, fingerprint=fingerprint, meta=dict(meta) if meta else None,
                created_at=utcnow())).inserted_primary_key[0])

    def models(self, role: str | None = None) -> pd.DataFrame:
        query = select(RegisteredModel.__table__)
        if role:
            query = query.where(RegisteredModel.role == role)
        return self._frame(query.order_by(RegisteredModel.id))

    # --- datasets and instructions --------------------------------------------------------------

    def import_instructions(self, name: str, df: pd.DataFrame, source_path: str | Path | None = None,
                            content_hash: str | None = None, *, meta: Mapping[str, Any] | None = None,
                            conn: Connection | None = None) -> int:
        """Store an instructions frame (id, prompt, chosen, [rejected], [meta]) as dataset `name`.

        Re-importing the same content under the same name returns the existing dataset id;
        different content under a taken name is an error (datasets are immutable once stored).
        """
        what = f"instructions {source_path or name!r}"
        require_columns(df, ["id", "prompt", "chosen"], what)
        ext_ids = text_column(df, "id", what)
        dupes = pd.Series(ext_ids)[pd.Series(ext_ids).duplicated()]
        if len(dupes):
            raise SeamError(f"{what}: id {dupes.iloc[0]!r} appears more than once; ids must be unique")
        prompts, chosen = text_column(df, "prompt", what), text_column(df, "chosen", what)
        rejected = text_column(df, "rejected", what, required=False)
        metas = meta_column(df, what)
        content_hash = content_hash or files.frame_sha256(df, ["id", "prompt", "chosen", "rejected", "meta"])
        with self.write(conn) as c:
            existing = c.execute(select(Dataset.id, Dataset.content_hash).where(Dataset.name == name)).first()
            if existing is not None:
                if existing.content_hash == content_hash:
                    return int(existing.id)
                raise SeamError(
                    f"a dataset named {name!r} is already stored with different content (hash {existing.content_hash[:12]} "
                    f"vs {content_hash[:12]}); stored datasets are immutable: import it under another name"
                )
            dataset_id = int(c.execute(insert(Dataset).values(
                name=name, source_path=str(source_path) if source_path else None, content_hash=content_hash,
                n_instructions=len(df), meta=dict(meta) if meta else None, created_at=utcnow(),
            )).inserted_primary_key[0])
            bulk_insert(c, Instruction.__table__, ["dataset_id", "ext_id", "prompt", "chosen", "rejected", "meta"],
                        zip([dataset_id] * len(df), ext_ids, prompts, chosen, rejected, metas))
        return dataset_id

    def dataset_id(self, name_or_id: str | int) -> int:
        """A dataset's id from its name (or check an id exists)."""
        column = Dataset.id if isinstance(name_or_id, int) else Dataset.name
        with self.read() as conn:
            found = conn.execute(select(Dataset.id).where(column == name_or_id)).scalar()
            if found is None:
                names = conn.execute(select(Dataset.name).order_by(Dataset.id).limit(10)).scalars().all()
        if found is None:
            raise SeamError(f"no dataset {name_or_id!r} in {self.display}; stored: {', '.join(names) or '(none)'}")
        return int(found)

    def datasets(self) -> pd.DataFrame:
        return self._frame(select(Dataset.__table__).order_by(Dataset.id))

    def instructions(self, dataset_id: int, ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The dataset as a DESIGN.md instructions frame (id, prompt, chosen, rejected, meta), in import order."""
        t = Instruction.__table__
        query = (select(t.c.ext_id.label("id"), t.c.prompt, t.c.chosen, t.c.rejected, t.c.meta)
                 .where(t.c.dataset_id == dataset_id).order_by(t.c.id))
        df = self._frame(query)
        if ids is not None:
            wanted = list(dict.fromkeys(str(i) for i in ids))
            unknown = sorted(set(wanted) - set(df["id"]))
            if unknown:
                raise SeamError(f"{len(unknown)} id(s) are not in dataset {dataset_id} (first {unknown[0]!r}); check the selection")
            df = df[df["id"].isin(set(wanted))]
        df["rejected"] = pd.Series([None if v is None or v != v else v for v in df["rejected"]], dtype=object,
                                   index=df.index)
        return df.reset_index(drop=True)

    def instruction_ids(self, dataset_id: int, conn: Connection | None = None) -> dict[str, int]:
        """{external id: instruction row id} for a dataset, in import order.

        Cached once read from committed data (datasets are immutable); a read on a caller's
        open transaction (`conn`) is not cached, since that transaction may still roll back.
        """
        cached = self._ext_ids.get(dataset_id)
        if cached is not None:
            return cached
        query = (select(Instruction.ext_id, Instruction.id).where(Instruction.dataset_id == dataset_id)
                 .order_by(Instruction.id))
        if conn is not None:
            return {e: i for e, i in conn.execute(query).all()}
        with self.read() as c:
            mapping = {e: i for e, i in c.execute(query).all()}
        if mapping:
            self._ext_ids[dataset_id] = mapping
        return mapping

    def _map_ids(self, dataset_id: int, ext_ids: list, what: str, conn: Connection | None) -> list[int]:
        mapping = self.instruction_ids(dataset_id, conn)
        try:
            return [mapping[e] for e in ext_ids]
        except KeyError as exc:
            raise SeamError(f"{what}: id {exc.args[0]!r} is not an instruction of dataset {dataset_id}; "
                            "import the matching instructions first") from None

    # --- negatives ------------------------------------------------------------------------------

    def import_negatives(self, dataset_id: int, df: pd.DataFrame, *, replace: bool = False,
                         conn: Connection | None = None) -> int:
        """Store a negatives frame (id, variant, text, [meta], [neg_index]) for a dataset.

        `neg_index` (the negative's position within its (id, variant) set) defaults to file
        order. Negatives already stored for the same (id, variant) are an error unless
        `replace`, which refuses too when a score run of this dataset used that variant.
        """
        what = f"negatives for dataset {dataset_id}"
        require_columns(df, ["id", "variant", "text"], what)
        ext_ids, variants = text_column(df, "id", what), text_column(df, "variant", what)
        texts, metas = text_column(df, "text", what), meta_column(df, what)
        if "neg_index" in df.columns:
            neg_index = number_column(df, "neg_index", what, integer=True)
        else:
            neg_index = pd.DataFrame({"i": ext_ids, "v": variants}).groupby(["i", "v"], sort=False).cumcount().tolist()
        inst_ids = self._map_ids(dataset_id, ext_ids, what, conn)
        with self.write(conn) as c:
            if replace:
                self._delete_negatives(c, dataset_id, set(zip(inst_ids, variants)))
            try:
                return bulk_insert(c, Negative.__table__, ["instruction_id", "variant", "neg_index", "text", "meta"],
                                   zip(inst_ids, variants, neg_index, texts, metas))
            except IntegrityError:
                raise SeamError(f"{what}: some (id, variant, neg_index) are already stored or repeated; "
                                "pass replace=True to overwrite those sets") from None

    def _delete_negatives(self, conn: Connection, dataset_id: int, pairs: set[tuple[int, str]]) -> None:
        used = {v for vs in conn.execute(select(ScoreRun.variants).where(ScoreRun.dataset_id == dataset_id)).scalars()
                for v in (vs or [])}
        clash = sorted(used & {v for _, v in pairs})
        if clash:
            raise SeamError(f"cannot replace negatives of variant(s) {', '.join(clash)} in dataset {dataset_id}: "
                            "score runs use them; delete those score runs first or import into a new dataset")
        for inst_id, variant in pairs:
            conn.execute(delete(Negative).where(Negative.instruction_id == inst_id, Negative.variant == variant))

    def negatives(self, dataset_id: int, variant: str | None = None) -> pd.DataFrame:
        n, i = Negative.__table__, Instruction.__table__
        query = (select(i.c.ext_id.label("id"), n.c.variant, n.c.neg_index, n.c.text, n.c.meta)
                 .join(i, i.c.id == n.c.instruction_id).where(i.c.dataset_id == dataset_id))
        if variant:
            query = query.where(n.c.variant == variant)
        return self._frame(query.order_by(n.c.instruction_id, n.c.variant, n.c.neg_index))

    # --- score runs -----------------------------------------------------------------------------

    def create_score_run(self, dataset_id: int, variants: Sequence[str], settings: Mapping[str, Any] | None = None, *,
                         pm_model_id: int | None = None, rm_model_id: int | None = None, name: str | None = None) -> int:
        with self.write() as conn:
            return int(conn.execute(insert(ScoreRun).values(
                dataset_id=dataset_id, variants=list(variants), settings=dict(settings or {}), name=name,
                pm_model_id=pm_model_id, rm_model_id=rm_model_id, status="created", created_at=utcnow(),
            )).inserted_primary_key[0])

    def set_score_run_status(self, score_run_id: int, status: str, conn: Connection | None = None) -> None:
        values: dict[str, Any] = {"status": status}
        if status in ("done", "failed", "cancelled"):
            values["finished_at"] = utcnow()
        with self.write(conn) as c:
            c.execute(update(ScoreRun).where(ScoreRun.id == score_run_id).values(**values))

    def score_run(self, score_run_id: int, conn: Connection | None = None) -> dict[str, Any]:
        query = select(ScoreRun.__table__).where(ScoreRun.id == score_run_id)
        with contextlib.ExitStack() as stack:
            c = conn or stack.enter_context(self.read())
            row = c.execute(query).mappings().first()
        if row is None:
            raise SeamError(f"no score run {score_run_id} in {self.display}")
        return dict(row)

    def save_score_results(self, score_run_id: int, details_df: pd.DataFrame | None, seams_df: pd.DataFrame | None,
                           conn: Connection | None = None) -> tuple[int, int]:
        """Store per-negative details and per-(instruction, variant) SEAM rows of a score run.

        Frames follow DESIGN.md section 3 (``id`` is the instruction's external id). Returns the
        number of (detail, score) rows written. Pass `conn` to make it part of a larger transaction.
        """
        run = self.score_run(score_run_id, conn)  # all reads and checks first, then one short write
        variants = set(run["variants"] or [])
        inserts = []
        if details_df is not None and len(details_df):
            what = f"score details for run {score_run_id}"
            require_columns(details_df, DETAIL_COLUMNS, what)
            cols = self._score_rows(run, details_df, variants, what, conn)
            cols += [number_column(details_df, "neg_index", what, integer=True)]
            cols += [number_column(details_df, k, what) for k in ("rm_gold", "rm_neg", "epsilon", "pm_logprob_sum")]
            cols += [number_column(details_df, "pm_tokens", what, integer=True)]
            cols += [number_column(details_df, k, what) for k in ("pm_logprob_mean", "term")]
            names = ["score_run_id", "instruction_id", "variant", "neg_index", "rm_gold", "rm_neg", "epsilon",
                     "pm_logprob_sum", "pm_tokens", "pm_logprob_mean", "term"]
            inserts.append((ScoreDetail.__table__, names, cols, what))
        if seams_df is not None and len(seams_df):
            what = f"SEAM scores for run {score_run_id}"
            require_columns(seams_df, SCORE_COLUMNS, what)
            cols = self._score_rows(run, seams_df, variants, what, conn)
            cols += [number_column(seams_df, "seam", what)]
            cols += [number_column(seams_df, k, what, integer=True) for k in ("n_negatives", "n_misjudged")]
            cols += [number_column(seams_df, "rm_gold", what)]
            if any(v is None for v in cols[3]):
                raise SeamError(f"{what}: seam is empty in some rows; every (id, variant) needs a number")
            names = ["score_run_id", "instruction_id", "variant", "seam", "n_negatives", "n_misjudged", "rm_gold"]
            inserts.append((SeamScore.__table__, names, cols, what))
        counts = {ScoreDetail.__table__.name: 0, SeamScore.__table__.name: 0}
        with self.write(conn) as c:
            for table, names, cols, what in inserts:
                counts[table.name] = self._insert_results(c, table, names, cols, what)
        return counts["score_details"], counts["seam_scores"]

    def _score_rows(self, run: Mapping[str, Any], df: pd.DataFrame, variants: set[str], what: str,
                    conn: Connection | None) -> list[list]:
        ext_ids, vs = text_column(df, "id", what), text_column(df, "variant", what)
        unknown = set(vs) - variants
        if unknown:
            raise SeamError(f"{what}: variant(s) {', '.join(sorted(unknown))} are not in the score run "
                            f"(declared: {', '.join(sorted(variants)) or 'none'}); create the run with them")
        inst_ids = self._map_ids(run["dataset_id"], ext_ids, what, conn)
        return [[run["id"]] * len(df), inst_ids, vs]

    @staticmethod
    def _insert_results(conn: Connection, table, names: list[str], cols: list[list], what: str) -> int:  # noqa: ANN001
        try:
            return bulk_insert(conn, table, names, zip(*cols))
        except IntegrityError:
            raise SeamError(f"{what}: some rows are already stored (or repeated in the input); "
                            "each (id, variant[, neg_index]) is stored once per score run") from None

    def seam_scores(self, score_run_id: int) -> pd.DataFrame:
        """All SEAM rows of a run as a DESIGN.md scores frame."""
        s, i = SeamScore.__table__, Instruction.__table__
        return self._frame(select(i.c.ext_id.label("id"), s.c.variant, s.c.seam, s.c.n_negatives, s.c.n_misjudged,
                                  s.c.rm_gold).join(i, i.c.id == s.c.instruction_id)
                           .where(s.c.score_run_id == score_run_id).order_by(s.c.instruction_id, s.c.variant))

    def score_details(self, score_run_id: int) -> pd.DataFrame:
        """All per-negative rows of a run as a DESIGN.md details frame."""
        d, i = ScoreDetail.__table__, Instruction.__table__
        cols = [d.c[k] for k in DETAIL_COLUMNS[1:]]
        return self._frame(select(i.c.ext_id.label("id"), *cols).join(i, i.c.id == d.c.instruction_id)
                           .where(d.c.score_run_id == score_run_id)
                           .order_by(d.c.instruction_id, d.c.variant, d.c.neg_index))

    # --- explorer queries -----------------------------------------------------------------------

    def lowest_seam(self, score_run_id: int, variant: str, limit: int = 100, offset: int = 0) -> pd.DataFrame:
        """The `limit` lowest-SEAM instructions for a variant (ties by instruction), with prompts."""
        sql = text(
            "SELECT s.instruction_id, i.ext_id AS id, i.prompt, s.seam, s.n_negatives, s.n_misjudged, s.rm_gold "
            "FROM seam_scores s JOIN instructions i ON i.id = s.instruction_id "
            "WHERE s.score_run_id = :run AND s.variant = :variant "
            "ORDER BY s.seam, s.instruction_id LIMIT :limit OFFSET :offset"
        )
        return self._frame(sql, run=score_run_id, variant=variant, limit=int(limit), offset=int(offset))

    def instruction_breakdown(self, score_run_id: int, instruction: int | str) -> pd.DataFrame:
        """Every negative of one instruction in a run, across variants: numbers and text.

        `instruction` is the row id (int) or the external id (str).
        """
        inst_id = instruction
        if isinstance(instruction, str):
            dataset_id = self.score_run(score_run_id)["dataset_id"]
            inst_id = self._map_ids(dataset_id, [instruction], f"breakdown of run {score_run_id}", None)[0]
        sql = text(
            "SELECT d.variant, d.neg_index, n.text, d.rm_gold, d.rm_neg, d.epsilon, d.pm_logprob_sum, d.pm_tokens, "
            "d.pm_logprob_mean, d.term, n.meta "
            "FROM score_details d LEFT JOIN negatives n ON n.instruction_id = d.instruction_id "
            "AND n.variant = d.variant AND n.neg_index = d.neg_index "
            "WHERE d.instruction_id = :inst AND d.score_run_id = :run ORDER BY d.variant, d.neg_index"
        )
        df = self._frame(sql, inst=int(inst_id), run=score_run_id)
        df["meta"] = [json.loads(m) if isinstance(m, str) else m for m in df["meta"]]
        return df

    # --- annotations ----------------------------------------------------------------------------

    def add_annotation(self, instruction_id: int, response_a: str, response_b: str, choice: str, annotator: str, *,
                       source: str = "human", response_a_ref: str | None = None, response_b_ref: str | None = None,
                       score_run_id: int | None = None, duration_s: float | None = None,
                       meta: Mapping[str, Any] | None = None, conn: Connection | None = None) -> int:
        """Record one A/B judgement (`choice`: a, b, tie or both_bad) and return its id."""
        if choice not in ANNOTATION_CHOICES:
            raise SeamError(f"annotation choice {choice!r} is not one of {', '.join(ANNOTATION_CHOICES)}")
        if source not in ANNOTATION_SOURCES:
            raise SeamError(f"annotation source {source!r} is not one of {', '.join(ANNOTATION_SOURCES)}")
        with self.write(conn) as c:
            return int(c.execute(insert(Annotation).values(
                instruction_id=instruction_id, response_a=response_a, response_b=response_b, choice=choice,
                annotator=annotator, source=source, response_a_ref=response_a_ref, response_b_ref=response_b_ref,
                score_run_id=score_run_id, duration_s=duration_s, meta=dict(meta) if meta else None,
                created_at=utcnow(),
            )).inserted_primary_key[0])

    def annotations(self, *, instruction_id: int | None = None, score_run_id: int | None = None) -> pd.DataFrame:
        query = select(Annotation.__table__).order_by(Annotation.id)
        if instruction_id is not None:
            query = query.where(Annotation.instruction_id == instruction_id)
        if score_run_id is not None:
            query = query.where(Annotation.score_run_id == score_run_id)
        return self._frame(query)

    # --- runs (filter / augment / SFT / RM / PPO / eval) ----------------------------------------

    def create_run(self, kind: str, config: Mapping[str, Any], *, name: str | None = None,
                   inputs: Iterable[Mapping[str, Any]] = (), status: str = "created") -> int:
        """Record a run and its inputs (role, ref_kind, [ref_id], [path], [content_hash]).

        An input with a `path` on disk and no `content_hash` is hashed here, so lineage always
        says exactly which bytes a run consumed.
        """
        if kind not in RUN_KINDS:
            raise SeamError(f"run kind {kind!r} is not one of {', '.join(RUN_KINDS)}")
        if status not in RUN_STATUSES:
            raise SeamError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        rows = []
        for item in inputs:
            path = item.get("path")
            digest = item.get("content_hash")
            if path and not digest and Path(path).exists():
                digest = files.file_sha256(path)
            rows.append((item["role"], item["ref_kind"], item.get("ref_id"), str(path) if path else None, digest))
        with self.write() as conn:
            run_id = int(conn.execute(insert(Run).values(kind=kind, name=name, config=dict(config), status=status,
                                                         created_at=utcnow())).inserted_primary_key[0])
            bulk_insert(conn, RunInput.__table__, ["run_id", "role", "ref_kind", "ref_id", "path", "content_hash"],
                        ((run_id, *r) for r in rows))
        return run_id

    def update_run(self, run_id: int, *, status: str | None = None, artifacts: Mapping[str, Any] | None = None,
                   error: str | None = None, conn: Connection | None = None) -> None:
        """Set a run's status/error; `artifacts` (name -> path) are merged into those stored."""
        if status is not None and status not in RUN_STATUSES:
            raise SeamError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        with self.write(conn) as c:
            values: dict[str, Any] = {}
            if status is not None:
                values["status"] = status
                if status == "running":
                    values["started_at"] = utcnow()
                if status in ("done", "failed", "cancelled"):
                    values["finished_at"] = utcnow()
            if error is not None:
                values["error"] = error
            if artifacts:
                stored = c.execute(select(Run.artifacts).where(Run.id == run_id)).scalar() or {}
                values["artifacts"] = {**stored, **{k: str(v) for k, v in artifacts.items()}}
            if values:
                c.execute(update(Run).where(Run.id == run_id).values(**values))

    def log_metrics(self, run_id: int, step: int, metrics: Mapping[str, float], conn: Connection | None = None) -> None:
        now = utcnow()
        with self.write(conn) as c:
            bulk_insert(c, RunMetric.__table__, ["run_id", "step", "name", "value", "created_at"],
                        ((run_id, int(step), k, None if v is None else float(v), now) for k, v in metrics.items()))

    def run(self, run_id: int) -> dict[str, Any]:
        with self.read() as conn:
            row = conn.execute(select(Run.__table__).where(Run.id == run_id)).mappings().first()
            if row is None:
                raise SeamError(f"no run {run_id} in {self.display}")
            inputs = conn.execute(select(RunInput.__table__).where(RunInput.run_id == run_id)
                                  .order_by(RunInput.id)).mappings().all()
        return {**row, "inputs": [dict(r) for r in inputs]}

    def runs(self, kind: str | None = None) -> pd.DataFrame:
        query = select(Run.__table__).order_by(Run.id)
        if kind:
            query = query.where(Run.kind == kind)
        return self._frame(query)

    def run_metrics(self, run_id: int) -> pd.DataFrame:
        return self._frame(select(RunMetric.step, RunMetric.name, RunMetric.value, RunMetric.created_at)
                           .where(RunMetric.run_id == run_id).order_by(RunMetric.name, RunMetric.step, RunMetric.id))

    # --- files in and out -----------------------------------------------------------------------

    def export_dataset(self, dataset_id: int, path: str | Path, layout: str = "seam",
                       ids: Sequence[str] | None = None) -> Path:
        """Write a dataset (or the rows whose ids are given, in dataset order) as a file in `layout`.

        Layouts: trl-preference (prompt/chosen/rejected), trl-prompts (prompt, for RL),
        openrlhf-prompts (prompt; ``--input_key prompt``), openrlhf-preference
        (prompt/chosen/rejected), seam (the DESIGN.md instructions layout) and seam-json (the
        SEAM reference repo's .json). The file type follows the extension; writes are atomic.
        """
        return files.export_instructions(self.instructions(dataset_id, ids), path, layout)

    # --- helpers --------------------------------------------------------------------------------

    def count(self, table: str) -> int:
        """Row count of a table (for summaries and tests)."""
        with self.read() as conn:
            return int(conn.execute(select(func.count()).select_from(Base.metadata.tables[table])).scalar())

    def _frame(self, query, **params: Any) -> pd.DataFrame:  # noqa: ANN001
        with self.read() as conn:
            result = conn.execute(query, params) if params else conn.execute(query)
            # plain tuples: a Row exposes columns as attributes, and a column named "dtype" confuses pandas
            return pd.DataFrame([tuple(r) for r in result.fetchall()], columns=list(result.keys()))
