"""Real TRL SFT, RM and PPO steps on tiny models (CPU): weights change, metrics reach the callback,
run folders are complete and loadable by the rest of seam."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from seam.data import write_table
from seam.errors import SeamError
from seam.train import PPOConfig, RMConfig, SFTConfig, merge_adapter, train_ppo, train_rm, train_sft

ROWS = [{"id": f"r{i}", "prompt": f"What is {i} plus {i}?", "chosen": f"{i} plus {i} is {2 * i}.",
         "rejected": f"I think it is {i + 1}."} for i in range(8)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("train-data")
    write_table(ROWS, d / "pairs.jsonl")
    return d / "pairs.jsonl"


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def _changed(before: dict, after: dict) -> int:
    assert set(before) == set(after)
    return sum(not np.array_equal(before[k], after[k]) for k in before)


def _common(tmp, name, **kw):
    base = dict(output_dir=str(tmp / name), device="cpu", per_device_train_batch_size=4, max_steps=2, logging_steps=1,
                warmup_steps=0, learning_rate=1e-3, report_to="none", disable_tqdm=True)
    base.update(kw, data=str(kw["data"]))
    return base


@pytest.fixture(scope="module")
def sft_run(tiny_models, data, tmp_path_factory):
    pm, _ = tiny_models
    got = []
    res = train_sft(SFTConfig(model=str(pm), **_common(tmp_path_factory.mktemp("sft"), "run", data=data)),
                    metrics_callback=lambda step, m: got.append((step, m)))
    return res, got


@pytest.fixture(scope="module")
def rm_run(tiny_models, data, tmp_path_factory):
    pm, _ = tiny_models
    got = []
    res = train_rm(RMConfig(model=str(pm), eval_data=str(data), **_common(tmp_path_factory.mktemp("rm"), "run", data=data)),
                   metrics_callback=lambda step, m: got.append((step, m)))
    return res, got


def test_sft_changes_weights_and_reports_metrics(sft_run, tiny_models):
    res, got = sft_run
    pm, _ = tiny_models
    assert res.kind == "sft" and res.steps == 2 and not res.adapter
    assert _changed(_weights(pm), _weights(res.output_dir)) > 0
    steps = [s for s, m in got if "loss" in m]
    assert steps[:2] == [1, 2]
    assert all(np.isfinite(m["loss"]) for s, m in got if "loss" in m)
    lines = [json.loads(x) for x in (res.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [s for s, _ in got]
    manifest = json.loads((res.output_dir / "seam_run.json").read_text())
    assert manifest["kind"] == "sft" and manifest["steps"] == 2 and manifest["rows"]["train"] == len(ROWS)
    assert manifest["config"]["seed"] == 0 and "loss" in manifest["metrics"]
    for name in ("tokenizer.json", "config.json", "model.safetensors"):
        assert (res.output_dir / name).is_file()
    assert not (res.output_dir / "training_args.bin").exists()  # no pickles in a finished run
    assert not res.output_dir.with_name(res.output_dir.name + ".partial").exists()


def test_sft_output_loads_as_policy(sft_run):
    from seam.models.loading import load_pm

    res, _ = sft_run
    loaded = load_pm(res.output_dir, device="cpu")
    assert loaded.tokenizer.eos_token_id is not None


def test_sft_completion_only_labels_match_scored_tokens(tiny_models):
    """The SFT loss covers exactly the tokens `seam score` scores (response + EOS)."""
    from seam.models.loading import load_pm
    from seam.models.scoring import Encoder
    from seam.models.templates import get_template
    from seam.train.data import sft_dataset
    import pandas as pd

    pm, _ = tiny_models
    loaded = load_pm(pm, device="cpu")
    tmpl = get_template("stackllama")
    df = pd.DataFrame(ROWS)
    built = sft_dataset(df, loaded.tokenizer, tmpl, loaded.model, 512)
    enc = Encoder(loaded.tokenizer, tmpl, 512, append_eos=True).encode(df["prompt"].tolist(), df["chosen"].tolist())
    for row, e in zip(built.dataset, enc):
        labels = np.asarray(row["labels"])
        assert row["input_ids"] == e.ids
        assert np.flatnonzero(labels != -100).tolist() == e.scored.tolist()
        assert labels[-1] == loaded.tokenizer.eos_token_id


def test_rm_trains_pairwise_and_evaluates(rm_run, tiny_models):
    from seam.models.loading import load_rm

    res, got = rm_run
    pm, _ = tiny_models
    assert res.kind == "rm" and res.steps == 2
    assert any("accuracy" in m and "margin" in m for _, m in got)
    assert "eval_accuracy" in res.metrics and 0.0 <= res.metrics["eval_accuracy"] <= 1.0
    after = _weights(res.output_dir)
    assert "score.weight" in after and after["score.weight"].shape[0] == 1
    base = _weights(pm)
    shared = [k for k in after if k.startswith("model.")]
    assert sum(not np.array_equal(base[k], after[k]) for k in shared) > 0
    manifest = json.loads((res.output_dir / "seam_run.json").read_text())
    assert manifest["fresh_score_head"] is True
    load_rm(res.output_dir, device="cpu")  # loads as a 1-label classifier


def test_rm_is_seeded(tiny_models, data, tmp_path):
    pm, _ = tiny_models
    a = train_rm(RMConfig(model=str(pm), **_common(tmp_path, "a", data=data, max_rows=4)))
    b = train_rm(RMConfig(model=str(pm), **_common(tmp_path, "b", data=data, max_rows=4)))
    wa, wb = _weights(a.output_dir), _weights(b.output_dir)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_rm_needs_rejected(tiny_models, tmp_path):
    pm, _ = tiny_models
    write_table([{"id": "a", "prompt": "p", "chosen": "c"}], tmp_path / "x.jsonl")
    with pytest.raises(SeamError, match="rejected"):
        train_rm(RMConfig(model=str(pm), **_common(tmp_path, "out", data=tmp_path / "x.jsonl")))
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_ppo_full_changes_policy(tiny_models, rm_run, data, tmp_path):
    pm, _ = tiny_models
    rm = rm_run[0].output_dir
    got = []
    cfg = PPOConfig(sft_model_path=str(pm), reward_model_path=str(rm), num_ppo_epochs=1, response_length=6,
                    **_common(tmp_path, "ppo", data=data, per_device_train_batch_size=2, max_steps=2))
    res = train_ppo(cfg, metrics_callback=lambda s, m: got.append((s, m)))
    assert res.kind == "ppo" and res.steps == 2
    assert [s for s, _ in got] == [1, 2]
    for _, m in got:
        for key in ("objective/scores", "objective/kl", "loss/policy_avg", "loss/value_avg"):
            assert key in m
    assert _changed(_weights(pm), _weights(res.output_dir)) > 0
    manifest = json.loads((res.output_dir / "seam_run.json").read_text())
    assert manifest["reward_model"] == str(rm) and manifest["config"]["kl_coef"] == 0.05


def test_ppo_lora_then_merge(tiny_models, rm_run, data, tmp_path):
    from seam.models.loading import load_pm

    pm, _ = tiny_models
    rm = rm_run[0].output_dir
    cfg = PPOConfig(sft_model_path=str(pm), reward_model_path=str(rm), num_ppo_epochs=1, response_length=4, lora=True,
                    lora_r=4, **_common(tmp_path, "ppo-lora", data=data, per_device_train_batch_size=2, max_steps=1))
    res = train_ppo(cfg)
    assert res.adapter and (res.output_dir / "adapter_model.safetensors").is_file()
    lora_b = [v for k, v in load_file(str(res.output_dir / "adapter_model.safetensors")).items() if "lora_B" in k]
    assert lora_b and any(np.abs(v).sum() > 0 for v in lora_b)  # B starts at zero: it moved
    merged = merge_adapter(res.output_dir, tmp_path / "merged")
    assert _changed(_weights(pm), _weights(merged)) > 0
    assert json.loads((merged / "seam_run.json").read_text())["role"] == "pm"
    load_pm(merged, device="cpu")
    with pytest.raises(SeamError, match="already exists"):
        merge_adapter(res.output_dir, tmp_path / "merged")


def test_ppo_rejects_untrained_reward_model(tiny_models, data, tmp_path):
    pm, _ = tiny_models
    cfg = PPOConfig(sft_model_path=str(pm), reward_model_path=str(pm),
                    **_common(tmp_path, "x", data=data, per_device_train_batch_size=2, max_steps=1))
    with pytest.raises(SeamError, match="not a trained reward model"):
        train_ppo(cfg)


def test_should_stop_ends_sft_early(tiny_models, data, tmp_path):
    pm, _ = tiny_models
    res = train_sft(SFTConfig(model=str(pm), **_common(tmp_path, "s", data=data, max_steps=5)),
                    should_stop=lambda: True)
    assert res.stopped and res.steps == 1 and (res.output_dir / "model.safetensors").is_file()


def test_sft_lora_and_chained_runs(tiny_models, data, tmp_path):
    """A LoRA run folder is accepted wherever a model is expected (base + adapter merged in memory)."""
    pm, _ = tiny_models
    sft = train_sft(SFTConfig(model=str(pm), lora=True, lora_r=4, **_common(tmp_path, "sft-lora", data=data)))
    assert sft.adapter and (sft.output_dir / "adapter_config.json").is_file()
    from seam.train.models import load_causal_lm, load_classifier

    _, merged = load_causal_lm(str(sft.output_dir), "--model")
    _, clf, fresh = load_classifier(str(sft.output_dir), "--model")
    assert fresh
    base = _weights(pm)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not np.array_equal(base[q], merged.state_dict()[q].numpy())  # the adapter was applied ...
    assert np.array_equal(merged.state_dict()[q].numpy(), clf.state_dict()[q].numpy())  # ... also inside the RM
    rm = train_rm(RMConfig(model=str(sft.output_dir), **_common(tmp_path, "rm-from-lora", data=data, max_steps=1)))
    assert (rm.output_dir / "model.safetensors").is_file()
    # PPO with LoRA on top of the LoRA SFT run, stopped after its first update, then merged through both adapters
    ppo = train_ppo(PPOConfig(sft_model_path=str(sft.output_dir), reward_model_path=str(rm.output_dir), num_ppo_epochs=1,
                              response_length=4, lora=True, lora_r=2,
                              **_common(tmp_path, "ppo", data=data, per_device_train_batch_size=2, max_steps=3)),
                    should_stop=lambda: True)
    assert ppo.stopped and ppo.steps == 1 and ppo.adapter
    out = merge_adapter(ppo.output_dir, tmp_path / "ppo-merged")
    _, in_memory = load_causal_lm(str(ppo.output_dir), "--model")
    merged_w = _weights(out)
    assert all(np.allclose(merged_w[k], v.numpy(), atol=1e-6) for k, v in in_memory.state_dict().items())
    assert not np.array_equal(merged_w[q], merged.state_dict()[q].numpy())  # the PPO adapter moved it further


def test_rm_lora_saves_the_score_head_and_merges(tiny_models, data, tmp_path):
    from seam.models.loading import load_rm
    from seam.models.scoring import RewardScorer
    from seam.models.templates import get_template

    pm, _ = tiny_models
    res = train_rm(RMConfig(model=str(pm), lora=True, lora_r=4, **_common(tmp_path, "rm-lora", data=data)))
    assert any("score" in k for k in load_file(str(res.output_dir / "adapter_model.safetensors")))
    merged = merge_adapter(res.output_dir, tmp_path / "rm-merged")
    assert json.loads((merged / "seam_run.json").read_text())["role"] == "rm"
    tmpl = get_template("stackllama")
    a = RewardScorer(load_rm(merged, device="cpu"), tmpl).score(["Hi?"], ["Hello."])
    b = RewardScorer(load_rm(pm, res.output_dir, device="cpu"), tmpl).score(["Hi?"], ["Hello."])
    assert np.allclose(a, b, atol=1e-5)
