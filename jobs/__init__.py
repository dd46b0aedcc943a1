"""The job system: a queue of rows in the store, a worker that runs them, and one module per job kind.

    from jobs import enqueue_job, get_job
    job_id = enqueue_job(store, "score", {"score_run_id": 3})   # the dashboard's button does this
    # `seam worker --db runs/` claims it and runs jobs/kinds/score.py; get_job(store, job_id) reads progress

    queue.py        enqueue / cancel / requeue / inspect (rows of the jobs table; knows no handlers)
    context.py      JobContext (progress, log, cancel, chunked commits), JobCancelled, JobLost
    registry.py     kind name -> handler; read only by the worker
    worker.py       claims jobs, heartbeats, reclaims jobs of dead workers, runs handlers
    ray_backend.py  `seam worker --backend ray`: score chunks in Ray actors
    kinds/          one module per job kind

See docs/jobs.md. Imports run one way: jobs -> db -> seam.
"""

from .context import JobCancelled, JobContext, JobLost
from .queue import cancel_job, enqueue_job, get_job, list_jobs, requeue_job
from .registry import job_kinds, register_job_kind

__all__ = [
    "JobCancelled",
    "JobContext",
    "JobLost",
    "cancel_job",
    "enqueue_job",
    "get_job",
    "job_kinds",
    "list_jobs",
    "register_job_kind",
    "requeue_job",
]
