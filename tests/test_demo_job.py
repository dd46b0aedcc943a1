"""`seam demo` serving first: the `demo-build` job builds the tiny demo in the project's worker and
loads each stage into the store as it lands; the Overview shows the stages; `seam demo` only enqueues."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import update

from app.demo_build import RECENT_S, current_job, stage_states
from db import load, open_store
from db.models import Job
from jobs import get_job
from jobs.kinds import demo as demo_kind
from jobs.kinds.demo import ensure_demo_job, stage_spans
from jobs.worker import Worker
from seam.cli import main
from seam.demo import STAGES, DemoConfig, build_demo

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("datasets", "instructions", "negatives", "models", "score_runs", "score_details", "seam_scores",
          "annotations", "runs", "run_metrics")
TINY = DemoConfig.tiny_config(0)


def counts(store) -> dict[str, int]:  # noqa: ANN001
    return {t: store.count(t) for t in TABLES}


def watch_stages(monkeypatch, store, seen: list, stop_after: str | None = None) -> None:  # noqa: ANN001
    """Wrap the job's `build_demo` so that after the job handles each stage event, `seen` gets
    (stage, event, store counts, job 1's progress and ETA); raise after stage `stop_after` (a crash)."""
    real = demo_kind.build_demo

    def build(root, cfg, say=None, *, on_stage=None, progress=None):  # noqa: ANN001, ANN202
        def hook(stage, index, total, event, seconds):  # noqa: ANN001
            on_stage(stage, index, total, event, seconds)
            if event != "start":
                job = get_job(store, 1)
                seen.append((stage, event, counts(store), job["progress"], job["eta_s"]))
                if stage == stop_after:
                    raise RuntimeError(f"worker killed after {stage}")

        return real(root, cfg, say, on_stage=hook, progress=progress)

    monkeypatch.setattr(demo_kind, "build_demo", build)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tiny demo built by one `demo-build` job, with what the store held after each stage."""
    folder = tmp_path_factory.mktemp("demo-job")
    store = open_store(folder)
    seen: list = []
    with pytest.MonkeyPatch.context() as mp:
        watch_stages(mp, store, seen)
        assert ensure_demo_job(store, folder, True, 0, "v1") == (1, "enqueued")
        assert Worker(store, echo=False).run(once=True) == 1
    yield folder, store, seen
    store.close()


@pytest.fixture(scope="module")
def reference(built, tmp_path_factory):
    """What the blocking path (`load.demo_project`) stores for the same files, in a store of its own."""
    folder = built[0]
    ref = open_store(tmp_path_factory.mktemp("reference") / "ref.db")
    summary = load.demo_project(ref, folder)
    yield ref, summary
    ref.close()


def test_the_job_builds_and_stores_what_the_blocking_path_stores(built, reference):
    folder, store, _ = built
    ref, summary = reference
    job = get_job(store, 1)
    assert job["status"] == "done", job["error"]
    assert job["chunks_done"] == len(STAGES)
    assert counts(store) == counts(ref)
    assert counts(store)["negatives"] > 0 and counts(store)["annotations"] > 0 and counts(store)["runs"] == 2
    assert list(store.datasets()["name"]) == list(ref.datasets()["name"]) == [
        load.demo_dataset_name(TINY.stage_key("annotations"))]
    assert {k: job["result"][k] for k in summary} == summary
    assert all(not s["reused"] for s in job["result"]["stages"].values())
    # `seam demo --no-serve` on a project the job loaded adds nothing
    before = counts(store)
    assert load.demo_project(store, folder) == summary
    assert counts(store) == before


def test_the_store_fills_in_stage_by_stage(built, reference):
    _, _, seen = built
    final = counts(reference[0])
    assert [(stage, event) for stage, event, *_ in seen] == [(s, "done") for s in STAGES]
    after = {stage: c for stage, _, c, _, _ in seen}
    assert after["world"]["instructions"] == final["instructions"] and after["world"]["models"] == 0
    assert after["models"]["models"] == 2 and after["models"]["runs"] == 1 and after["models"]["negatives"] == 0
    assert after["negatives"]["negatives"] == final["negatives"] and after["negatives"]["score_runs"] == 0
    assert after["score"]["seam_scores"] == final["seam_scores"] and after["score"]["annotations"] == 0
    assert after["validation"]["runs"] == 2 and after["validation"]["annotations"] == 0
    assert after["annotations"] == final
    # progress is each stage's end by expected build time, and an ETA is given once measured
    spans = stage_spans(demo_kind.DemoBuild(Path("."), "v1", TINY))
    assert [p for _, _, _, p, _ in seen] == pytest.approx([spans[s][1] for s in STAGES])
    assert all(eta is not None for _, _, _, _, eta in seen[:-1])


def test_a_stopped_job_resumes_without_duplicating_rows(built, reference, tmp_path, monkeypatch):
    """A worker dies after the negatives stage; requeued, the job loads only the stages left."""
    folder = shutil.copytree(built[0], tmp_path / "copy", ignore=shutil.ignore_patterns("seam.db*"))
    store = open_store(folder)
    seen: list = []
    watch_stages(monkeypatch, store, seen, stop_after="negatives")
    assert ensure_demo_job(store, folder, True, 0, "v1") == (1, "enqueued")
    Worker(store, echo=False).run(once=True)
    job = get_job(store, 1)
    assert job["status"] == "failed" and "worker killed after negatives" in job["error"]
    assert job["chunks_done"] == 3
    assert counts(store)["score_runs"] == 0 and counts(store)["negatives"] == counts(reference[0])["negatives"]
    assert [e for _, e, *_ in seen] == ["reused"] * 3  # the files were built: every stage is reused

    monkeypatch.setattr(demo_kind, "build_demo", build_demo)  # the worker is back: no more crash
    seen.clear()
    watch_stages(monkeypatch, store, seen)
    assert ensure_demo_job(store, folder, True, 0, "v1") == (1, "requeued")
    Worker(store, echo=False).run(once=True)
    job = get_job(store, 1)
    assert job["status"] == "done", job["error"]
    assert "resuming: stage(s) world, models, negatives already in the store" in job["log"]
    assert [e for _, e, *_ in seen] == ["reused"] * len(STAGES)
    # the stages loaded before the crash were skipped (their chunks are committed), the rest loaded once
    assert job["log"].count("world: loaded into the store") == 1 and ": already in the store" not in job["log"]
    assert job["log"].count("score: loaded into the store") == 1
    assert counts(store) == counts(reference[0])
    store.close()


def test_a_stage_stopped_mid_load_is_finished_not_duplicated(built, tmp_path):
    """The score run is created, then the worker dies before its rows are written: loading again
    fills that run instead of creating a second one."""
    folder = built[0]
    store = open_store(tmp_path / "s.db")
    name = load.demo_dataset_name(TINY.stage_key("annotations"))
    for stage in ("world", "models", "negatives"):
        assert load.demo_stage(store, folder, stage, name)

    def die(writer):  # noqa: ANN001, ANN202
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        load.demo_stage(store, folder, "score", name, commit=die)
    assert counts(store)["score_runs"] == 1 and counts(store)["seam_scores"] == 0
    assert load.demo_stage(store, folder, "score", name)["score_run"] == 1
    assert load.demo_stage(store, folder, "score", name) == {}
    assert counts(store)["score_runs"] == 1 and counts(store)["seam_scores"] > 0
    with pytest.raises(Exception, match="unknown demo stage 'nope'"):
        load.demo_stage(store, folder, "nope", name)
    store.close()


# --- `seam demo` serves first ----------------------------------------------------------------------

@pytest.fixture
def no_server(monkeypatch):
    """`serve` replaced by a recorder: the command returns at once instead of serving."""
    from app.server import free_port

    from seam.cli import demo as demo_cli

    calls = []
    monkeypatch.setattr(demo_cli, "serve", lambda cfg: calls.append(cfg) or 0)
    return calls, str(free_port())


def test_seam_demo_enqueues_one_job_and_serves_without_building(tmp_path, no_server, capsys):
    calls, port = no_server
    folder = tmp_path / "d"
    assert main(["demo", "--world", "v1", "--tiny", "--dir", str(folder), "--port", port]) == 0
    assert not (folder / "demo.json").exists()  # nothing built in the command itself
    assert calls[0].db == str(folder.resolve()) and calls[0].worker and calls[0].port == int(port)
    out = capsys.readouterr()
    assert f"http://127.0.0.1:{port}" in out.out and "build job 1 queued" in out.err
    with open_store(folder) as store:
        jobs = store.count("jobs")
        job = get_job(store, 1)
    assert jobs == 1 and job["kind"] == "demo-build" and job["status"] == "queued"
    assert job["payload"] == {"dir": str(folder.resolve()), "world": "v1", "tiny": True, "seed": 0, "size": None,
                              "study": False, "keep_going": False}

    assert main(["demo", "--world", "v1", "--tiny", "--dir", str(folder), "--port", port]) == 0  # a re-run: the same job
    assert "build job 1 already queued" in capsys.readouterr().err
    with open_store(folder) as store:
        with store.write() as conn:
            conn.execute(update(Job).where(Job.id == 1).values(status="failed", error="boom"))
    assert main(["demo", "--world", "v1", "--tiny", "--dir", str(folder), "--port", port]) == 0  # a failed one resumes
    assert "build job 1 requeued" in capsys.readouterr().err
    assert main(["demo", "--world", "v1", "--tiny", "--seed", "1", "--dir", str(folder), "--port", port]) == 0  # another config
    with open_store(folder) as store:
        assert store.count("jobs") == 2 and get_job(store, 1)["status"] == "queued"
        assert get_job(store, 2)["payload"]["seed"] == 1
    assert len(calls) == 4


def test_seam_demo_serving_a_finished_project_just_serves(built, no_server, capsys):
    calls, port = no_server
    assert main(["demo", "--world", "v1", "--tiny", "--dir", str(built[0]), "--port", port]) == 0
    assert "build job 1 done" in capsys.readouterr().err
    assert built[1].count("jobs") == 1 and len(calls) == 1


def test_seam_demo_bad_input_is_one_line(tmp_path, no_server, capsys):
    calls, _ = no_server
    assert main(["demo", "--world", "v1", "--tiny", "--dir", str(tmp_path), "--port", "0"]) == 2
    assert "--port 0: not a TCP port" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--world", "v1", "--tiny", "--dir", str(tmp_path / "file")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert not calls


def test_a_bad_payload_fails_the_job_with_one_line(tmp_path):
    from jobs import enqueue_job

    with open_store(tmp_path) as store:
        job = enqueue_job(store, "demo-build", {"dir": str(tmp_path), "tiny": "yes"})
        Worker(store, echo=False).run(once=True)
        assert get_job(store, job)["error"] == "demo-build payload tiny must be true or false, got 'yes'"


# --- the Overview shows the build ------------------------------------------------------------------

def overview(folder: Path, monkeypatch):  # noqa: ANN001, ANN201
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SEAM_DB", str(folder))
    monkeypatch.delenv("SEAM_WORKER_PID", raising=False)
    at = AppTest.from_file(str(ROOT / "pages" / "overview.py"), default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def stage_lines(at) -> dict[str, str]:  # noqa: ANN001
    lines = [m.value for m in at.markdown if "**" in m.value and ". " in m.value]
    return {s: next(line for line in lines if f". {s}**" in line) for s in STAGES}


def test_overview_lists_the_stages_of_a_finished_build(built, monkeypatch):
    at = overview(built[0], monkeypatch)
    assert "Demo build" in [s.value for s in at.subheader]
    lines = stage_lines(at)
    assert all(" · done · built in " in lines[s] for s in STAGES), lines
    assert "shows on Models" in lines["models"]
    assert any("The demo is ready" in c.value for c in at.caption)


def test_overview_shows_a_running_build_with_eta(built, tmp_path, monkeypatch):
    """Two stages built before the job (reused), the third running, the rest pending."""
    folder = tmp_path / "half"
    folder.mkdir()
    manifest = json.loads((built[0] / "demo.json").read_text())
    manifest["stages"] = {s: manifest["stages"][s] for s in ("world", "models")}
    (folder / "demo.json").write_text(json.dumps(manifest))
    with open_store(folder) as store:
        job_id, _ = ensure_demo_job(store, folder, True, 0, "v1")
        with store.write() as conn:
            conn.execute(update(Job).where(Job.id == job_id).values(
                status="running", progress=0.4, eta_s=125.0, step="negatives: adv 3/40"))
    at = overview(folder, monkeypatch)
    lines = stage_lines(at)
    assert " · reused · " in lines["world"] and " · reused · " in lines["models"]
    assert " · running · negatives: adv 3/40" in lines["negatives"]
    assert all(lines[s].endswith(" · pending · under a second") for s in ("score", "validation", "annotations"))
    status = next(m.value for m in at.markdown if m.value.startswith("job "))
    assert "**running**" in status and "40%" in status and "ETA 2 min 05 s" in status
    assert not at.info  # no "this project is empty" while the demo builds


def test_overview_hides_a_build_finished_long_ago(built):
    job = current_job(built[1])
    assert job is not None and job["status"] == "done"
    later = job["finished_at"] + dt.timedelta(seconds=RECENT_S + 1)
    assert current_job(built[1], now=later) is None


def test_stage_states_of_a_queued_and_a_stopped_build(built, tmp_path):
    job = {"status": "queued", "payload": {"dir": str(tmp_path / "new"), "tiny": True, "seed": 0}, "created_at": None}
    states = stage_states(job)
    assert [s.state for s in states] == ["pending"] * len(STAGES)
    assert states[0].detail == "waiting for the worker; under a second"
    assert states[1].detail == "about 8 s"  # the tiny models stage's expected time

    manifest = json.loads((built[0] / "demo.json").read_text())
    manifest["stages"] = {"world": manifest["stages"]["world"]}
    (tmp_path / "demo.json").write_text(json.dumps(manifest))
    job = {"status": "failed", "payload": {"dir": str(tmp_path), "tiny": True, "seed": 0}, "created_at": None}
    assert [s.state for s in stage_states(job)] == ["reused", "failed"] + ["pending"] * 4
    other_seed = {**job, "payload": {**job["payload"], "seed": 1}}  # built for another configuration: stale
    assert [s.state for s in stage_states(other_seed)] == ["failed"] + ["pending"] * 5
