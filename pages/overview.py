"""Overview: the project at a glance (demo build, models, datasets, latest score runs, demo report, worker health)."""

import json

import streamlit as st

from app import demo_build, ui
from db import queries

REPORT_FILES = ("validation.md", "validation.json")
REPORT_DIRS = ("report", ".")  # `seam demo` writes report/validation.md in the project folder

store = ui.get_store()
st.title("Overview")
folder = ui.project_folder(store)
st.caption(f"Project store: `{store.display}`" + (f" · folder `{folder}`" if folder else ""))

level, message = ui.worker_state(store)
{"ok": st.success, "warn": st.warning, "error": st.error}[level](f"Worker: {message}", icon=":material/memory:")

build = demo_build.current_job(store)
if build is not None:
    @st.fragment(run_every=ui.REFRESH_S if build["status"] in ("queued", "running") else None)
    def demo_build_panel(seen: tuple = (build["status"], build["chunks_done"])) -> None:
        st.subheader("Demo build")
        job = ui.job_card(store, int(build["id"]), key="overview-demo")
        st.caption(demo_build.summary_line(job))
        for stage in demo_build.stage_states(job):
            st.markdown(demo_build.stage_line(stage))
        if (job["status"], job["chunks_done"]) != seen:  # a stage landed in the store, or the build ended
            st.rerun(scope="app")  # the counts and tables below fill in

    demo_build_panel()

models, datasets = store.models(), store.datasets()
runs = queries.score_runs(store)
health = queries.job_health(store)["counts"]
cols = st.columns(6)
cols[0].metric("Models", len(models))
cols[1].metric("Datasets", len(datasets))
cols[2].metric("Instructions", int(datasets["n_instructions"].sum()) if len(datasets) else 0)
cols[3].metric("Score runs", len(runs))
cols[4].metric("Annotations", store.count("annotations"))
cols[5].metric("Jobs queued / running", f"{health['queued']} / {health['running']}")

if models.empty and datasets.empty and build is None:
    st.info("This project is empty. Register checkpoints on **Models**, import an RL set on **Data**, "
            "then compute SEAM on **Score**; or build the offline demo with `seam demo`.")

left, right = st.columns(2)
with left:
    st.subheader("Models")
    if models.empty:
        st.caption("None registered yet (Models page).")
    else:
        view = models[["id", "name", "role", "path", "dtype", "template", "fingerprint"]].copy()
        view["fingerprint"] = view["fingerprint"].map(lambda f: (f or "not validated")[:16])
        st.dataframe(view, hide_index=True, width="stretch")
with right:
    st.subheader("Datasets")
    if datasets.empty:
        st.caption("None imported yet (Data page).")
    else:
        counts = queries.negative_counts(store)
        per = (counts.assign(v=counts["variant"] + ": " + counts["negatives"].astype(str))
               .groupby("dataset_id")["v"].agg(", ".join)) if len(counts) else {}
        view = datasets[["id", "name", "n_instructions", "created_at"]].copy()
        view["negatives"] = [per.get(i, "none") for i in view["id"]]
        st.dataframe(view, hide_index=True, width="stretch")

st.subheader("Latest score runs")
if runs.empty:
    st.caption("No score runs yet (Score page).")
else:
    view = runs.head(10)[["id", "name", "dataset", "pm", "rm", "variants", "status", "seam_rows", "created_at"]].copy()
    view["variants"] = view["variants"].map(lambda v: ", ".join(v or []))
    st.dataframe(view, hide_index=True, width="stretch")

st.subheader("Demo validation report")
report = next((folder / d / name for d in REPORT_DIRS for name in REPORT_FILES
               if folder and (folder / d / name).is_file()), None)
if report is None:
    st.caption("No validation report in this project folder. `seam demo` writes one "
               f"(report/{' or '.join(REPORT_FILES)}): how well SEAM finds where the RM is truly wrong by the gold judge.")
elif report.suffix == ".md":
    with st.container(border=True):
        st.markdown(report.read_text(encoding="utf-8"))
else:
    st.json(json.loads(report.read_text(encoding="utf-8")), expanded=2)

st.subheader("Recent jobs")
jobs = queries.latest_jobs(store, limit=10)
if jobs.empty:
    st.caption("No jobs yet.")
else:
    view = jobs[["id", "kind", "status", "progress", "step", "error", "created_at", "finished_at"]].copy()
    st.dataframe(view, hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)})
