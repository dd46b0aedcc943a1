"""The store: opening, SQLite settings, loading DESIGN.md files, explorer queries, exports."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from db import load, open_store
from jobs.kinds.synthetic import synthetic_frames
from seam.errors import SeamError


def _instructions(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"q{i}" for i in range(n)],
        "prompt": [f"question {i}?" for i in range(n)],
        "chosen": [f"good answer {i}" for i in range(n)],
        "rejected": [f"bad answer {i}" if i % 2 == 0 else None for i in range(n)],
        "meta": [{"source": "test", "i": i} for i in range(n)],
    })


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path)
    yield s
    s.close()


def test_open_store_locations_and_sqlite_settings(tmp_path):
    folder = open_store(tmp_path / "proj")
    assert folder.url.endswith("/proj/seam.db") and (tmp_path / "proj" / "seam.db").is_file()
    with folder.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    folder.close()
    assert open_store(tmp_path / "x.db").url.endswith("/x.db")
    assert open_store(f"sqlite:///{tmp_path / 'y.sqlite'}").url.endswith("/y.sqlite")
    memory = open_store("sqlite://")
    assert memory.count("datasets") == 0
    with pytest.raises(SeamError, match="neither a folder nor a SQLite file"):
        open_store(tmp_path / "notes.txt")
    with pytest.raises(SeamError, match="not a valid SQLAlchemy URL"):
        open_store("::://")
    with pytest.raises(SeamError, match="needs a database driver"):
        open_store("nosuchdialect+x://host/db")


def test_instructions_roundtrip_and_immutability(store):
    df = _instructions()
    ds = store.import_instructions("rl", df, source_path="rl.jsonl")
    assert store.import_instructions("rl", df) == ds  # same content: same dataset
    back = store.instructions(ds)
    assert back["id"].tolist() == df["id"].tolist()
    assert back["meta"].tolist() == df["meta"].tolist()
    assert back["rejected"].isna().tolist() == df["rejected"].isna().tolist()
    assert store.dataset_id("rl") == ds
    changed = df.assign(chosen="other")
    with pytest.raises(SeamError, match="already stored with different content"):
        store.import_instructions("rl", changed)
    with pytest.raises(SeamError, match="appears more than once"):
        store.import_instructions("dup", pd.concat([df, df.iloc[:1]]))
    with pytest.raises(SeamError, match="missing column"):
        store.import_instructions("bad", df.drop(columns=["chosen"]))
    with pytest.raises(SeamError, match="no dataset 'nope'"):
        store.dataset_id("nope")
    assert store.count("datasets") == 1  # failed imports left nothing behind


def test_negatives_file_order_and_replace_rules(store):
    ds = store.import_instructions("rl", _instructions(3))
    neg = pd.DataFrame({"id": ["q0", "q0", "q1", "q0"], "variant": ["llm", "llm", "llm", "adv"],
                        "text": ["n0", "n1", "n2", "a0"], "meta": [None, {"model": "m"}, None, None]})
    assert store.import_negatives(ds, neg) == 4
    got = store.negatives(ds)
    assert got[["id", "variant", "neg_index", "text"]].values.tolist() == [
        ["q0", "adv", 0, "a0"], ["q0", "llm", 0, "n0"], ["q0", "llm", 1, "n1"], ["q1", "llm", 0, "n2"]]
    with pytest.raises(SeamError, match="already stored"):
        store.import_negatives(ds, neg)
    assert store.import_negatives(ds, neg.iloc[:2].assign(text=["x0", "x1"]), replace=True) == 2
    assert store.negatives(ds, "llm")["text"].tolist() == ["x0", "x1", "n2"]
    with pytest.raises(SeamError, match="'zz' is not an instruction"):
        store.import_negatives(ds, pd.DataFrame({"id": ["zz"], "variant": ["llm"], "text": ["t"]}))
    store.create_score_run(ds, ["llm"])
    with pytest.raises(SeamError, match="score runs use them"):
        store.import_negatives(ds, neg.iloc[:1], replace=True)


def test_score_results_and_explorer_queries(store):
    df = _instructions(20)
    ds = store.import_instructions("rl", df)
    variants = ["contrast", "llm", "adv"]
    details, scores = synthetic_frames(df["id"].tolist(), variants, 5, seed=3)
    store.import_negatives(ds, details[["id", "variant", "neg_index"]].assign(
        text=[f"neg {i}" for i in range(len(details))]))
    pm = store.register_model("pm", "/models/pm", fingerprint="abc")
    assert store.register_model("pm", "/models/pm", fingerprint="abc") == pm
    run = store.create_score_run(ds, variants, {"weighting": "paper"}, pm_model_id=pm)
    assert store.save_score_results(run, details, scores) == (len(details), len(scores))

    lowest = store.lowest_seam(run, "llm", limit=5)
    expected = scores[scores.variant == "llm"].sort_values("seam").head(5)
    assert lowest["id"].tolist() == expected["id"].tolist()
    assert lowest["seam"].tolist() == pytest.approx(expected["seam"].tolist())
    assert lowest["prompt"].tolist() == [f"question {i[1:]}?" for i in expected["id"]]

    worst = lowest["id"].iloc[0]
    breakdown = store.instruction_breakdown(run, worst)
    mine = details[details.id == worst].sort_values(["variant", "neg_index"])
    assert len(breakdown) == 15 and breakdown["term"].tolist() == pytest.approx(mine["term"].tolist())
    assert breakdown["text"].notna().all()
    by_row_id = store.instruction_breakdown(run, int(lowest["instruction_id"].iloc[0]))
    assert by_row_id["term"].tolist() == breakdown["term"].tolist()

    stored = store.score_details(run)
    pd.testing.assert_frame_equal(stored.reset_index(drop=True),
                                  details.sort_values(["id", "variant", "neg_index"], key=_natural).reset_index(drop=True),
                                  check_dtype=False)
    with pytest.raises(SeamError, match="already stored"):
        store.save_score_results(run, details.iloc[:1], None)
    with pytest.raises(SeamError, match="not in the score run"):
        store.save_score_results(run, None, scores.assign(variant="gpt").iloc[:1])
    bad = details.iloc[:1].copy()
    bad["rm_neg"] = bad["rm_neg"].astype(object)
    bad.loc[bad.index[0], "rm_neg"] = "high"
    with pytest.raises(SeamError, match="rm_neg must be a number"):
        store.save_score_results(run, bad, None)


def _natural(col: pd.Series) -> pd.Series:
    return col.map(lambda v: int(v[1:]) if isinstance(v, str) and v.startswith("q") else v)


def test_load_files_and_exports(store, tmp_path):
    df = _instructions(4)
    src = tmp_path / "rl.jsonl"
    df.to_json(src, orient="records", lines=True)
    ds = load.instructions_file(store, src).dataset_id
    assert store.datasets()["name"].tolist() == ["rl"]
    neg = pd.DataFrame({"id": ["q0", "q1"], "variant": ["llm", "llm"], "text": ["a", "b"]})
    neg_path = tmp_path / "neg.csv"
    neg.to_csv(neg_path, index=False)
    assert load.negatives_file(store, ds, neg_path).rows == 2

    details, scores = synthetic_frames(df["id"].tolist(), ["llm"], 1, seed=0)
    details.to_parquet(tmp_path / "details.parquet")
    scores.to_json(tmp_path / "scores.jsonl", orient="records", lines=True)
    run = load.score_files(store, ds, tmp_path / "scores.jsonl", tmp_path / "details.parquet", name="first")
    assert store.score_run(run)["status"] == "done" and store.score_run(run)["variants"] == ["llm"]
    assert len(store.seam_scores(run)) == 4

    out = store.export_dataset(ds, tmp_path / "prompts.jsonl", layout="trl-prompts")
    assert [json.loads(line) for line in out.read_text().splitlines()] == [{"prompt": p} for p in df["prompt"]]
    pref = store.export_dataset(ds, tmp_path / "pref.parquet", layout="trl-preference", ids=["q0", "q2"])
    assert pd.read_parquet(pref).to_dict("records") == df.iloc[[0, 2]][["prompt", "chosen", "rejected"]].to_dict("records")
    orl = store.export_dataset(ds, tmp_path / "orl.jsonl", layout="openrlhf-prompts", ids=["q3"])
    assert json.loads(orl.read_text()) == {"prompt": "question 3?"}
    store.export_dataset(ds, tmp_path / "orlp.csv", layout="openrlhf-preference", ids=["q0"])
    assert pd.read_csv(tmp_path / "orlp.csv").columns.tolist() == ["prompt", "chosen", "rejected"]
    seam_file = store.export_dataset(ds, tmp_path / "seam.jsonl", layout="seam")
    again = load.instructions_file(store, seam_file, name="roundtrip").dataset_id
    pd.testing.assert_frame_equal(store.instructions(again), store.instructions(ds))
    ref = store.export_dataset(ds, tmp_path / "ref.json", layout="seam-json")
    assert json.loads(ref.read_text())[0]["question"] == "question 0?"

    with pytest.raises(SeamError, match="have no rejected response"):
        store.export_dataset(ds, tmp_path / "nope.jsonl", layout="trl-preference")
    assert not (tmp_path / "nope.jsonl").exists()
    with pytest.raises(SeamError, match="unknown export layout"):
        store.export_dataset(ds, tmp_path / "x.jsonl", layout="alpaca")
    with pytest.raises(SeamError, match="not in dataset"):
        store.export_dataset(ds, tmp_path / "x.jsonl", ids=["q9"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_annotations_and_runs_lineage(store, tmp_path):
    ds = store.import_instructions("rl", _instructions(2))
    inst = int(store.lowest_seam(0, "x").shape[0])  # empty result on an unknown run is fine
    assert inst == 0
    iid = store.instruction_ids(ds)["q1"]
    aid = store.add_annotation(iid, "resp A", "resp B", "both_bad", "ann1", response_a_ref="gold",
                               response_b_ref="negative:3", duration_s=4.5)
    store.add_annotation(iid, "x", "y", "tie", "gpt", source="llm")
    ann = store.annotations(instruction_id=iid)
    assert ann["id"].tolist()[0] == aid and ann["choice"].tolist() == ["both_bad", "tie"]
    assert ann["response_b_ref"].tolist()[0] == "negative:3" and ann["source"].tolist() == ["human", "llm"]
    with pytest.raises(SeamError, match="choice 'c'"):
        store.add_annotation(iid, "x", "y", "c", "ann1")

    data = tmp_path / "kept.jsonl"
    data.write_text('{"prompt": "p"}\n')
    run = store.create_run("ppo", {"lr": 1e-5}, name="ppo-filtered",
                           inputs=[{"role": "rl_data", "ref_kind": "file", "path": str(data)},
                                   {"role": "scores", "ref_kind": "score_run", "ref_id": 1, "content_hash": "abc"}])
    store.update_run(run, status="running", artifacts={"checkpoint": tmp_path / "ckpt"})
    store.update_run(run, status="done", artifacts={"log": "train.log"})
    for step in range(3):
        store.log_metrics(run, step, {"reward": step * 0.5, "kl": 0.1})
    info = store.run(run)
    assert info["status"] == "done" and set(info["artifacts"]) == {"checkpoint", "log"}
    import hashlib
    assert info["inputs"][0]["content_hash"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert info["inputs"][1]["content_hash"] == "abc"
    metrics = store.run_metrics(run)
    assert metrics[metrics.name == "reward"]["value"].tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(SeamError, match="run kind 'dpo'"):
        store.create_run("dpo", {})


def test_in_memory_store_full_flow():
    store = open_store("sqlite://")
    df = _instructions(5)
    ds = store.import_instructions("rl", df)
    details, scores = synthetic_frames(df["id"].tolist(), ["llm"], 2, seed=1)
    store.import_negatives(ds, details[["id", "variant"]].assign(text="t"))
    run = store.create_score_run(ds, ["llm"])
    store.save_score_results(run, details, scores)
    assert len(store.instruction_breakdown(run, "q0")) == 2
    assert len(store.lowest_seam(run, "llm")) == 5
    from jobs.worker import Worker

    with pytest.raises(SeamError, match="not in-memory SQLite"):
        Worker(store)


def test_existing_non_sqlite_file_is_never_overwritten(tmp_path):
    import pytest as _pytest

    from db import open_store
    from seam.errors import SeamError

    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with _pytest.raises(SeamError, match="not a SQLite database"):
        open_store(notes)
    assert notes.read_text() == "my notes"
    fake = tmp_path / "fake.db"
    fake.write_text("not sqlite")
    with _pytest.raises(SeamError, match="not a SQLite database"):
        open_store(fake)
    assert fake.read_text() == "not sqlite"
