"""Screenshots of every dashboard page (docs/screenshots/<page>.png), taken in real Chromium.

    python benchmarks/screenshots.py                      # builds the small sample project in a temp folder
    python benchmarks/screenshots.py --project runs/demo  # or shoot an existing project (e.g. `seam demo`'s)

Starts `seam serve` (app.server) on a free port, opens each page in headless Chromium
(/usr/bin/chromium, Debian's package) and saves a PNG as tall as the page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.server import ServeConfig, free_port, start  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDTH = 1400
MAX_HEIGHT = 4000

# (file name, url path, what to do before the shot)
SHOTS = (
    ("overview", "", None),
    ("models", "models", None),
    ("data", "data", "datasets-tab"),
    ("score", "score", None),
    ("explore", "explore", None),
    ("explore-charts", "explore", "charts"),
    ("annotate", "annotate", "annotator"),
    ("runs", "runs", None),
)


def settle(page, ms: int = 2500) -> None:  # noqa: ANN001
    page.wait_for_selector("h1")
    page.wait_for_timeout(ms)
    for _ in range(60):  # wait while Streamlit shows its "running" indicator
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            break
        page.wait_for_timeout(250)


def shoot(page, path: Path) -> None:  # noqa: ANN001
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                           " return m ? m.scrollHeight : document.body.scrollHeight; }")
    page.set_viewport_size({"width": WIDTH, "height": int(min(max(height, 900), MAX_HEIGHT))})
    page.wait_for_timeout(1200)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": WIDTH, "height": 1000})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", help="project folder or store (default: build the sample project)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "screenshots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--no-runs", action="store_true", help="sample project: skip the tiny filter + PPO run")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"only these shots ({', '.join(n for n, _, _ in SHOTS)})")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    tmp = tempfile.TemporaryDirectory(prefix="seam-shots-")
    project = args.project
    if project is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from fixtures.sample_project import build_sample_project  # the tests' sample project
        from db import open_store
        from jobs import enqueue_job, job_kinds
        from jobs.worker import Worker

        info = build_sample_project(Path(tmp.name) / "project")
        with open_store(info.folder) as store:  # validated checkpoints, and the instruction map for Explore
            for model_id in (info.pm_model_id, info.rm_model_id):
                enqueue_job(store, "validate-model", {"model_id": model_id})
            enqueue_job(store, "embed-map", {"dataset_id": info.dataset_id})
            if "filter-ppo" in job_kinds() and not args.no_runs:  # a tiny filter + PPO experiment (~1.5 min)
                enqueue_job(store, "filter-ppo", {"score_run_id": info.score_run_id, "p": 0.2, "seeds": [0],
                                                  "baselines": ["random", "full"],
                                                  "ppo": {"steps": 2, "batch_size": 4, "response_length": 8}})
            Worker(store, echo=False).run(once=True)
        project = str(info.folder)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    server = start(ServeConfig(db=project, port=free_port(), quiet=True))
    try:
        server.wait_ready()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
            page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
            for name, path, action in SHOTS:
                if args.only and name not in args.only:
                    continue
                t = time.perf_counter()
                page.goto(f"{server.url}/{path}")
                settle(page)
                if action == "charts":
                    page.get_by_text("Charts", exact=True).click()
                    settle(page, 4000)
                elif action == "annotator":
                    box = page.get_by_label("Annotator")
                    box.fill("screenshot")
                    box.press("Enter")
                    settle(page)
                elif action == "datasets-tab":
                    page.get_by_role("tab", name="Datasets").click()
                    settle(page, 1000)
                shoot(page, out / f"{name}.png")
                print(f"{name}: {out / (name + '.png')} ({time.perf_counter() - t:.1f} s)")
            browser.close()
    finally:
        server.stop()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
