"""What a job handler works with: `JobContext` (progress, log, cancel, chunked commits) and the
exceptions that end a job early.

A handler is ``handler(ctx, payload)``; the worker (jobs.worker) builds its `JobContext`:

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

import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, insert, select, update

from db.models import Job, JobChunk, utcnow
from db.store import Store

Handler = Callable[["JobContext", dict], Any]
MAX_LOG_CHARS = 1_000_000  # the log keeps its newest part beyond this
FINISHED = ("done", "failed", "cancelled")


class JobCancelled(Exception):
    """Raised inside a handler (by `check_cancelled` / `commit_chunk`) when a cancel was requested."""


class JobLost(Exception):
    """This worker no longer owns the job (it was reclaimed as stale); stop without writing."""


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
