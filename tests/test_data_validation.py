"""Bad input to the data layer: every error names the file, the row/line where there is one, and the fix."""

from __future__ import annotations

import gzip
import json

import pytest

from seam.data import load_instructions, load_negatives, read_table
from seam.errors import SeamError


def jsonl(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


OK = {"id": "a", "prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}

# (case id, file name, file bytes, loader kind, substrings the message must contain)
CASES = [
    ("missing column", "d.csv", b"id,question,chosen\n1,q,a\n", "instructions",
     ["missing column 'prompt'", "columns found: id, question, chosen", "--prompt-col"]),
    ("empty prompt", "d.jsonl", jsonl(OK, {**OK, "id": "b", "prompt": ""}), "instructions",
     ["line 2", "prompt is empty", "fill it in or drop the row"]),
    ("empty chosen (csv)", "d.csv", b"id,prompt,chosen\n1,q,a\n2,q2,\n", "instructions",
     ["row 2", "chosen is missing", "fill it in or drop the row"]),
    ("whitespace-only prompt", "d.jsonl", jsonl({**OK, "prompt": " \t\n "}), "instructions",
     ["line 1", "prompt is whitespace only", "fill it in"]),
    ("duplicate id", "d.jsonl", jsonl(OK, {**OK, "id": "b"}, OK), "instructions",
     ["lines 1 and 3", "duplicate id 'a'", "rename or drop one"]),
    ("number as prompt", "d.jsonl", jsonl({**OK, "prompt": 42}), "instructions",
     ["line 1", "prompt must be a string, got a number (42)", "convert it to text"]),
    ("list as chosen", "d.jsonl", jsonl({**OK, "chosen": ["a", "b"]}), "instructions",
     ["line 1", "chosen must be a string, got a list", "seam import trl"]),
    ("blank id", "d.jsonl", jsonl(OK, {**OK, "id": "  "}), "instructions",
     ["line 2", "id is missing or blank", "unique id"]),
    ("meta not an object (csv)", "d.csv", b'id,prompt,chosen,meta\n1,q,a,"[1, 2]"\n', "instructions",
     ["row 1", "meta must be a JSON object", "fix the value or leave it empty"]),
    ("invalid JSON line", "d.jsonl", jsonl(OK, {**OK, "id": "b"}, '{"id": "c", "prompt": "x",'), "instructions",
     ["line 3", "invalid JSON", "fix or delete that line"]),
    ("JSON line is not an object", "d.jsonl", jsonl(OK, "[1, 2]"), "instructions",
     ["line 2", "expected a JSON object", "one JSON object"]),
    ("non-UTF-8 bytes", "d.jsonl", jsonl(OK) + b'{"id": "b", "prompt": "caf\xe9", "chosen": "x"}\n', "instructions",
     ["line 2", "not valid UTF-8", "byte 0xe9", "byte offset", "re-save the file as UTF-8"]),
    ("non-UTF-8 bytes (csv)", "d.csv", b"id,prompt,chosen\n1,q,a\n2,\xff\xfe,b\n", "instructions",
     ["line 3", "not valid UTF-8", "re-save the file as UTF-8"]),
    ("empty file", "d.jsonl", b"", "instructions", ["file is empty", "regenerate"]),
    ("header only (csv)", "d.csv", b"id,prompt,chosen\n", "instructions", ["no data rows", "add rows"]),
    ("unknown extension", "d.txt", b"hello\n", "instructions", ["unknown file type (.txt)", "use .jsonl, .json, .csv or .parquet"]),
    ("corrupt parquet", "d.parquet", b"PAR1 this is not really parquet PAR1", "instructions",
     ["not a readable Parquet file", "re-export it"]),
    ("truncated gzip", "d.jsonl.gz", gzip.compress(jsonl(OK, OK))[:-12], "instructions",
     ["not a readable gzip file", "re-download"]),
    ("negatives unknown id", "n.jsonl",
     jsonl({"id": "a", "variant": "llm", "text": "bad"}, {"id": "zz", "variant": "llm", "text": "bad"}), "negatives",
     ["line 2", "id 'zz' is not an id of the instructions", "negatives must point at ids of the --data file"]),
    ("negatives empty text", "n.jsonl", jsonl({"id": "a", "variant": "adv", "text": ""}), "negatives",
     ["line 1", "text is empty", "fill it in"]),
    ("negatives non-string text", "n.jsonl", jsonl({"id": "a", "variant": "adv", "text": {"t": 1}}), "negatives",
     ["line 1", "text must be a string, got an object", "convert it to text"]),
    ("negatives empty variant", "n.csv", b"id,variant,text\na,,worse answer\n", "negatives",
     ["row 1", "variant is missing", "fill it in"]),
    ("negatives missing column", "n.jsonl", jsonl({"id": "a", "kind": "llm", "text": "x"}), "negatives",
     ["missing column 'variant'", "columns found: id, kind, text", "--variant-col"]),
]


@pytest.mark.parametrize("name, filename, content, kind, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_file_row_and_fix(tmp_path, name, filename, content, kind, expected):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(SeamError) as info:
        if kind == "instructions":
            load_instructions(path)
        else:
            load_negatives(path, known_ids=["a"])
    message = str(info.value)
    assert str(path) in message, message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert "\n" not in message


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere" / "d.jsonl"
    with pytest.raises(SeamError, match="file not found; check the path") as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_rejected_of_wrong_type_is_an_error(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(jsonl({**OK, "rejected": 3.5}))
    with pytest.raises(SeamError, match=r"line 1: rejected must be a string, got a number \(3.5\)"):
        load_instructions(path)


def test_parquet_rows_are_numbered(tmp_path):
    import pandas as pd

    path = tmp_path / "d.parquet"
    pd.DataFrame({"id": ["a", "b", "c"], "prompt": ["p", "p", "p"], "chosen": ["x", "y", None]}).to_parquet(path)
    with pytest.raises(SeamError, match=r"d.parquet row 3: chosen is missing"):
        load_instructions(path)


def test_hf_dict_with_several_splits_asks_for_one(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([OK])
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(SeamError, match=r"splits train, test .*point at the split folder"):
        load_instructions(tmp_path / "hf")
    assert load_instructions(tmp_path / "hf" / "test")["id"].tolist() == ["a"]


def test_plain_folder_is_not_a_dataset(tmp_path):
    with pytest.raises(SeamError, match="not an HF save_to_disk dataset"):
        read_table(tmp_path)
