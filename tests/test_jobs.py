"""The job queue and worker: results, failures, cancel, atomic claims, stale workers, the CLI."""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
from sqlalchemy import update

from db import open_store
from db.models import Job, utcnow
from jobs import JobLost, cancel_job, enqueue_job, get_job, job_kinds, list_jobs, register_job_kind, requeue_job
from jobs.kinds.synthetic import synthetic_frames
from jobs.worker import HOST, Worker
from seam.errors import SeamError


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path)
    yield s
    s.close()


def _score_run(store, n=60, variants=("contrast", "llm")):
    df = pd.DataFrame({"id": [f"q{i}" for i in range(n)], "prompt": "p", "chosen": "c"})
    ds = store.import_instructions(f"rl{n}", df)
    return store.create_score_run(ds, list(variants))


def _worker(store, **kw):
    return Worker(store, echo=False, poll_s=0.05, **kw)


def test_job_writes_results_reports_progress_and_log(store):
    run = _score_run(store)
    job = enqueue_job(store, "synthetic-score", {"score_run_id": run, "chunk_size": 25, "n_negatives": 3, "seed": 5})
    assert "synthetic-score" in job_kinds()
    assert _worker(store).run(once=True) == 1
    info = get_job(store, job)
    assert info["status"] == "done" and info["progress"] == 1.0 and info["eta_s"] == 0.0
    assert info["step"] == "chunk 3/3" and info["chunks_done"] == 3 and info["attempts"] == 1
    assert info["result"] == {"chunks": 3, "details_written": 60 * 2 * 3}
    assert info["log"].count("writing") == 3 and info["error"] is None
    assert store.score_run(run)["status"] == "done"
    # chunk by chunk, the stored numbers are exactly the pure function of the payload
    ids = [f"q{i}" for i in range(60)]
    want = pd.concat([synthetic_frames(ids[i:i + 25], ["contrast", "llm"], 3, 5)[1] for i in range(0, 60, 25)])
    got = store.seam_scores(run)
    merged = got.merge(want, on=["id", "variant"], suffixes=("", "_want"))
    assert len(merged) == 120 and (merged["seam"] - merged["seam_want"]).abs().max() < 1e-12
    jobs = list_jobs(store)
    assert jobs["id"].tolist() == [job] and "log" not in jobs.columns


def test_failing_job_is_marked_failed_and_worker_goes_on(store):
    run = _score_run(store)
    bad = enqueue_job(store, "synthetic-score", {"score_run_id": run, "chunk_size": 20, "fail_at_chunk": 1})
    unknown = enqueue_job(store, "no-such-kind", {})
    user_error = enqueue_job(store, "synthetic-score", {"score_run_id": "x"})
    good = enqueue_job(store, "synthetic-score", {"score_run_id": _score_run(store, n=10)})
    assert _worker(store).run(once=True) == 4
    info = get_job(store, bad)
    assert info["status"] == "failed" and info["error"] == "RuntimeError: synthetic failure at chunk 1"
    assert "Traceback" in info["log"] and info["chunks_done"] == 1
    assert "unknown job kind 'no-such-kind'" in get_job(store, unknown)["error"]
    assert get_job(store, user_error)["error"].startswith("synthetic-score payload needs an integer score_run_id")
    assert get_job(store, good)["status"] == "done"
    # a failed job can be requeued and resumes after its committed chunk
    with store.write() as conn:
        conn.execute(update(Job).where(Job.id == bad).values(payload={"score_run_id": run, "chunk_size": 20}))
    requeue_job(store, bad)
    _worker(store).run(once=True)
    info = get_job(store, bad)
    assert info["status"] == "done" and info["result"]["details_written"] == 40 * 2 * 4
    assert len(store.score_details(run)) == 60 * 2 * 4
    with pytest.raises(SeamError, match="not failed or cancelled"):
        requeue_job(store, good)


def test_cancel_queued_and_running_jobs(store):
    run = _score_run(store)
    queued = enqueue_job(store, "synthetic-score", {"score_run_id": run})
    assert cancel_job(store, queued) == "cancelled"
    assert _worker(store).run(once=True) == 0

    running = enqueue_job(store, "synthetic-score", {"score_run_id": run, "chunk_size": 5, "sleep_s": 0.05})
    worker = _worker(store)
    thread = threading.Thread(target=worker.run, kwargs={"once": True})
    thread.start()
    deadline = time.time() + 30
    while get_job(store, running)["chunks_done"] < 2 and time.time() < deadline:
        time.sleep(0.01)
    assert cancel_job(store, running) == "running"
    thread.join(30)
    info = get_job(store, running)
    assert info["status"] == "cancelled" and 2 <= info["chunks_done"] < 12
    with pytest.raises(SeamError, match="no job 999"):
        cancel_job(store, 999)


def test_two_workers_never_run_the_same_job(tmp_path):
    first = open_store(tmp_path)
    jobs = [enqueue_job(first, "synthetic-score", {"score_run_id": _score_run(first, n=n)}) for n in range(5, 17)]
    second = open_store(tmp_path)
    workers = [_worker(first), _worker(second)]
    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    infos = [get_job(first, j) for j in jobs]
    # a job run twice would have failed on the unique (instruction, run, variant) keys
    assert all(i["status"] == "done" and i["attempts"] == 1 for i in infos)
    assert {i["worker_id"] for i in infos} <= {w.worker_id for w in workers}
    second.close()
    first.close()


def _pretend_running(store, job, *, worker_id, host=HOST, pid=None, heartbeat=None, attempts=1):
    with store.write() as conn:
        conn.execute(update(Job).where(Job.id == job).values(
            status="running", worker_id=worker_id, worker_host=host, worker_pid=pid,
            heartbeat_at=heartbeat or utcnow(), attempts=attempts))


def test_jobs_of_dead_or_silent_workers_are_reclaimed(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = _score_run(store)
    orphan = enqueue_job(store, "synthetic-score", {"score_run_id": run})
    _pretend_running(store, orphan, worker_id="gone", pid=dead.pid)
    silent = enqueue_job(store, "synthetic-score", {"score_run_id": _score_run(store, n=7)})
    _pretend_running(store, silent, worker_id="far", host="elsewhere", pid=1,
                     heartbeat=utcnow() - dt.timedelta(minutes=5))
    alive = enqueue_job(store, "synthetic-score", {"score_run_id": _score_run(store, n=8)})
    _pretend_running(store, alive, worker_id="busy", host="elsewhere", pid=1)
    worn = enqueue_job(store, "synthetic-score", {"score_run_id": _score_run(store, n=9)}, max_attempts=2)
    _pretend_running(store, worn, worker_id="gone2", pid=dead.pid, attempts=2)

    worker = _worker(store)
    assert sorted(worker.reclaim_stale()) == sorted([orphan, silent, worn])
    assert get_job(store, alive)["status"] == "running"  # fresh heartbeat on another host: left alone
    info = get_job(store, worn)
    assert info["status"] == "failed" and "attempt 2 of 2" in info["error"] and "is gone" in info["error"]
    worker.run(once=True)
    assert get_job(store, orphan)["status"] == "done" and get_job(store, silent)["status"] == "done"
    assert "reclaimed by" in get_job(store, orphan)["log"]


def test_progress_eta_and_ownership_fence(store):
    seen = {}

    def slow(ctx, payload):
        ctx.progress(0.0, "warming up", force=True)
        time.sleep(0.2)
        ctx.progress(0.5, "half way", force=True)
        seen.update({k: get_job(ctx.store, ctx.job_id)[k] for k in ("progress", "eta_s", "step")})
        ctx.log("line one")
        # another worker takes the job over: this one must not write its chunk
        with ctx.store.write() as conn:
            conn.execute(update(Job).where(Job.id == ctx.job_id).values(worker_id="usurper"))
        with pytest.raises(JobLost):
            ctx.commit_chunk("0", lambda conn: seen.setdefault("wrote", True))
        raise JobLost("stop")

    register_job_kind("test-slow", slow, replace=True)
    with pytest.raises(ValueError, match="already registered"):
        register_job_kind("test-slow", lambda ctx, p: None)
    job = enqueue_job(store, "test-slow", {"x": 1})
    _worker(store).run(once=True)
    assert seen["progress"] == 0.5 and seen["step"] == "half way"
    assert 0.1 < seen["eta_s"] < 2.0  # 0.2 s for the first half
    assert "wrote" not in seen
    info = get_job(store, job)
    assert info["status"] == "running" and info["worker_id"] == "usurper"  # left to its new owner
    assert info["chunks_done"] == 0 and "line one" in info["log"]
    with pytest.raises(SeamError, match="not JSON"):
        enqueue_job(store, "test-slow", {"bad": object()})


def _cli(argv):
    from seam.cli import worker as worker_cmd

    parser = argparse.ArgumentParser(prog="seam")
    worker_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_worker_command(tmp_path, capsys):
    store = open_store(tmp_path)
    job = enqueue_job(store, "synthetic-score", {"score_run_id": _score_run(store, n=5)})
    assert _cli(["worker", "--db", str(tmp_path), "--once", "--poll", "0.1"]) == 0
    assert get_job(store, job)["status"] == "done"
    err = capsys.readouterr().err
    assert f"job {job} done" in err and "1 job(s) run" in err
    with pytest.raises(SeamError, match="--address and --ray-scorers are for --backend ray"):
        _cli(["worker", "--db", str(tmp_path), "--address", "local"])
    with pytest.raises(SeamError, match="--poll must be a positive"):
        _cli(["worker", "--db", str(tmp_path), "--poll", "0"])
    with pytest.raises(SystemExit):
        _cli(["worker", "--help"])
    assert "example:" in capsys.readouterr().out
    store.close()
