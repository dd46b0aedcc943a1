"""`seam export openrlhf`: prompt file, RM folder in OpenRLHF's layout, the train_ppo_ray command."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from seam.cli import main
from seam.data import read_table, write_table
from seam.errors import SeamError
from seam.io import lineage_path, write_lineage
from seam.train.openrlhf import OpenRLHFConfig, export_openrlhf_run

ROWS = [{"id": f"q{i}", "prompt": f"What is {i} plus 1?", "chosen": f"It is {i + 1}."} for i in range(5)]


@pytest.fixture
def data(tmp_path):
    write_table(ROWS, tmp_path / "rl.kept.jsonl")
    write_lineage(tmp_path / "rl.kept.jsonl", {"operation": "select", "dropped_ids": ["q9"]})
    return tmp_path / "rl.kept.jsonl"


def _flag(cmd, name):
    return cmd[cmd.index(name) + 1]


def test_export_layout_and_command(tiny_models, data, tmp_path):
    pm, rm = tiny_models
    exp = export_openrlhf_run(OpenRLHFConfig(data=str(data), pm=str(pm), rm=str(rm), out=str(tmp_path / "exp"),
                                             gpus_per_node=4, train_batch_size=16))
    out = (tmp_path / "exp").resolve()
    assert exp.out == out and exp.n_prompts == 5
    prompts = read_table(out / "prompts.jsonl")
    assert prompts["prompt"].tolist() == [f"Question: {r['prompt']}\n\nAnswer: " for r in ROWS]
    assert prompts["id"].tolist() == [r["id"] for r in ROWS]
    cmd = exp.command
    assert cmd[:4] == ["ray", "job", "submit", "--address=http://127.0.0.1:8265"]
    assert cmd[cmd.index("--") + 1:cmd.index("--") + 4] == ["python3", "-m", "openrlhf.cli.train_ppo_ray"]
    assert _flag(cmd, "--pretrain") == str(pm.resolve())
    assert _flag(cmd, "--reward_pretrain") == str(out / "reward_model") == _flag(cmd, "--critic_pretrain")
    assert _flag(cmd, "--prompt_data") == str(out / "prompts.jsonl") and _flag(cmd, "--input_key") == "prompt"
    assert _flag(cmd, "--value_head_prefix") == "score" and _flag(cmd, "--max_samples") == "5"
    assert _flag(cmd, "--actor_num_gpus_per_node") == "4" and _flag(cmd, "--train_batch_size") == "16"
    assert _flag(cmd, "--actor_learning_rate") == "1.4e-05" and "--apply_chat_template" not in cmd
    assert os.access(exp.script, os.X_OK) and "openrlhf.cli.train_ppo_ray" in exp.script.read_text()
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["data"]["lineage"]["dropped_ids"] == ["q9"] and manifest["command"] == cmd
    assert not (tmp_path / "exp.partial").exists()


def test_exported_rm_loads_like_openrlhf(tiny_models, tiny_loaded, data, tmp_path):
    """Rebuild OpenRLHF's reward model class (backbone at base_model_prefix + bias-free `score`) and load it."""
    import torch
    from transformers import AutoConfig, AutoModel

    from seam.models.scoring import RewardScorer
    from seam.models.templates import get_template

    pm, rm = tiny_models
    exp = export_openrlhf_run(OpenRLHFConfig(data=str(data), pm=str(pm), rm=str(rm), out=str(tmp_path / "exp")))
    folder = exp.reward_model
    config = AutoConfig.from_pretrained(folder)
    base_class = AutoModel._model_mapping[type(config)]

    class RewardModel(base_class.__base__):
        def __init__(self, config):
            super().__init__(config)
            setattr(self, self.base_model_prefix, base_class(config))
            self.score = torch.nn.Linear(config.hidden_size, 1, bias=False)

    model, info = RewardModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    tok = tiny_loaded[1].tokenizer
    text = get_template("stackllama").render(ROWS[0]["prompt"], ROWS[0]["chosen"]).text
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        hidden = getattr(model, model.base_model_prefix)(ids).last_hidden_state
        reward = model.score(hidden)[0, -1, 0].item()  # OpenRLHF reads the last attended token
    expected = RewardScorer(tiny_loaded[1], get_template("stackllama")).score([ROWS[0]["prompt"]], [ROWS[0]["chosen"]])
    assert reward == pytest.approx(float(expected[0]), abs=1e-4)


def test_chat_template_and_lora_policy(tiny_models, data, tmp_path):
    from seam.train import SFTConfig, train_sft

    pm, rm = tiny_models
    sft = train_sft(SFTConfig(model=str(pm), data=str(data), output_dir=str(tmp_path / "sft"), lora=True, lora_r=2,
                              max_steps=1, per_device_train_batch_size=2, device="cpu", report_to="none",
                              disable_tqdm=True))
    exp = export_openrlhf_run(OpenRLHFConfig(data=str(data), pm=str(sft.output_dir), rm=str(rm),
                                             out=str(tmp_path / "exp"), template="chat", vllm_num_engines=0,
                                             lora_rank=8, extra=("--use_tensorboard", "/logs")))
    assert read_table(exp.prompts)["prompt"].tolist() == [r["prompt"] for r in ROWS]
    assert "--apply_chat_template" in exp.command and "--vllm_num_engines" not in exp.command
    assert _flag(exp.command, "--pretrain") == str(exp.out / "policy") and (exp.out / "policy" / "model.safetensors").is_file()
    assert _flag(exp.command, "--lora_rank") == "8" and exp.command[-2:] == ["--use_tensorboard", "/logs"]


def test_rm_without_score_head_is_rejected(tiny_models, data, tmp_path):
    pm, _ = tiny_models
    with pytest.raises(SeamError, match="no `score.weight` tensor"):
        export_openrlhf_run(OpenRLHFConfig(data=str(data), pm=str(pm), rm=str(pm), out=str(tmp_path / "exp")))
    assert not (tmp_path / "exp").exists() and not (tmp_path / "exp.partial").exists()


def test_cli_export(tiny_models, data, tmp_path, capsys):
    pm, rm = tiny_models
    code = main(["export", "openrlhf", "--data", str(data), "--pm", str(pm), "--rm", str(rm), "--out",
                 str(tmp_path / "exp"), "--rollout-batch-size", "64", "--init-kl-coef", "0.1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "openrlhf.cli.train_ppo_ray" in out and "--rollout_batch_size 64" in out and "--init_kl_coef 0.1" in out


def test_cli_help(capsys):
    with pytest.raises(SystemExit):
        main(["export", "openrlhf", "--help"])
    out = capsys.readouterr().out
    assert "example:" in out and "seam export openrlhf" in out


@pytest.mark.parametrize("extra, match", [
    (["--rm", "{pm}"], "score.weight"),
    (["--rm", "{rm}", "--zero-stage", "5"], "--zero-stage"),
    (["--rm", "{rm}", "--out", "{busy}"], "already exists"),
])
def test_cli_bad_input(tiny_models, data, tmp_path, capsys, extra, match):
    pm, rm = tiny_models
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    argv = ["export", "openrlhf", "--data", str(data), "--pm", str(pm), "--out", str(tmp_path / "exp")]
    argv += [e.replace("{pm}", str(pm)).replace("{rm}", str(rm)).replace("{busy}", str(tmp_path / "busy")) for e in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    assert not (tmp_path / "exp").exists()


@pytest.mark.skipif(shutil.which("ray") is not None, reason="a ray CLI is installed here")
def test_launch_without_ray_is_a_clear_error(tiny_models, data, tmp_path, capsys):
    pm, rm = tiny_models
    code = main(["export", "openrlhf", "--data", str(data), "--pm", str(pm), "--rm", str(rm), "--out",
                 str(tmp_path / "exp"), "--launch"])
    assert code == 2 and "needs the `ray` command" in capsys.readouterr().err
    assert (tmp_path / "exp" / "train_ppo_ray.sh").is_file()  # the export itself is kept
    assert np.isfinite(len(lineage_path(data).read_text()))
