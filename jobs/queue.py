"""The job queue: job kinds, enqueue / cancel / inspect, and the context a handler works with.

A job is a row in ``jobs`` (kind, JSON payload, status queued -> running -> done | failed |
cancelled). `seam worker` (db.worker) claims queued jobs and calls the handler registered for
the kind as ``handler(ctx, payload)``. The handler reports through `JobContext`:

    def handler(ctx, payload):
        done = ctx.done_chunks()                       # chunks committed by an earlier attempt
        for k, batch in enumerate(batches(payload)):
            if str(k) in done:
                continue                               # resumed after a crash: skip, don't redo
            rows = compute(batch)                      # the slow part, outside any transaction
            ctx.commit_chunk(str(k), lambda conn: store.save_score_results(run, *rows, conn=conn))
            ctx.progress((k + 1) / n, f"batch {k + 1}/{n}")

`commit_chunk` writes the chunk's rows and its "done" marker in ONE transaction, so a worker
killed at any instant leaves each chunk either fully stored and marked, or absent and unmarked;
the restarted job redoes exactly the unmarked chunks. It also checks, in that transaction, that
this worker still owns the job (a fence against a second worker that reclaimed it).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy import Connection, func, insert, select, update

from seam.errors import SeamError

from .models import Job, JobChunk, utcnow
from .store import Store

Handler = Callable[["JobContext", dict], Any]
MAX_LOG_CHARS = 1_000_000  # the log keeps its newest part beyond this
FINISHED = ("done", "failed", "cancelled")


class JobCancelled(Exception):
    """Raised inside a handler (by `check_cancelled` / `commit_chunk`) when a cancel was requested."""


class JobLost(Exception):
    """This worker no longer owns the job (it was reclaimed as stale); stop without writing."""


# --- kinds ---------------------------------------------------------------------------------------

_REGISTRY: dict[str, Handler] = {}


def register_job_kind(name: str, handler: Handler, *, replace: bool = False) -> None:
    """Make `handler(ctx, payload)` run jobs of kind `name` (in this process's workers)."""
    if not replace and name in _REGISTRY and _REGISTRY[name] is not handler:
        raise ValueError(f"job kind {name!r} is already registered; pass replace=True to override it")
    _REGISTRY[name] = handler


def _builtin() -> dict[str, Handler]:
    from .handlers import BUILTIN_KINDS

    return BUILTIN_KINDS


def job_kinds() -> list[str]:
    return sorted(set(_builtin()) | set(_REGISTRY))


def get_handler(kind: str) -> Handler:
    handler = _REGISTRY.get(kind) or _builtin().get(kind)
    if handler is None:
        raise SeamError(f"unknown job kind {kind!r}; this worker knows {', '.join(job_kinds())}")
    return handler


# --- queue operations ----------------------------------------------------------------------------

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


# --- the handler's view of its job ---------------------------------------------------------------

class JobContext:
    """What a handler uses to report progress, log, notice a cancel and commit results in chunks."""

    def __init__(self, store: Store, job: Mapping[str, Any], worker_id: str, *, echo: bool = False,
                 progress_interval_s: float = 0.5):
        self.store = store
        self.job_id = int(job["id"])
        self.kind = job["kind"]
        self.payload = dict(job["payload"] or {})
        self.attempt = int(job["attempts"])
        self.worker_id = worker_id
        self.echo = echo
        self.cancel_event = threading.Event()  # set by the worker's heartbeat when a cancel is seen
        self.lost_event = threading.Event()  # set when another worker took the job over
        self._interval = progress_interval_s
        self._t0 = time.monotonic()
        self._f0: float | None = None
        self._last_write = 0.0
        self._pending: dict[str, Any] | None = None
        self._log_chars = len(job.get("log") or "")
        self._done: set[str] | None = None

    # progress and log -----------------------------------------------------------------------

    def progress(self, fraction: float | None = None, step: str | None = None, *, force: bool = False) -> None:
        """Report progress (0..1) and/or the current step; writes are throttled, ETA is estimated."""
        now = time.monotonic()
        values: dict[str, Any] = dict(self._pending or {})
        if fraction is not None:
            fraction = min(max(float(fraction), 0.0), 1.0)
            if self._f0 is None:  # first report of this attempt: the rate is measured from here
                self._f0, self._t0 = fraction, now
            values["progress"] = fraction
            done = fraction - self._f0
            values["eta_s"] = (1.0 - fraction) * (now - self._t0) / done if done > 0 else None
        if step is not None:
            values["step"] = step
        self._pending = values
        if force or now - self._last_write >= self._interval:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        values, self._pending = self._pending, None
        with self.store.write() as conn:
            self._owned_update(conn, **values)
        self._last_write = time.monotonic()

    def log(self, line: str) -> None:
        """Append a line (timestamped) to the job's log, which the dashboard shows."""
        entry = f"{time.strftime('%H:%M:%S')} {line.rstrip()}\n"
        if self.echo:
            sys.stderr.write(f"[job {self.job_id}] {entry}")
        with self.store.write() as conn:
            if self._log_chars + len(entry) > MAX_LOG_CHARS:
                text = (conn.execute(select(Job.log).where(Job.id == self.job_id)).scalar() or "") + entry
                text = text[-MAX_LOG_CHARS // 2:]
                conn.execute(update(Job).where(Job.id == self.job_id).values(log=text))
                self._log_chars = len(text)
            else:
                conn.execute(update(Job).where(Job.id == self.job_id).values(log=Job.log + entry))
                self._log_chars += len(entry)

    # cancel ---------------------------------------------------------------------------------

    def is_cancelled(self) -> bool:
        """True once a cancel was requested (checked against the database)."""
        if not self.cancel_event.is_set():
            with self.store.read() as conn:
                if conn.execute(select(Job.cancel_requested).where(Job.id == self.job_id)).scalar():
                    self.cancel_event.set()
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise `JobCancelled` if a cancel was requested, `JobLost` if the job was taken over."""
        if self.lost_event.is_set():
            raise JobLost(f"job {self.job_id} was reclaimed by another worker")
        if self.is_cancelled():
            raise JobCancelled(f"job {self.job_id} cancelled")

    # chunked results --------------------------------------------------------------------------

    def done_chunks(self) -> set[str]:
        """Keys of the chunks this job has committed (in any earlier attempt)."""
        if self._done is None:
            with self.store.read() as conn:
                self._done = set(conn.execute(select(JobChunk.chunk_key).where(JobChunk.job_id == self.job_id)).scalars())
        return set(self._done)

    def commit_chunk(self, chunk_key: str, writer: Callable[[Connection], Any]) -> bool:
        """Run `writer(conn)` and mark `chunk_key` done in one transaction.

        Returns False (and writes nothing) when the chunk was already committed. Raises
        `JobCancelled` / `JobLost` before writing when the job was cancelled or taken over.
        """
        chunk_key = str(chunk_key)
        self.check_cancelled()
        with self.store.write() as conn:
            self._owned_update(conn, heartbeat_at=utcnow())
            exists = conn.execute(select(JobChunk.chunk_key).where(
                JobChunk.job_id == self.job_id, JobChunk.chunk_key == chunk_key)).first()
            if exists is not None:
                return False
            writer(conn)
            conn.execute(insert(JobChunk).values(job_id=self.job_id, chunk_key=chunk_key, created_at=utcnow()))
        if self._done is not None:
            self._done.add(chunk_key)
        return True

    def _owned_update(self, conn: Connection, **values: Any) -> None:
        n = conn.execute(update(Job).where(Job.id == self.job_id, Job.worker_id == self.worker_id,
                                           Job.status == "running").values(**values)).rowcount
        if not n:
            self.lost_event.set()
            raise JobLost(f"job {self.job_id} is no longer run by worker {self.worker_id}")
