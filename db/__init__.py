"""The SEAM Studio store: SQLAlchemy models, Alembic migrations, the job queue and its worker.

    from db import open_store
    store = open_store("runs/")      # a folder (runs/seam.db), a .db file or any SQLAlchemy URL

See docs/store.md. `seam/` never imports this package; the CLI and the worker join the two.
"""

from .jobs import (
    JobCancelled,
    JobContext,
    JobLost,
    cancel_job,
    enqueue_job,
    get_job,
    job_kinds,
    list_jobs,
    register_job_kind,
    requeue_job,
)
from .store import Store, open_store

__all__ = [
    "JobCancelled",
    "JobContext",
    "JobLost",
    "Store",
    "cancel_job",
    "enqueue_job",
    "get_job",
    "job_kinds",
    "list_jobs",
    "open_store",
    "register_job_kind",
    "requeue_job",
]
