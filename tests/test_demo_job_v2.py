"""`seam demo` on world v2 (the default): the `demo-build` job builds the tiny world-v2 study in the
project's worker and loads each stage into the store as it lands; a stopped job resumes without
duplicating rows; the Overview lists the study's stages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.demo_build import stage_states
from app.ui import fmt_seconds
from db import load, open_store
from jobs import get_job
from jobs.kinds import demo as demo_kind
from jobs.kinds.demo import DemoBuild, ensure_demo_job, parse_payload, stage_spans
from jobs.worker import Worker
from seam.cli import main
from seam.errors import SeamError
from seam.testbed.v2.study import DEMO_SECONDS, STAGES, Study, StudyConfig

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("datasets", "instructions", "negatives", "models", "score_runs", "score_details", "seam_scores", "runs",
          "run_metrics")


def counts(store) -> dict[str, int]:  # noqa: ANN001
    return {t: store.count(t) for t in TABLES}


def watch_stages(monkeypatch, store, seen: list, stop_after: str | None = None) -> None:  # noqa: ANN001
    """Wrap `Study.run` so that after the job handles each stage event, `seen` gets (stage, event, store
    counts, job 1's progress); raise after stage `stop_after` (a worker killed there)."""
    real = Study.run

    def run(self, until="report", redo=None, on_stage=None, progress=None):  # noqa: ANN001, ANN202
        def hook(stage, index, total, event, seconds):  # noqa: ANN001
            on_stage(stage, index, total, event, seconds)
            if event != "start":
                seen.append((stage, event, counts(store), get_job(store, 1)["progress"]))
                if stage == stop_after:
                    raise RuntimeError(f"worker killed after {stage}")

        return real(self, until, redo, on_stage=hook, progress=progress)

    monkeypatch.setattr(demo_kind.Study, "run", run)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tiny study built by one `demo-build` job (world v2), with what the store held after each stage."""
    folder = tmp_path_factory.mktemp("demo-job-v2")
    store = open_store(folder)
    seen: list = []
    with pytest.MonkeyPatch.context() as mp:
        watch_stages(mp, store, seen)
        assert ensure_demo_job(store, folder, True, 0) == (1, "enqueued")
        assert Worker(store, echo=False).run(once=True) == 1
    yield folder, store, seen
    store.close()


def test_the_job_builds_the_study_and_stores_what_the_blocking_path_stores(built, tmp_path):
    folder, store, _ = built
    job = get_job(store, 1)
    assert job["status"] == "done", job["error"]
    assert job["payload"] == {"dir": str(folder.resolve()), "world": "v2", "tiny": True, "seed": 0, "size": None,
                              "study": False, "keep_going": False}
    assert job["chunks_done"] == len(STAGES) and job["result"]["world"] == "v2"
    assert f"building the tiny world-v2 study in {folder.resolve()} (seed 0)" in job["log"]
    assert (folder / "report" / "validation.json").is_file() and (folder / "hidden" / "label.jsonl").is_file()
    with open_store(tmp_path / "ref.db") as ref:
        summary = load.study_project(ref, folder)
        assert counts(store) == counts(ref)
    assert {k: job["result"][k] for k in summary} == summary
    assert list(store.datasets()["name"]) == [load.study_dataset_name(folder)]
    assert len(store.runs("rm")) == 1 and len(store.runs("eval")) == 1 and len(store.models()) == 2
    before = counts(store)
    assert load.study_project(store, folder) == summary  # `seam demo --no-serve` afterwards adds nothing
    assert counts(store) == before


def test_the_store_fills_in_stage_by_stage(built):
    _, store, seen = built
    final = counts(store)
    assert [(stage, event) for stage, event, *_ in seen] == [(s, "done") for s in STAGES]
    after = {stage: c for stage, _, c, _ in seen}
    assert after["world"]["instructions"] == final["instructions"] and after["world"]["models"] == 0
    assert after["rm"]["models"] == 1 and after["rm"]["runs"] == 1
    assert after["pm"]["models"] == 2 and after["pm"]["negatives"] == 0
    assert after["label"] == after["pm"]  # the hidden label is never stored
    assert after["negatives"]["negatives"] == final["negatives"] > 0 and after["negatives"]["score_runs"] == 0
    assert after["score"]["seam_scores"] == final["seam_scores"] > 0 and after["score"]["runs"] == 1
    assert after["report"] == final and final["runs"] == 2
    spans = stage_spans(parse_payload(get_job(store, 1)["payload"]))
    assert [p for *_, p in seen] == pytest.approx([spans[s][1] for s in STAGES])


def test_a_stopped_job_resumes_without_duplicating_rows(built, tmp_path, monkeypatch):
    """A worker dies after the negatives stage; requeued, the job loads only the stages left."""
    folder = shutil.copytree(built[0], tmp_path / "copy", ignore=shutil.ignore_patterns("seam.db*"))
    store = open_store(folder)
    seen: list = []
    watch_stages(monkeypatch, store, seen, stop_after="negatives")
    assert ensure_demo_job(store, folder, True, 0) == (1, "enqueued")
    Worker(store, echo=False).run(once=True)
    job = get_job(store, 1)
    assert job["status"] == "failed" and "worker killed after negatives" in job["error"]
    assert job["chunks_done"] == 5 and store.count("score_runs") == 0
    monkeypatch.undo()
    seen.clear()
    watch_stages(monkeypatch, store, seen)
    assert ensure_demo_job(store, folder, True, 0) == (1, "requeued")
    Worker(store, echo=False).run(once=True)
    job = get_job(store, 1)
    assert job["status"] == "done", job["error"]
    assert "resuming: stage(s) world, rm, pm, label, negatives already in the store" in job["log"]
    assert [e for _, e, *_ in seen] == ["reused"] * len(STAGES)
    assert job["log"].count("world: loaded into the store") == 1
    assert counts(store) == counts(built[1])
    store.close()


def test_overview_stage_lines_for_the_study(built, tmp_path):
    folder, store, _ = built
    states = stage_states(get_job(store, 1))
    assert [s.name for s in states] == list(STAGES)
    assert all(s.state == "done" for s in states)
    queued = {"status": "queued", "payload": {"dir": str(tmp_path / "new"), "world": "v2", "tiny": False, "seed": 0,
                                              "size": None}, "created_at": None}
    pending = stage_states(queued)
    assert [s.state for s in pending] == ["pending"] * len(STAGES)
    assert pending[2].detail == f"about {fmt_seconds(DEMO_SECONDS['pm'])}"  # the demo's pm stage (SmolLM2 LoRA SFT)


def test_payloads_and_presets():
    demo = parse_payload({"dir": "/x", "world": "v2", "tiny": False, "seed": 3, "size": None})
    assert isinstance(demo, DemoBuild) and demo.config == StudyConfig.demo(3) and demo.config.pm_backbone == "smollm2"
    assert parse_payload({"dir": "/x", "world": "v2", "tiny": False, "seed": 0, "size": 300}).config == \
        StudyConfig.for_size(0, 300)
    assert parse_payload({"dir": "/x", "world": "v2", "tiny": False, "seed": 1, "study": True}).config == \
        StudyConfig(seed=1)  # exactly what `python -m seam.testbed.v2.study --seed 1` builds
    assert parse_payload({"dir": "/x", "tiny": True, "seed": 0}).world == "v1"  # jobs queued before world v2
    assert not demo.config.keep_going
    assert demo.describe() == "the world-v2 demo (SmolLM2 as the PM)"
    assert parse_payload({"dir": "/x", "world": "v2", "tiny": False, "seed": 1, "keep_going": True}).config.keep_going
    for bad, msg in (({"world": "v3"}, "world must be one of v2, v1"), ({"size": "big"}, "size must be null"),
                     ({"world": "v1", "size": 300}, "world v2 only"), ({"keep_going": 1}, "keep_going must be")):
        with pytest.raises(SeamError, match=msg):
            parse_payload({"dir": "/x", "tiny": False, "seed": 0, **bad})


def test_seam_demo_refuses_a_folder_of_the_other_world(built, tmp_path, capsys):
    assert main(["demo", "--world", "v1", "--tiny", "--no-serve", "--dir", str(built[0])]) == 2
    err = capsys.readouterr().err
    assert "holds a world-v2 demo (study.json)" in err and err.count("\n") == 1
    (tmp_path / "demo.json").write_text("{}")
    assert main(["demo", "--tiny", "--no-serve", "--dir", str(tmp_path)]) == 2
    assert "holds a world-v1 demo (demo.json)" in capsys.readouterr().err
    assert main(["demo", "--tiny", "--seed", "1", "--no-serve", "--dir", str(built[0])]) == 2
    assert "holds a world-v2 study with other settings" in capsys.readouterr().err


def test_the_overview_page_shows_the_study_build_and_its_report(built, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SEAM_DB", str(built[0]))
    monkeypatch.delenv("SEAM_WORKER_PID", raising=False)
    at = AppTest.from_file(str(ROOT / "pages" / "overview.py"), default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    lines = [m.value for m in at.markdown if "**" in m.value and ". " in m.value]
    for i, stage in enumerate(STAGES, 1):
        assert any(f"**{i}. {stage}** · done · built in" in line for line in lines), (stage, lines)
    assert any("never shown to SEAM" in line for line in lines if "**4. label**" in line)
    assert any("Validation report (world v2)" in m.value for m in at.markdown)  # report/validation.md, rendered
