"""The `negatives` job: builds a variant for a stored dataset in committed chunks."""

from __future__ import annotations

import pandas as pd
import pytest

from db import open_store
from jobs import enqueue_job, get_job
from jobs.worker import Worker


@pytest.fixture()
def project(tmp_path):
    store = open_store(tmp_path / "p")
    rows = [{"id": f"q{i}", "prompt": f"What is {i} plus {i}? Answer in one sentence.", "chosen": f"{i} plus {i} is {2 * i}."}
            for i in range(7)]
    ds = store.import_instructions("rl", pd.DataFrame(rows))
    return store, ds


def _run(store, payload):
    job = enqueue_job(store, "negatives", payload)
    Worker(store, echo=False, poll_s=0.05).run(once=True)
    return get_job(store, job)


def test_rules_llm_negatives_in_chunks(project):
    store, ds = project
    info = _run(store, {"dataset_id": ds, "builder": "llm", "config": {"k": 3, "backend": "rules"}, "chunk_size": 3})
    assert info["status"] == "done", info.get("error")
    negs = store.negatives(ds, "llm")
    assert len(negs) == 21 and set(negs["id"]) == {f"q{i}" for i in range(7)}
    assert (negs.groupby("id")["neg_index"].apply(sorted).map(tuple) == (0, 1, 2)).all()
    # building the same variant again without replace is refused clearly; with replace it is rebuilt
    again = _run(store, {"dataset_id": ds, "builder": "llm", "config": {"k": 3, "backend": "rules"}})
    assert again["status"] == "failed" and "replace" in again["error"]
    rebuilt = _run(store, {"dataset_id": ds, "builder": "llm", "config": {"k": 2, "backend": "rules", "seed": 1},
                           "replace": True, "chunk_size": 4})
    assert rebuilt["status"] == "done", rebuilt.get("error")
    assert len(store.negatives(ds, "llm")) == 14


def test_adv_negatives_use_the_registered_rm(project, tiny_models):
    store, ds = project
    rm = store.register_model("rm", str(tiny_models[1]))
    info = _run(store, {"dataset_id": ds, "builder": "adv", "rm_model_id": rm,
                        "config": {"k": 2, "query_budget": 6, "device": "cpu"}, "chunk_size": 4})
    assert info["status"] == "done", info.get("error")
    negs = store.negatives(ds, "adv")
    assert len(negs) > 0 and set(negs["variant"]) == {"adv"}
    assert all("queries" in str(m) or m for m in negs["meta"])


def test_bad_payloads_fail_with_clear_errors(project):
    store, ds = project
    info = _run(store, {"dataset_id": ds, "builder": "gpt9"})
    assert info["status"] == "failed" and "gpt9" in info["error"]
    info = _run(store, {"dataset_id": ds, "builder": "llm", "config": {"kk": 3}})
    assert info["status"] == "failed" and "kk" in info["error"]
    info = _run(store, {"dataset_id": ds, "builder": "adv", "config": {"k": 2}})
    assert info["status"] == "failed" and "reward model" in info["error"]
