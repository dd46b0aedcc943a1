"""`seam worker`: run queued jobs from the store, one at a time, until stopped.

    worker = Worker(open_store("runs/"))
    worker.run()              # poll forever;  worker.run(once=True): drain the queue and return

Each job is claimed atomically (``UPDATE ... WHERE id = ? AND status = 'queued'``, then the row
count says whether this worker won it), so two workers never run the same job. While a job runs
a heartbeat thread stamps ``heartbeat_at`` and notices cancel requests. A job whose worker died
(its pid is gone on this host, or its heartbeat is older than `stale_after_s`) is put back in
the queue (or failed after `max_attempts`) by the next worker that starts or polls; resumed jobs
skip the chunks they already committed (see jobs.context). A failing job is marked failed with
its error and the worker goes on to the next one.

The worker runs each kind with the handler that `handlers` maps it to (default: every kind of
jobs.registry). Its command line is `seam worker` (seam/cli/worker.py).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update

from db.models import Job, utcnow
from db.store import Store
from seam.errors import SeamError
from seam.io import json_safe

from . import registry
from .context import FINISHED, Handler, JobCancelled, JobContext, JobLost

HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Worker:
    """Runs jobs from one store. See the module docstring for the guarantees."""

    def __init__(self, store: Store, *, worker_id: str | None = None, poll_s: float = 2.0, heartbeat_s: float = 5.0,
                 stale_after_s: float = 60.0, echo: bool = True, handlers: Mapping[str, Handler] | None = None):
        if store.engine.dialect.name == "sqlite" and store.engine.url.database in (None, "", ":memory:"):
            raise SeamError("the worker needs a store on disk or a database server, not in-memory SQLite; "
                            "pass --db FOLDER or a .db file")
        self.store = store
        self.pid = os.getpid()
        self.worker_id = worker_id or f"{HOST}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.poll_s, self.heartbeat_s, self.stale_after_s = poll_s, heartbeat_s, stale_after_s
        self.echo = echo
        self.stop_event = threading.Event()
        self.handlers = dict(handlers or {})  # kinds this worker runs its own way (the Ray backend's `score`)

    def say(self, message: str) -> None:
        if self.echo:
            sys.stderr.write(f"[worker {self.worker_id}] {message}\n")
            sys.stderr.flush()

    # --- the loop -------------------------------------------------------------------------------

    def run(self, *, once: bool = False, max_jobs: int | None = None) -> int:
        """Run jobs until stopped (`once`: until the queue is empty). Returns how many ran."""
        ran = 0
        self.reclaim_stale()
        while not self.stop_event.is_set() and (max_jobs is None or ran < max_jobs):
            job_id = self.run_next()
            if job_id is not None:
                ran += 1
                continue
            if once:
                break
            self.stop_event.wait(self.poll_s)
            self.reclaim_stale()
        return ran

    def run_next(self) -> int | None:
        """Claim and run the next queued job; returns its id, or None when the queue is empty."""
        job = self.claim()
        if job is None:
            return None
        self.execute(job)
        return int(job["id"])

    # --- claiming -------------------------------------------------------------------------------

    def claim(self) -> dict[str, Any] | None:
        """Atomically take the highest-priority, oldest queued job."""
        t = Job.__table__
        while True:
            with self.store.read() as conn:
                candidates = conn.execute(select(t.c.id).where(t.c.status == "queued")
                                          .order_by(t.c.priority.desc(), t.c.id).limit(8)).scalars().all()
            if not candidates:
                return None
            for job_id in candidates:
                now = utcnow()
                with self.store.write() as conn:
                    won = conn.execute(update(t).where(t.c.id == job_id, t.c.status == "queued").values(
                        status="running", worker_id=self.worker_id, worker_host=HOST, worker_pid=self.pid,
                        heartbeat_at=now, attempts=t.c.attempts + 1, started_at=now, eta_s=None,
                    )).rowcount
                    if won:
                        return dict(conn.execute(select(t).where(t.c.id == job_id)).mappings().one())
            # every candidate was taken by another worker in the meantime: look again

    def reclaim_stale(self) -> list[int]:
        """Requeue (or fail, past max_attempts) running jobs whose worker is gone. Returns their ids."""
        t = Job.__table__
        cutoff = utcnow() - dt.timedelta(seconds=self.stale_after_s)
        with self.store.read() as conn:
            rows = conn.execute(select(t.c.id, t.c.worker_id, t.c.worker_host, t.c.worker_pid, t.c.heartbeat_at,
                                       t.c.attempts, t.c.max_attempts).where(t.c.status == "running")).all()
        reclaimed = []
        for r in rows:
            if r.worker_id == self.worker_id:
                continue
            if r.worker_host == HOST and r.worker_pid and r.worker_pid != self.pid:
                # (a worker in this very process, or one whose pid was reused, is judged by heartbeat)
                dead = not pid_alive(r.worker_pid)
                why = f"its worker process {r.worker_pid} is gone"
            else:
                dead, why = False, ""
            if not dead and (r.heartbeat_at is None or r.heartbeat_at < cutoff):
                dead, why = True, f"its worker's last heartbeat was {r.heartbeat_at} (over {self.stale_after_s:.0f} s ago)"
            if not dead:
                continue
            failed = r.attempts >= r.max_attempts
            values: dict[str, Any] = {"worker_id": None, "eta_s": None}
            if failed:
                values.update(status="failed", finished_at=utcnow(),
                              error=f"worker {r.worker_id} stopped during attempt {r.attempts} of {r.max_attempts} "
                                    f"({why}); requeue it to try again")
            else:
                values.update(status="queued")
            note = f"{time.strftime('%H:%M:%S')} reclaimed by {self.worker_id}: {why}; " \
                   f"{'failed after ' + str(r.attempts) + ' attempts' if failed else 'requeued'}\n"
            with self.store.write() as conn:
                n = conn.execute(update(t).where(t.c.id == r.id, t.c.worker_id == r.worker_id, t.c.status == "running")
                                 .values(log=t.c.log + note, **values)).rowcount
            if n:
                reclaimed.append(int(r.id))
                self.say(f"job {r.id}: {note.split(' ', 1)[1].strip()}")
        return reclaimed

    # --- running one job ------------------------------------------------------------------------

    def execute(self, job: dict[str, Any]) -> str:
        """Run a claimed job to its end; returns the final status."""
        ctx = JobContext(self.store, job, self.worker_id, echo=self.echo)
        self.say(f"job {ctx.job_id} ({ctx.kind}) started, attempt {ctx.attempt}")
        done = threading.Event()  # stops the heartbeat thread
        beat = threading.Thread(target=self._heartbeat, args=(ctx, done), daemon=True, name=f"heartbeat-{ctx.job_id}")
        beat.start()
        status, result, error = "failed", None, None
        try:
            handler = self.handlers.get(ctx.kind) or registry.get_handler(ctx.kind)
            result = handler(ctx, ctx.payload)
            status = "done"
        except JobCancelled:
            status = "cancelled"
        except JobLost as exc:
            self.say(f"job {ctx.job_id}: {exc}; leaving it to its new owner")
            return "lost"
        except SeamError as exc:
            error = str(exc)
        except (KeyboardInterrupt, SystemExit):
            self._release(ctx)
            raise
        except Exception as exc:  # noqa: BLE001 - any handler failure fails the job, not the worker
            error = f"{type(exc).__name__}: {exc}"
            self._safe_log(ctx, traceback.format_exc())
        finally:
            done.set()
            beat.join(timeout=self.heartbeat_s + 5)
        self._finish(ctx, status, result, error)
        self.say(f"job {ctx.job_id} {status}" + (f": {error}" if error else ""))
        return status

    def _heartbeat(self, ctx: JobContext, done: threading.Event) -> None:
        t = Job.__table__
        while not done.wait(self.heartbeat_s):
            try:
                with self.store.write() as conn:
                    n = conn.execute(update(t).where(t.c.id == ctx.job_id, t.c.worker_id == self.worker_id,
                                                     t.c.status == "running").values(heartbeat_at=utcnow())).rowcount
                    cancel = conn.execute(select(t.c.cancel_requested).where(t.c.id == ctx.job_id)).scalar()
                if not n:
                    ctx.lost_event.set()
                    return
                if cancel:
                    ctx.cancel_event.set()
            except Exception as exc:  # noqa: BLE001 - a missed beat is not fatal; the next one retries
                self.say(f"job {ctx.job_id}: heartbeat failed ({exc})")

    def _finish(self, ctx: JobContext, status: str, result: Any, error: str | None) -> None:
        try:
            ctx.flush()
        except Exception:  # noqa: BLE001 - pending progress is not worth failing the finish
            pass
        values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error, "eta_s": None}
        if status == "done":
            values.update(progress=1.0, eta_s=0.0, result=_jsonable(result))
        with self.store.write() as conn:
            conn.execute(update(Job).where(Job.id == ctx.job_id, Job.worker_id == self.worker_id,
                                           Job.status.notin_(FINISHED)).values(**values))

    def _release(self, ctx: JobContext) -> None:
        """Give a job back to the queue when the worker is stopped (Ctrl-C, SIGTERM) mid-job."""
        try:
            with self.store.write() as conn:
                conn.execute(update(Job).where(Job.id == ctx.job_id, Job.worker_id == self.worker_id,
                                               Job.status == "running").values(
                    status="queued", worker_id=None, attempts=Job.attempts - 1, eta_s=None,
                    log=Job.log + f"{time.strftime('%H:%M:%S')} worker stopped; job requeued\n"))
            self.say(f"job {ctx.job_id} requeued (worker stopping)")
        except Exception as exc:  # noqa: BLE001
            self.say(f"job {ctx.job_id}: could not requeue ({exc}); the next worker will reclaim it")

    @staticmethod
    def _safe_log(ctx: JobContext, text: str) -> None:
        try:
            ctx.log(text)
        except Exception:  # noqa: BLE001
            pass


def _jsonable(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return json_safe(value if isinstance(value, dict) else {"value": value})


def serve(worker: Worker, store: Store, *, once: bool) -> int:
    def stop(signum, _frame):  # noqa: ANN001
        raise KeyboardInterrupt  # the running job is requeued, then the worker exits

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main_thread else None
    worker.say(f"serving {store.display} ({'until the queue is empty' if once else 'Ctrl-C to stop'})")
    try:
        ran = worker.run(once=once)
    except KeyboardInterrupt:
        worker.say("stopped")
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    worker.say(f"done: {ran} job(s) run")
    return 0
