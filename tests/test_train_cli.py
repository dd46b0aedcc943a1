"""Config loading (YAML + CLI overrides), `seam train ...` commands, --help examples, bad input."""

from __future__ import annotations

import json

import pytest

from seam.cli import main
from seam.data import write_table
from seam.errors import SeamError
from seam.settings import load_config
from seam.train.common import resolve_report_to, tensorboard_available
from seam.train.config import PPOConfig, RMConfig, SFTConfig

ROWS = [{"id": f"r{i}", "prompt": f"Spell {w}.", "chosen": f"{w} is spelled {' '.join(w)}.", "rejected": f"{w}!"}
        for i, w in enumerate(["cat", "dog", "fox", "owl", "bee", "elk"])]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ----------------------------------------------------------------------------- configs


def test_yaml_then_overrides(tmp_path):
    y = tmp_path / "sft.yaml"
    y.write_text("model: m\ndata: d.jsonl\noutput_dir: out\nlearning_rate: 3e-4\nlora: true\nmax_steps: 7\n")
    cfg = load_config(SFTConfig, y, {"learning_rate": "5e-5", "batch_size": None, "lora_r": "4"})
    assert (cfg.learning_rate, cfg.lora, cfg.max_steps, cfg.lora_r, cfg.batch_size) == (5e-5, True, 7, 4, 8)
    assert isinstance(cfg.learning_rate, float) and isinstance(cfg.lora_r, int)


def test_paper_defaults():
    assert SFTConfig().learning_rate == 1e-4 and SFTConfig().warmup_steps == 10
    assert RMConfig().learning_rate == 2e-5
    p = PPOConfig()
    assert (p.learning_rate, p.batch_size, p.steps) == (1.4e-5, 32, 200)


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
    ({"model": "m", "data": "d", "output_dir": "o", "batch_size": 0}, "batch_size"),
    ({"model": "m", "data": "d", "output_dir": "o", "device": "tpu"}, "device must be one of"),
    ({"model": "m", "data": "d", "output_dir": "o", "max_steps": 0}, "max_steps"),
])
def test_invalid_values(overrides, match):
    with pytest.raises(SeamError, match=match):
        load_config(SFTConfig, None, overrides)


def test_ppo_batch_checks():
    base = {"policy": "p", "reward_model": "r", "data": "d", "output_dir": "o"}
    with pytest.raises(SeamError, match="multiple of mini_batches"):
        load_config(PPOConfig, None, {**base, "batch_size": 3, "mini_batches": 2})
    with pytest.raises(SeamError, match="temperature"):
        load_config(PPOConfig, None, {**base, "temperature": 0})


def test_report_to_auto_follows_tensorboard():
    assert resolve_report_to("auto") == ("tensorboard" if tensorboard_available() else "none")
    assert resolve_report_to("none") == "none"
    if not tensorboard_available():
        with pytest.raises(SeamError, match="tensorboard package is not installed"):
            resolve_report_to("tensorboard")


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
    y.write_text(f"model: {pm}\ndata: {tmp_path / 'd.jsonl'}\nmax_steps: 5\nbatch_size: 2\ndevice: cpu\n"
                 "report_to: none\nwarmup_steps: 0\nlogging_steps: 1\n")
    code = main(["train", "sft", "--config", str(y), "--max-steps", "1", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "trained sft: 1 steps on 6 rows" in out and str(tmp_path / "run") in out
    manifest = json.loads((tmp_path / "run" / "seam_run.json").read_text())
    assert manifest["config"]["max_steps"] == 1 and manifest["config"]["batch_size"] == 2


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
