"""The real `score` job: same numbers as `seam score`, and a SIGKILLed worker resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from helpers import random_texts

from db import load, open_store
from jobs import enqueue_job, get_job
from jobs.worker import Worker
from seam.cli import main


def _files(d):
    prompts, responses = random_texts(12, seed=5, max_negs=4)
    ids = {p: f"q{i}" for i, p in enumerate(dict.fromkeys(prompts))}
    inst = [{"id": ids[p], "prompt": p, "chosen": "the answer is four"} for p in ids]
    negs = [{"id": ids[p], "variant": ["contrast", "adv"][k % 2], "text": r} for k, (p, r) in enumerate(zip(prompts, responses))]
    (d / "rl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in inst))
    (d / "negs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in negs))
    return d / "rl.jsonl", d / "negs.jsonl"


def _project(folder, tiny_models, data, negs):
    store = open_store(folder)
    ds = load.instructions_file(store, data, name="rl").dataset_id
    load.negatives_file(store, ds, negs)
    pm = store.register_model("pm", str(tiny_models[0]))
    rm = store.register_model("rm", str(tiny_models[1]))
    run = store.create_score_run(ds, ["contrast", "adv"], {"weighting": "paper", "device": "cpu"}, pm_model_id=pm, rm_model_id=rm)
    job = enqueue_job(store, "score", {"score_run_id": run, "chunk_size": 2}, max_attempts=10)
    return store, run, job


def test_score_job_equals_cli(tmp_path, tiny_models, capsys):
    data, negs = _files(tmp_path)
    store, run, job = _project(tmp_path / "proj", tiny_models, data, negs)
    Worker(store, echo=False, poll_s=0.05).run(once=True)
    info = get_job(store, job)
    assert info["status"] == "done", info.get("error")
    got = store.seam_scores(run).sort_values(["id", "variant"]).reset_index(drop=True)
    assert main(["score", "--pm", str(tiny_models[0]), "--rm", str(tiny_models[1]), "--data", str(data), "--negatives",
                 str(negs), "--out", str(tmp_path / "s.csv"), "--quiet"]) == 0
    want = pd.read_csv(tmp_path / "s.csv").sort_values(["id", "variant"]).reset_index(drop=True)
    assert got["id"].tolist() == want["id"].tolist()
    assert np.abs(got["seam"].to_numpy() - want["seam"].to_numpy()).max() < 1e-6
    assert (got["n_misjudged"].to_numpy() == want["n_misjudged"].to_numpy()).all()
    assert len(store.score_details(run)) == sum(1 for _ in open(negs))


def test_score_job_without_models_fails_cleanly(tmp_path, tiny_models):
    data, negs = _files(tmp_path)
    store = open_store(tmp_path / "p")
    ds = load.instructions_file(store, data, name="rl").dataset_id
    load.negatives_file(store, ds, negs)
    run = store.create_score_run(ds, ["contrast"], {})
    job = enqueue_job(store, "score", {"score_run_id": run})
    Worker(store, echo=False, poll_s=0.05).run(once=True)
    info = get_job(store, job)
    assert info["status"] == "failed" and "PM" in info["error"]


def _chunks(db, job):
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM job_chunks WHERE job_id = ?", (job,)).fetchone()[0]


def test_sigkill_mid_score_job_resumes_identically(tmp_path, tiny_models):
    data, negs = _files(tmp_path)
    ref, ref_run, _ = _project(tmp_path / "ref", tiny_models, data, negs)
    Worker(ref, echo=False, poll_s=0.05).run(once=True)
    want = ref.score_details(ref_run).sort_values(["id", "variant", "neg_index"]).reset_index(drop=True)
    store, run, job = _project(tmp_path / "crash", tiny_models, data, negs)
    store.close()
    db = tmp_path / "crash" / "seam.db"
    proc = subprocess.Popen([sys.executable, "-m", "seam", "worker", "--db", str(tmp_path / "crash"), "--poll", "0.1", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while _chunks(db, job) < 2 and time.time() < deadline:
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = _chunks(db, job)
    assert 2 <= done_before < 6  # killed mid-job
    finish = subprocess.run([sys.executable, "-m", "seam", "worker", "--db", str(tmp_path / "crash"), "--once", "--quiet"],
                            capture_output=True, text=True, timeout=180)
    assert finish.returncode == 0, finish.stderr
    store = open_store(tmp_path / "crash")
    assert get_job(store, job)["status"] == "done"
    got = store.score_details(run).sort_values(["id", "variant", "neg_index"]).reset_index(drop=True)
    assert len(got) == len(want)  # nothing lost, nothing duplicated
    assert not got.duplicated(["id", "variant", "neg_index"]).any()
    pd.testing.assert_frame_equal(got, want, atol=1e-6)
