"""The `filter-ppo` / `augment-ppo` jobs on a tiny demo project: runs with lineage and metrics land in
the store, files land under the project folder, a cancelled job stops, a bad payload fails cleanly."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time

import pytest
from test_experiment import shared_tiny_demo

from db import open_store
from jobs import cancel_job, enqueue_job, get_job, job_kinds, requeue_job
from jobs.worker import Worker

PPO = {"max_steps": 2, "per_device_train_batch_size": 2, "num_ppo_epochs": 1, "response_length": 4, "lora": True,
       "lora_r": 2, "device": "cpu"}
EVAL = {"n_prompts": 4, "max_new_tokens": 4}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


@pytest.fixture()
def project(tmp_path_factory, tmp_path):
    """A private copy of the shared tiny demo (the jobs write runs and files into it)."""
    src = shared_tiny_demo(tmp_path_factory)
    dst = tmp_path / "proj"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("experiments"))
    return dst


def _run_job(store, kind, payload):
    job = enqueue_job(store, kind, payload, max_attempts=1)
    Worker(store, echo=False, poll_s=0.05).run(once=True)
    return get_job(store, job)


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_kinds_are_registered():
    assert {"filter-ppo", "augment-ppo"} <= set(job_kinds())


def test_filter_ppo_job_records_runs_lineage_and_metrics(project):
    store = open_store(project)
    info = _run_job(store, "filter-ppo", {"score_run_id": 1, "variants": ["contrast", "llm"], "p": 0.25,
                                          "baselines": ["full"], "seeds": [0], "ppo": PPO, "eval": EVAL})
    assert info["status"] == "done", info["error"]
    result = info["result"]
    folder = project / "experiments" / f"job-{info['id']}-filter"
    assert result["folder"] == str(folder) and (folder / "experiment" / "results.md").is_file()
    runs = store.runs()
    mine = runs[[(c or {}).get("job_id") == info["id"] for c in runs["config"]]]
    assert sorted(mine["kind"]) == ["eval", "filter", "ppo", "ppo"] and set(mine["status"]) == {"done"}
    parent = int(mine[mine["kind"] == "filter"]["id"].iloc[0])
    assert store.run(parent)["artifacts"]["results_md"].endswith("results.md")
    by_arm = {r["config"]["arm"]: r for r in mine[mine["kind"] == "ppo"].to_dict("records")}
    assert set(by_arm) == {"full", "seam"}
    seam = store.run(int(by_arm["seam"]["id"]))
    assert seam["config"]["seed"] == 0 and seam["config"]["ppo"]["max_steps"] == 2
    inputs = {i["role"]: i for i in seam["inputs"]}
    selected = folder / "experiment" / "selections" / "rl.seam.jsonl"
    assert inputs["rl_data"]["path"] == str(selected) and inputs["rl_data"]["content_hash"] == _sha(selected)
    assert sum(1 for _ in open(selected)) == 30  # 40 RL prompts, the lowest 25% by SEAM dropped
    assert inputs["selection"]["ref_kind"] == "run" and inputs["selection"]["ref_id"] == parent
    assert inputs["pm"]["ref_kind"] == "model" and inputs["rm"]["ref_kind"] == "model"
    assert inputs["eval_data"]["content_hash"]
    assert (project / seam["artifacts"]["model"]).is_dir()
    metrics = store.run_metrics(int(by_arm["seam"]["id"]))
    scores = metrics[metrics["name"] == "objective/scores"]
    assert scores["step"].tolist() == [1, 2]  # mirrored per PPO update
    names = set(metrics["name"])
    assert {"eval/gold_score", "eval/gold_score/ci_low", "eval/rm_score", "eval/win_rate", "eval/kl"} <= names
    full_metrics = set(store.run_metrics(int(by_arm["full"]["id"]))["name"])
    assert "eval/gold_score" in full_metrics and "eval/win_rate" not in full_metrics  # the reference itself
    assert [a["arm"] for a in result["arms"]] == ["full", "seam"]


def test_cancelled_filter_ppo_job_stops_and_resumes_when_requeued(project):
    store = open_store(project)
    job = enqueue_job(store, "filter-ppo", {"score_run_id": 1, "baselines": ["full"], "seeds": [0],
                                            "ppo": {**PPO, "max_steps": 3}, "eval": EVAL, "eval_initial": False},
                      max_attempts=1)
    watcher = open_store(project)

    def cancel_at_first_seam_update():  # the full arm runs first and finishes; seam is cancelled mid-PPO
        deadline = time.time() + 120
        while time.time() < deadline:
            runs = watcher.runs("ppo")
            seam = [r for r in runs.to_dict("records") if (r["config"] or {}).get("arm") == "seam"]
            if seam and len(watcher.run_metrics(int(seam[0]["id"]))):
                cancel_job(watcher, job)
                return
            time.sleep(0.1)

    t = threading.Thread(target=cancel_at_first_seam_update, daemon=True)
    t.start()
    Worker(store, echo=False, poll_s=0.05).run(once=True)
    t.join(5)
    assert get_job(store, job)["status"] == "cancelled"
    ppo = {r["config"]["arm"]: r for r in store.runs("ppo").to_dict("records")}
    assert ppo["full"]["status"] == "done" and ppo["seam"]["status"] == "cancelled"
    assert store.runs("filter")["status"].iloc[-1] == "cancelled"
    seam_steps = store.run_metrics(int(ppo["seam"]["id"]))
    assert 1 <= seam_steps[seam_steps["name"] == "objective/scores"]["step"].max() < 3  # stopped early
    exp = project / "experiments" / f"job-{job}-filter" / "experiment"
    assert (exp / "runs" / "full" / "s0" / "seam_run.json").is_file() and not (exp / "runs" / "seam" / "s0").exists()
    n_full = len(store.run_metrics(int(ppo["full"]["id"])))

    requeue_job(store, job)  # resumes: the finished full arm is reused, seam is trained again in a new run
    Worker(store, echo=False, poll_s=0.05).run(once=True)
    info = get_job(store, job)
    assert info["status"] == "done", info["error"]
    runs = store.runs("ppo").to_dict("records")
    assert sorted((r["config"]["arm"], r["status"]) for r in runs) == [
        ("full", "done"), ("seam", "cancelled"), ("seam", "done")]
    assert len(store.run_metrics(int(ppo["full"]["id"]))) == n_full  # nothing recorded twice
    assert store.runs("filter")["status"].iloc[-1] == "done" and len(store.runs("filter")) == 1


@pytest.mark.parametrize("payload, message", [
    ({}, "integer score_run_id"),
    ({"score_run_id": 99}, "no score run 99"),
    ({"score_run_id": 1, "baselines": ["astrology"]}, "unknown baseline 'astrology'"),
    ({"score_run_id": 1, "variants": ["nope"]}, "variant(s) nope"),
    ({"score_run_id": 1, "ppo": {"stepz": 1}}, "unknown ppo setting 'stepz'"),
    ({"score_run_id": 1, "eval": {"n": 3}}, "unknown eval setting 'n'"),
    ({"score_run_id": 1, "method": "dpo"}, "--method must be one of ppo, grpo, rloo, bon"),
    ({"score_run_id": 1, "method": "grpo", "trainer": [2]}, "payload trainer must be an object"),
    ({"score_run_id": 1, "baselines": ["oracle"]}, "the oracle arm needs --label FILE"),  # no hidden/label.jsonl
])
def test_bad_payload_fails_with_a_clear_error(project, payload, message):
    store = open_store(project)
    info = _run_job(store, "filter-ppo", payload)
    assert info["status"] == "failed" and message in info["error"]


def test_augment_ppo_job_links_ppo_to_retrained_models(project):
    store = open_store(project)
    info = _run_job(store, "augment-ppo", {"score_run_id": 1, "baselines": ["perplexity"], "seeds": [0], "k": 2,
                                           "ppo": {**PPO, "max_steps": 1}, "eval": EVAL, "eval_initial": False,
                                           "sft": {"max_steps": 1}, "rm": {"max_steps": 1}})
    assert info["status"] == "done", info["error"]
    assert "perplexity do not apply" in info["log"]
    runs = store.runs()
    mine = runs[[(c or {}).get("job_id") == info["id"] for c in runs["config"]]]
    assert sorted(mine["kind"]) == ["augment", "ppo", "ppo", "rm", "rm", "sft", "sft"]
    trained = {(r["kind"], r["config"]["arm"]): int(r["id"]) for r in mine.to_dict("records") if r["kind"] in ("sft", "rm")}
    assert set(trained) == {("sft", "original"), ("rm", "original"), ("sft", "seam"), ("rm", "seam")}
    for r in mine[mine["kind"] == "ppo"].to_dict("records"):
        inputs = {i["role"]: i for i in store.run(int(r["id"]))["inputs"]}
        arm = r["config"]["arm"]
        assert (inputs["pm"]["ref_kind"], inputs["pm"]["ref_id"]) == ("run", trained[("sft", arm)])
        assert (inputs["rm"]["ref_kind"], inputs["rm"]["ref_id"]) == ("run", trained[("rm", arm)])
    rm_runs = mine[mine["kind"] == "rm"]["id"].tolist()
    assert all(len(store.run_metrics(int(i))) for i in rm_runs)
