"""adv --search batched: successes are real, one RM call per round for all instructions, deterministic,
within the query budget and the edit constraints, the same output schema as the TextAttack path, no
TextAttack or testbed import; the CLI takes --search."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seam.cli import main
from seam.data import load_negatives
from seam.errors import SeamError
from seam.models.scoring import RewardScorer
from seam.models.templates import get_template
from seam.negatives import AdvConfig, build_negatives
from seam.negatives.adv_batch import STOPWORDS, BatchedSearch, Words, char_edits

REPO = Path(__file__).resolve().parents[1]


def _frame():
    rows = [
        {"id": "a", "prompt": "What is two plus two?", "chosen": "Two plus two is four.", "rejected": "Two plus two is five."},
        {"id": "b", "prompt": "Sort the list 3, 1, 2 in ascending order.", "chosen": "The sorted list is 1, 2, 3.",
         "rejected": None},
        {"id": "c", "prompt": "What is the capital of France?", "chosen": "The capital of France is Paris.",
         "rejected": "The capital of France is Rome, which is a large city in the south of the country."},
        {"id": "d", "prompt": "How many letters are in the word banana?", "chosen": "The word banana has six letters.",
         "rejected": "Banana is a yellow fruit and the quick brown fox jumps over the lazy dog."},
    ]
    df = pd.DataFrame(rows)
    df["meta"] = [{} for _ in rows]
    return df


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAM_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def score_calls(monkeypatch):
    """Every RewardScorer.score call: the list of (prompt, response) pairs it got."""
    calls: list[list[tuple[str, str]]] = []
    real = RewardScorer.score

    def counting(self, prompts, responses, progress=None):
        calls.append(list(zip(prompts, responses)))
        return real(self, prompts, responses, progress)

    monkeypatch.setattr(RewardScorer, "score", counting)
    return calls


def _cfg(**kw):
    return AdvConfig(**{"search": "batched", "k": 5, "query_budget": 60, **kw})


def test_successes_are_real_when_rescored(tiny_loaded):
    _, rm = tiny_loaded
    df = _frame()
    for margin in (0.0, 0.01):
        neg, stats = build_negatives("adv", df, _cfg(margin=margin), rm=rm)
        assert stats["search"] == "batched" and len(neg) > 0
        metas = pd.DataFrame(list(neg["meta"]))
        ok = metas["success"].to_numpy()
        assert ok.any() or margin > 0
        scorer = RewardScorer(rm, get_template("stackllama"))
        prompt, gold = dict(zip(df["id"], df["prompt"])), dict(zip(df["id"], df["chosen"]))
        r_neg = scorer.score([prompt[i] for i in neg["id"]], neg["text"].tolist())
        r_gold = scorer.score([prompt[i] for i in neg["id"]], [gold[i] for i in neg["id"]])
        assert (r_neg[ok] >= r_gold[ok] + margin - 1e-4).all()
        np.testing.assert_allclose(metas["rm_neg"], r_neg, atol=1e-4)
        assert stats["successful_negatives"] == int(ok.sum())


def test_one_rm_call_per_round_for_all_instructions(tiny_loaded, score_calls):
    _, rm = tiny_loaded
    df = _frame()
    neg, stats = build_negatives("adv", df, _cfg(k=30, query_budget=80, round_candidates=16), rm=rm)
    assert len(score_calls) == 1 + stats["rounds"]  # gold and start rewards, then one call per round
    assert stats["rounds"] >= 2
    first = score_calls[1]
    assert {p for p, _ in first} == set(df["prompt"])  # every instruction's candidates in the first round's call
    assert Counter(p for p, _ in first).most_common(1)[0][1] <= 16  # round_candidates per instruction
    # with room for one instruction per call, instructions take turns (never more than round_texts texts a call)
    score_calls.clear()
    _, one = build_negatives("adv", df, _cfg(k=30, query_budget=40, round_candidates=16, round_texts=16), rm=rm)
    assert all(len({p for p, _ in c}) == 1 and len(c) <= 16 for c in score_calls[1:])
    assert one["rounds"] > stats["rounds"]


def test_deterministic_for_a_seed(tiny_loaded):
    _, rm = tiny_loaded
    a, sa = build_negatives("adv", _frame(), _cfg(beam=2), rm=rm)
    b, sb = build_negatives("adv", _frame(), _cfg(beam=2), rm=rm)
    pd.testing.assert_frame_equal(a, b)
    assert sa["rounds"] == sb["rounds"] and sa["rm_queries"] == sb["rm_queries"]


def test_query_budget_per_instruction(tiny_loaded, score_calls):
    _, rm = tiny_loaded
    df = _frame()
    neg, stats = build_negatives("adv", df, _cfg(k=30, query_budget=25, round_candidates=10, margin=100.0), rm=rm)
    metas = pd.DataFrame(list(neg["meta"]))
    assert (metas["queries"] <= 25).all() and stats["successes"] == 0
    sent = Counter(p for call in score_calls[1:] for p, _ in call)
    prompt = dict(zip(df["id"], df["prompt"]))
    for rid, q in metas.groupby(neg["id"].to_numpy())["queries"].first().items():
        assert sent[prompt[rid]] == q <= 25  # the meta counts exactly what the RM was sent
    assert stats["attack_queries"] == sum(sent.values())
    assert stats["rm_queries"] == 2 * len(df) + stats["attack_queries"]


def test_edits_respect_the_constraints(tiny_loaded):
    _, rm = tiny_loaded
    df = _frame()
    cfg = _cfg(k=30, query_budget=200, max_words=6, max_modify_rate=0.25, margin=100.0)
    neg, _ = build_negatives("adv", df, cfg, rm=rm)
    start = {"a": "Two plus two is five.", "c": df.loc[2, "rejected"], "d": df.loc[3, "rejected"]}
    for rid, text, meta in zip(neg["id"], neg["text"], neg["meta"]):
        if rid not in start:
            continue
        before, after = Words.parse(start[rid]), Words.parse(text)
        assert 1 <= meta["words_changed"] <= max(1, math.ceil(0.25 * len(before.words)))
        stop = Counter(w.lower() for w in before.words if w.lower() in STOPWORDS)
        now = Counter(w.lower() for w in after.words)
        assert all(now[w] >= n for w, n in stop.items())  # stopwords are never changed or deleted
        tail = len(before.words) - 6
        assert after.words[len(after.words) - tail:] == before.words[6:]  # only the first max_words words change


def test_word_edits():
    w = Words.parse("The cat, sat here.")
    assert w.words == ("The", "cat", "sat", "here") and w.text == "The cat, sat here."
    assert w.delete(1).text == "The, sat here." and w.delete(3).text == "The cat, sat."
    assert w.swap(2).text == "The cat, here sat." and w.swap(2).changes == 2
    d = w.duplicate(1)
    assert d.text == "The cat cat, sat here." and d.locked == (False, True, True, False, False)
    assert w.replace(2, "stood").text == "The cat, stood here." and w.spans().tolist()[2] == [9, 12]
    assert char_edits("banana", 4, 0) == char_edits("banana", 4, 0) and len(char_edits("banana", 4, 0)) == 4
    assert char_edits("an", 4, 0) == [] and char_edits("x1y2", 4, 0) == []


def test_black_box_and_waves_run(tiny_loaded):
    _, rm = tiny_loaded
    neg, stats = build_negatives("adv", _frame(), _cfg(gradient=False), rm=rm)
    assert stats["grad_calls"] == 0 and len(neg) > 0
    _, rm = tiny_loaded
    search = BatchedSearch(rm, RewardScorer(rm, get_template("stackllama")), _cfg())
    res = search.run(["x"], ["What is two plus two?"], ["Two plus two is five."], [0.0], [-1e9], ["Two plus two is four."])
    assert res[0].success and res[0].queries <= 60 and search.rm_calls == search.rounds


def test_config_validation():
    with pytest.raises(SeamError, match="--search"):
        AdvConfig(search="beam").validate()
    with pytest.raises(SeamError, match="--beam"):
        AdvConfig(beam=0).validate()
    with pytest.raises(SeamError, match="round_texts"):
        AdvConfig(round_candidates=64, round_texts=32).validate()
    with pytest.raises(SeamError, match="--recipe char applies to --search textattack"):
        AdvConfig(recipe="char").validate()
    AdvConfig(recipe="char", search="textattack").validate()


@pytest.mark.skipif(importlib.util.find_spec("textattack") is None, reason="textattack not installed")
def test_same_schema_as_textattack(cache_env, tiny_loaded):
    _, rm = tiny_loaded
    df = _frame()
    b, sb = build_negatives("adv", df, _cfg(k=3, query_budget=30), rm=rm)
    t, st = build_negatives("adv", df, _cfg(k=3, query_budget=30, search="textattack"), rm=rm)
    assert list(b.columns) == list(t.columns) == ["id", "variant", "text", "meta"]
    assert {tuple(sorted(m)) for m in b["meta"]} == {tuple(sorted(m)) for m in t["meta"]}
    assert sorted(sb) == sorted(st)
    assert (sb["search"], sb["recipe"], st["search"], st["recipe"]) == ("batched", "batched", "textattack", "greedy")
    assert {m["search"] for m in t["meta"]} == {"textattack"}


def test_adv_batch_imports_neither_textattack_nor_testbed():
    code = ("import sys, json; import seam.negatives.adv_batch; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'textattack' "
            "or m.startswith('seam.testbed'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_cli_search_flag(cache_env, tiny_models, tmp_path, capsys):
    _, rm_dir = tiny_models
    data = tmp_path / "rl.jsonl"
    df = _frame()
    data.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "meta" and v is not None}) + "\n"
                            for r in df.to_dict("records")))
    out = tmp_path / "negs.jsonl"
    code = main(["negatives", "adv", "--data", str(data), "--rm", str(rm_dir), "--out", str(out), "--k", "3",
                 "--query-budget", "30", "--search", "batched", "--beam", "2", "--round-candidates", "12",
                 "--device", "cpu", "--quiet"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "batched search (beam 2" in cap.out
    neg = load_negatives(out, known_ids=df["id"])
    assert len(neg) > 0 and neg["meta"].map(lambda m: m["search"] == "batched" and m["queries"] <= 30).all()
    with pytest.raises(SystemExit) as exc:
        main(["negatives", "adv", "--data", str(data), "--rm", str(rm_dir), "--out", str(out), "--search", "nope"])
    assert exc.value.code == 2 and "--search" in capsys.readouterr().err
