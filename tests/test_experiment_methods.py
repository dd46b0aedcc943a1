"""`seam experiment filter --method grpo|rloo|bon` and the label arms (`oracle`, `skill-prior`): config
checks, the sign and cross-fitting of the label selections, the mapping of the PPO knobs, and an end to
end run on the tiny demo."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from seam.cli import main
from seam.errors import SeamError
from seam.experiment import FilterExperimentConfig, SweepConfig, build_arms
from seam.experiment.labels import label_keep_scores, label_selection, load_label
from seam.experiment.trainers import trainer_overrides
from seam.settings import load_config
from seam.train import BoNConfig, GRPOConfig, RLOOConfig

from test_experiment import PPO, shared_tiny_demo

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return shared_tiny_demo(tmp_path_factory)


def _label(ids, S, skills) -> pd.DataFrame:
    return pd.DataFrame({"id": [str(i) for i in ids], "S": np.asarray(S, dtype=float), "skill": list(skills)})


# --- configuration ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg, message", [
    (FilterExperimentConfig(method="dpo"), "--method must be one of ppo, grpo, rloo, bon"),
    (FilterExperimentConfig(arms=("full", "oracle")), "the oracle arm needs --label FILE"),
    (FilterExperimentConfig(arms=("full", "skill_prior@0.3")), "the skill-prior arm needs --label FILE"),
    (SweepConfig(methods=("oracle",)), "the oracle arm needs --label FILE"),
    (FilterExperimentConfig(trainer={"num_generations": 2}), "for --method grpo, rloo or bon"),
    (FilterExperimentConfig(method="grpo", trainer={"num_generationz": 2}), "unknown grpo setting 'num_generationz'"),
    (FilterExperimentConfig(method="rloo", trainer={"model": "x"}), "set by the experiment"),
])
def test_config_errors_are_one_line(cfg, message):
    with pytest.raises(SeamError, match=message) as e:
        cfg.validate()
    assert "\n" not in str(e.value)


def test_label_arms_parse_and_validate_with_a_label():
    cfg = FilterExperimentConfig(arms=("oracle", "full", "skill-prior"), method="GRPO", label="label.jsonl")
    cfg.validate()
    assert cfg.method == "grpo"
    assert [(a.name, a.method, a.p) for a in build_arms(cfg)] == [
        ("full", None, 0.0), ("oracle", "oracle", 0.2), ("skill-prior", "skill-prior", 0.2)]


def test_ppo_knobs_map_onto_each_trainer(tmp_path):
    ppo = {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 2e-5, "lora": True, "lora_r": 4,
           "response_length": 12, "kl_coef": 0.1, "num_ppo_epochs": 2, "num_mini_batches": 2}
    args = ("pm", "rm", "rl.jsonl", str(tmp_path / "run"), 7)
    for method, cls in (("grpo", GRPOConfig), ("rloo", RLOOConfig), ("bon", BoNConfig)):
        cfg = FilterExperimentConfig(method=method, ppo=ppo, device="cpu")
        cfg.validate()
        t = load_config(cls, overrides=trainer_overrides(cfg, *args))
        assert (t.model, t.reward_model_path, t.data, t.seed, t.device) == ("pm", "rm", "rl.jsonl", 7, "cpu")
        assert (t.max_steps, t.per_device_train_batch_size, t.learning_rate, t.lora, t.lora_r) == (3, 4, 2e-5, True, 4)
        assert t.max_completion_length == 12
        if method != "bon":
            assert (t.beta, t.num_iterations) == (0.1, 2)
            assert t.per_device_train_batch_size % t.num_generations == 0  # a group fits the batch
    grpo = FilterExperimentConfig(method="grpo", ppo=ppo, trainer={"num_generations": 2, "beta": 0.0})
    grpo.validate()
    t = load_config(GRPOConfig, overrides=trainer_overrides(grpo, *args))
    assert (t.num_generations, t.beta) == (2, 0.0)  # the method's own overrides win
    # PPO keeps its exact settings
    plain = FilterExperimentConfig(ppo=ppo)
    plain.validate()
    assert trainer_overrides(plain, *args)["sft_model_path"] == "pm"
    assert trainer_overrides(plain, *args)["num_mini_batches"] == 2


# --- label selections ---------------------------------------------------------------------------------

def test_oracle_drops_exactly_the_highest_S():
    rng = np.random.default_rng(0)
    ids = [f"i{k}" for k in range(20)]
    S = rng.normal(size=20)
    pool = pd.DataFrame({"id": ids, "prompt": ["p"] * 20})
    sel = label_selection(pool, _label(ids, S, ["a"] * 20), "oracle", 0.2, {})
    top = {ids[i] for i in np.argsort(-S)[:4]}
    assert set(sel.lineage["dropped_ids"]) == top and len(sel.kept) == 16
    assert not top & set(sel.kept["id"])
    assert sel.kept["id"].tolist() == [i for i in ids if i not in top]  # file order kept


def test_skill_prior_never_uses_an_instructions_own_label():
    ids = [f"i{k}" for k in range(30)]
    skills = ["bad"] * 6 + ["ok"] * 12 + ["fine"] * 12
    S = np.r_[np.ones(6), np.zeros(24)]
    label = _label(ids, S, skills)
    keep, info = label_keep_scores(pd.Series(ids), label, "skill-prior")
    assert info["folds"] == 5
    # raising one instruction's own S changes every score but its own
    for k in (0, 10, 25):
        bumped = label.copy()
        bumped.loc[k, "S"] = 100.0
        moved, _ = label_keep_scores(pd.Series(ids), bumped, "skill-prior")
        assert moved[k] == keep[k]
    # the skill with the highest mean S elsewhere is dropped first (keep = -prior)
    sel = label_selection(pd.DataFrame({"id": ids}), label, "skill-prior", 0.2, {})
    assert set(sel.lineage["dropped_ids"]) == set(ids[:6])
    # one "bad" instruction whose own S is huge but whose skill is harmless elsewhere is not singled out
    odd = label.copy()
    odd.loc[20, "S"] = 50.0
    own, _ = label_keep_scores(pd.Series(ids), odd, "skill-prior")
    assert own[20] > own[0]


def test_label_file_errors(tmp_path):
    bad = tmp_path / "l.jsonl"
    bad.write_text('{"id": "a", "S": 1.0}\n')
    with pytest.raises(SeamError, match="no skill column"):
        load_label(bad)
    with pytest.raises(SeamError, match="no label row"):
        label_keep_scores(pd.Series(["a", "b"]), _label(["a"], [1.0], ["x"]), "oracle")


# --- end to end -----------------------------------------------------------------------------------------

def _write_label(demo, path):
    rl = pd.read_json(demo / "data" / "rl.jsonl", lines=True, dtype={"id": str})
    S = np.linspace(-1, 1, len(rl))[np.random.default_rng(1).permutation(len(rl))]
    rows = [{"id": i, "S": float(s), "skill": f"k{n % 4}"} for n, (i, s) in enumerate(zip(rl["id"], S))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dict(zip(rl["id"], S))


def test_cli_label_arm_without_label_is_one_line(demo, tmp_path, capsys):
    assert main(["experiment", "filter", "--project", str(demo), "--arms", "full", "oracle",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--label" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("method", ["grpo", "bon"])
def test_filter_cli_with_another_trainer(demo, tmp_path, capsys, method):
    label = tmp_path / "label.jsonl"
    S = _write_label(demo, label)
    out = tmp_path / "exp"
    argv = ["experiment", "filter", "--project", str(demo), "--arms", "full", "oracle", "--label", str(label),
            "--method", method, "--num-generations", "2", "--seeds", "0", "1", "--n-eval", "4",
            "--max-new-tokens", "4", "--no-initial-eval", "--no-kl", *PPO, "--out", str(out)]
    assert main(argv) == 0
    assert "results:" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert res["complete"] and res["config"]["method"] == method and res["seeds"] == [0, 1]
    assert [a["arm"] for a in res["arms"]] == ["full", "oracle"]
    md = (out / "results.md").read_text()
    assert f"Trainer: `{method}`" in md and "| `oracle` |" in md and "| `full` |" in md
    for arm in ("full", "oracle"):
        for seed in (0, 1):
            man = json.loads((out / "runs" / arm / f"s{seed}" / "seam_run.json").read_text())
            assert man["kind"] == method
    dropped = json.loads((out / "selections" / "rl.oracle.jsonl.lineage.json").read_text())["dropped_ids"]
    pool = pd.read_json(out / "data" / "rl.pool.jsonl", lines=True, dtype={"id": str})["id"]
    ranked = sorted(pool, key=lambda i: -S[i])
    assert set(dropped) == set(ranked[: round(0.2 * len(pool))])
    if method == "bon":  # one shared first round per seed; each arm picked from it for its own prompts
        for seed in (0, 1):
            shared = pd.read_json(out / "shared" / f"bon-round0.s{seed}.jsonl", lines=True, dtype={"id": str})
            assert list(shared["id"]) == list(pool)
            by_id = dict(zip(shared["id"], shared["samples"]))
            for arm in ("full", "oracle"):
                picks = pd.read_json(out / "runs" / arm / f"s{seed}" / "rounds" / "round-0" / "picks.jsonl",
                                     lines=True, dtype={"id": str})
                assert all(c in by_id[i] for i, c in zip(picks["id"], picks["chosen"]))
                assert not set(picks["id"]) & (set(dropped) if arm == "oracle" else set())


def test_a_folder_of_another_method_is_not_resumed(tmp_path):
    from seam.experiment import ExperimentInputs
    from seam.experiment.runner import _Runner

    inputs = ExperimentInputs(rl=str(tmp_path / "rl.jsonl"), pm=str(tmp_path), rm=str(tmp_path))
    out = tmp_path / "exp"
    ppo = FilterExperimentConfig(arms=("full",))
    ppo.validate()
    _Runner(inputs, ppo, out, None)._prepare_out()
    assert "method" not in json.loads((out / "experiment.json").read_text())["config"]  # as recorded before
    grpo = FilterExperimentConfig(arms=("full",), method="grpo")
    grpo.validate()
    with pytest.raises(SeamError, match="config.method"):
        _Runner(inputs, grpo, out, None)._prepare_out()
