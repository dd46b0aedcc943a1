"""Errors start their own line and come before any model loads (issue 12, item 7).

* An `error:` printed while (or right after) a progress bar drew its carriage return starts on a
  new line, and the bar is closed so it never redraws after the error.
* Data and flags are checked before a model is loaded: `seam train rm` on pairs without
  `rejected` prints the one error line and nothing from transformers.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import seam.cli
from seam.data import write_table
from seam.errors import SeamError

ROOT = Path(__file__).resolve().parents[1]
ROWS = [{"id": f"r{i}", "prompt": f"Spell {w}.", "chosen": f"{w} is spelled {' '.join(w)}."}
        for i, w in enumerate(["cat", "dog", "fox", "owl", "bee", "elk"])]


def _seam(*argv: str) -> tuple[int, str]:
    """(exit code, stderr) of `seam ARGV` in a fresh interpreter: every byte the user would see
    (decoded by hand: text mode would turn a bar's carriage returns into newlines)."""
    res = subprocess.run([sys.executable, "-m", "seam", *argv], cwd=ROOT, capture_output=True, timeout=600)
    return res.returncode, res.stderr.decode("utf-8")


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.split("\n") if "error:" in line]
    assert len(lines) == 1, stderr
    return lines[0]


def test_error_after_an_open_bar_starts_a_new_line(monkeypatch, capsys):
    from tqdm import tqdm

    def command(args):
        bar = tqdm(total=10, desc="working", file=sys.stderr, leave=False)
        bar.update(3)  # drawn, then an error escapes without closing it
        raise SeamError("--thing x: broken; fix it")

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=command)
    monkeypatch.setattr(seam.cli, "build_parser", lambda: parser)
    assert seam.cli.main([]) == 2
    err = capsys.readouterr().err
    assert "\r" in err  # the bar did draw
    assert err.endswith("\nerror: --thing x: broken; fix it\n")
    assert not getattr(tqdm, "_instances", None)  # closed: nothing redraws after the error
    assert sys.stderr is not None and not isinstance(sys.stderr, seam.cli._TrackedStderr)


@pytest.mark.parametrize("embedder", ["NOT_A_MODEL", "not-a-model-folder"])
def test_contrast_bad_embedder_error_starts_its_line(tmp_path, embedder):
    write_table(ROWS, tmp_path / "rl.jsonl")
    bad = tmp_path / "not-a-model-folder"  # has a config.json, so the bar draws before loading fails
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    target = embedder if embedder == "NOT_A_MODEL" else str(bad)
    code, err = _seam("negatives", "contrast", "--data", str(tmp_path / "rl.jsonl"), "--out", str(tmp_path / "n.jsonl"),
                      "--embedder", target, "--no-cache")
    assert code == 2, err
    if embedder != "NOT_A_MODEL":
        assert "\r" in err  # the embedding bar did draw before the model failed to load
    line = _error_line(err)
    assert line.startswith("error: --embedder "), repr(line)
    assert not (tmp_path / "n.jsonl").exists()


def test_train_rm_checks_the_data_before_loading_the_model(tmp_path, tiny_models):
    write_table(ROWS, tmp_path / "sft_only.jsonl")  # no rejected column
    code, err = _seam("train", "rm", "--model", str(tiny_models[0]), "--data", str(tmp_path / "sft_only.jsonl"),
                      "--out", str(tmp_path / "rm"))
    assert code == 2
    assert err.split("\n") == [
        "error: --data: no row has a rejected response; the reward model trains on (chosen, rejected) pairs", ""]
    assert not (tmp_path / "rm").exists() and not (tmp_path / "rm.partial").exists()


def test_adv_without_textattack_says_how_to_install(tmp_path):
    """Without the [adv] extra, the adv variant fails with one line naming the extra (no traceback)."""
    import subprocess
    import sys

    code = (
        "import importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'textattack' else real(name, *a)\n"
        "from seam.errors import SeamError\n"
        "from seam.textattack_env import import_textattack\n"
        "try:\n"
        "    import_textattack()\n"
        "except SeamError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'seam-studio[adv]'" in out.stdout and out.stdout.count("\n") == 1
