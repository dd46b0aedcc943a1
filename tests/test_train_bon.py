"""`train_bon`: best-of-n rejection sampling + SFT on the reward model's picks, on tiny models (CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from seam.cli import main
from seam.data import read_table, write_table
from seam.models.loading import load_rm
from seam.models.scoring import RewardScorer
from seam.models.templates import get_template
from seam.train import BoNConfig, train_bon

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROWS = [{"id": f"r{i}", "prompt": f"What is {i} plus {i}?", "chosen": f"{i} plus {i} is {2 * i}."} for i in range(6)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("bon-data")
    write_table(ROWS, d / "rl.jsonl")
    return d / "rl.jsonl"


def _cfg(tmp, pm, rm, data, **kw):
    base = dict(model=str(pm), reward_model_path=str(rm), data=str(data), output_dir=str(tmp / "bon"), device="cpu",
                num_generations=3, rounds=2, max_completion_length=6, per_device_train_batch_size=4, max_steps=2,
                learning_rate=1e-3, report_to="none", disable_tqdm=True, warmup_steps=0)
    return BoNConfig(**{**base, **kw})


def test_best_of_n_rounds_pick_the_rm_best_and_update_the_policy(tiny_models, data, tmp_path):
    pm, rm = tiny_models
    got = []
    res = train_bon(_cfg(tmp_path, pm, rm, data), metrics_callback=lambda s, m: got.append((s, m)))
    out = res.output_dir
    assert res.kind == "bon" and [s for s, _ in got] == [1, 2] and res.steps == 4
    before, after = load_file(str(pm / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert sum(not np.array_equal(before[k], after[k]) for k in before) > 0
    scorer = RewardScorer(load_rm(str(rm), device="cpu"), get_template("stackllama"))
    for r, (_, m) in enumerate(got):
        picks = read_table(out / "rounds" / f"round-{r}" / "picks.jsonl")
        assert len(picks) == len(ROWS)
        rescored = np.asarray(scorer.score(picks["prompt"].tolist(), picks["chosen"].tolist()))
        assert np.allclose(rescored, [x["reward"] for x in picks["meta"]], atol=1e-4)  # the RM's own scores
        assert all(x["reward"] >= x["mean_reward"] - 1e-6 for x in picks["meta"])  # the best of its group
        assert m["bon/pick_reward_mean"] >= m["bon/sample_reward_mean"]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    assert json.loads((out / "seam_run.json").read_text())["kind"] == "bon"
    assert (out / "tokenizer.json").is_file() and not out.with_name("bon.partial").exists()


def test_best_of_n_with_lora_ends_with_a_plain_model(tiny_models, data, tmp_path):
    pm, rm = tiny_models
    res = train_bon(_cfg(tmp_path, pm, rm, data, rounds=1, lora=True, lora_r=4, lora_alpha=8))
    assert not res.adapter and (res.output_dir / "model.safetensors").is_file()
    assert (res.output_dir / "rounds" / "round-0" / "sft" / "adapter_config.json").is_file()


@pytest.mark.parametrize("flags, msg", [
    (["--num-generations", "1"], "num_generations must be >= 2"),
    (["--rounds", "0"], "rounds"),
    (["--temperature", "0"], "temperature must be > 0"),
])
def test_best_of_n_settings_fail_in_one_line(tiny_models, data, tmp_path, capsys, flags, msg):
    pm, rm = tiny_models
    argv = ["train", "bon", "--policy", str(pm), "--reward-model", str(rm), "--data", str(data),
            "--out", str(tmp_path / "x"), "--device", "cpu", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and not (tmp_path / "x").exists()


def test_best_of_n_cli_runs(tiny_models, data, tmp_path, capsys):
    pm, rm = tiny_models
    assert main(["train", "bon", "--policy", str(pm), "--reward-model", str(rm), "--data", str(data), "--out",
                 str(tmp_path / "cli"), "--device", "cpu", "--num-generations", "2", "--max-steps", "1",
                 "--max-completion-length", "4", "--report-to", "none", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "trained bon" in out and "bon/pick_reward_mean" in out


def test_best_of_n_never_picks_an_empty_completion(tiny_models, data, tmp_path, monkeypatch):
    """Empty completions are no pick; a prompt whose samples are all empty is skipped (and counted)."""
    import seam.train.bon as bon

    real = bon.generate

    def some_empty(loaded, prompts, *a, **kw):
        out = real(loaded, prompts, *a, **kw)
        return ["" if i < 3 or i % 3 == 0 else t for i, t in enumerate(out)]  # prompt 0: all 3 samples empty

    monkeypatch.setattr(bon, "generate", some_empty)
    res = train_bon(_cfg(tmp_path, *tiny_models, data, rounds=1))
    picks = read_table(res.output_dir / "rounds" / "round-0" / "picks.jsonl")
    assert "r0" not in set(picks["id"]) and len(picks) == len(ROWS) - 1
    assert all(t.strip() for t in picks["chosen"])
    assert res.metrics["bon/prompts_skipped"] == 1


def test_a_stored_first_round_is_reused_for_a_subset_of_the_prompts(tiny_models, data, tmp_path):
    """Round 0 from a samples file (the experiment's shared round): a run on a subset of the prompts picks
    exactly what a run on all of them picked for those prompts, and needs no generation."""
    import seam.train.bon as bon

    pm, rm = tiny_models
    full = train_bon(_cfg(tmp_path, pm, rm, data, rounds=1, output_dir=str(tmp_path / "full")))
    stored = full.output_dir / "rounds" / "round-0" / "samples.jsonl"
    rows = read_table(stored)
    assert len(rows) == len(ROWS) and all(len(s) == 3 == len(r) for s, r in zip(rows["samples"], rows["rewards"]))
    subset = tmp_path / "subset.jsonl"
    write_table(ROWS[1:4], subset)

    def no_generation(*a, **kw):
        raise AssertionError("round 0 must come from the stored samples")

    mp = pytest.MonkeyPatch()
    mp.setattr(bon, "generate", no_generation)
    try:
        sub = train_bon(_cfg(tmp_path, pm, rm, subset, rounds=1, output_dir=str(tmp_path / "sub"),
                             first_round_samples=str(stored)))
    finally:
        mp.undo()
    want = read_table(full.output_dir / "rounds" / "round-0" / "picks.jsonl").set_index("id")
    got = read_table(sub.output_dir / "rounds" / "round-0" / "picks.jsonl")
    assert list(got["id"]) == ["r1", "r2", "r3"]
    assert [want.loc[i, "chosen"] for i in got["id"]] == list(got["chosen"])


@pytest.mark.parametrize("edit, msg", [
    (lambda rows: rows[1:], "no samples for prompt id 'r0'"),
    (lambda rows: [{**r, "samples": r["samples"][:2], "rewards": r["rewards"][:2]} for r in rows], "not 3 samples"),
    (lambda rows: [{**r, "prompt": "other"} for r in rows], "another prompt"),
])
def test_a_stored_first_round_that_does_not_fit_fails_before_writing(tiny_models, data, tmp_path, capsys, edit, msg):
    pm, rm = tiny_models
    rows = [{"id": r["id"], "prompt": r["prompt"], "samples": ["a", "b", "c"], "rewards": [0.0, 1.0, 2.0]} for r in ROWS]
    write_table(edit(rows), tmp_path / "samples.jsonl")
    argv = ["train", "bon", "--policy", str(pm), "--reward-model", str(rm), "--data", str(data), "--out",
            str(tmp_path / "x"), "--device", "cpu", "--num-generations", "3", "--first-round-samples",
            str(tmp_path / "samples.jsonl")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and not (tmp_path / "x").exists()
