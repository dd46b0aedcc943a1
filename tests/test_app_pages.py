"""An AppTest per dashboard page, against a small real project (tiny models, a real score job)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("streamlit")
from fixtures.sample_project import copy_project, ensure_sample_project  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from seam.score.config import ScoreConfig  # noqa: E402
from db import open_store, queries  # noqa: E402
from jobs import enqueue_job, get_job, job_kinds, list_jobs, register_job_kind  # noqa: E402
from jobs.worker import Worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "pages"
TIMEOUT = 60


@pytest.fixture(scope="session")
def sample_project(tmp_path_factory) -> Path:
    return ensure_sample_project(tmp_path_factory.getbasetemp() / "seam-sample-project")


@pytest.fixture
def project(sample_project, tmp_path, monkeypatch) -> Path:
    folder = copy_project(sample_project, tmp_path / "project")
    monkeypatch.setenv("SEAM_DB", str(folder))
    monkeypatch.delenv("SEAM_WORKER_PID", raising=False)
    return folder


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(elements) -> list[str]:  # noqa: ANN001
    return [str(e.value) for e in elements]


def run_worker(folder: Path) -> None:
    with open_store(folder) as store:
        Worker(store, echo=False).run(once=True)


# --- the entry point -------------------------------------------------------------------------------

def test_main_registers_every_page_by_title():
    from app.main import PAGES as REGISTERED
    from app.main import PAGES_DIR

    assert [t for _, t, _ in REGISTERED] == ["Overview", "Models", "Data", "Score", "Explore", "Annotate", "Runs"]
    for file, _, _ in REGISTERED:
        assert (PAGES_DIR / file).is_file(), file
    assert sorted(p.name for p in PAGES_DIR.glob("*.py")) == sorted(f for f, _, _ in REGISTERED)


def test_main_runs_the_default_page(project):
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert texts(at.title) == ["Overview"]


def test_pages_say_when_no_store_is_given(monkeypatch):
    monkeypatch.delenv("SEAM_DB", raising=False)
    at = AppTest.from_file(str(PAGES / "explore.py"), default_timeout=TIMEOUT).run()
    assert "seam serve --db" in texts(at.error)[0]


# --- Overview --------------------------------------------------------------------------------------

def test_overview_counts_and_health(project):
    (project / "validation.md").write_text("# Demo validation\n\nSEAM AUROC against the gold judge: **0.81**\n")
    at = page("overview")
    metrics = {m.label: str(m.value) for m in at.metric}
    with open_store(project) as store:
        n_inst, n_ann = len(store.instructions(1)), len(store.annotations())
    assert metrics["Models"] == "2" and metrics["Datasets"] == "1" and metrics["Instructions"] == str(n_inst)
    assert metrics["Score runs"] == "1" and metrics["Annotations"] == str(n_ann) and n_ann > 0
    assert "Worker:" in texts(at.success)[0]
    assert any("0.81" in t for t in texts(at.markdown))
    assert len(at.dataframe) == 4  # models, datasets, score runs, jobs


def test_overview_warns_when_jobs_wait_without_a_worker(project, monkeypatch):
    with open_store(project) as store:
        job = enqueue_job(store, "synthetic-score", {"score_run_id": 1})
        with store.write() as conn:
            conn.exec_driver_sql("UPDATE jobs SET created_at = datetime('now', '-5 minutes') WHERE id = ?", (job,))
    at = page("overview")
    assert "no worker seems to be running" in texts(at.warning)[0]
    monkeypatch.setenv("SEAM_WORKER_PID", "999999")
    at = page("overview")
    assert "has stopped" in texts(at.error)[0]


def test_overview_of_an_empty_project(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAM_DB", str(tmp_path / "empty"))
    at = page("overview")
    assert "This project is empty" in texts(at.info)[0]


# --- Models ----------------------------------------------------------------------------------------

def test_models_register_validates_in_a_job(project, tmp_path):
    import shutil

    at = page("models")
    assert at.dataframe[0].value.shape[0] == 2
    at.text_input[0].input(str(tmp_path / "missing")).run()
    at.button[0].click().run()
    assert "does not exist" in texts(at.error)[0]
    pm_copy = shutil.copytree(project / "models" / "pm", tmp_path / "pm-copy")
    at.radio[0].set_value("pm")
    at.text_input[0].input(str(pm_copy))
    at.text_input[1].input("copied pm")
    at.button[0].click().run()
    assert "validation job" in texts(at.success)[0]
    run_worker(project)
    at = page("models")
    table = at.dataframe[0].value
    row = table[table["name"] == "copied pm"].iloc[0]
    assert row["validated"] == "ok" and row["architecture"] == "LlamaForCausalLM" and len(row["fingerprint"]) >= 8


def test_models_multi_label_rm_needs_and_uses_its_label(project, tmp_path):
    import shutil

    from transformers import AutoModelForSequenceClassification

    two = tmp_path / "rm-2labels"
    AutoModelForSequenceClassification.from_pretrained(project / "models" / "rm", num_labels=2,
                                                       ignore_mismatched_sizes=True).save_pretrained(two)
    for f in (project / "models" / "rm").iterdir():  # the tokenizer files
        if "token" in f.name or f.name.endswith(".jinja"):
            shutil.copy(f, two / f.name)
    at = page("models")
    at.radio[0].set_value("rm")
    at.text_input[0].input(str(two))
    at.text_input[1].input("two labels")
    at.text_input[3].input("1")  # the RM label field
    at.button[0].click().run()
    with open_store(project) as store:
        models = store.models()
        row = models[models["name"] == "two labels"].iloc[0]
        assert row["meta"]["rm_label"] == 1
        # (the same folder would be the same registered model: register a copy without a label)
        unlabelled = store.register_model("rm", shutil.copytree(two, tmp_path / "copy"), name="no label")
        bad = enqueue_job(store, "validate-model", {"model_id": unlabelled})
        Worker(store, echo=False).run(once=True)
        assert get_job(store, bad)["status"] == "failed" and "--rm-label" in get_job(store, bad)["error"]
    at = page("models")
    table = at.dataframe[0].value
    assert table[table["name"] == "two labels"].iloc[0]["validated"] == "ok"


def test_models_validation_failure_is_shown(project, tmp_path):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    with open_store(project) as store:
        model = store.register_model("rm", bad, name="broken")
        job = enqueue_job(store, "validate-model", {"model_id": model})
        Worker(store, echo=False).run(once=True)
        assert get_job(store, job)["status"] == "failed"
    at = page("models")
    table = at.dataframe[0].value
    assert table[table["name"] == "broken"].iloc[0]["validated"] == "failed"
    assert any("failed" in t for t in texts(at.markdown))


# --- Data ------------------------------------------------------------------------------------------

def test_data_imports_a_mapped_csv_and_reports_problems(project, tmp_path):
    src = tmp_path / "rl.csv"
    pd.DataFrame({"qid": [1, 2, 2], "question": ["What is 2+2?", "Capital of France?", "Spell cat"],
                  "answer": ["Four.", None, "c-a-t"]}).to_csv(src, index=False)
    at = page("data")
    at.radio(key="inst-how").set_value("path on the server").run()
    at.text_input(key="inst-path").input(str(src)).run()
    assert [at.selectbox(key=f"inst-map-{f}").value for f in ("id", "prompt", "chosen")] == ["qid", "question", "answer"]
    warnings = texts(at.warning)
    assert any("empty chosen" in w for w in warnings) and any("share an id" in w for w in warnings)
    at.button(key="inst-go").click().run()
    assert "chosen is missing" in texts(at.error)[0]  # the strict load names the row
    good = tmp_path / "good.csv"
    pd.DataFrame({"qid": [1, 2], "question": ["a?", "b?"], "answer": ["A.", "B."]}).to_csv(good, index=False)
    at.text_input(key="inst-path").input(str(good)).run()
    at.text_input(key="inst-name").input("mapped").run()
    at.button(key="inst-go").click().run()
    assert "2 instructions stored" in texts(at.success)[-1]
    with open_store(project) as store:
        ds = store.dataset_id("mapped")
        assert store.instructions(ds)["prompt"].tolist() == ["a?", "b?"]


def test_data_imports_with_a_seam_import_layout_and_negatives(project, tmp_path):
    src = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"q{i}?", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(3)]
    rows.append({"prompt": "", "chosen": "x", "rejected": "y"})
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    at = page("data")
    at.selectbox(key="inst-fmt").set_value("trl").run()
    at.radio(key="inst-how").set_value("path on the server").run()
    at.text_input(key="inst-path").input(str(src)).run()
    assert not at.exception
    at.text_input(key="inst-name").input("trl-set").run()
    at.button(key="inst-go").click().run()
    assert "3 instructions stored" in texts(at.success)[-1]
    assert any("skipped" in w for w in texts(at.warning))
    with open_store(project) as store:
        ds = store.dataset_id("trl-set")
        ids = store.instructions(ds)["id"].tolist()
    negs = tmp_path / "negs.jsonl"
    negs.write_text("".join(json.dumps({"qid": i, "source": "mine", "answer": "worse"}) + "\n" for i in ids))
    at = page("data")
    at.selectbox(key="neg-ds").set_value(ds).run()
    at.radio(key="neg-how").set_value("path on the server").run()
    at.text_input(key="neg-path").input(str(negs)).run()
    assert [at.selectbox(key=f"neg-map-{f}").value for f in ("id", "variant", "text")] == ["qid", "source", "answer"]
    at.button(key="neg-go").click().run()
    assert "3 negatives stored" in texts(at.success)[-1]


# --- Score -----------------------------------------------------------------------------------------

def test_score_launches_a_score_job_and_shows_progress(project):
    at = page("score")
    assert at.multiselect(key="score-variants").value == ["adv", "contrast", "llm"]
    at.multiselect(key="score-variants").set_value(["llm"])
    at.radio(key="score-weighting").set_value("prob")
    at.button(key="score-go").click().run()
    with open_store(project) as store:
        runs = queries.score_runs(store)
        new = runs.iloc[0]
        assert new["variants"] == ["llm"] and new["settings"]["weighting"] == "prob" and new["status"] == "created"
        job = list_jobs(store).iloc[0]
        assert job["kind"] == "score" and job["payload"]["score_run_id"] == int(new["id"])
        assert job["payload"]["chunk_size"] == ScoreConfig().chunk_instructions  # the library's default, one definition
        assert ScoreConfig.from_dict(new["settings"]).weighting == "prob"  # stored settings load back as a ScoreConfig
    assert any("score · **queued**" in t for t in texts(at.markdown))
    run_worker(project)
    at = page("score")
    assert any("score · **done**" in t for t in texts(at.markdown))


def test_score_settings_are_checked_at_the_button(project):
    with open_store(project) as store:
        runs_before, jobs_before = len(queries.score_runs(store)), len(list_jobs(store))
    at = page("score")
    at.text_input(key="score-template").input("Q: {prompt}").run()  # no {response}
    at.button(key="score-go").click().run()
    assert any("{response}" in t for t in texts(at.error)), texts(at.error)
    with open_store(project) as store:  # nothing created, nothing queued
        assert len(queries.score_runs(store)) == runs_before and len(list_jobs(store)) == jobs_before


def test_score_negatives_tab_builds_or_says_what_is_missing(project):
    with open_store(project) as store:
        fresh = store.import_instructions("fresh", store.instructions(1).head(12))
    at = page("score")
    at.selectbox(key="neg-builder").set_value("llm").run()
    assert at.selectbox(key="neg-llm-backend").value == "openai"
    if "negatives" not in job_kinds():
        assert any("No job handler for 'negatives'" in w for w in texts(at.warning))
        return
    at.selectbox(key="neg-ds").set_value(fresh)
    at.selectbox(key="neg-llm-backend").set_value("rules")
    at.number_input(key="neg-llm-k").set_value(2)
    at.button(key="neg-go").click().run()
    with open_store(project) as store:
        job = list_jobs(store).iloc[0]
        assert job["kind"] == "negatives"
        assert job["payload"] == {"dataset_id": fresh, "builder": "llm", "replace": False,
                                  "config": {"k": 2, "backend": "rules"}}
        Worker(store, echo=False).run(once=True)
        assert get_job(store, int(job["id"]))["status"] == "done", get_job(store, int(job["id"]))["error"]
        counts = queries.negative_counts(store, fresh)
    assert counts.set_index("variant").loc["llm", "negatives"] == 24


def test_score_negatives_settings_are_checked_at_the_button(project):
    if "negatives" not in job_kinds():
        pytest.skip("no negatives handler in this install")
    with open_store(project) as store:
        jobs_before = len(list_jobs(store))
    at = page("score")
    at.selectbox(key="neg-builder").set_value("llm").run()
    at.number_input(key="neg-llm-k").set_value(0)  # k must be >= 1
    at.button(key="neg-go").click().run()
    assert any("--k 0: must be a positive integer" in t for t in texts(at.error)), texts(at.error)
    with open_store(project) as store:
        assert len(list_jobs(store)) == jobs_before  # nothing queued


# --- Explore ---------------------------------------------------------------------------------------

def test_explore_opens_on_the_lowest_seam_breakdown(project):
    at = page("explore")
    with open_store(project) as store:
        lowest = store.lowest_seam(1, "adv", limit=1).iloc[0]
        detail = queries.breakdown(store, 1, int(lowest["instruction_id"]))
        gold = queries.instruction(store, int(lowest["instruction_id"]))["chosen"]
    assert texts(at.subheader)[0].startswith(f"Instruction {lowest['id']}")
    assert at.dataframe[0].value.iloc[0]["id"] == lowest["id"]
    assert {m.label for m in at.metric} == {"SEAM adv", "SEAM contrast", "SEAM llm"}
    md = texts(at.markdown)
    assert any(gold.split()[0] in t for t in md)
    assert len(at.dataframe) == 4  # the table and one negatives table per variant
    adv = at.dataframe[1].value
    assert adv["term"].tolist() == sorted(detail[detail["variant"] == "adv"]["term"].tolist())
    assert any("<del" in t or "<ins" in t for t in md)  # the attack's edits, highlighted
    assert any("Retrieved instruction" in t for t in md)


def test_explore_filters_and_pages(project):
    at = page("explore")
    at.selectbox(key="explore-variant").set_value("llm").run()
    at.selectbox(key="explore-category").set_value("facts").run()
    table = at.dataframe[0].value
    assert set(table["category"]) == {"facts"}
    assert table["seam"].is_monotonic_increasing
    at.text_input(key="explore-text").input("capital").run()
    assert all("capital" in p.lower() for p in at.dataframe[0].value["prompt"])
    at.selectbox(key="explore-category").set_value("all").run()
    at.text_input(key="explore-text").input("").run()
    at.selectbox(key="explore-size").set_value(25).run()
    at.number_input(key="explore-page").set_value(2).run()
    with open_store(project) as store:
        total = len(store.instructions(1))
    assert total > 25 and at.dataframe[0].value["rank"].tolist() == list(range(26, total + 1))
    at.selectbox(key="explore-order").set_value("highest SEAM first").run()
    assert at.dataframe[0].value["seam"].is_monotonic_decreasing


def test_explore_charts(project):
    at = page("explore")
    at.segmented_control(key="explore-view").set_value("Charts").run()
    assert not at.exception
    heads = texts(at.subheader)
    assert heads[:4] == ["SEAM by variant", "Variant vs variant", "PM likelihood of negatives by variant (paper Table 1)",
                         "Overlap of the lowest SEAM (paper Table 3)"]
    table1 = at.dataframe[0].value
    assert set(table1["variant"]) == {"adv", "contrast", "llm"} and (table1["negatives"] > 0).all()
    assert any(b.label == "Compute the map" for b in at.button)
    with open_store(project) as store:
        enqueue_job(store, "embed-map", {"dataset_id": 1})
        Worker(store, echo=False).run(once=True)
    at = page("explore")
    at.segmented_control(key="explore-view").set_value("Charts").run()
    with open_store(project) as store:
        total = len(store.instructions(1))
    assert any(f"{total} prompts" in c for c in texts(at.caption))


# --- Annotate --------------------------------------------------------------------------------------

def test_annotate_records_blind_judgements_and_updates_the_mismatch(project):
    at = page("annotate")
    assert "Enter your name" in texts(at.info)[0]
    at.sidebar.text_input(key="ann-name").input("carol").run()
    first = str(at.metric[0].value), str(at.metric[0].delta)
    assert [b.label for b in at.button][:5] == ["Response 1 is better", "Response 2 is better", "Tie", "Both bad", "Skip"]
    shown = []
    for key in ("1", "2", "s", "t", "1"):
        shown.append([t for t in texts(at.markdown)][3])  # Response 1's text
        at.button(key=f"ann-key-{key}").click().run()
        assert not at.exception
    assert (str(at.metric[0].value), str(at.metric[0].delta)) != first
    assert str(at.metric[1].value) == "4"
    with open_store(project) as store:
        mine = queries.annotations(store)
        mine = mine[mine["annotator"] == "carol"]
    assert mine["choice"].tolist() == ["a", "b", "tie", "a"]
    assert mine["source"].eq("human").all() and mine["duration_s"].notna().all()
    refs = list(zip(mine["response_a_ref"], mine["response_b_ref"]))
    assert all("gold" in r for r in refs) and {r[0] == "gold" for r in refs} == {True, False}  # sides randomised
    assert all(m["item"].startswith("gold|negative:") for m in mine["meta"])


def test_annotate_results_and_pm_sample_mode(project):
    at = page("annotate")
    at.sidebar.text_input(key="ann-name").input("dave").run()
    heads = texts(at.subheader)
    assert "RM-vs-human mismatch (paper Figure 4)" in heads and "Agreement between annotators" in heads
    pairs = at.dataframe[1].value
    assert list(pairs[["annotator A", "annotator B"]].iloc[0]) == ["alice", "bob"] and pairs["items"].iloc[0] == 6
    at.sidebar.radio(key="ann-mode").set_value("PM samples").run()
    if "generate-samples" in job_kinds():
        at.number_input(key="gen-n").set_value(3)
        at.number_input(key="gen-tokens").set_value(8)
        at.button(key="gen-go").click().run()
        run_worker(project)
        at = page("annotate")
        at.sidebar.text_input(key="ann-name").input("dave").run()
        at.sidebar.radio(key="ann-mode").set_value("PM samples").run()
        assert str(at.metric[2].value) == "3"
        at.button(key="ann-key-2").click().run()
        with open_store(project) as store:
            last = store.annotations().iloc[-1]
        assert last["choice"] == "b" and last["response_a_ref"].startswith("negative:")
        assert last["meta"]["rm_a"] is not None  # the job stored the RM's reward of each sample


# --- Runs ------------------------------------------------------------------------------------------

def _fake_runs(folder: Path) -> None:
    with open_store(folder) as store:
        sel = store.create_run("filter", {"method": "seam", "p": 0.2}, name="seam filter", status="done",
                               inputs=[{"role": "rl_data", "ref_kind": "dataset", "ref_id": 1},
                                       {"role": "scores", "ref_kind": "score_run", "ref_id": 1}])
        for arm, lift in (("seam", 0.1), ("random", 0.0)):
            for seed in (0, 1):
                run = store.create_run("ppo", {"arm": arm, "seed": seed}, name=f"{arm}-{seed}", status="done",
                                       inputs=[{"role": "rl_data", "ref_kind": "run", "ref_id": sel},
                                               {"role": "pm", "ref_kind": "model", "ref_id": 1}])
                for step in range(4):
                    store.log_metrics(run, step, {"objective/scores": 0.1 * step + lift + 0.01 * seed})


def test_runs_without_training_back_end_says_so(project):
    at = page("runs")
    if "filter-ppo" not in job_kinds():
        assert any("No job handler for 'filter-ppo'" in w for w in texts(at.warning))
        assert at.button(key="runs-go-filter-ppo").disabled
    assert "No runs yet" in texts(at.info)[0]


def test_runs_launch_results_and_lineage(project):
    received = []
    if "filter-ppo" not in job_kinds():
        register_job_kind("filter-ppo", lambda ctx, payload: received.append(payload))
    _fake_runs(project)
    at = page("runs")
    at.checkbox(key="runs-base-perplexity").check()
    at.text_input(key="runs-seeds").input("0 1")
    at.button(key="runs-go-filter-ppo").click().run()
    with open_store(project) as store:
        job = list_jobs(store).iloc[0]
    assert job["kind"] == "filter-ppo"
    assert job["payload"]["p"] == 0.2 and job["payload"]["seeds"] == [0, 1]
    assert job["payload"]["baselines"] == ["random", "perplexity", "full"]
    assert job["payload"]["variants"] == ["adv", "contrast", "llm"]
    results = at.dataframe[0].value
    assert set(results["arm"]) == {"seam filter", "seam", "random"}
    assert len(at.get("plotly_chart")) >= 2
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "run_1 -> run_5" in dot and "dataset #1" in dot


def test_runs_page_launches_a_grpo_run_with_the_oracle_arm(project):
    """A project with an on-policy label offers the oracle arm; the launch carries the method, its group
    size and the label, and the worker runs the GRPO arms to the end with their curves in the store."""
    with open_store(project) as store:
        rl = store.instructions(int(queries.score_runs(store).iloc[0]["dataset_id"]))
    (project / "hidden").mkdir()
    label = project / "hidden" / "label.jsonl"
    label.write_text("".join(json.dumps({"id": i, "S": float(n % 7), "skill": f"k{n % 3}"}) + "\n"
                             for n, i in enumerate(rl["id"])))
    at = page("runs")
    assert "oracle" in " ".join(texts(at.caption))
    assert at.selectbox(key="runs-method").value == "grpo"  # a study's default: its PM and RM tokenize differently
    assert "run GRPO" in at.button(key="runs-go-filter-ppo").label
    at.checkbox(key="runs-base-random").uncheck()
    at.checkbox(key="runs-base-oracle").check()
    for name, value in (("max_steps", 1), ("per_device_train_batch_size", 4), ("response_length", 8)):
        at.number_input(key=f"runs-ppo-{name}").set_value(value)
    at.number_input(key="runs-num-generations").set_value(2)
    at.run()
    at.button(key="runs-go-filter-ppo").click().run()
    with open_store(project) as store:
        job = list_jobs(store).iloc[0]
    payload = job["payload"]
    assert job["kind"] == "filter-ppo" and payload["method"] == "grpo" and payload["trainer"] == {"num_generations": 2}
    assert payload["baselines"] == ["full", "oracle"] and payload["label"] == str(label)
    if "filter-ppo" not in job_kinds():
        pytest.skip("the training back end is not installed")
    run_worker(project)
    with open_store(project) as store:
        done = get_job(store, int(job["id"]))
        assert done["status"] == "done", done["error"]
        ppo = store.runs("ppo")
        assert sorted(c["arm"] for c in ppo["config"]) == ["full", "oracle", "seam"]
        assert {c["rl_method"] for c in ppo["config"]} == {"grpo"} and set(ppo["status"]) == {"done"}
        assert all(len(store.run_metrics(int(i))) for i in ppo["id"])
    assert done["result"]["method"] == "grpo"
    at = page("runs")
    assert {"seam [GRPO]", "oracle [GRPO]", "full [GRPO]"} <= set(at.dataframe[0].value["arm"])
