"""World v2's on-policy label, its RL/corpus data and the validation study end to end on tiny models."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from seam.cli import main
from seam.data import read_table, write_table
from seam.errors import SeamError
from seam.testbed import judge
from seam.testbed.v2 import WorldV2Config, build_world
from seam.testbed.v2.label import judge_samples, on_policy_label
from seam.testbed.v2.study import Study, StudyConfig, corpus_rows, rl_rows

ROOT = Path(__file__).resolve().parents[1]


def test_label_is_definition_1_by_monte_carlo():
    rm_gold = np.array([1.0, 0.0])
    rm = np.array([[2.0, 0.5, 3.0, 1.0],      # eps 1, 0, 2, 0
                   [-1.0, 0.5, 0.25, 4.0]])   # eps 0, .5, .25, 4
    score = np.array([[0.7, 0.2, 1.0, 0.5],   # the third sample is as good as gold: not counted
                      [0.2, 0.8, 0.2, 1.0]])
    correct = np.array([[True, False, True, False], [False, True, False, True]])
    lab = on_policy_label(["a", "b"], rm_gold, rm, score, correct)
    assert lab["S"].tolist() == pytest.approx([1 / 4, (0.5 + 0.25) / 4])
    assert lab["S_surface"].tolist() == pytest.approx([1 / 4, 0.5 / 4])
    assert (lab["S_surface"] + lab["S_wrong"]).tolist() == pytest.approx(lab["S"].tolist())
    assert lab["S_a"].tolist() == pytest.approx([0.5, 0.25 / 2])  # samples 0 and 2
    assert lab["S_b"].tolist() == pytest.approx([0.0, 0.5 / 2])   # samples 1 and 3
    with pytest.raises(SeamError):
        on_policy_label(["a"], np.array([0.0]), np.array([[1.0]]), np.array([[0.5]]), np.array([[True]]))


def test_judge_samples_matches_the_gold_judge():
    world = build_world(WorldV2Config(seed=3, tasks_per_skill=4))
    tasks = world.splits["rl"][:5]
    samples = [[t.golden, "I cannot help with that.", t.golden.rstrip(".")] for t in tasks]
    score, correct = judge_samples(tasks, samples)
    assert score[:, 0].tolist() == [1.0] * 5 and score[:, 1].tolist() == [0.0] * 5
    assert score[:, 2].tolist() == [judge(t, s[2]) for t, s in zip(tasks, samples)]
    assert correct[:, 0].all() and not correct[:, 1].any()


def test_rl_rows_hold_a_held_out_rejected_answer_and_no_hidden_assignment():
    world = build_world(WorldV2Config(seed=0, tasks_per_skill=6))
    rows = rl_rows(world)
    assert len(rows) == len(world.splits["rl"])
    for row, task in zip(rows, world.splits["rl"]):
        assert judge(task, row["rejected"]) < 1.0
        assert set(row["meta"]) == {"category", "skill", "answer", "params", "source"}
    assert not any(k in json.dumps(rows) for k in ("blind", "prone", "harmful", "flipped"))


def test_corpus_is_separate_from_the_rl_set_and_about_factor_times_larger():
    world = build_world(WorldV2Config(seed=0, tasks_per_skill=20))
    corpus = corpus_rows(world, 3.0)
    rl_ids = {t.id for t in world.splits["rl"]}
    assert not rl_ids & {r["id"] for r in corpus}
    assert len({r["id"] for r in corpus}) == len(corpus)
    new = [r for r in corpus if r["id"].startswith("corpus-")]
    assert len(new) >= 2 * len(rl_ids)  # the finite facts skills add none
    rl_prompts = {t.prompt for t in world.splits["rl"]}
    non_facts = [r for r in new if r["meta"]["category"] != "facts"]
    assert sum(r["prompt"] in rl_prompts for r in non_facts) == 0


def test_negative_generators_never_import_the_testbed():
    """The negatives see prompts, golden and rejected answers only: no module of seam.negatives imports
    seam.testbed (its flaw code, the hidden assignments or the label)."""
    for path in (ROOT / "seam" / "negatives").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            for name in names:
                assert "testbed" not in name, f"{path.name} imports {name}"


def test_the_study_stages_do_not_hand_hidden_files_to_the_negatives():
    src = (ROOT / "seam" / "testbed" / "v2" / "study.py").read_text()
    body = src[src.index("def stage_negatives"):src.index("def stage_score")]
    assert "hidden" not in body and "truth" not in body and "label" not in body


def test_tiny_study_end_to_end(tmp_path, capsys, monkeypatch):
    cfg = StudyConfig.tiny(seed=1)
    assert main(["demo", "--tiny", "--seed", "1", "--no-serve", "--dir", str(tmp_path)]) == 0  # world v2: the default
    out = capsys.readouterr().out
    assert "demo ready" in out and "the best baseline" in out  # the verdict is printed
    state = Study(cfg, tmp_path, say=lambda m: None).run()  # every stage reused (the CLI built the tiny config)
    assert list(state["stages"]) == ["world", "rm", "pm", "label", "negatives", "score", "report"]
    rep = json.loads((tmp_path / "report" / "validation.json").read_text())
    names = {p["name"] for p in rep["predictors"]}
    assert {"SEAM rank-average (paper)", "SEAM rank-average (prob)", "random", "skill prior (cross-fitted)",
            "RM reward of golden (lowest first)", "PM perplexity of golden (highest first)"} <= names
    assert rep["n_instructions"] == state["stages"]["world"]["rl"]
    assert json.loads((tmp_path / "study.json").read_text())["template"] == rep["study"]["template"] == "stackllama"
    md = (tmp_path / "report" / "validation.md").read_text()
    assert "beat" in md.split("|")[0]  # the verdict comes before the table
    assert "What the label is made of" in md and "| blind | prone |" in md
    # the outside contract: the instructions, both HF model folders, section-3 scores, the gold judge by CLI
    rl = read_table(tmp_path / "data" / "rl.jsonl")
    assert {"category", "skill"} <= set(rl["meta"].iloc[0])
    scores = read_table(tmp_path / "results" / "seam.jsonl")
    assert list(scores.columns) == ["id", "variant", "seam", "n_negatives", "n_misjudged", "rm_gold"]
    assert set(scores["variant"]) <= {"contrast", "llm", "adv"} and len(scores)
    neg = tmp_path / "negatives" / "llm.jsonl"
    assert main(["score", "--data", str(tmp_path / "data" / "rl.jsonl"), "--negatives", str(neg),
                 "--pm", str(tmp_path / "models" / "pm"), "--rm", str(tmp_path / "models" / "rm"), "--device", "cpu",
                 "--out", str(tmp_path / "rescored.jsonl")]) == 0
    rescored = read_table(tmp_path / "rescored.jsonl").set_index("id")["seam"]
    mine = scores[scores["variant"] == "llm"].set_index("id")["seam"]
    assert np.allclose(rescored.loc[mine.index].to_numpy(float), mine.to_numpy(float), atol=1e-4)
    write_table([{"id": r["id"], "response": r["chosen"] if i % 2 else "I cannot help with that."}
                 for i, r in enumerate(rl.to_dict("records"))], tmp_path / "responses.jsonl")
    assert main(["eval", "eval-policy", "--data", str(tmp_path / "data" / "rl.jsonl"), "--responses",
                 str(tmp_path / "responses.jsonl"), "--judge", "gold", "--out", str(tmp_path / "judged.jsonl")]) == 0
    judged = read_table(tmp_path / "judged.jsonl")["score_gold"].to_numpy()
    assert judged[1::2].tolist() == [1.0] * len(judged[1::2]) and judged[0::2].max() == 0.0
    # --no-serve loaded the study into the project store (the dashboard shows the new world), once
    from db import load, open_store

    assert "loaded into" in out
    with open_store(tmp_path) as store:
        before = {t: store.count(t) for t in ("datasets", "negatives", "models", "score_runs", "runs")}
        info = load.study_project(store, tmp_path)  # again: nothing new
        assert {t: store.count(t) for t in before} == before
        assert len(store.datasets()) == 1 and info["instructions"] == len(rl)
        assert info["negatives"] == sum(len(read_table(tmp_path / "negatives" / f"{v}.jsonl"))
                                        for v in ("contrast", "llm", "adv"))
        assert len(store.models()) == 2 and info["score_run"] is not None
        stored = store.seam_scores(info["score_run"])
        assert len(stored) == len(scores) and set(stored["variant"]) == set(scores["variant"])
        assert len(store.runs("rm")) == 1 and store.runs("rm").iloc[0]["status"] == "done"
        ev = store.runs("eval")
        assert len(ev) == 1 and ev.iloc[0]["status"] == "done"
        assert "auroc/SEAM rank-average (paper)" in set(store.run_metrics(int(ev.iloc[0]["id"]))["name"])
        skills = {m["skill"] for m in store.instructions(int(store.datasets().iloc[0]["id"]))["meta"]}
        assert skills == {m["skill"] for m in rl["meta"]}
    # a re-run reuses every stage; another config in the same folder is refused
    again = Study(cfg, tmp_path, say=lambda m: None).run()
    assert again["stages"] == state["stages"]
    redone = Study(StudyConfig(**{**cfg.to_dict(), "keep_going": False}), tmp_path, say=lambda m: None).run(redo="report")
    assert {k: v for k, v in redone["stages"].items() if k != "report"} == {
        k: v for k, v in state["stages"].items() if k != "report"}
    with pytest.raises(SeamError, match="another config"):
        Study(StudyConfig(**{**cfg.to_dict(), "seed": 2}), tmp_path, say=lambda m: None).run()
    # a study written before the policy settings existed is the same study (they default to what it did)
    manifest = json.loads((tmp_path / "study.json").read_text())
    for key in ("pm_backbone", "pm_steps", "pm_batch", "pm_lora_r", "pm_gold_tasks"):
        del manifest["config"][key]
    (tmp_path / "study.json").write_text(json.dumps(manifest))
    assert cfg.built_stages(tmp_path) and Study(cfg, tmp_path, say=lambda m: None).run()["stages"]["pm"] == \
        redone["stages"]["pm"]
    assert not StudyConfig.demo(1).built_stages(tmp_path)


def test_study_size_and_cli_errors(tmp_path, capsys):
    cfg = StudyConfig.for_size(0, 300)
    assert len(build_world(cfg.world_config()).splits["rl"]) >= 300
    assert StudyConfig.for_size(0, 200).tasks_per_skill < cfg.tasks_per_skill
    for argv, msg in ((["demo", "--world", "v1", "--size", "300", "--no-serve", "--dir", str(tmp_path)], "world v2 only"),
                      (["demo", "--tiny", "--size", "300", "--no-serve", "--dir", str(tmp_path)], "does not go with"),
                      (["demo", "--world", "v1", "--study", "--no-serve", "--dir", str(tmp_path)], "world v2 only"),
                      (["demo", "--world", "v1", "--keep-going", "--dir", str(tmp_path)], "world v2 only"),
                      (["demo", "--world", "v2", "--size", "10", "--no-serve", "--dir", str(tmp_path)], "at least 64")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_the_demo_policy_is_smollm2_with_a_merged_lora_sft(tmp_path):
    """`StudyConfig.demo()`'s PM: SmolLM2-135M-Instruct (the packaged GGUF), LoRA SFT'd on the world's SFT
    split, merged into a plain HF folder that the label, the scorer and `seam score` load."""
    from safetensors import safe_open

    from seam.assets import smollm2_gguf
    from seam.models.loading import smollm2_hf

    if smollm2_gguf(required=False) is None:
        pytest.skip("SmolLM2 GGUF not fetched (make setup)")
    demo = StudyConfig.demo(0)
    assert demo.pm_backbone == "smollm2" and StudyConfig.preset(False, 0) == demo
    cfg = StudyConfig(**{**StudyConfig.tiny(0).to_dict(), "pm_backbone": "smollm2", "pm_steps": 2, "pm_batch": 2,
                         "pm_gold_tasks": 3, "samples": 2, "max_new_tokens": 6})
    state = Study(cfg, tmp_path, say=lambda m: None).run(until="label")
    pm = tmp_path / "models" / "pm"
    assert (pm / "model.safetensors").is_file() and not (pm / "adapter_config.json").exists()
    assert json.loads((pm / "config.json").read_text())["num_hidden_layers"] == 30  # SmolLM2-135M's shape
    assert not (tmp_path / "models" / "pm-lora").exists()  # the adapter run is folded in and removed
    st = state["stages"]["pm"]
    assert st["pm_steps"] == 2 and st["held_out_tasks"] == 3 and 0 <= st["pm_gold_after_sft"] <= 1
    name = "model.layers.29.self_attn.q_proj.weight"
    with safe_open(str(pm / "model.safetensors"), "pt") as a, \
            safe_open(str(smollm2_hf() / "model.safetensors"), "pt") as b:
        assert not np.allclose(a.get_tensor(name).numpy(), b.get_tensor(name).numpy())  # the SFT changed it
    label = read_table(tmp_path / "hidden" / "label.jsonl")
    assert len(label) == state["stages"]["world"]["rl"] and label["S"].ge(0).all()


def test_a_failed_planting_check_stops_the_demo_unless_keep_going(tmp_path, capsys):
    """The tiny RM does not take the planting (27 of 32 skills fail): `seam demo` stops at the rm stage with
    one line that names --keep-going; with it the study carries on and its report says the check failed."""
    cfg = StudyConfig(**{**StudyConfig.tiny(0).to_dict(), "keep_going": False})
    with pytest.raises(SeamError, match="the planting check failed .*pass --keep-going"):
        Study(cfg, tmp_path / "a", say=lambda m: None).run(until="rm")
    assert not (tmp_path / "a" / "models" / "pm").exists()  # nothing after the failed stage
    assert main(["demo", "--tiny", "--keep-going", "--no-serve", "--dir", str(tmp_path / "b")]) == 0
    assert "Planting check: FAILED" in (tmp_path / "b" / "report" / "validation.md").read_text()
