"""SIGKILL a worker at several points of a scoring job, restart it: identical results, exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd

from db import open_store
from jobs import enqueue_job, get_job
from jobs.worker import Worker

N_INST, CHUNK, N_NEG, VARIANTS = 200, 20, 30, ["contrast", "llm", "adv"]
N_CHUNKS = N_INST // CHUNK
ROWS_PER_CHUNK = CHUNK * len(VARIANTS) * N_NEG
PAYLOAD = {"seed": 11, "chunk_size": CHUNK, "n_negatives": N_NEG, "sleep_s": 0.05, "hold_s": 0.12}


def _setup(folder):
    store = open_store(folder)
    df = pd.DataFrame({"id": [f"q{i}" for i in range(N_INST)], "prompt": "p", "chosen": "c"})
    ds = store.import_instructions("rl", df)
    run = store.create_score_run(ds, VARIANTS, {"weighting": "paper"})
    job = enqueue_job(store, "synthetic-score", {**PAYLOAD, "score_run_id": run}, max_attempts=10)
    return store, run, job


def _rows(db, table):
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def _state(db, job):
    with sqlite3.connect(db, timeout=30) as conn:
        chunks = conn.execute("SELECT count(*) FROM job_chunks WHERE job_id = ?", (job,)).fetchone()[0]
        details = conn.execute("SELECT count(*) FROM score_details").fetchone()[0]
        scores = conn.execute("SELECT count(*) FROM seam_scores").fetchone()[0]
        log = conn.execute("SELECT log FROM jobs WHERE id = ?", (job,)).fetchone()[0]
    return chunks, details, scores, log


def _start_worker(folder):
    return subprocess.Popen([sys.executable, "-m", "seam", "worker", "--db", str(folder), "--poll", "0.1", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for the worker")


def test_sigkill_at_several_points_resumes_to_identical_results(tmp_path):
    # the reference: the same job, uninterrupted
    ref_dir = tmp_path / "ref"
    ref, ref_run, ref_job = _setup(ref_dir)
    Worker(ref, echo=False).run(once=True)
    assert get_job(ref, ref_job)["status"] == "done"
    ref.close()

    crash_dir = tmp_path / "crash"
    store, run, job = _setup(crash_dir)
    store.close()
    db = crash_dir / "seam.db"
    assert run == ref_run and job == ref_job

    def after_chunks(k):  # between chunks: once k chunks are committed
        return (lambda: _state(db, job)[0] >= k), None

    def inside_chunk(k):  # inside chunk k's transaction: its rows written, not yet committed
        def ready():
            if f"chunk {k} writing" in _state(db, job)[3]:
                time.sleep(PAYLOAD["hold_s"] / 2)
                return True
            return False
        return ready, k  # afterwards chunks 0..k-1 are committed and chunk k is rolled back

    def at_start():  # right after the claim, before this attempt commits anything
        attempt = get_job_status(db, job)[1] + 1
        return (lambda: get_job_status(db, job) == ("running", attempt)), None

    points = [lambda: after_chunks(2), lambda: inside_chunk(4), at_start, lambda: inside_chunk(7)]
    for make_point in points:
        ready, expected_chunks = make_point()
        worker = _start_worker(crash_dir)
        try:
            _wait_for(ready)
        finally:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
        chunks, details, scores, _ = _state(db, job)
        # a chunk is all there and marked, or absent: never partial, never unmarked
        assert details == chunks * ROWS_PER_CHUNK and scores == chunks * CHUNK * len(VARIANTS)
        assert chunks < N_CHUNKS and expected_chunks in (None, chunks)
    assert _state(db, job)[0] == 7

    finish = subprocess.run([sys.executable, "-m", "seam", "worker", "--db", str(crash_dir), "--once", "--quiet"],
                            capture_output=True, text=True, timeout=120)
    assert finish.returncode == 0, finish.stderr
    info = get_job_status(db, job)
    assert info == ("done", len(points) + 1)
    assert "resuming" in _state(db, job)[3] and "reclaimed" in _state(db, job)[3]

    for table in ("score_details", "seam_scores"):
        got, want = _rows(db, table), _rows(ref_dir / "seam.db", table)
        assert len(got) == len(want) == (N_INST * len(VARIANTS) * (N_NEG if table == "score_details" else 1))
        assert got == want  # same rows, same values, same ids: nothing duplicated, nothing missing


def get_job_status(db, job):
    with sqlite3.connect(db, timeout=30) as conn:
        return tuple(conn.execute("SELECT status, attempts FROM jobs WHERE id = ?", (job,)).fetchone())


def test_sigterm_requeues_the_running_job(tmp_path):
    store, run, job = _setup(tmp_path)
    db = tmp_path / "seam.db"
    worker = _start_worker(tmp_path)
    _wait_for(lambda: _state(db, job)[0] >= 1)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    assert worker.returncode == 130
    status, attempts = get_job_status(db, job)
    assert status == "queued" and attempts == 0  # a clean stop does not use up an attempt
    assert "worker stopped; job requeued" in _state(db, job)[3]
    Worker(store, echo=False).run(once=True)
    assert get_job(store, job)["status"] == "done" and len(store.score_details(run)) == N_INST * 3 * N_NEG
