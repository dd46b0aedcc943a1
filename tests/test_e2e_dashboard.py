"""End to end in real Chromium: `seam serve` on a free 127.0.0.1 port against a small project.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; skipped without them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fixtures.sample_project import copy_project, ensure_sample_project

from app.server import free_port
from db import open_store, queries
from jobs import job_kinds

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                               "(apt-get install chromium)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, project folder): `seam serve` running on a copy of the sample project."""
    sample = ensure_sample_project(tmp_path_factory.getbasetemp() / "seam-sample-project")
    folder = copy_project(sample, tmp_path_factory.mktemp("e2e") / "project")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "seam", "serve", "--db", str(folder), "--port", str(port), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"seam serve did not come up: {proc.stdout.read()}")
        time.sleep(0.3)
    yield url, folder
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    ctx.close()


def wait_idle(pg) -> None:  # noqa: ANN001
    """Wait until Streamlit is not rerunning the script and the shortcut buttons are live."""
    pg.wait_for_timeout(250)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30000)
    pg.get_by_role("button", name=re.compile("Response 1 is better")).first.wait_for(state="visible")


def metric(pg, label: str) -> str:  # noqa: ANN001
    box = pg.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.inner_text()


def test_serve_stops_its_worker_and_app(tmp_path):
    folder = tmp_path / "empty"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "seam", "serve", "--db", str(folder), "--port", str(port), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line and "worker pid" in line
        worker_pid = int(re.search(r"worker pid (\d+)", line).group(1))
        assert (folder / "seam.db").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0
    time.sleep(0.5)
    assert not Path(f"/proc/{worker_pid}").exists() or "zombie" in Path(f"/proc/{worker_pid}/status").read_text()


def test_explore_shows_the_lowest_seam_breakdown(served, page):
    url, folder = served
    with open_store(folder) as store:
        run = queries.score_runs(store).iloc[0]
        variant = sorted(run["variants"])[0]
        lowest = store.lowest_seam(int(run["id"]), variant, limit=1).iloc[0]
        gold = queries.instruction(store, int(lowest["instruction_id"]))["chosen"]
    page.goto(f"{url}/explore")
    heading = page.get_by_role("heading", name=re.compile(f"Instruction {re.escape(lowest['id'])}"))
    heading.wait_for()
    assert page.get_by_text("Golden response", exact=True).is_visible()
    assert page.get_by_text(gold, exact=False).first.is_visible()
    assert "SEAM" in metric(page, f"SEAM {variant}")
    assert page.get_by_text(f"{variant} negatives").first.is_visible()


def test_annotate_five_pairs_with_the_keyboard(served, page):
    url, folder = served
    page.goto(f"{url}/annotate")
    name = page.get_by_label("Annotator")
    name.fill("e2e-annotator")
    name.press("Enter")
    page.get_by_text("Response 1", exact=True).wait_for()
    page.get_by_role("heading", name="Annotate").click()  # focus off the text box, so keys reach the shortcuts
    before = metric(page, "RM-vs-human mismatch")
    for n, key in enumerate("12121", start=1):
        wait_idle(page)  # a key pressed while the app reruns can be lost
        page.keyboard.press(key)
        page.wait_for_function(
            "n => [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
            ".some(m => m.innerText.includes('Your judgements') && m.innerText.includes(String(n)))", arg=n)
    after = metric(page, "RM-vs-human mismatch")
    assert after != before
    with open_store(folder) as store:
        mine = store.annotations()
        mine = mine[mine["annotator"] == "e2e-annotator"]
    assert mine["choice"].tolist() == ["a", "b", "a", "b", "a"]
    assert mine["source"].eq("human").all()


@pytest.mark.slow  # about 60-80 s on 2 CPU cores: three tiny GRPO runs and their evaluations
@pytest.mark.skipif("filter-ppo" not in job_kinds(), reason="waiting for the filter-ppo handler")
def test_filter_and_grpo_run_finishes(served, page):
    url, folder = served
    with open_store(folder) as store:
        before = set(store.runs()["id"])
    page.goto(f"{url}/runs")
    page.get_by_role("heading", name="Results").or_(page.get_by_text("No runs yet")).first.wait_for()
    page.get_by_role("combobox", name="RL method").click()  # Streamlit's selectbox: open it, pick the option
    page.get_by_role("option", name="GRPO").click()
    page.get_by_text("PPO settings (mapped onto GRPO)").click()
    for name, value in (("max_steps", "2"), ("per_device_train_batch_size", "4"), ("response_length", "8"),
                        ("num_generations", "2")):  # 28 prompts
        box = page.get_by_role("spinbutton", name=name, exact=True)
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(700)
    page.get_by_role("button", name=re.compile("Drop the lowest 20% by SEAM and run GRPO")).click()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with open_store(folder) as store:
            runs = store.runs()
        new = runs[~runs["id"].isin(before)]
        if len(new) and new["status"].isin(["done", "failed"]).all() and (new["kind"] == "ppo").any():
            break
        time.sleep(2)
    assert len(new) and (new["status"] == "done").all(), new[["id", "kind", "status", "error"]]
    assert {(c or {}).get("rl_method") for c in new[new["kind"] == "ppo"]["config"]} == {"grpo"}
    page.reload()
    page.get_by_role("heading", name="Results").wait_for()
    assert page.get_by_text("done").first.is_visible()
    page.get_by_text("seam [GRPO]").first.wait_for()  # the results table names the method of each arm
