"""Shared pieces of the dashboard pages: the store handle, job panels, pickers and formatting.

Pages never run models: they read the store and enqueue jobs (jobs.enqueue_job) that `seam worker`
runs. The store is opened once per server process (`st.cache_resource`) from ``$SEAM_DB``,
which `seam serve --db ...` sets.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from db import Store, open_store, queries
from jobs import cancel_job, get_job, job_kinds, requeue_job
from jobs.worker import pid_alive
from seam.errors import SeamError

DB_ENV = "SEAM_DB"
WORKER_PID_ENV = "SEAM_WORKER_PID"
REFRESH_S = 2.0  # live panels poll the store this often


# --- the store ------------------------------------------------------------------------------------

def db_target() -> str:
    target = os.environ.get(DB_ENV, "").strip()
    if not target:
        st.error(f"No project store given. Start the dashboard with `seam serve --db FOLDER` (or set ${DB_ENV}).")
        st.stop()
    return target


@st.cache_resource(show_spinner=False)
def _open(target: str) -> Store:
    return open_store(target)


def store_for(target: str) -> Store:
    return _open(target)


def get_store() -> Store:
    """The project store for this server; a readable error (and a stopped page) when it cannot open."""
    target = db_target()
    try:
        return _open(target)
    except SeamError as exc:
        st.error(f"Cannot open the project store {target!r}: {exc}")
        st.stop()


def project_folder(store: Store) -> Path | None:
    """The folder holding a SQLite store (where uploads and reports live); None for a server URL."""
    db = store.engine.url.database if store.engine.dialect.name == "sqlite" else None
    return Path(db).resolve().parent if db and db != ":memory:" else None


# --- jobs -----------------------------------------------------------------------------------------

def has_handler(kind: str) -> bool:
    return kind in job_kinds()


def missing_handler_note(kinds: str | list[str], consequence: str) -> None:
    """Say plainly that job kinds have no handler here (a back end not installed yet) and what that means."""
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    st.warning(f"No job handler for {' or '.join(repr(k) for k in kinds)} in this install: {consequence}. "
               f"(Job kinds this install knows: {', '.join(job_kinds())}.)")


def fmt_seconds(s: float | None) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    s = max(float(s), 0.0)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s // 60:.0f} min {s % 60:02.0f} s"
    return f"{s // 3600:.0f} h {(s % 3600) // 60:02.0f} min"


def fmt_time(t: Any) -> str:
    if t is None or (isinstance(t, float) and math.isnan(t)) or t is pd.NaT:
        return "-"
    if isinstance(t, str):
        return t[:19]
    return pd.Timestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def worker_state(store: Store) -> tuple[str, str]:
    """(level, message) about whether a worker serves this store: 'ok', 'warn' or 'error'."""

    health = queries.job_health(store)
    counts = health["counts"]
    pid = os.environ.get(WORKER_PID_ENV)
    if pid and pid.isdigit():
        if pid_alive(int(pid)):
            return "ok", f"worker running (pid {pid}); {counts['queued']} queued, {counts['running']} running"
        return "error", (f"the worker started with the dashboard (pid {pid}) has stopped; restart `seam serve`, "
                         "or run `seam worker --db ...` in a terminal")
    if health["running_alive"]:
        return "ok", f"a worker is running a job (heartbeat {fmt_seconds(health['heartbeat_age_s'])} ago)"
    waiting = health["oldest_queued_age_s"]
    if waiting is not None and waiting > 15:
        return "warn", (f"{counts['queued']} job(s) queued for {fmt_seconds(waiting)} and no worker seems to be running; "
                        "start one with `seam worker --db ...`")
    return "ok", f"{counts['queued']} queued, {counts['running']} running (no worker heartbeat to check while idle)"


def job_status_line(job: dict[str, Any]) -> str:
    status = job["status"]
    bits = [f"job {job['id']} · {job['kind']} · **{status}**"]
    if status == "running":
        bits.append(f"{100 * (job.get('progress') or 0):.0f}%")
        bits.append(f"ETA {fmt_seconds(job.get('eta_s'))}")
    if job.get("step") and status != "done":
        bits.append(str(job["step"]))
    if status in ("done", "failed", "cancelled") and job.get("finished_at") is not None:
        bits.append(f"finished {fmt_time(job['finished_at'])}")
    return " · ".join(bits)


def job_card(store: Store, job_id: int, *, key: str, show_log: bool = True) -> dict[str, Any]:
    """Progress bar, ETA, step, error, cancel/requeue buttons and the log of one job."""
    job = get_job(store, job_id)
    st.markdown(job_status_line(job))
    if job["status"] in ("queued", "running"):
        st.progress(min(max(float(job.get("progress") or 0.0), 0.0), 1.0))
        if st.button("Cancel", key=f"{key}-cancel-{job_id}"):
            cancel_job(store, job_id)
            st.rerun()
    elif job["status"] == "failed":
        st.error(job.get("error") or "failed")
        if st.button("Retry", key=f"{key}-retry-{job_id}"):
            requeue_job(store, job_id)
            st.rerun()
    elif job["status"] == "cancelled":
        if st.button("Requeue", key=f"{key}-retry-{job_id}"):
            requeue_job(store, job_id)
            st.rerun()
    if show_log and job.get("log"):
        with st.expander("log"):
            st.code(job["log"][-8000:], language=None)
    return job


def jobs_panel(store: Store, kinds: tuple[str, ...], *, key: str, limit: int = 5) -> None:
    """The newest jobs of some kinds, refreshed every REFRESH_S seconds while any is unfinished."""
    frame = queries.latest_jobs(store, limit=50)
    frame = frame[frame["kind"].isin(kinds)].head(limit)
    if frame.empty:
        st.caption("No jobs yet.")
        return
    for job_id in frame["id"].tolist():
        with st.container(border=True):
            job_card(store, int(job_id), key=key)


# --- pickers --------------------------------------------------------------------------------------

def pick_score_run(store: Store, *, key: str, label: str = "Score run", only_done: bool = True,
                   container=st) -> dict[str, Any] | None:  # noqa: ANN001
    """A select box of score runs (newest first); returns the chosen run's row, or None when none."""
    runs = queries.score_runs(store)
    if only_done:
        runs = runs[runs["seam_rows"] > 0]
    if runs.empty:
        return None
    labels = {int(r.id): f"#{r.id} {r.name or ''} · {r.dataset} · PM {r.pm or '-'} · RM {r.rm or '-'} · {r.status}"
              for r in runs.itertuples()}
    default = st.session_state.get("score_run_id")
    ids = list(labels)
    index = ids.index(default) if default in ids else 0
    chosen = container.selectbox(label, ids, index=index, format_func=labels.get, key=key)
    st.session_state["score_run_id"] = chosen
    row = runs[runs["id"] == chosen].iloc[0].to_dict()
    row["variants"] = list(row["variants"] or [])
    return row


def model_label(row: Any) -> str:
    return f"#{row['id']} {row['name']} ({row['role'].upper()})"


def no_data(message: str) -> None:
    st.info(message)
    st.stop()


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<$])")


def plain(text: Any) -> str:
    """Text escaped for st.markdown, line breaks kept (user data is never read as markdown or HTML)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", "" if text is None else str(text))
    return escaped.replace("\n", "  \n")


def text_box(label: str, text: Any, *, caption: str | None = None) -> None:
    with st.container(border=True):
        st.markdown(f"**{label}**" + (f" · {caption}" if caption else ""))
        st.markdown(plain(text))
