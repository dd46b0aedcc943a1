"""`train_grpo` / `train_rloo` (TRL 1.12's GRPOTrainer / RLOOTrainer) with the reward model as the reward
function: real steps on tiny models (CPU) change the policy, metrics reach metrics.jsonl, the reward
function scores with the RM's own tokenizer, and bad settings are one line before any model loads."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from seam.cli import main
from seam.data import write_table
from seam.errors import SeamError
from seam.settings import load_config
from seam.train import GRPOConfig, RLOOConfig, train_grpo, train_rloo

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROWS = [{"id": f"r{i}", "prompt": f"What is {i} plus {i}?", "chosen": f"{i} plus {i} is {2 * i}."} for i in range(8)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("grpo-data")
    write_table(ROWS, d / "rl.jsonl")
    write_table(ROWS[:2], d / "rl-eval.jsonl")
    return d / "rl.jsonl"


@pytest.fixture(scope="module")
def other_rm(tmp_path_factory):
    """A tiny RM with its own, smaller tokenizer (vocabulary 300, trained on other text)."""
    import torch
    from transformers import LlamaForSequenceClassification

    from seam.models.tiny import build_tokenizer, tiny_config

    tok = build_tokenizer(vocab_size=300, texts=["Question: what is the sum?\n\nAnswer: the sum is twelve."] * 8)
    cfg = tiny_config(tok, hidden=32, layers=1)
    cfg.num_labels = 1
    torch.manual_seed(7)
    model = LlamaForSequenceClassification(cfg)
    out = tmp_path_factory.mktemp("other-rm") / "rm"
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def _cfg(cls, tmp, name, pm, rm, data, **kw):
    base = dict(model=str(pm), reward_model_path=str(rm), data=str(data), output_dir=str(tmp / name), device="cpu",
                per_device_train_batch_size=4, num_generations=2, max_steps=2, max_completion_length=6,
                learning_rate=1e-3, report_to="none", disable_tqdm=True)
    return cls(**{**base, **kw})


def _check_run(res, kind, pm, got):
    assert res.kind == kind and res.steps == 2 and not res.adapter
    before, after = load_file(str(pm / "model.safetensors")), load_file(str(res.output_dir / "model.safetensors"))
    assert sum(not np.array_equal(before[k], after[k]) for k in before) > 0  # the policy moved
    train_steps = [s for s, m in got if "reward" in m]
    assert train_steps == [1, 2]
    for _, m in got:
        if "reward" in m:
            assert np.isfinite(m["rewards/reward_model/mean"]) and "completions/mean_length" in m
            assert m["rewards/reward_model/truncated"] == 0
    lines = [json.loads(x) for x in (res.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [s for s, _ in got]
    manifest = json.loads((res.output_dir / "seam_run.json").read_text())
    assert manifest["kind"] == kind and manifest["steps"] == 2 and manifest["rows"]["train"] == len(ROWS)
    assert manifest["reward_function"] == "reward_model" and "reward" in manifest["metrics"]
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (res.output_dir / name).is_file()
    assert not (res.output_dir / "training_args.bin").exists()
    assert not res.output_dir.with_name(res.output_dir.name + ".partial").exists()


def test_grpo_two_steps_update_the_policy(tiny_models, data, tmp_path):
    pm, rm = tiny_models
    got = []
    res = train_grpo(_cfg(GRPOConfig, tmp_path, "grpo", pm, rm, data, beta=0.1),
                     metrics_callback=lambda s, m: got.append((s, m)))
    _check_run(res, "grpo", pm, got)
    first = next(m for _, m in got if "reward" in m)
    assert first["kl"] == pytest.approx(0.0, abs=1e-6)  # the reference is the starting policy


def test_rloo_two_steps_with_an_rm_of_another_tokenizer(tiny_models, other_rm, data, tmp_path):
    pm, _ = tiny_models
    got = []
    res = train_rloo(_cfg(RLOOConfig, tmp_path, "rloo", pm, other_rm, data, eval_data=str(data.with_name("rl-eval.jsonl"))),
                     metrics_callback=lambda s, m: got.append((s, m)))
    _check_run(res, "rloo", pm, got)
    assert res.config["beta"] == 0.05 and "eval_reward" in res.metrics and res.rows["eval"] == 2


def test_reward_function_scores_like_reward_scorer_with_two_tokenizers(tiny_models, other_rm):
    from seam.models.loading import load_rm
    from seam.models.scoring import RewardScorer
    from seam.models.templates import get_template
    from seam.train import load_reward_function

    _, rm = tiny_models
    prompts = ["What is 2 plus 2?", "Name a colour.", "What is 2 plus 2?"]
    completions = ["Four.", "Blue, or perhaps red.", "It is 4"]
    tmpl = get_template("stackllama")
    seen = {}
    for name, path in (("same", rm), ("other", other_rm)):
        fn = load_reward_function(str(path), device="cpu")
        assert fn.__name__ == "reward_model"
        direct = RewardScorer(load_rm(path, device="cpu"), tmpl).score(prompts, completions)
        assert np.allclose(fn(prompts=prompts, completions=completions), direct, atol=1e-5)
        # through the dataset's row column: the raw prompts, not the rendered queries TRL passes as `prompts`
        indexed = load_reward_function(str(path), prompts=prompts, device="cpu")
        queries = ["Question: " + p + "\n\nAnswer: " for p in prompts]
        assert np.allclose(indexed(prompts=queries, completions=completions, seam_row=[0, 1, 2], completion_ids=None),
                           direct, atol=1e-5)
        seen[name] = fn.loaded.tokenizer
    assert len(seen["same"]) != len(seen["other"])
    text = "Question: What is 2 plus 2?\n\nAnswer: Four."
    assert seen["same"](text)["input_ids"] != seen["other"](text)["input_ids"]


def test_the_reward_function_refuses_an_untrained_head(tiny_models):
    from seam.train import load_reward_function

    pm, _ = tiny_models
    with pytest.raises(SeamError, match="not a trained reward model"):
        load_reward_function(str(pm), device="cpu")


def test_grpo_lora_saves_an_adapter(tiny_models, data, tmp_path):
    pm, rm = tiny_models
    res = train_grpo(_cfg(GRPOConfig, tmp_path, "grpo-lora", pm, rm, data, lora=True, lora_r=4, beta=0.1))
    assert res.adapter and (res.output_dir / "adapter_config.json").is_file()
    assert not (res.output_dir / "model.safetensors").exists()
    lora_b = [v for k, v in load_file(str(res.output_dir / "adapter_model.safetensors")).items() if "lora_B" in k]
    assert lora_b and any(np.abs(v).sum() > 0 for v in lora_b)  # B starts at zero: it moved


def test_a_merged_lora_policy_is_its_own_reference(tiny_models, data, tmp_path):
    """Full fine-tuning a LoRA run folder with beta > 0: the reference is base + adapter (KL 0 at step 1)."""
    from peft import LoraConfig, get_peft_model

    from seam.train.models import load_causal_lm

    pm, rm = tiny_models
    _, base = load_causal_lm(str(pm), "--model")
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft.save_pretrained(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(pm)
    got = []
    cfg = _cfg(GRPOConfig, tmp_path, "grpo", adapter, rm, data, beta=0.5, max_steps=1)
    train_grpo(cfg, metrics_callback=lambda s, m: got.append(m))
    assert got[0]["kl"] == pytest.approx(0.0, abs=1e-6)


def test_grpo_should_stop(tiny_models, data, tmp_path):
    pm, rm = tiny_models
    res = train_grpo(_cfg(GRPOConfig, tmp_path, "stop", pm, rm, data, max_steps=4), should_stop=lambda: True)
    assert res.stopped and res.steps == 1 and (res.output_dir / "model.safetensors").is_file()


# ----------------------------------------------------------------------------- settings and CLI


def test_fields_carry_trl_names_and_a_trl_yaml_loads(tmp_path):
    import trl

    from seam.train.grpo import _trl_fields

    for ours, theirs in ((GRPOConfig(), trl.GRPOConfig), (RLOOConfig(), trl.RLOOConfig)):
        names = {f.name for f in dataclasses.fields(theirs)}
        assert set(_trl_fields(ours)) <= names
        shared = {"learning_rate", "per_device_train_batch_size", "max_steps", "gradient_accumulation_steps", "seed"}
        assert shared <= names and shared <= {f.name for f in dataclasses.fields(ours)}
    y = tmp_path / "grpo.yaml"
    y.write_text("num_generations: 4\nmax_completion_length: 32\nbeta: 0.04\nper_device_train_batch_size: 8\n"
                 "max_steps: 10\nlearning_rate: 1.0e-6\ntemperature: 0.9\nloss_type: grpo\nscale_rewards: none\n")
    cfg = load_config(GRPOConfig, y, {"model": "m", "reward_model_path": "r", "data": "d", "output_dir": "o"})
    assert (cfg.num_generations, cfg.beta, cfg.loss_type, cfg.prompts_per_step) == (4, 0.04, "grpo", 2)
    y.write_text("model_name_or_path: m\n")
    with pytest.raises(SeamError, match="use model"):
        load_config(GRPOConfig, y, {"data": "d", "output_dir": "o"})
    rloo = load_config(RLOOConfig, None, {"model": "m", "reward_model_path": "r", "data": "d", "output_dir": "o",
                                         "reward_clip_range": "-3 3"})
    assert rloo.reward_clip_range == (-3.0, 3.0) and rloo.num_generations == 2


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_help_has_example(kind, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", kind, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "example:" in out and f"seam train {kind}" in out
    assert "--num-generations" in out and "--policy" in out and "--reward-model" in out and "--beta" in out


@pytest.mark.parametrize("kind, extra, match", [
    ("grpo", ["--num-generations", "1"], "num_generations must be at least 2"),
    ("rloo", ["--per-device-train-batch-size", "3"], "must be a multiple of num_generations"),
    ("grpo", ["--data", "{o}/missing.jsonl"], "missing.jsonl"),
    ("grpo", ["--data", "{few}"], "1 prompts but one GRPO step samples 2"),
    ("rloo", ["--temperature", "0"], "temperature must be > 0"),
    ("grpo", ["--loss-type", "ppo"], "loss_type must be one of"),
    ("rloo", ["--reward-clip-range", "3", "1"], "reward_clip_range must be two numbers"),
    ("grpo", ["--eval-data", "{d}", "--per-device-eval-batch-size", "3"], "per_device_eval_batch_size (3)"),
])
def test_cli_settings_errors_are_one_line_before_any_model(kind, extra, match, tmp_path, capsys, monkeypatch):
    import seam.train.grpo as grpo

    def no_model(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(grpo, "load_causal_lm", no_model)
    monkeypatch.setattr(grpo, "load_reward_function", no_model)
    write_table(ROWS, tmp_path / "d.jsonl")
    write_table(ROWS[:1], tmp_path / "few.jsonl")
    subs = {"{o}": str(tmp_path), "{d}": str(tmp_path / "d.jsonl"), "{few}": str(tmp_path / "few.jsonl")}
    argv = ["train", kind, "--policy", str(tmp_path / "pm"), "--reward-model", str(tmp_path / "rm"),
            "--data", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "run"), "--per-device-train-batch-size", "4",
            "--num-generations", "2", "--device", "cpu", "--quiet"]
    for a in extra:
        for k, v in subs.items():
            a = a.replace(k, v)
        argv.append(a)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


def test_cli_grpo_runs(tiny_models, data, tmp_path, capsys):
    pm, rm = tiny_models
    code = main(["train", "grpo", "--policy", str(pm), "--reward-model", str(rm), "--data", str(data),
                 "--out", str(tmp_path / "run"), "--max-steps", "1", "--per-device-train-batch-size", "2",
                 "--num-generations", "2", "--max-completion-length", "4", "--device", "cpu", "--report-to", "none",
                 "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "trained grpo: 1 steps on 8 rows" in out and "reward" in out
    assert (tmp_path / "run" / "metrics.jsonl").is_file()
