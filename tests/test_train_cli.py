"""Config loading (YAML + CLI overrides), `seam train ...` commands, --help examples, bad input."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys

import pytest

from seam.cli import main
from seam.data import write_table
from seam.errors import SeamError
from seam.settings import load_config
from seam.train.common import resolve_report_to, tensorboard_available, wandb_available
from seam.train.config import PPOConfig, RMConfig, SFTConfig

ROWS = [{"id": f"r{i}", "prompt": f"Spell {w}.", "chosen": f"{w} is spelled {' '.join(w)}.", "rejected": f"{w}!"}
        for i, w in enumerate(["cat", "dog", "fox", "owl", "bee", "elk"])]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture
def deprecations():
    """The warning lines `seam.settings` logs (the deprecation lines), caught at that logger."""
    lines: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("seam.settings")
    handler = Catch(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


# ----------------------------------------------------------------------------- configs


def test_yaml_then_overrides(tmp_path):
    y = tmp_path / "sft.yaml"
    y.write_text("model: m\ndata: d.jsonl\noutput_dir: out\nlearning_rate: 3e-4\nlora: true\nmax_steps: 7\n")
    cfg = load_config(SFTConfig, y, {"learning_rate": "5e-5", "per_device_train_batch_size": None, "lora_r": "4"})
    assert (cfg.learning_rate, cfg.lora, cfg.max_steps, cfg.lora_r, cfg.per_device_train_batch_size) == (5e-5, True, 7, 4, 8)
    assert isinstance(cfg.learning_rate, float) and isinstance(cfg.lora_r, int)


def test_paper_defaults():
    assert SFTConfig().learning_rate == 1e-4 and SFTConfig().warmup_steps == 10
    assert RMConfig().learning_rate == 2e-5
    p = PPOConfig()
    assert (p.learning_rate, p.per_device_train_batch_size, p.max_steps, p.updates()) == (1.4e-5, 32, 200, 200)


@pytest.mark.parametrize("yaml_text, match", [
    ("model: m\nbogus: 1\n", "unknown key"),
    ("model: m\nmax_steps: many\n", "max_steps must be a int"),
    ("model: [1, 2\n", "not valid YAML"),
    ("- just\n- a list\n", "mapping"),
    ("model: m\nlora: perhaps\n", "lora must be a bool"),
])
def test_bad_yaml(tmp_path, yaml_text, match):
    y = tmp_path / "c.yaml"
    y.write_text(yaml_text)
    with pytest.raises(SeamError, match=match):
        load_config(SFTConfig, y, {"data": "d", "output_dir": "o"})


@pytest.mark.parametrize("overrides, match", [
    ({}, "missing model, data, output_dir"),
    ({"model": "m", "data": "d", "output_dir": "o", "learning_rate": -1}, "learning_rate"),
    ({"model": "m", "data": "d", "output_dir": "o", "per_device_train_batch_size": 0}, "per_device_train_batch_size"),
    ({"model": "m", "data": "d", "output_dir": "o", "device": "tpu"}, "device must be one of"),
    ({"model": "m", "data": "d", "output_dir": "o", "max_steps": 0}, "max_steps"),
])
def test_invalid_values(overrides, match):
    with pytest.raises(SeamError, match=match):
        load_config(SFTConfig, None, overrides)


def test_ppo_batch_checks():
    base = {"sft_model_path": "p", "reward_model_path": "r", "data": "d", "output_dir": "o"}
    with pytest.raises(SeamError, match="multiple of num_mini_batches"):
        load_config(PPOConfig, None, {**base, "per_device_train_batch_size": 3, "num_mini_batches": 2})
    with pytest.raises(SeamError, match="temperature"):
        load_config(PPOConfig, None, {**base, "temperature": 0})


def test_report_to_auto_follows_tensorboard():
    assert resolve_report_to("auto") == ("tensorboard" if tensorboard_available() else "none")  # never wandb
    assert resolve_report_to("none") == "none"
    assert SFTConfig().report_to == PPOConfig().report_to == "auto"
    if not tensorboard_available():
        with pytest.raises(SeamError, match="tensorboard package is not installed"):
            resolve_report_to("tensorboard")


@pytest.mark.skipif(wandb_available(), reason="wandb is installed here")
def test_report_to_wandb_without_wandb_is_one_line_before_any_model(tmp_path, capsys):
    base = {"model": "m", "data": "d", "output_dir": "o"}
    with pytest.raises(SeamError, match=r"pip install wandb") as err:
        load_config(SFTConfig, None, {**base, "report_to": "wandb"})  # at config validation: no model, no data read
    assert "\n" not in str(err.value)
    code = main(["train", "rm", "--model", str(tmp_path / "no-model"), "--data", str(tmp_path / "no-data.jsonl"),
                 "--out", str(tmp_path / "run"), "--report-to", "wandb"])
    assert code == 2 and "pip install wandb" in _err(capsys)
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


# ----------------------------------------------------------------------------- TRL's key names

TRL_SFT_YAML = """\
# keys as in a TRL / transformers training YAML
output_dir: runs/sft
per_device_train_batch_size: 4
per_device_eval_batch_size: 2
gradient_accumulation_steps: 8
num_train_epochs: 3
max_steps: -1
learning_rate: 2.0e-5
lr_scheduler_type: cosine
warmup_steps: 5
weight_decay: 0.01
logging_steps: 5
eval_steps: 50
save_steps: 100
seed: 42
gradient_checkpointing: true
report_to: none
disable_tqdm: true
max_length: 512
completion_only_loss: true
lora_r: 8
lora_alpha: 16
lora_dropout: 0.1
lora_target_modules: all-linear
"""

TRL_PPO_YAML = """\
output_dir: runs/ppo
sft_model_path: runs/sft
reward_model_path: runs/rm
per_device_train_batch_size: 8
gradient_accumulation_steps: 2
learning_rate: 3.0e-6
total_episodes: 1000
num_mini_batches: 2
num_ppo_epochs: 1
local_rollout_forward_batch_size: 8
response_length: 53
stop_token: eos
missing_eos_penalty: 1.0
kl_coef: 0.05
kl_estimator: k3
cliprange: 0.2
vf_coef: 0.1
gamma: 1.0
lam: 0.95
temperature: 0.7
whiten_rewards: false
"""


def _trl_fields(name: str) -> set[str]:
    """The fields of TRL's config for `name` plus TRL's ModelConfig (the lora_* keys of TRL's scripts)."""
    pytest.importorskip("trl")
    import warnings

    from trl import ModelConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "ppo":
            from trl.experimental.ppo import PPOConfig as TRLConfig
        elif name == "rm":
            from trl import RewardConfig as TRLConfig
        else:
            from trl import SFTConfig as TRLConfig
    return {f.name for f in dataclasses.fields(TRLConfig)} | {f.name for f in dataclasses.fields(ModelConfig)}


def test_a_trl_yaml_loads_as_it_is(tmp_path, deprecations):
    y = tmp_path / "sft.yaml"
    y.write_text(TRL_SFT_YAML)
    import yaml

    assert set(yaml.safe_load(TRL_SFT_YAML)) <= _trl_fields("sft")  # really TRL's names
    cfg = load_config(SFTConfig, y, {"model": "m", "data": "d.jsonl"})
    assert (cfg.per_device_train_batch_size, cfg.eval_batch_size, cfg.gradient_accumulation_steps) == (4, 2, 8)
    assert (cfg.num_train_epochs, cfg.learning_rate, cfg.lr_scheduler_type, cfg.disable_tqdm) == (3.0, 2e-5, "cosine", True)
    rm_yaml = TRL_SFT_YAML.replace("completion_only_loss: true\n", "center_rewards_coefficient: 0.01\n")
    assert set(yaml.safe_load(rm_yaml)) <= _trl_fields("rm")
    y.write_text(rm_yaml)
    assert load_config(RMConfig, y, {"model": "m", "data": "d.jsonl"}).center_rewards_coefficient == 0.01
    y.write_text(TRL_PPO_YAML)
    assert set(yaml.safe_load(TRL_PPO_YAML)) <= _trl_fields("ppo")
    ppo = load_config(PPOConfig, y, {"data": "rl.jsonl"})
    assert (ppo.sft_model_path, ppo.reward_model_path, ppo.total_episodes, ppo.num_mini_batches) == ("runs/sft", "runs/rm", 1000, 2)
    assert (ppo.num_ppo_epochs, ppo.local_rollout_forward_batch_size, ppo.stop_token, ppo.kl_estimator) == (1, 8, "eos", "k3")
    assert ppo.local_batch == 16 and ppo.updates() == 63 and ppo.episodes(10) == 1000  # TRL: ceil(1000 / 16)
    assert deprecations == []


def test_every_field_named_like_trl_means_the_same_thing():
    """Our fields that TRL / transformers also have keep TRL's name; the old names are aliases of them."""
    for kind, cls in (("sft", SFTConfig), ("rm", RMConfig), ("ppo", PPOConfig)):
        trl = _trl_fields(kind)
        for old, new in cls.ALIASES.items():
            assert old not in {f.name for f in dataclasses.fields(cls)}
            assert getattr(new, "new", new) in trl, (kind, old, new)


def test_old_keys_load_with_one_deprecation_line(tmp_path, deprecations):
    y = tmp_path / "old.yaml"
    y.write_text("policy: runs/sft\nreward_model: runs/rm\nbatch_size: 4\nsteps: 7\nmini_batches: 2\nppo_epochs: 1\n"
                 "rollout_forward_batch_size: 4\nstop_at_eos: false\nquiet: true\n")
    cfg = load_config(PPOConfig, y, {"data": "rl.jsonl", "output_dir": "o", "mini_batches": None})
    assert (cfg.sft_model_path, cfg.reward_model_path, cfg.per_device_train_batch_size, cfg.max_steps) == \
        ("runs/sft", "runs/rm", 4, 7)
    assert (cfg.num_mini_batches, cfg.num_ppo_epochs, cfg.local_rollout_forward_batch_size) == (2, 1, 4)
    assert cfg.stop_token is None and cfg.disable_tqdm is True and cfg.updates() == 7
    assert len(deprecations) == 1, deprecations
    line = deprecations[0]
    for old, new in (("batch_size", "per_device_train_batch_size"), ("steps", "max_steps"),
                     ("mini_batches", "num_mini_batches"), ("policy", "sft_model_path"), ("quiet", "disable_tqdm")):
        assert f"{old} -> {new}" in line
    # the same through overrides (flags), from_dict (stored settings) and the constructor (Python)
    for build in (lambda: load_config(SFTConfig, None, {"model": "m", "data": "d", "output_dir": "o", "batch_size": "2"}),
                  lambda: SFTConfig.from_dict({"model": "m", "data": "d", "output_dir": "o", "batch_size": 2}),
                  lambda: SFTConfig(model="m", data="d", output_dir="o", batch_size=2)):
        deprecations.clear()
        assert build().per_device_train_batch_size == 2
        assert len(deprecations) == 1 and "per_device_train_batch_size" in deprecations[0].replace("-", "_")


def test_a_key_under_both_names_and_unknown_keys_are_one_line(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("model: m\nbatch_size: 2\nper_device_train_batch_size: 4\n")
    with pytest.raises(SeamError, match="batch_size is the old name of per_device_train_batch_size; give only") as err:
        load_config(SFTConfig, y, {"data": "d", "output_dir": "o"})
    assert "\n" not in str(err.value)
    y.write_text("model: m\nbf16: true\nbogus: 1\n")
    with pytest.raises(SeamError) as err:
        load_config(SFTConfig, y, {"data": "d", "output_dir": "o"})
    msg = str(err.value)
    assert "unknown key(s) bf16, bogus" in msg and "use dtype: bfloat16" in msg and "\n" not in msg


def test_old_flags_work_hidden(tiny_models, tmp_path, capsys, deprecations):
    pm, _ = tiny_models
    with pytest.raises(SystemExit):
        main(["train", "ppo", "--help"])
    out = capsys.readouterr().out
    assert "--per-device-train-batch-size" in out and "--num-mini-batches" in out and "--policy" in out
    assert "--batch-size" not in out and "--mini-batches" not in out and "--steps " not in out
    code = main(["train", "ppo", "--policy", str(pm), "--reward-model", str(pm), "--data", str(tmp_path / "none.jsonl"),
                 "--out", str(tmp_path / "run"), "--batch-size", "2", "--steps", "1", "--mini-batches", "1",
                 "--no-stop-at-eos", "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "deprecated" not in line]
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "none.jsonl" in err[0]  # flags were read
    assert len(deprecations) == 1
    assert "--batch-size -> --per-device-train-batch-size" in deprecations[0] and "--policy" not in deprecations[0]


def test_the_deprecation_line_reaches_a_cli_user(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "seam", "train", "sft", "--model", str(tmp_path), "--data",
                           str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "run"), "--batch-size", "2"],
                          capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 2 and "deprecated" in lines[0] and "--per-device-train-batch-size" in lines[0], lines
    assert lines[1].startswith("error: ")


def test_stored_experiments_with_old_keys_resume(tmp_path, deprecations):
    """An experiment.json written before the rename (ppo: steps, batch_size) is the same experiment."""
    from seam.experiment import ExperimentHooks, ExperimentInputs, FilterExperimentConfig
    from seam.experiment.runner import _Runner

    old = FilterExperimentConfig.from_dict({"ppo": {"steps": 3, "batch_size": 4, "mini_batches": 2}})
    assert old.ppo == {"max_steps": 3, "per_device_train_batch_size": 4, "num_mini_batches": 2}
    assert len(deprecations) == 1
    inputs = ExperimentInputs(rl=str(tmp_path / "rl.jsonl"), pm=str(tmp_path), rm=str(tmp_path))
    out = tmp_path / "exp"
    out.mkdir()
    record = {"seam_experiment": 1, "kind": "filter", "inputs": inputs.to_dict(),
              "config": {**old.to_dict(), "ppo": {"steps": 3, "batch_size": 4, "mini_batches": 2}}}
    for k in ("quiet", "command"):
        record["config"].pop(k)
    (out / "experiment.json").write_text(json.dumps(record))
    logs = []
    _Runner(inputs, old, out, ExperimentHooks(log=logs.append))._prepare_out()
    assert logs == [f"resuming the experiment in {out}"]
    changed = FilterExperimentConfig.from_dict({"ppo": {"max_steps": 4, "per_device_train_batch_size": 4,
                                                        "num_mini_batches": 2}})
    with pytest.raises(SeamError, match="holds a different experiment"):
        _Runner(inputs, changed, out, None)._prepare_out()


# ----------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("argv", [["train"], ["train", "sft"], ["train", "rm"], ["train", "ppo"], ["train", "merge"],
                                  ["train", "eval-rm"], ["train", "eval-policy"], ["train", "compare"]])
def test_help_has_example(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and "seam train" in out


def test_cli_sft_with_yaml_and_override(tiny_models, tmp_path, capsys):
    pm, _ = tiny_models
    write_table(ROWS, tmp_path / "d.jsonl")
    y = tmp_path / "sft.yaml"
    y.write_text(f"model: {pm}\ndata: {tmp_path / 'd.jsonl'}\nmax_steps: 5\nper_device_train_batch_size: 2\ndevice: cpu\n"
                 "report_to: none\nwarmup_steps: 0\nlogging_steps: 1\n")
    code = main(["train", "sft", "--config", str(y), "--max-steps", "1", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "trained sft: 1 steps on 6 rows" in out and str(tmp_path / "run") in out
    manifest = json.loads((tmp_path / "run" / "seam_run.json").read_text())
    assert manifest["config"]["max_steps"] == 1 and manifest["config"]["per_device_train_batch_size"] == 2


@pytest.mark.parametrize("argv_tail, match", [
    ([], "missing model"),
    (["--model", "nowhere", "--data", "{d}", "--out", "{o}/x"], "nowhere"),
    (["--model", "{pm}", "--data", "{o}/missing.jsonl", "--out", "{o}/x"], "missing.jsonl"),
    (["--model", "{pm}", "--data", "{d}", "--out", "{o}", "--learning-rate", "fast"], "learning_rate must be a float"),
    (["--config", "{o}/none.yaml"], "none.yaml"),
])
def test_cli_bad_input(tiny_models, tmp_path, capsys, argv_tail, match):
    pm, _ = tiny_models
    write_table(ROWS, tmp_path / "d.jsonl")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    subs = {"{d}": str(tmp_path / "d.jsonl"), "{o}": str(tmp_path / "busy"), "{pm}": str(pm)}
    argv = ["train", "sft"]
    for a in argv_tail:
        for k, v in subs.items():
            a = a.replace(k, v)
        argv.append(a)
    assert main(argv) == 2
    assert match in _err(capsys)


def test_cli_output_dir_exists(tiny_models, tmp_path, capsys):
    pm, _ = tiny_models
    write_table(ROWS, tmp_path / "d.jsonl")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    code = main(["train", "rm", "--model", str(pm), "--data", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "run")])
    assert code == 2 and "already exists" in _err(capsys)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["keep.txt"]


def test_cli_merge_rejects_full_model(tiny_models, tmp_path, capsys):
    pm, _ = tiny_models
    assert main(["train", "merge", "--adapter", str(pm), "--out", str(tmp_path / "m")]) == 2
    assert "not a LoRA adapter folder" in _err(capsys)
    assert not (tmp_path / "m").exists()
