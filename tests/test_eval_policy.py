"""RM accuracy, policy evaluation (gold / rm / llm / local judges, length, KL), run comparison, CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from seam.cli import main
from seam.data import read_table, write_table
from seam.errors import SeamError
from seam.testbed import WorldConfig, generate_tasks, instructions_rows
from seam.train.eval import (PolicyEvalConfig, RMEvalConfig, compare_runs, evaluate_policy, evaluate_rm, generate)
from seam.train.judges import JudgeSettings, LLMJudge, parse_rating

PAIRS = [{"id": f"p{i}", "prompt": f"Name a colour number {i}.", "chosen": f"Colour {i} is blue.",
          "rejected": "no"} for i in range(6)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    rows = instructions_rows(generate_tasks(WorldConfig(seed=0, n_tasks=14)))
    write_table(rows, d / "world.jsonl")
    write_table(PAIRS, d / "pairs.jsonl")
    return d, rows


def test_parse_rating():
    assert parse_rating("Fine.\nRating: [[8]]") == 8.0
    assert parse_rating("Rating: [[7.5]]") == 7.5
    assert parse_rating("Rating: [6]") == 6.0  # MT-Bench's fallback pattern
    assert np.isnan(parse_rating("Rating: [[11]]")) and np.isnan(parse_rating("")) and np.isnan(parse_rating(None))


def test_evaluate_rm_matches_the_scorer(tiny_models, tiny_loaded, world):
    from seam.models.scoring import RewardScorer
    from seam.models.templates import get_template

    d, _ = world
    _, rm_dir = tiny_models
    res = evaluate_rm(RMEvalConfig(rm=str(rm_dir), data=str(d / "pairs.jsonl"), device="cpu"))
    scorer = RewardScorer(tiny_loaded[1], get_template("stackllama"))
    df = pd.DataFrame(PAIRS)
    rc = scorer.score(df["prompt"].tolist(), df["chosen"].tolist())
    rr = scorer.score(df["prompt"].tolist(), df["rejected"].tolist())
    assert res.n == 6 and res.accuracy == pytest.approx(float((rc > rr).mean()))
    assert np.allclose(res.rows["margin"], rc - rr, atol=1e-5)
    assert res.ci_low <= res.accuracy <= res.ci_high


def test_evaluate_rm_needs_pairs(tiny_models, world):
    d, _ = world
    with pytest.raises(SeamError, match="no rejected response"):
        evaluate_rm(RMEvalConfig(rm=str(tiny_models[1]), data=str(d / "world.jsonl"), device="cpu"))


def test_gold_judge_on_the_demo_world(world, tmp_path):
    d, rows = world
    responses = [{"id": r["id"], "response": r["chosen"] if i % 2 == 0 else "I cannot help with that."}
                 for i, r in enumerate(rows)]
    write_table(responses, tmp_path / "resp.jsonl")
    res = evaluate_policy(PolicyEvalConfig(data=str(d / "world.jsonl"), responses=str(tmp_path / "resp.jsonl"),
                                           judges=("gold",)))
    gold = res.rows["score_gold"].to_numpy()
    assert np.all(gold[::2] == 1.0) and np.all(gold[1::2] == 0.0)
    s = res.summary["gold"]
    assert s["mean"] == pytest.approx(gold.mean()) and s["n_failed"] == 0 and s["ci_low"] <= s["mean"] <= s["ci_high"]


def test_gold_judge_skips_rows_without_testbed_meta(world, tmp_path):
    d, _ = world
    write_table([{"id": r["id"], "response": r["chosen"]} for r in PAIRS], tmp_path / "resp.jsonl")
    res = evaluate_policy(PolicyEvalConfig(data=str(d / "pairs.jsonl"), responses=str(tmp_path / "resp.jsonl"),
                                           judges=("gold",)))
    assert res.summary["gold"]["n_failed"] == 6 and res.summary["gold"]["n"] == 0


def test_generate_is_deterministic_and_order_safe(tiny_loaded):
    from seam.models.templates import get_template

    pm, _ = tiny_loaded
    prompts = ["Hi?", "What is two plus two, exactly, in words?", "Sort 3 1 2.", "x"]
    a = generate(pm, prompts, get_template("stackllama"), max_new_tokens=5, batch_size=4)
    b = generate(pm, prompts, get_template("stackllama"), max_new_tokens=5, batch_size=1)
    assert a == b and len(a) == 4


def test_policy_eval_with_generation_rm_local_and_kl(tiny_models, world):
    d, _ = world
    pm, rm = tiny_models
    cfg = PolicyEvalConfig(data=str(d / "pairs.jsonl"), pm=str(pm), judges=("rm", "local"), ref=str(pm),
                           max_new_tokens=6, device="cpu", judge=JudgeSettings(rm=str(rm), local_model=str(pm)))
    res = evaluate_policy(cfg)
    rows = res.rows
    assert list(rows.columns[:3]) == ["id", "prompt", "response"]
    assert np.all(np.abs(rows["kl"]) < 1e-6)  # policy == reference
    assert rows["response_tokens"].between(0, 6).all()
    assert np.isfinite(rows["score_rm"]).all()
    assert rows["score_local"].between(1, 10).all()
    assert set(res.summary) >= {"rm", "local", "kl", "response_tokens", "n"}


class _FakeClient:
    def __init__(self, replies):
        self.replies = list(replies)
        self.prompts = []
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, model, messages, **kw):
        self.prompts.append(messages)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=reply))])


def test_llm_judge_uses_the_mt_bench_prompt():
    client = _FakeClient(["Good. Rating: [[9]]", "Hmm, no score", RuntimeError("down")])
    judge = LLMJudge(JudgeSettings(llm_model="m", client=client, max_workers=1))
    rows = pd.DataFrame({"prompt": ["Q1", "Q2", "Q3"]})
    scores = judge.score(rows, ["A1", "A2", "A3"])
    assert scores[0] == 9.0 and np.isnan(scores[1]) and np.isnan(scores[2])
    system, user = client.prompts[0]
    assert "impartial judge" in system["content"] and "[[rating]]" in system["content"]
    assert "[Question]\nQ1" in user["content"] and "[The Start of Assistant's Answer]\nA1" in user["content"]
    failing = LLMJudge(JudgeSettings(llm_model="m", client=_FakeClient([RuntimeError("no route")] * 2)))
    with pytest.raises(SeamError, match="failed on every response"):
        failing.score(pd.DataFrame({"prompt": ["a", "b"]}), ["x", "y"])


def test_llm_judge_needs_a_model_and_key(monkeypatch):
    with pytest.raises(SeamError, match="--judge-model"):
        LLMJudge(JudgeSettings())
    monkeypatch.delenv("SEAM_TEST_KEY", raising=False)
    with pytest.raises(SeamError, match="SEAM_TEST_KEY"):
        LLMJudge(JudgeSettings(llm_model="m", api_key_env="SEAM_TEST_KEY"))


def _table(ids, scores):
    return pd.DataFrame({"id": ids, "score_gold": scores})


def test_compare_runs_prompts_and_seeds():
    rng = np.random.default_rng(0)
    ids = [f"t{i}" for i in range(40)]
    a = [_table(ids, rng.random(40) * 0.5 + 0.5) for _ in range(3)]
    b = [_table(ids[::-1], rng.random(40) * 0.5) for _ in range(3)]  # row order must not matter
    res = compare_runs(a, b, score="gold")
    assert res.n_prompts == 120 and res.n_seeds == 3
    assert res.win_rate["rate"] == 1.0 and res.diff["low"] > 0
    assert res.prompt_test["method"] == "wilcoxon" and res.prompt_test["p_value"] < 1e-6
    assert res.seed_test["method"] == "t" and res.seed_test["n"] == 3 and res.seed_test["p_value"] < 0.05
    one = compare_runs(a[:1], b[:1], score="score_gold")
    assert one.seed_test is None and one.n_prompts == 40


def test_compare_runs_errors():
    t = _table(["a", "b"], [1.0, 0.0])
    with pytest.raises(SeamError, match="same number of runs"):
        compare_runs([t, t], [t])
    with pytest.raises(SeamError, match="no column 'llm'"):
        compare_runs([t], [t], score="llm")
    with pytest.raises(SeamError, match="share no prompt ids"):
        compare_runs([t], [_table(["c"], [1.0])])


# ----------------------------------------------------------------------------- CLI


def test_cli_eval_policy_and_compare(world, tmp_path, capsys):
    d, rows = world
    write_table([{"id": r["id"], "response": r["chosen"]} for r in rows], tmp_path / "good.jsonl")
    write_table([{"id": r["id"], "response": "No."} for r in rows], tmp_path / "bad.jsonl")
    for name in ("good", "bad"):
        assert main(["train", "eval-policy", "--data", str(d / "world.jsonl"), "--responses", str(tmp_path / f"{name}.jsonl"),
                     "--judge", "gold", "--out", str(tmp_path / f"eval-{name}.jsonl"),
                     "--summary", str(tmp_path / f"eval-{name}.json")]) == 0
    assert json.loads((tmp_path / "eval-good.json").read_text())["gold"]["mean"] == 1.0
    assert read_table(tmp_path / "eval-bad.jsonl")["score_gold"].max() <= 0.3
    capsys.readouterr()
    assert main(["train", "compare", "--a", str(tmp_path / "eval-good.jsonl"), "--b", str(tmp_path / "eval-bad.jsonl"),
                 "--out", str(tmp_path / "cmp.json")]) == 0
    out = capsys.readouterr().out
    assert "win rate A over B 1.000" in out
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["win_rate"]["wins"] == len(rows)
    assert f"smallest difference detectable (80% power, two-sided 5%): {cmp['mde']['prompts']:.4f} over prompts" in out
    # two seeds (the same tables twice): a seed-level t interval and a seed-level MDE
    assert main(["train", "compare", "--a", *[str(tmp_path / "eval-good.jsonl")] * 2,
                 "--b", str(tmp_path / "eval-bad.jsonl"), str(tmp_path / "eval-good.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "across seeds: mean difference" in out and "95% t CI" in out and "over seeds" in out


def test_cli_eval_rm(tiny_models, world, tmp_path, capsys):
    d, _ = world
    assert main(["train", "eval-rm", "--rm", str(tiny_models[1]), "--data", str(d / "pairs.jsonl"), "--device", "cpu",
                 "--out", str(tmp_path / "rm.json"), "--rows", str(tmp_path / "rm-rows.csv")]) == 0
    assert "RM accuracy" in capsys.readouterr().out
    assert json.loads((tmp_path / "rm.json").read_text())["n"] == 6 and len(read_table(tmp_path / "rm-rows.csv")) == 6


@pytest.mark.parametrize("argv, match", [
    (["train", "eval-policy", "--data", "{d}/world.jsonl", "--responses", "{d}/pairs.jsonl", "--judge", "gold",
      "--out", "{t}/o.jsonl"], "needs columns id and response"),
    (["train", "eval-policy", "--data", "{d}/world.jsonl", "--responses", "{t}/r.jsonl", "--judge", "rm",
      "--out", "{t}/o.jsonl"], "needs --rm"),
    (["train", "eval-policy", "--data", "{d}/world.jsonl", "--responses", "{t}/r.jsonl", "--judge", "gold",
      "--out", "{t}/o.jsonl", "--summary", "{t}/s.txt"], "use a .json file name"),
    (["train", "eval-rm", "--rm", "{t}/nope", "--data", "{d}/pairs.jsonl"], "nope"),
    (["train", "compare", "--a", "{t}/r.jsonl", "--b", "{t}/r.jsonl", "--score", "gold"], "no column 'gold'"),
])
def test_cli_eval_bad_input(world, tmp_path, capsys, argv, match):
    d, rows = world
    write_table([{"id": r["id"], "response": "x"} for r in rows], tmp_path / "r.jsonl")
    argv = [a.replace("{d}", str(d)).replace("{t}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    assert not (tmp_path / "o.jsonl").exists()
