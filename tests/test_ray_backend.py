"""`seam worker --backend ray`: score chunks run as Ray tasks, with the same rows as the local backend.

The cluster is a Ray head this file starts on 127.0.0.1 (`ray start --head --block` in its own
process group, stopped with that group at the end); skipped, with the reason, without Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import random_texts

from db import load, open_store
from jobs import enqueue_job, get_job, requeue_job
from jobs.kinds.score import score_job
from jobs.ray_backend import RayBackend, RayConfig
from jobs.worker import Worker
from seam.cli import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """ADDR of a 2-CPU Ray head on 127.0.0.1, with token authentication (a token of its own)."""
    patch = pytest.MonkeyPatch()  # the driver in this process uses the same token
    patch.setenv("RAY_AUTH_MODE", "token")
    patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    patch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    patch.delenv("RAY_ADDRESS", raising=False)
    proc = None
    try:
        pytest.importorskip("ray", reason="Ray is not installed (optional extra: pip install 'seam-studio[ray]')")
        exe = Path(sys.executable).parent / "ray"
        if not exe.is_file():
            exe = Path(shutil.which("ray") or "ray")
        port = _free_port()
        log = tmp_path_factory.mktemp("ray") / "head.log"
        # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: Ray keeps 127.0.0.1 instead of switching to the host's network IP
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(exe), "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
                 "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard", "false", "--disable-usage-stats",
                 "--object-store-memory", str(200 << 20)],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 120
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        if proc is not None:  # stop the head's own process group (raylet, GCS, workers): nothing else
            _stop_group(proc)
        patch.undo()


def _stop_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader, so only live members keep the group
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.3)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def _project(folder: Path, tiny_models) -> tuple:
    prompts, responses = random_texts(12, seed=5, max_negs=4)
    ids = {p: f"q{i}" for i, p in enumerate(dict.fromkeys(prompts))}
    folder.mkdir()
    data, negs = folder / "rl.jsonl", folder / "negs.jsonl"
    data.write_text("".join(json.dumps({"id": ids[p], "prompt": p, "chosen": "the answer is four"}) + "\n" for p in ids))
    negs.write_text("".join(json.dumps({"id": ids[p], "variant": ["contrast", "adv"][k % 2], "text": r}) + "\n"
                            for k, (p, r) in enumerate(zip(prompts, responses))))
    store = open_store(folder)
    ds = load.instructions_file(store, data, name="rl").dataset_id
    load.negatives_file(store, ds, negs)
    pm = store.register_model("pm", str(tiny_models[0]))
    rm = store.register_model("rm", str(tiny_models[1]))
    return store, ds, pm, rm


def _job(store, ds, pm, rm) -> tuple[int, int]:
    run = store.create_score_run(ds, ["contrast", "adv"], {"weighting": "paper", "device": "cpu"},
                                 pm_model_id=pm, rm_model_id=rm)
    return run, enqueue_job(store, "score", {"score_run_id": run, "chunk_size": 2}, max_attempts=10)


def _results(store, run) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (store.score_details(run).sort_values(["id", "variant", "neg_index"]).reset_index(drop=True),
            store.seam_scores(run).sort_values(["id", "variant"]).reset_index(drop=True))


@contextlib.contextmanager
def _torch_threads(n: int):
    """Score with `n` CPU threads, as a 1-CPU Ray scorer does: float sums then round the same way."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.mark.slow  # a Ray head and scorer processes loading torch: about a minute on 2 busy cores
def test_ray_backend_scores_like_local_and_resumes_local_chunks(ray_head, tiny_models, tmp_path, capsys):
    store, ds, pm, rm = _project(tmp_path / "proj", tiny_models)
    local_run, local_job = _job(store, ds, pm, rm)
    with _torch_threads(1):
        assert Worker(store, echo=False).run(once=True) == 1
    assert get_job(store, local_job)["status"] == "done"
    want_details, want_scores = _results(store, local_run)

    # the CLI: every chunk of a second, identical run scored by Ray tasks, written by this worker
    ray_run, ray_job = _job(store, ds, pm, rm)
    assert main(["worker", "--db", str(tmp_path / "proj"), "--backend", "ray", "--address", ray_head,
                 "--once", "--poll", "0.1"]) == 0
    info = get_job(store, ray_job)
    assert info["status"] == "done", info["error"]
    assert info["result"]["backend"] == "ray" and info["chunks_done"] == info["result"]["chunks"] == 6
    assert "2 scorer(s)" in info["log"] and "cpu/float32" in info["log"]
    assert "Ray at 127.0.0.1:" in capsys.readouterr().err
    got_details, got_scores = _results(store, ray_run)
    pd.testing.assert_frame_equal(got_details, want_details, rtol=0, atol=0)  # identical, not just close
    pd.testing.assert_frame_equal(got_scores, want_scores, rtol=0, atol=0)
    assert store.score_run(ray_run)["status"] == "done"

    # resume: a local attempt commits 2 chunks and dies; the Ray backend scores exactly the other 4
    resume_run, resume_job = _job(store, ds, pm, rm)

    def dies_after_two_chunks(ctx, payload):
        commit, calls = ctx.commit_chunk, []

        def counted(key, writer):
            if len(calls) == 2:
                raise RuntimeError("worker died")
            calls.append(key)
            return commit(key, writer)

        ctx.commit_chunk = counted
        return score_job(ctx, payload)

    with _torch_threads(1):
        Worker(store, echo=False, handlers={"score": dies_after_two_chunks}).run(once=True)
    assert get_job(store, resume_job)["chunks_done"] == 2 and get_job(store, resume_job)["status"] == "failed"
    requeue_job(store, resume_job)
    with RayBackend(RayConfig(address=ray_head, scorers=1)) as backend:
        assert Worker(store, echo=False, handlers=backend.handlers()).run(once=True) == 1
    info = get_job(store, resume_job)
    assert info["status"] == "done" and info["result"]["details_written"] < len(want_details), info["error"]
    assert "resuming: 2 of 6 chunks already committed" in info["log"] and "4 chunk(s) to score" in info["log"]
    got_details, got_scores = _results(store, resume_run)
    pd.testing.assert_frame_equal(got_details, want_details, rtol=0, atol=0)
    pd.testing.assert_frame_equal(got_scores, want_scores, rtol=0, atol=0)
    store.close()


@pytest.mark.slow
def test_ray_backend_reports_model_errors_as_job_errors(ray_head, tiny_models, tmp_path):
    store, ds, pm, rm = _project(tmp_path / "proj", tiny_models)
    missing = store.register_model("rm", str(tmp_path / "gone"))
    run, job = _job(store, ds, pm, missing)
    with RayBackend(RayConfig(address=ray_head, scorers=1)) as backend:
        Worker(store, echo=False, handlers=backend.handlers()).run(once=True)
    info = get_job(store, job)
    assert info["status"] == "failed" and "does not exist" in info["error"], info["error"]
    assert get_job(store, job)["chunks_done"] == 0
    store.close()


@pytest.mark.parametrize("argv, message", [
    (["--address", "local"], "are for --backend ray"),
    (["--backend", "ray", "--ray-scorers", "0"], "--ray-scorers must be >= 1"),
])
def test_worker_ray_flag_errors(tmp_path, argv, message, capsys):
    assert main(["worker", "--db", str(tmp_path), "--once", *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_ray_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    assert main(["worker", "--db", str(tmp_path), "--once", "--backend", "ray", "--address", "local"]) == 2
    err = capsys.readouterr().err
    assert "needs Ray, which is not installed: pip install 'seam-studio[ray]'" in err and "Traceback" not in err


class _FakeRay:
    def __init__(self, resources):
        self.resources = resources

    def cluster_resources(self):
        return self.resources


@pytest.mark.parametrize("resources, device, scorers, want", [
    ({"CPU": 32.0, "GPU": 4.0}, "auto", None, (4, {"num_gpus": 1, "num_cpus": 1})),  # one scorer per GPU
    ({"CPU": 32.0, "GPU": 4.0}, "cpu", None, (10, {"num_gpus": 0, "num_cpus": 1})),  # device cpu: no GPUs asked
    ({"CPU": 2.0}, "auto", None, (2, {"num_gpus": 0, "num_cpus": 1})),
    ({"CPU": 8.0}, "auto", 3, (3, {"num_gpus": 0, "num_cpus": 1})),  # --ray-scorers
    ({"CPU": 2.0}, "auto", 5, (2, {"num_gpus": 0, "num_cpus": 1})),  # never more than the cluster can place
    ({"CPU": 1.0, "GPU": 8.0}, "cuda", None, (2, {"num_gpus": 1, "num_cpus": 0})),  # nor than the chunks
])
def test_scorer_layout(resources, device, scorers, want):
    backend = RayBackend(RayConfig(scorers=scorers))
    backend.ray = _FakeRay(resources)
    n_chunks = 2 if device == "cuda" else 10
    assert backend.scorer_layout(device, n_chunks) == want
