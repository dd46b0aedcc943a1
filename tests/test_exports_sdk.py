"""Exports that load where they are going: Argilla 2.x and Label Studio files built into the real
SDK objects (offline, no server), HF `save_to_disk` folders for every table the project writes,
and `meta` as a Parquet struct (older JSON-text Parquet files still read)."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest

from app import annotate as ann
from seam.cli import main
from seam.data import check_output_path, load_instructions, load_negatives, read_table, write_table
from seam.errors import SeamError


def _judgements() -> pd.DataFrame:
    """A judgements frame as `app.annotate.judgements` returns it (every choice, two annotators)."""
    rows = []
    for k, (choice, who) in enumerate([("a", "alice"), ("b", "bob"), ("tie", "alice"), ("both_bad", "carol")]):
        rows.append({"id": k + 1, "id_ext": f"q{k}", "prompt": f"Question {k}?", "response_a": f"A{k}",
                     "response_b": f"B{k}", "response_a_ref": "gold", "response_b_ref": f"negative:{k}",
                     "choice": choice, "annotator": who, "source": "llm", "duration_s": 2.5 if k else float("nan"),
                     "created_at": pd.Timestamp("2025-01-02 03:04:05"), "score_run_id": 1, "rm_a": 0.1, "rm_b": 0.2,
                     "seam": -0.5, "mismatch": float(k % 2)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ Argilla


@pytest.fixture
def argilla(monkeypatch):
    rg = pytest.importorskip("argilla", minversion="2.0")
    from argilla._api._client import APIClient

    monkeypatch.setattr(APIClient, "_validate_connection", lambda self: None)  # offline: no server to ask
    client = rg.Argilla(api_url="http://argilla.invalid", api_key="offline")
    return rg, client


def test_argilla_export_loads_in_the_sdk(argilla, tmp_path):
    rg, client = argilla
    doc = json.loads(ann.to_argilla(_judgements()))
    (tmp_path / "settings.json").write_text(json.dumps(doc["settings"]))
    settings = rg.Settings.from_json(tmp_path / "settings.json")
    labels = settings.questions["preference"].labels
    assert labels == ["response_a", "response_b", "tie", "both_bad"]
    assert [f.name for f in settings.fields] == ["prompt", "response_a", "response_b"]
    assert settings.serialize()["questions"][0]["settings"]["type"] == "label_selection"
    properties = {m.name for m in settings.metadata}
    dataset = rg.Dataset(name="seam-annotations", settings=settings, client=client)
    seen = []
    for rec in doc["records"]:
        record = rg.Record.from_dict(rec, dataset=dataset)
        model = record.api_model()  # the server's schema: user_id must be a UUID, metadata typed
        assert set(record.metadata) <= properties
        (response,) = model.responses
        assert isinstance(response.user_id, uuid.UUID) and response.values["preference"]["value"] in labels
        seen.append((record.fields["prompt"], record.metadata["annotator"], str(response.user_id)))
    assert seen[0] == ("Question 0?", "alice", ann.annotator_uuid("alice"))
    assert seen[0][2] == seen[2][2] != seen[1][2]  # one id per annotator


def test_argilla_rejects_what_the_old_export_wrote(argilla):
    rg, client = argilla
    old = {"id": "1", "fields": {"prompt": "p", "response_a": "a", "response_b": "b"},
           "responses": {"preference": [{"value": "tie", "user_id": "alice"}]}}
    with pytest.raises(Exception):
        rg.Record.from_dict(old).api_model()
    with pytest.raises(Exception):  # questions without settings.type / options
        rg.Settings._from_dict({"fields": [{"name": "prompt", "settings": {"type": "text"}}],
                                "questions": [{"name": "preference", "type": "label_selection",
                                               "labels": ["a", "b"]}]})


# ------------------------------------------------------------------------------------- Label Studio


def test_label_studio_export_loads_in_the_sdk():
    pytest.importorskip("label_studio_sdk")
    from label_studio_sdk.label_interface import LabelInterface
    from label_studio_sdk.types import Annotation, BaseTask

    j = _judgements()
    interface = LabelInterface(ann.LABEL_STUDIO_CONFIG)
    interface.validate()
    tasks = json.loads(ann.to_label_studio(j))
    ids = ann.label_studio_user_ids(j)
    assert ids == {"alice": 1, "bob": 2, "carol": 3}
    for task, (_, row) in zip(tasks, j.iterrows()):
        BaseTask(**{k: v for k, v in task.items() if k != "annotations"})
        assert interface.validate_task({"data": task["data"]})
        (annotation,) = task["annotations"]
        model = Annotation(**annotation)  # completed_by must be a user id
        assert model.completed_by == ids[row["annotator"]] and task["data"]["annotator"] == row["annotator"]
        (region,) = annotation["result"]
        control = interface.get_control(region["from_name"])
        assert control.tag.lower() == region["type"]
        value = region["value"]["selected"] if region["type"] == "pairwise" else region["value"]["choices"]
        expected = json.loads(control.label(value).to_json())  # the region the SDK itself builds
        assert {k: v for k, v in region.items() if k != "id"} == {k: v for k, v in expected.items() if k != "id"}
        if region["type"] == "choices":
            assert interface.validate_region(region)
        want = {"a": "left", "b": "right"}.get(row["choice"], [row["choice"]])
        assert value == want
    custom = json.loads(ann.to_label_studio(j, user_ids={"alice": 7, "bob": 8, "carol": 9}))
    assert [t["annotations"][0]["completed_by"] for t in custom] == [7, 8, 7, 9]
    with pytest.raises(Exception):
        Annotation(result=[], completed_by="alice")  # what the old export wrote


# ------------------------------------------------------------------------------- HF save_to_disk


def test_hf_folders_for_every_table(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    rows = [{"id": f"q{i}", "prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": None,
             "meta": {"source": "hand", "n": i}} for i in range(6)]
    inst = write_table(rows, tmp_path / "rl.hf")
    ds = datasets.load_from_disk(str(inst))
    assert isinstance(ds.features["meta"], dict) and ds[0]["meta"] == {"source": "hand", "n": 0}
    assert load_instructions(inst).to_dict("records") == rows
    negs = [{"id": f"q{i}", "variant": "llm", "text": "No.", "meta": {"model": "rules"}} for i in range(6)]
    neg_path = write_table(load_negatives(write_table(negs, tmp_path / "n.jsonl")), tmp_path / "negs.hf")
    assert load_negatives(neg_path).to_dict("records") == negs
    scores = pd.DataFrame({"id": ["q0"], "variant": ["llm"], "seam": [-0.5], "n_negatives": [1], "n_misjudged": [1],
                           "rm_gold": [0.25]})
    assert read_table(write_table(scores, tmp_path / "scores.hf")).to_dict("records") == scores.to_dict("records")
    # selections (`seam select`) and imports write folders too
    assert main(["select", "--method", "random", "--data", str(inst), "--out", str(tmp_path / "kept.hf")]) == 0
    kept = datasets.load_from_disk(str(tmp_path / "kept.hf"))
    assert len(kept) == 5 and set(kept.column_names) >= {"id", "prompt", "chosen", "meta"}
    assert (tmp_path / "kept.hf.lineage.json").is_file()
    with pytest.raises(SeamError, match="already exists"):  # folders are never replaced
        check_output_path(tmp_path / "kept.hf")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp leftovers
    capsys.readouterr()


# ----------------------------------------------------------------------------------- Parquet meta


def test_parquet_meta_is_a_struct(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": "a", "prompt": "p", "chosen": "c", "meta": {"source": "x", "tags": ["t"], "n": 1}},
            {"id": "b", "prompt": "p", "chosen": "c", "meta": {"source": "y", "sim": 0.5}}]
    path = write_table(rows, tmp_path / "d.parquet")
    assert pa.types.is_struct(pq.read_schema(path).field("meta").type)
    assert pd.read_parquet(path)["meta"][0]["source"] == "x"  # other readers see a struct too
    assert [r["meta"] for r in load_instructions(path).to_dict("records")] == [r["meta"] for r in rows]


def test_parquet_struct_widens_across_batches_and_falls_back_exactly(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": str(i), "meta": {"n": i}} for i in range(2100)]
    rows[2050]["meta"] = {"n": 2050, "late": "key"}  # a new key after the first batch
    path = write_table(rows, tmp_path / "wide.parquet")
    assert pq.read_schema(path).field("meta").type == pa.struct([("n", pa.int64()), ("late", pa.string())])
    assert read_table(path)["meta"].tolist() == [r["meta"] for r in rows]
    rows[2060]["meta"] = {"n": "text now"}  # one type per key: JSON text from then on, still exact
    rows[5]["meta"] = {"n": 5, "gone": None}  # a null value a struct could not keep
    path = write_table(rows, tmp_path / "mixed.parquet")
    assert pq.read_schema(path).field("meta").type == pa.string()
    assert read_table(path)["meta"].tolist() == [r["meta"] for r in rows]


def test_older_parquet_with_json_text_meta_still_reads(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": ["a"], "prompt": ["p"], "chosen": ["c"], "meta": [json.dumps({"source": "old", "k": 1})]})
    old = tmp_path / "old.parquet"
    pq.write_table(table.replace_schema_metadata({b"seam.json_columns": b'["meta"]'}), old)
    assert load_instructions(old)["meta"][0] == {"source": "old", "k": 1}
    plain = tmp_path / "pandas.parquet"  # written by pandas, no schema note: the loader parses the text
    pd.DataFrame({"id": ["a"], "prompt": ["p"], "chosen": ["c"], "meta": ['{"k": 2}']}).to_parquet(plain)
    assert load_instructions(plain)["meta"][0] == {"k": 2}
