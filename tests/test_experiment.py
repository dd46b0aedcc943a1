"""`seam experiment` and `seam.experiment` on a tiny demo project: every arm runs PPO per seed, the
results table (JSON + Markdown) and figures (HTML + PNG) are written, re-runs resume, a stop request
stops, and bad input is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from seam.cli import main
from seam.errors import SeamError
from seam.experiment import (EvalSettings, ExperimentHooks, ExperimentStopped, FilterExperimentConfig, SweepConfig,
                             build_arms, demo_heldout, parse_arm, project_inputs, run_filter_experiment, run_sweep)

PPO = ["--ppo-steps", "1", "--ppo-batch-size", "2", "--ppo-epochs", "1", "--response-length", "4", "--lora",
       "--lora-r", "2", "--device", "cpu"]
TINY_PPO = {"max_steps": 1, "per_device_train_batch_size": 2, "num_ppo_epochs": 1, "response_length": 4, "lora": True,
            "lora_r": 2}
TINY_EVAL = EvalSettings(n_prompts=6, max_new_tokens=4)


def shared_tiny_demo(tmp_path_factory) -> Path:
    """One tiny demo per test session (tests/test_jobs_runs.py reuses it through the same base temp)."""
    root = tmp_path_factory.getbasetemp() / "shared-tiny-demo"
    if not (root / ".built").is_file():
        assert main(["demo", "--world", "v1", "--tiny", "--no-serve", "--dir", str(root)]) == 0
        (root / ".built").write_text("ok")
    return root


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return shared_tiny_demo(tmp_path_factory)


# --- configuration, arms, held-out prompts (no training) ------------------------------------------

def test_arms_parse_and_put_the_reference_first():
    arms = build_arms(FilterExperimentConfig(arms=("seam:llm", "random", "full", "reward_gap", "seam@0.5")))
    assert [a.name for a in arms] == ["full", "seam:llm", "random", "reward-gap", "seam@0.5"]
    full, seam_llm, rnd, gap, seam_half = arms
    assert full.method is None and full.p == 0.0
    assert seam_llm.variants == ("llm",) and seam_llm.p == 0.2
    assert rnd.seeded and not seam_llm.seeded
    assert seam_half.p == 0.5 and seam_half.slug == "seam-p0.5"
    assert [a.name for a in build_arms(SweepConfig(rates=(0.1, 0.8), methods=("seam", "random")))] == [
        "full", "seam@0.1", "seam@0.8", "random@0.1", "random@0.8"]
    assert parse_arm("original", "augment", 0.2, ()).method is None


@pytest.mark.parametrize("cfg, message", [
    (FilterExperimentConfig(arms=("bogus",)), "unknown filter arm"),
    (FilterExperimentConfig(arms=("random:llm",)), "only the seam arm takes variants"),
    (FilterExperimentConfig(arms=("seam", "seam")), "given twice"),
    (FilterExperimentConfig(arms=("seam@1.5",)), "fraction"),
    (FilterExperimentConfig(seeds=()), "at least one seed"),
    (FilterExperimentConfig(seeds=(1, 1)), "repeated"),
    (FilterExperimentConfig(p=2.0), "fraction"),
    (FilterExperimentConfig(ppo={"stepz": 3}), "unknown ppo setting 'stepz'"),
    (FilterExperimentConfig(ppo={"output_dir": "x"}), "set by the experiment"),
    (FilterExperimentConfig(eval=EvalSettings(judges=("llm",))), "gold and/or rm"),
    (SweepConfig(methods=("full",)), "--methods 'full'"),
])
def test_config_errors_name_the_setting(cfg, message):
    with pytest.raises(SeamError, match=message):
        cfg.validate()
        build_arms(cfg)


def test_demo_heldout_prompts_are_unused_world_tasks(demo, tmp_path):
    rl = pd.read_json(demo / "data" / "rl.jsonl", lines=True)
    held = demo_heldout(demo, 10)
    assert len(held) == 10 and not set(held["id"]) & set(rl["id"])
    assert all({"category", "answer", "params"} <= set(m) for m in held["meta"])
    assert demo_heldout(demo, 10)["id"].tolist() == held["id"].tolist()  # deterministic
    assert demo_heldout(tmp_path, 10) is None  # not a demo folder


# --- end to end -----------------------------------------------------------------------------------

def test_filter_cli_runs_every_arm_and_seed_and_resumes(demo, tmp_path, capsys):
    out = tmp_path / "exp"
    argv = ["experiment", "filter", "--project", str(demo), "--arms", "full", "seam", "random", "perplexity",
            "--seeds", "0", "1", "--n-eval", "6", "--max-new-tokens", "4", *PPO, "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "results:" in printed and "perplexity" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["complete"] and res["reference"] == "full" and res["seeds"] == [0, 1]
    assert [a["arm"] for a in res["arms"]] == ["full", "seam", "random", "perplexity"]
    assert len(res["per_seed"]) == 8
    for arm in ("full", "seam", "random", "perplexity"):
        for seed in (0, 1):
            run = out / "runs" / arm / f"s{seed}"
            assert json.loads((run / "seam_run.json").read_text())["steps"] == 1
            rows = pd.read_json(out / "evals" / f"{arm}.s{seed}.jsonl", lines=True)
            assert len(rows) == 6 and {"score_gold", "score_rm", "kl", "response"} <= set(rows.columns)
    by_arm = {a["arm"]: a for a in res["arms"]}
    n_rl = by_arm["full"]["n_train"]
    assert n_rl == 40 and all(by_arm[a]["n_train"] == 32 for a in ("seam", "random", "perplexity"))
    # every arm against full, and every arm but random against random too
    assert {(c["arm"], c["reference"]) for c in res["comparisons"] if c["score"] == "gold"} == {
        ("seam", "full"), ("random", "full"), ("perplexity", "full"), ("seam", "random"), ("perplexity", "random")}
    for c in res["comparisons"]:
        assert c["n_seeds"] == 2 and c["seed_test"] is not None and 0 <= c["win_rate"]["rate"] <= 1
        assert c["mde"]["prompts"] >= 0 and c["mde"]["seeds"] >= 0 and c["seed_sd"] >= 0
    seam_row = by_arm["seam"]
    assert seam_row["gold_diff_seed_ci_low"] <= seam_row["gold_diff"] <= seam_row["gold_diff_seed_ci_high"]
    vs_random = next(c for c in res["comparisons"] if (c["arm"], c["reference"], c["score"]) == ("seam", "random", "gold"))
    assert seam_row["gold_vs_random_diff"] == vs_random["diff"]["estimate"]
    assert seam_row["gold_vs_random_p_seeds"] == vs_random["seed_test"]["p_value"]
    assert "gold_vs_random_diff" not in by_arm["random"] and "gold_vs_random_diff" not in by_arm["full"]
    assert res["initial"]["gold"]["n"] == 6
    # the seam arm dropped the 8 lowest SEAM instructions (rank average over the variants)
    lineage = json.loads((out / "selections" / "rl.seam.jsonl.lineage.json").read_text())
    scores = pd.read_json(demo / "results" / "seam.jsonl", lines=True)
    rl_ids = pd.read_json(demo / "data" / "rl.jsonl", lines=True)["id"]
    ranks = scores.pivot(index="id", columns="variant", values="seam").reindex(rl_ids).fillna(0.0).rank().mean(axis=1)
    dropped = set(lineage["dropped_ids"])
    assert len(dropped) == 8 and ranks[list(dropped)].max() <= ranks.drop(list(dropped)).min()
    r0 = json.loads((out / "selections" / "rl.random.s0.jsonl.lineage.json").read_text())["dropped_ids"]
    r1 = json.loads((out / "selections" / "rl.random.s1.jsonl.lineage.json").read_text())["dropped_ids"]
    assert r0 != r1  # random removal is redrawn per seed
    md = (out / "results.md").read_text()
    assert "| `seam` | 32 |" in md and "starting policy" in md and "Per seed:" in md
    assert "Seed-level comparisons (2 seeds" in md and "Δ vs `random` (seed 95% CI)" in md
    assert f"MDE is {seam_row['gold_mde_seeds']:.3f}" in md or "MDE is " in md and " to " in md
    assert f"would be {0.045 * by_arm['full']['gold']:+.3f} gold here" in md
    for name in ("arms", "curves"):
        assert (out / "figures" / f"{name}.html").read_text().count("plotly") > 0
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a re-run resumes: nothing is trained again, the table is the same
    stamp = (out / "runs" / "seam" / "s1" / "seam_run.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "runs" / "seam" / "s1" / "seam_run.json").stat().st_mtime_ns == stamp
    again = json.loads((out / "results.json").read_text())
    assert [a["gold"] for a in again["arms"]] == [a["gold"] for a in res["arms"]]
    # more seeds in the same folder: the finished ones are reused, only the new seed trains
    capsys.readouterr()
    more = [*argv[:argv.index("--seeds")], "--seeds", "0", "1", "2", *argv[argv.index("--seeds") + 3:]]
    assert main(more) == 0
    said = capsys.readouterr()
    assert "finished seeds are reused" in said.out + said.err
    assert (out / "runs" / "seam" / "s1" / "seam_run.json").stat().st_mtime_ns == stamp
    assert (out / "runs" / "seam" / "s2" / "seam_run.json").is_file()
    grown = json.loads((out / "results.json").read_text())
    assert grown["seeds"] == [0, 1, 2] and len(grown["per_seed"]) == 12
    assert json.loads((out / "experiment.json").read_text())["config"]["seeds"] == [0, 1, 2]
    # another experiment in the same folder is refused
    capsys.readouterr()
    assert main([*argv[:-2], "--p", "0.3", "--out", str(out)]) == 2
    assert "holds a different experiment" in capsys.readouterr().err


def test_sweep_writes_the_rate_figure(demo, tmp_path):
    cfg = SweepConfig(rates=(0.25, 0.5), seeds=(0,), ppo=TINY_PPO, eval=TINY_EVAL, device="cpu", eval_initial=False)
    res = run_sweep(project_inputs(demo), cfg, tmp_path / "sweep")
    assert [a["arm"] for a in res.arms] == ["full", "seam@0.25", "seam@0.5"]
    assert [a["n_train"] for a in res.arms] == [40, 30, 20]
    assert res.files["fig_sweep_png"].read_bytes()[:4] == b"\x89PNG"
    assert res.files["fig_sweep_html"].is_file()
    assert res.table()["p"].tolist() == [0.0, 0.25, 0.5]


def test_stop_request_stops_and_a_rerun_resumes(demo, tmp_path):
    inputs = project_inputs(demo)
    cfg = FilterExperimentConfig(arms=("full", "seam"), ppo={**TINY_PPO, "max_steps": 3}, eval=TINY_EVAL, device="cpu",
                                 eval_initial=False)
    seen, ends = [], []
    hooks = ExperimentHooks(metrics=lambda unit, step, m: seen.append((unit.key, step)),
                            on_end=lambda r: ends.append(r.unit.key),
                            should_stop=lambda: any(k == "ppo/seam/s0" for k, _ in seen))
    with pytest.raises(ExperimentStopped):
        run_filter_experiment(inputs, cfg, tmp_path / "x", hooks)
    assert [s for k, s in seen if k == "ppo/seam/s0"] == [1]  # stopped after its first PPO update
    assert "ppo/full/s0" in ends and "ppo/seam/s0" not in ends
    assert not (tmp_path / "x" / "runs" / "seam" / "s0").exists()  # the stopped run is not kept as finished
    assert not json.loads((tmp_path / "x" / "results.json").read_text())["complete"]
    ends.clear()
    res = run_filter_experiment(inputs, cfg, tmp_path / "x", ExperimentHooks(on_end=lambda r: ends.append(r)))
    cached = {r.unit.key: r.cached for r in ends if r.unit.phase == "ppo"}
    assert cached == {"ppo/full/s0": True, "ppo/seam/s0": False}
    assert [a["arm"] for a in res.arms] == ["full", "seam"]


def test_augment_cli_retrains_each_arm(demo, tmp_path):
    out = tmp_path / "aug"
    assert main(["experiment", "augment", "--project", str(demo), "--arms", "original", "seam", "--seeds", "0",
                 "--sft-steps", "1", "--rm-steps", "1", "--k", "2", "--n-eval", "4", "--max-new-tokens", "4",
                 "--no-initial-eval", *PPO, "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert [a["arm"] for a in res["arms"]] == ["original", "seam"]
    assert all(a.get("rm_test_accuracy") is not None for a in res["arms"])
    for arm in ("original", "seam"):
        for phase in ("sft", "rm"):
            assert json.loads((out / "train" / arm / phase / "seam_run.json").read_text())["kind"] == phase
    sft = pd.read_json(out / "selections" / "sft.seam.jsonl", lines=True)
    base = pd.read_json(demo / "data" / "sft.jsonl", lines=True)
    assert len(sft) > len(base) and sft["id"].iloc[: len(base)].tolist() == base["id"].tolist()
    ppo = json.loads((out / "runs" / "seam" / "s0" / "seam_run.json").read_text())
    assert ppo["base_model"] == str(out / "train" / "seam" / "sft")


@pytest.mark.parametrize("args, message", [
    (["filter", "--rl", "x.jsonl"], "give --project DIR"),
    (["filter", "--project", "/nonexistent/folder"], "not a folder"),
    (["filter", "--project", "{demo}", "--arms", "bogus"], "unknown filter arm"),
    (["filter", "--project", "{demo}", "--ppo-config", "{cfg}"], "unknown key 'stepz'"),
    (["filter", "--project", "{demo}", "--seeds", "0", "0"], "repeated"),
    (["augment", "--project", "{demo}", "--arms", "perplexity"], "unknown augment arm"),
    (["sweep", "--project", "{demo}", "--rates", "0.1", "1.2"], "--rates"),
    (["filter", "--project", "{demo}", "--out", "{busy}"], "not empty"),
])
def test_cli_errors_are_one_line(demo, tmp_path, capsys, args, message):
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text("stepz: 3\n")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something.txt").write_text("x")
    argv = [a.format(demo=demo, cfg=cfg, busy=busy) for a in args]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "o")]
    assert main(["experiment", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
