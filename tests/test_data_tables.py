"""Reading/writing tables: round trips in every format, atomic writes, output-path checks, column flags."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from seam.data import (
    InstructionColumns,
    NegativeColumns,
    add_column_flags,
    atomic_output,
    check_output_path,
    columns_from_args,
    iter_instruction_chunks,
    load_instructions,
    load_negatives,
    negative_columns_from_args,
    read_table,
    write_table,
)
from seam.errors import SeamError

ROWS = [
    {"id": "007", "prompt": "Quote \"this\", then a comma, and\na newline.", "chosen": "Sure: café ☕",
     "rejected": None, "meta": {"source": "hand", "tags": ["a", "b"], "score": 1.5, "nested": {"k": None}}},
    {"id": "2", "prompt": "Second?", "chosen": "Yes.", "rejected": "No.", "meta": {}},
    {"id": "x-3", "prompt": "Third", "chosen": "  padded answer  ", "rejected": "worse", "meta": {"n": 3}},
]
FORMATS = ["jsonl", "csv", "parquet", "jsonl.gz", "csv.gz"]


def _no_leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir()) == sorted(keep)


@pytest.mark.parametrize("ext", FORMATS)
def test_instructions_round_trip(tmp_path, ext):
    path = write_table(ROWS, tmp_path / f"data.{ext}")
    assert path.is_file() and _no_leftovers(tmp_path, [path.name])
    df = load_instructions(path)
    assert list(df.columns) == ["id", "prompt", "chosen", "rejected", "meta"]
    assert df.to_dict("records") == ROWS  # ids stay text ("007"), None stays None, meta dicts come back
    again = write_table(df, tmp_path / f"again.{ext}")  # a DataFrame writes the same way
    assert load_instructions(again).to_dict("records") == ROWS


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_read_table_returns_meta_as_dicts(tmp_path, ext):
    df = read_table(write_table(ROWS, tmp_path / f"d.{ext}"))
    assert df["meta"].tolist() == [r["meta"] for r in ROWS]
    assert len(df) == 3


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_negatives_round_trip_with_known_ids(tmp_path, ext):
    rows = [{"id": 7, "variant": "contrast", "text": "other answer", "meta": {"source_id": "9", "sim": 0.85}},
            {"id": "8", "variant": " llm ", "text": "wrong answer", "meta": None}]
    path = write_table(rows, tmp_path / f"neg.{ext}")
    df = load_negatives(path, known_ids=["7", "8"])
    assert list(df.columns) == ["id", "variant", "text", "meta"]
    assert df["id"].tolist() == ["7", "8"]  # integer ids become strings
    assert df["variant"].tolist() == ["contrast", "llm"]
    assert df["meta"].tolist() == [{"source_id": "9", "sim": 0.85}, {}]


def test_json_array_and_custom_columns(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"qid": 1, "question": "Q?", "answer": "A.", "info": '{"x": 1}'}]))
    df = load_instructions(path, InstructionColumns(id="qid", prompt="question", chosen="answer", meta="info"))
    assert df.to_dict("records") == [{"id": "1", "prompt": "Q?", "chosen": "A.", "rejected": None, "meta": {"x": 1}}]


def test_integer_ids_and_missing_optional_columns(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": 1, "prompt": "p", "chosen": "c"}\n\n{"id": 2, "prompt": "q", "chosen": "d", "rejected": ""}\n')
    df = load_instructions(path)
    assert df["id"].tolist() == ["1", "2"]
    assert df["rejected"].tolist() == [None, None]
    assert df["meta"].tolist() == [{}, {}]


def test_hf_save_to_disk_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([{"id": "a", "prompt": "p", "chosen": "c", "rejected": "r"}]).save_to_disk(str(tmp_path / "ds"))
    df = load_instructions(tmp_path / "ds")
    assert df.to_dict("records") == [{"id": "a", "prompt": "p", "chosen": "c", "rejected": "r", "meta": {}}]


def test_atomic_output_success_and_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith(".jsonl") and tmp != target
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"  # untouched
    assert _no_leftovers(tmp_path, ["out.jsonl"])  # temp removed
    with atomic_output(target) as tmp:
        tmp.write_text("new\n")
    assert target.read_text() == "new\n" and _no_leftovers(tmp_path, ["out.jsonl"])


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_write_table_leaves_nothing_when_rows_fail(tmp_path, ext):
    def rows():
        yield ROWS[0]
        raise ValueError("source broke mid-way")

    with pytest.raises(ValueError):
        write_table(rows(), tmp_path / f"out.{ext}")
    assert _no_leftovers(tmp_path, [])


def test_write_table_streams_many_rows_to_parquet(tmp_path):
    rows = ({"id": str(i), "prompt": f"p{i}", "chosen": "c", "rejected": None if i < 2500 else "r", "meta": {"i": i}}
            for i in range(5000))  # the first batch has no rejected at all: the column still types as text
    df = load_instructions(write_table(rows, tmp_path / "big.parquet"))
    assert len(df) == 5000 and df["rejected"].iloc[0] is None and df["rejected"].iloc[-1] == "r"
    assert df["meta"].iloc[4321] == {"i": 4321}


def test_check_output_path(tmp_path):
    assert check_output_path(tmp_path / "x.parquet") == tmp_path / "x.parquet"
    with pytest.raises(SeamError, match=r"does not exist; create it first with `mkdir -p .*missing`"):
        check_output_path(tmp_path / "missing" / "x.jsonl")
    with pytest.raises(SeamError, match=r"unknown file type \(.txt\)"):
        check_output_path(tmp_path / "x.txt")
    with pytest.raises(SeamError, match="cannot write .json files"):
        check_output_path(tmp_path / "x.json")
    with pytest.raises(SeamError, match="is a folder"):
        check_output_path(tmp_path)


def test_column_flags_map_onto_the_contract(tmp_path):
    parser = argparse.ArgumentParser()
    add_column_flags(parser)
    add_column_flags(parser, kind="negatives")
    args = parser.parse_args(["--prompt-col", "question", "--chosen-col", "answer", "--text-col", "negative"])
    assert columns_from_args(args) == InstructionColumns(prompt="question", chosen="answer")
    assert negative_columns_from_args(args) == NegativeColumns(text="negative")
    path = tmp_path / "d.csv"
    path.write_text("id,question,answer\n1,Why?,Because.\n")
    assert load_instructions(path, columns_from_args(args))["prompt"].tolist() == ["Why?"]
    assert columns_from_args(parser.parse_args([])) == InstructionColumns()


def test_iter_instruction_chunks():
    df = pd.DataFrame({"id": [str(i) for i in range(7)]})
    chunks = list(iter_instruction_chunks(df, 3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert pd.concat(chunks)["id"].tolist() == df["id"].tolist()
    with pytest.raises(SeamError, match="positive integer"):
        list(iter_instruction_chunks(df, 0))
