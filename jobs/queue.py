"""The job queue: rows of the ``jobs`` table. Enqueue, cancel, requeue and inspect jobs.

A job is a row (kind, JSON payload, status queued -> running -> done | failed | cancelled). The
queue knows no handlers: `seam worker` (jobs.worker) claims queued jobs and runs each with the
handler that jobs.registry names for its kind. Pages and scripts only enqueue and read:

    job_id = enqueue_job(store, "score", {"score_run_id": run_id})
    get_job(store, job_id)["progress"]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select, update

from db.models import Job, JobChunk, utcnow
from db.store import Store
from seam.errors import SeamError


def enqueue_job(store: Store, kind: str, payload: Mapping[str, Any] | None = None, *, priority: int = 0,
                max_attempts: int = 3, run_id: int | None = None) -> int:
    """Queue a job; returns its id. Higher `priority` runs first, then oldest first."""
    payload = dict(payload or {})
    try:
        json.dumps(payload)
    except TypeError as exc:
        raise SeamError(f"job payload for {kind!r} is not JSON ({exc}); pass plain numbers, strings, lists and dicts") from None
    with store.write() as conn:
        return int(conn.execute(insert(Job).values(
            kind=kind, payload=payload, status="queued", priority=priority, max_attempts=max_attempts, run_id=run_id,
            progress=0.0, log="", cancel_requested=False, attempts=0, created_at=utcnow(),
        )).inserted_primary_key[0])


def cancel_job(store: Store, job_id: int) -> str:
    """Cancel a job: a queued one at once, a running one at its next check. Returns the status."""
    with store.write() as conn:
        status = conn.execute(select(Job.status).where(Job.id == job_id)).scalar()
        if status is None:
            raise SeamError(f"no job {job_id} in {store.display}")
        if status == "queued":
            conn.execute(update(Job).where(Job.id == job_id).values(status="cancelled", finished_at=utcnow(),
                                                                    cancel_requested=True))
            return "cancelled"
        if status == "running":
            conn.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
        return status


def requeue_job(store: Store, job_id: int) -> None:
    """Put a failed or cancelled job back in the queue; it resumes after its committed chunks."""
    with store.write() as conn:
        n = conn.execute(update(Job).where(Job.id == job_id, Job.status.in_(("failed", "cancelled"))).values(
            status="queued", cancel_requested=False, error=None, attempts=0, worker_id=None, finished_at=None,
        )).rowcount
    if not n:
        raise SeamError(f"job {job_id} is not failed or cancelled; only those can be requeued")


def get_job(store: Store, job_id: int) -> dict[str, Any]:
    """One job as a dict (status, progress, eta_s, step, error, log, ...)."""
    with store.read() as conn:
        row = conn.execute(select(Job.__table__).where(Job.id == job_id)).mappings().first()
        if row is None:
            raise SeamError(f"no job {job_id} in {store.display}")
        chunks = conn.execute(select(func.count()).where(JobChunk.job_id == job_id)).scalar()
    return {**row, "chunks_done": int(chunks)}


def list_jobs(store: Store, status: str | None = None, limit: int = 100) -> pd.DataFrame:
    """Newest jobs first, without their logs (use `get_job` for one job's log)."""
    t = Job.__table__
    query = select(*[c for c in t.c if c.name != "log"]).order_by(t.c.id.desc()).limit(limit)
    if status:
        query = query.where(t.c.status == status)
    with store.read() as conn:
        result = conn.execute(query)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


