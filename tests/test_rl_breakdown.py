"""`seam.testbed.v2.rl_breakdown`: an experiment's evaluations split by the world's hidden cells."""

from __future__ import annotations

import json

import pytest

from seam.data import write_table
from seam.testbed.v2.rl_breakdown import breakdown, main


@pytest.fixture
def folders(tmp_path):
    study, exp = tmp_path / "study", tmp_path / "exp"
    (study / "hidden").mkdir(parents=True)
    (study / "data").mkdir()
    (study / "hidden" / "truth.json").write_text(json.dumps({"blind": ["a", "b"], "prone": ["a", "c"]}))
    skills = {"p0": "a", "p1": "a", "p2": "b", "p3": "c", "p4": "d"}
    write_table([{"id": i, "prompt": i, "chosen": "x", "meta": {"skill": s}} for i, s in skills.items()],
                study / "data" / "eval.jsonl")
    (exp / "evals").mkdir(parents=True)
    (exp / "experiment.json").write_text(json.dumps({"config": {"arms": ["full", "oracle"]}}))

    def evals(name, gold):
        write_table([{"id": i, "score_gold": g, "score_rm": 10 * g} for i, g in zip(skills, gold)],
                    exp / "evals" / f"{name}.jsonl")

    evals("initial", [0.5, 0.5, 0.4, 0.3, 0.2])
    evals("oracle.s0", [0.6, 0.6, 0.4, 0.3, 0.2])
    evals("oracle.s1", [0.8, 0.8, 0.4, 0.3, 0.2])
    evals("full.s0", [0.1, 0.3, 0.4, 0.3, 0.2])
    evals("full.s1", [0.3, 0.5, 0.4, 0.3, 0.2])
    return study, exp


def test_breakdown_by_hidden_cell_with_seed_intervals(folders):
    df = breakdown(*folders)
    assert list(zip(df["cell"], df["arm"]))[:2] == [("blind & prone", "full"), ("blind & prone", "oracle")]
    assert set(df["cell"]) == {"blind & prone", "blind only", "prone only", "neither"}
    row = df[(df["arm"] == "oracle") & (df["cell"] == "blind & prone")].iloc[0]
    assert row["prompts"] == 2 and row["seeds"] == 2 and row["gold"] == pytest.approx(0.7)
    assert row["gold_vs_start"] == pytest.approx(0.2) and row["gold_ci_low"] < 0.7 < row["gold_ci_high"]
    full = df[(df["arm"] == "full") & (df["cell"] == "blind & prone")].iloc[0]
    assert full["gold_vs_start"] == pytest.approx(-0.2) and full["rm"] == pytest.approx(3.0)
    same = df[df["cell"] == "neither"]
    assert (same["gold_vs_start"] == 0).all()


def test_cli_prints_and_writes_the_table(folders, tmp_path, capsys):
    study, exp = folders
    assert main(["--study", str(study), "--experiment", str(exp), "--out", str(tmp_path / "b.md")]) == 0
    out = capsys.readouterr().out
    assert "| blind & prone | `oracle` | 2 | 2 | 0.700" in out and (tmp_path / "b.md").read_text() == out


def test_not_a_study_is_one_clear_error(folders, tmp_path):
    from seam.errors import SeamError

    with pytest.raises(SeamError, match="hidden/truth.json"):
        breakdown(tmp_path, folders[1])
    with pytest.raises(SeamError, match="no evals/"):
        breakdown(folders[0], tmp_path)
