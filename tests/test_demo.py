"""`seam demo --tiny --no-serve`: the whole offline study end to end on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seam.cli import main
from seam.validation import auroc, top_fraction_mask


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--world", "v1", "--tiny", "--no-serve", "--dir", str(d)]) == 0
    return d


def test_demo_builds_every_stage(demo_dir):
    manifest = json.loads((demo_dir / "demo.json").read_text())
    assert set(manifest["stages"]) == {"world", "models", "negatives", "score", "validation", "annotations"}
    for name in ("data/rl.jsonl", "data/negatives.jsonl", "results/seam.jsonl", "results/details.parquet",
                 "report/validation.md", "report/validation.json", "models/pm/config.json", "models/rm/config.json"):
        assert (demo_dir / name).exists(), name
    report = json.loads((demo_dir / "report" / "validation.json").read_text())
    assert report["n"] == 40 and 0 <= report["positives"] <= 40
    names = {m["method"] for m in report["methods"]}
    assert {"random", "SEAM contrast (paper)", "SEAM adv (prob)", "PM perplexity of golden (highest first)"} <= names
    assert "seam demo --tiny" in report["command"]
    md = (demo_dir / "report" / "validation.md").read_text()
    assert "AUROC" in md and "Seed 0" in md


def test_demo_store_holds_the_study(demo_dir):
    from db import open_store

    store = open_store(demo_dir)
    ds = store.datasets()
    assert len(ds) == 1
    ds_id = int(ds["id"].iloc[0])
    negs = store.negatives(ds_id)
    assert set(negs["variant"]) == {"contrast", "llm", "adv"}
    runs = store.runs()
    assert {"rm", "eval"} <= set(runs["kind"])
    models = store.models()
    assert set(models["role"]) == {"pm", "rm"}
    ann = store.annotations()
    assert len(ann) > 0 and set(ann["source"]) == {"code"}
    from sqlalchemy import select

    from db.models import ScoreRun

    with store.read() as conn:
        run_id = conn.execute(select(ScoreRun.id)).scalar()
    low = store.lowest_seam(run_id, "adv", limit=5)
    assert len(low) == 5 and (np.diff(low["seam"].to_numpy()) >= 0).all()


def test_demo_rerun_reuses_everything(demo_dir, capsys):
    assert main(["demo", "--world", "v1", "--tiny", "--no-serve", "--dir", str(demo_dir)]) == 0
    err = capsys.readouterr().err
    assert err.count("reused") == 6
    from db import open_store

    assert len(open_store(demo_dir).datasets()) == 1  # nothing loaded twice


def test_auroc_hand_computed():
    # positives score 0.9, 0.4; negatives 0.5, 0.1 -> pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4
    assert auroc(np.array([0.9, 0.5, 0.4, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx(0.75)
    assert auroc(np.array([1.0, 1.0]), np.array([1, 0])) == pytest.approx(0.5)  # a tie counts half
    assert auroc(np.array([1.0, 2.0]), np.array([1, 1])) is None


def test_top_fraction():
    mask = top_fraction_mask(np.array([5.0, 1.0, 4.0, 3.0, 2.0]), 0.4)
    assert mask.tolist() == [True, False, True, False, False]


def test_demo_serves_the_dashboard(demo_dir):
    """`seam demo` without --no-serve reuses the build and serves the dashboard on 127.0.0.1."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # started the way a shell starts a background job (SIGINT ignored): SIGINT must still stop it all
    proc = subprocess.Popen([sys.executable, "-m", "seam", "demo", "--world", "v1", "--tiny", "--dir", str(demo_dir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline, ok = time.time() + 90, False
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    ok = r.status == 200
                    break
            except OSError:
                time.sleep(0.5)
        assert ok, proc.stdout.read() if proc.poll() is not None else "dashboard did not answer"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        with socket.socket() as probe:  # nothing listens on the port any more: the server child is gone
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # allow TIME_WAIT, not a listener
            probe.bind(("127.0.0.1", port))
    finally:
        if proc.poll() is None:
            proc.kill()


def test_demo_overview_shows_the_validation_report(demo_dir, monkeypatch):
    """The Overview page of the demo project shows the report `seam demo` wrote (report/validation.md)."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SEAM_DB", str(demo_dir))
    page = Path(__file__).resolve().parents[1] / "pages" / "overview.py"
    at = AppTest.from_file(str(page), default_timeout=60).run()
    assert not at.exception
    shown = " ".join(m.value for m in at.markdown)
    report = json.loads((demo_dir / "report" / "validation.json").read_text())
    assert "SEAM validation on the demo world" in shown
    assert f"Instructions: {report['n']}" in shown
    assert not any("No validation report" in c.value for c in at.caption)
