"""Every command that writes a file refuses an output that is one of its inputs (issue 12, item 3).

Exit code 2, exactly one `error:` line on stderr, and the input byte-for-byte unchanged (no temp
file left next to it either). The check runs before any data is parsed or model loaded, so the
model flags point at folders that hold no real model: reaching a model load would give a
different error and fail the test.
"""

from __future__ import annotations

import json

import pytest

from seam.cli import main
from seam.data import write_table
from seam.data.importers import IMPORTERS
from seam.io import file_digest

ROWS = [{"id": f"q{i}", "prompt": f"What is {i} plus {i}?", "chosen": f"{i} plus {i} is {2 * i}.",
         "rejected": f"It is {2 * i + 1}."} for i in range(6)]


@pytest.fixture
def d(tmp_path):
    write_table(ROWS, tmp_path / "data.jsonl")
    write_table(ROWS, tmp_path / "corpus.jsonl")
    write_table(ROWS, tmp_path / "base.jsonl")
    write_table([{"id": r["id"], "variant": "contrast", "text": r["rejected"],
                  "meta": {"source_id": "q0", "similarity": 0.85}} for r in ROWS], tmp_path / "negs.jsonl")
    write_table([{"id": r["id"], "variant": "llm", "seam": -float(i), "n_negatives": 1, "n_misjudged": 0, "rm_gold": 0.0}
                 for i, r in enumerate(ROWS)], tmp_path / "scores.jsonl")
    write_table([{"id": r["id"], "response": r["chosen"]} for r in ROWS], tmp_path / "resp.jsonl")
    (tmp_path / "model").mkdir()  # a folder, never loaded
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(tmp_path / "model")}))
    (tmp_path / "run").mkdir()
    write_table(ROWS, tmp_path / "run" / "rl.jsonl")
    (tmp_path / "cfg.yaml").write_text("learning_rate: 0.0001\n")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "data.jsonl")
    return tmp_path


SCORE = ["score", "--pm", "{d}/model", "--rm", "{d}/model", "--data", "{d}/data.jsonl", "--negatives", "{d}/negs.jsonl"]
SELECT = ["select", "--data", "{d}/data.jsonl", "--scores", "{d}/scores.jsonl"]
AUGMENT = ["augment", "--data", "{d}/data.jsonl", "--method", "full", "--contrast", "{d}/negs.jsonl"]
EVAL_RM = ["eval", "eval-rm", "--rm", "{d}/model", "--data", "{d}/data.jsonl"]
EVAL_POLICY = ["eval", "eval-policy", "--data", "{d}/data.jsonl", "--responses", "{d}/resp.jsonl", "--judge", "gold"]
EXPORT = ["export", "openrlhf", "--data", "{d}/data.jsonl", "--pm", "{d}/model", "--rm", "{d}/model"]

# id -> (argv, the input that must stay unchanged)
CASES = {
    "score --out=--data": (SCORE + ["--out", "{d}/data.jsonl"], "data.jsonl"),
    "score --details=--negatives": (SCORE + ["--out", "{d}/s.jsonl", "--details", "{d}/negs.jsonl"], "negs.jsonl"),
    "negatives contrast --out=--data": (["negatives", "contrast", "--data", "{d}/data.jsonl", "--out", "{d}/data.jsonl"],
                                        "data.jsonl"),
    "negatives contrast --out=--corpus": (["negatives", "contrast", "--data", "{d}/data.jsonl", "--corpus",
                                           "{d}/corpus.jsonl", "--out", "{d}/corpus.jsonl"], "corpus.jsonl"),
    "negatives contrast --stats=--data": (["negatives", "contrast", "--data", "{d}/data.jsonl", "--out", "{d}/n.jsonl",
                                           "--stats", "{d}/data.jsonl"], "data.jsonl"),
    "negatives llm --out=--data": (["negatives", "llm", "--backend", "rules", "--data", "{d}/data.jsonl",
                                    "--out", "{d}/data.jsonl"], "data.jsonl"),
    "negatives adv --out=--data": (["negatives", "adv", "--rm", "{d}/model", "--data", "{d}/data.jsonl",
                                    "--out", "{d}/data.jsonl"], "data.jsonl"),
    **{f"import {kind} --out=SOURCE": (["import", kind, "{d}/data.jsonl", "--out", "{d}/data.jsonl"], "data.jsonl")
       for kind in sorted(IMPORTERS)},
    "export openrlhf --out=--data": (EXPORT + ["--out", "{d}/data.jsonl"], "data.jsonl"),
    "export openrlhf --out=--rm": (EXPORT + ["--out", "{d}/model"], "model"),
    "select --out=--data": (SELECT + ["--out", "{d}/data.jsonl"], "data.jsonl"),
    "select --out=a link to --data": (SELECT + ["--out", "{d}/link.jsonl"], "data.jsonl"),
    "select --dropped=--scores": (SELECT + ["--out", "{d}/kept.jsonl", "--dropped", "{d}/scores.jsonl"], "scores.jsonl"),
    "augment --sft-out=--data": (AUGMENT + ["--sft-out", "{d}/data.jsonl"], "data.jsonl"),
    "augment --sft-out=--contrast": (AUGMENT + ["--sft-out", "{d}/negs.jsonl"], "negs.jsonl"),
    "augment --rm-out=--rm-base": (AUGMENT + ["--rm-base", "{d}/base.jsonl", "--rm-out", "{d}/base.jsonl"], "base.jsonl"),
    "eval eval-rm --out=--data": (EVAL_RM + ["--out", "{d}/data.jsonl"], "data.jsonl"),
    "eval eval-rm --rows=--data": (EVAL_RM + ["--rows", "{d}/data.jsonl"], "data.jsonl"),
    "eval eval-policy --out=--responses": (EVAL_POLICY + ["--out", "{d}/resp.jsonl"], "resp.jsonl"),
    "eval eval-policy --summary=--data": (EVAL_POLICY + ["--out", "{d}/o.jsonl", "--summary", "{d}/data.jsonl"],
                                          "data.jsonl"),
    "eval compare --out=--a": (["eval", "compare", "--a", "{d}/resp.jsonl", "--b", "{d}/data.jsonl",
                                "--out", "{d}/resp.jsonl"], "resp.jsonl"),
    "train sft --out=--data": (["train", "sft", "--model", "{d}/model", "--data", "{d}/data.jsonl",
                                "--out", "{d}/data.jsonl"], "data.jsonl"),
    "train sft --out=--config": (["train", "sft", "--config", "{d}/cfg.yaml", "--model", "{d}/model", "--data",
                                  "{d}/data.jsonl", "--out", "{d}/cfg.yaml"], "cfg.yaml"),
    "train rm --out=--model": (["train", "rm", "--model", "{d}/model", "--data", "{d}/data.jsonl", "--out", "{d}/model"],
                               "model"),
    "train ppo --out holds --data": (["train", "ppo", "--policy", "{d}/model", "--reward-model", "{d}/model",
                                      "--data", "{d}/run/rl.jsonl", "--out", "{d}/run"], "run/rl.jsonl"),
    "train merge --out=--adapter": (["train", "merge", "--adapter", "{d}/adapter", "--out", "{d}/adapter"], "adapter"),
}


@pytest.mark.parametrize("argv, victim", list(CASES.values()), ids=list(CASES))
def test_output_equal_to_an_input_is_refused(d, capsys, argv, victim):
    before = file_digest(d / victim)
    listing = sorted(p.name for p in d.iterdir())
    code = main([a.format(d=d) for a in argv])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert " the input " in lines[0] and ("overwrite" in lines[0] or "replace" in lines[0]), lines[0]
    assert file_digest(d / victim) == before
    assert sorted(p.name for p in d.iterdir()) == listing  # no temp file or partial folder left behind
