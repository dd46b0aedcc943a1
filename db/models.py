"""The store's tables as SQLAlchemy 2.0 typed models.

One row per thing the product tracks: registered checkpoints, datasets and their instructions,
negatives, score runs with their per-negative results and per-(instruction, variant) SEAM,
annotations, training/eval runs with lineage and metrics, and the job queue.

Conventions: integer primary keys; instructions keep their external string id in ``ext_id``
(unique per dataset); JSON columns hold free-form settings; times are naive UTC.
The Alembic revisions in ``db/migrations/versions`` must build exactly this schema
(``tests/test_db_migrations.py`` compares them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so Alembic batch migrations on SQLite can find them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MODEL_ROLES = ("pm", "rm")
ANNOTATION_CHOICES = ("a", "b", "tie", "both_bad")
ANNOTATION_SOURCES = ("human", "llm", "code")
RUN_KINDS = ("filter", "augment", "sft", "rm", "ppo", "eval")
RUN_STATUSES = ("created", "queued", "running", "done", "failed", "cancelled")
JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")


def utcnow() -> dt.datetime:
    """Naive UTC now (what every DateTime column stores)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class RegisteredModel(Base):
    """A PM or RM checkpoint the user registered (a local folder, optional PEFT adapter)."""

    __tablename__ = "models"
    __table_args__ = (CheckConstraint(_in("role", MODEL_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    adapter: Mapped[str | None] = mapped_column(Text)
    dtype: Mapped[str] = mapped_column(String(16), default="auto")
    template: Mapped[str] = mapped_column(Text, default="stackllama")
    fingerprint: Mapped[str | None] = mapped_column(String(128), index=True)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Dataset(Base):
    """A named set of instructions loaded from a file (an RL set or a preference set)."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source_path: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(128))
    n_instructions: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Instruction(Base):
    """One instruction: prompt, golden response (`chosen`), optional `rejected` and meta."""

    __tablename__ = "instructions"
    __table_args__ = (UniqueConstraint("dataset_id", "ext_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    ext_id: Mapped[str] = mapped_column(String(400))
    prompt: Mapped[str] = mapped_column(Text)
    chosen: Mapped[str] = mapped_column(Text)
    rejected: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Negative(Base):
    """One worse response for an instruction from one source (`variant`), in file order."""

    __tablename__ = "negatives"
    __table_args__ = (UniqueConstraint("instruction_id", "variant", "neg_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instruction_id: Mapped[int] = mapped_column(ForeignKey("instructions.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(64))
    neg_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ScoreRun(Base):
    """One SEAM computation: a PM, an RM, a dataset, the variants scored and the settings."""

    __tablename__ = "score_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    pm_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    rm_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    variants: Mapped[list[Any]] = mapped_column(JSON)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="created")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class ScoreDetail(Base):
    """One negative's numbers in a score run (DESIGN.md section 3, SEAM details)."""

    __tablename__ = "score_details"
    __table_args__ = (
        # instruction_id first: serves "one instruction's breakdown" (instruction_id, score_run_id)
        # and keeps cascaded instruction deletes indexed. The negative's text is joined on the
        # natural key (instruction_id, variant, neg_index), which `negatives` indexes uniquely.
        UniqueConstraint("instruction_id", "score_run_id", "variant", "neg_index"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    score_run_id: Mapped[int] = mapped_column(ForeignKey("score_runs.id", ondelete="CASCADE"))
    instruction_id: Mapped[int] = mapped_column(ForeignKey("instructions.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(64))
    neg_index: Mapped[int] = mapped_column(Integer)
    rm_gold: Mapped[float | None] = mapped_column(Float)
    rm_neg: Mapped[float | None] = mapped_column(Float)
    epsilon: Mapped[float | None] = mapped_column(Float)
    pm_logprob_sum: Mapped[float | None] = mapped_column(Float)
    pm_tokens: Mapped[int | None] = mapped_column(Integer)
    pm_logprob_mean: Mapped[float | None] = mapped_column(Float)
    term: Mapped[float | None] = mapped_column(Float)


class SeamScore(Base):
    """SEAM of one (instruction, variant) in a score run (DESIGN.md section 3, SEAM scores)."""

    __tablename__ = "seam_scores"
    __table_args__ = (
        UniqueConstraint("instruction_id", "score_run_id", "variant"),
        # "Lowest N by SEAM for a variant": an index range scan, already in order.
        Index("ix_seam_scores_run_variant_seam", "score_run_id", "variant", "seam", "instruction_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    score_run_id: Mapped[int] = mapped_column(ForeignKey("score_runs.id", ondelete="CASCADE"))
    instruction_id: Mapped[int] = mapped_column(ForeignKey("instructions.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(64))
    seam: Mapped[float] = mapped_column(Float)
    n_negatives: Mapped[int] = mapped_column(Integer)
    n_misjudged: Mapped[int] = mapped_column(Integer)
    rm_gold: Mapped[float | None] = mapped_column(Float)


class Annotation(Base):
    """One A/B judgement: the pair shown, what each side held, the choice, who and when."""

    __tablename__ = "annotations"
    __table_args__ = (
        CheckConstraint(_in("choice", ANNOTATION_CHOICES), name="choice"),
        CheckConstraint(_in("source", ANNOTATION_SOURCES), name="source"),
        Index("ix_annotations_instruction_id", "instruction_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instruction_id: Mapped[int] = mapped_column(ForeignKey("instructions.id", ondelete="CASCADE"))
    score_run_id: Mapped[int | None] = mapped_column(ForeignKey("score_runs.id", ondelete="SET NULL"))
    response_a: Mapped[str] = mapped_column(Text)
    response_b: Mapped[str] = mapped_column(Text)
    # What each side held, e.g. "gold", "negative:<negatives.id>", "policy:<runs.id>".
    response_a_ref: Mapped[str | None] = mapped_column(String(200))
    response_b_ref: Mapped[str | None] = mapped_column(String(200))
    choice: Mapped[str] = mapped_column(String(16))
    annotator: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16), default="human")
    duration_s: Mapped[float | None] = mapped_column(Float)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Run(Base):
    """A filter / augment / SFT / RM / PPO / eval run: config, status and artifact paths."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(_in("kind", RUN_KINDS), name="kind"),
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="created")
    artifacts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class RunInput(Base):
    """Lineage: one input of a run (a dataset, model, score run, earlier run or file) and its hash."""

    __tablename__ = "run_inputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(64))  # e.g. "rl_data", "pm", "rm", "scores"
    ref_kind: Mapped[str] = mapped_column(String(32))  # dataset | model | score_run | run | file
    ref_id: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(128))


class RunMetric(Base):
    """One scalar logged by a run at a step (loss, reward, win rate, ...)."""

    __tablename__ = "run_metrics"
    __table_args__ = (Index("ix_run_metrics_run_name_step", "run_id", "name", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    value: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Job(Base):
    """A queued unit of work for `seam worker` (revision 0002)."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        Index("ix_jobs_status_priority_id", "status", "priority", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    eta_s: Mapped[float | None] = mapped_column(Float)
    step: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    log: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    worker_host: Mapped[str | None] = mapped_column(String(200))
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class JobChunk(Base):
    """A chunk of a job's results that is committed (written in the same transaction as its rows)."""

    __tablename__ = "job_chunks"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    chunk_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
