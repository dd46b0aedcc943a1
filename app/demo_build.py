"""The Overview's "Demo build" panel: the stages of the project's newest `demo-build` job.

A stage's state comes from the project folder's demo.json (which stages are built for the job's
configuration, when, and in how long) and from the job row (queued, running, failed, its step):

    job = current_job(store)                  # None: no build to show
    st.caption(summary_line(job))
    for stage in stage_states(job):           # v2: world, rm, pm, label, negatives, score, report
        st.markdown(stage_line(stage))
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from db import Store, queries
from jobs import get_job
from jobs.kinds.demo import KIND, parse_payload
from seam.errors import SeamError

from .ui import fmt_seconds

RECENT_S = 3600.0  # a finished build stays on the Overview this long
# where each stage's results show up in the dashboard
PAGES = {"world": "Data, Explore", "models": "Models, Runs", "rm": "Models, Runs", "pm": "Models",
         "negatives": "Score", "score": "Score, Explore", "validation": "Overview's report, Runs",
         "report": "Overview's report, Runs", "annotations": "Annotate"}
NOTES = {"label": "the hidden ground truth: kept in files, never shown to SEAM"}
ICONS = {"done": ":material/check_circle:", "reused": ":material/recycling:", "running": ":material/progress_activity:",
         "failed": ":material/error:", "cancelled": ":material/cancel:", "pending": ":material/schedule:"}


@dataclass(frozen=True)
class StageState:
    index: int
    name: str
    state: str  # done | reused | running | failed | cancelled | pending
    detail: str


def current_job(store: Store, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """The newest `demo-build` job (`get_job`'s row) unless it finished (done) over RECENT_S ago."""
    jobs = queries.latest_jobs(store, kind=KIND, limit=1)
    if jobs.empty:
        return None
    job = get_job(store, int(jobs["id"].iloc[0]))
    if job["status"] == "done":
        finished = _utc(job.get("finished_at"))
        now_ts = pd.Timestamp(now or dt.datetime.now(dt.timezone.utc))
        now_ts = now_ts.tz_localize("UTC") if now_ts.tzinfo is None else now_ts
        if finished is None or (now_ts - finished).total_seconds() > RECENT_S:
            return None
    return job


def stage_states(job: dict[str, Any]) -> list[StageState]:
    """Each stage of the job's build: done by this job (with its seconds), reused, running, stopped or pending."""
    try:
        build = parse_payload(dict(job.get("payload") or {}))
    except SeamError as exc:
        return [StageState(0, "payload", "failed", str(exc))]
    built = build.built()
    created = _utc(job.get("created_at"))
    expected = build.expected_seconds()
    status = job["status"]
    out, stale, current = [], False, False
    for i, name in enumerate(build.stages, 1):
        entry = built.get(name)
        if not stale and entry is not None:
            when = entry.get("built_at")
            if when is not None and created is not None and when >= created.timestamp():
                out.append(StageState(i, name, "done", f"built in {fmt_seconds(entry.get('seconds'))}"))
            else:
                out.append(StageState(i, name, "reused", f"built before ({fmt_seconds(entry.get('seconds'))})"))
            continue
        stale = True  # like build_demo: every stage after one that is not built is built again
        if not current and status in ("running", "failed", "cancelled"):
            current = True
            detail = {"running": str(job.get("step") or "building"), "failed": "the build stopped here",
                      "cancelled": "cancelled here"}[status]
            out.append(StageState(i, name, status, detail))
        else:
            wait = "waiting for the worker; " if status == "queued" and not current else ""
            about = f"about {fmt_seconds(expected[name])}" if expected[name] >= 1 else "under a second"
            out.append(StageState(i, name, "pending", wait + about))
            current = current or status == "queued"
    return out


def summary_line(job: dict[str, Any]) -> str:
    """One sentence on where the build stands."""
    status, result = job["status"], job.get("result") or {}
    if status == "done":
        return f"The demo is ready (built in {fmt_seconds(result.get('seconds'))}); every page shows it."
    if status in ("queued", "running"):
        return ("The worker builds the demo stage by stage; each stage's results appear on the pages named "
                "below as it lands (this panel refreshes itself).")
    return "The build stopped; the stages already built are kept, and Retry / Requeue resumes after them."


def stage_line(stage: StageState) -> str:
    where = ""
    if stage.state in ("done", "reused"):
        where = f" · shows on {PAGES[stage.name]}" if stage.name in PAGES else (
            f" · {NOTES[stage.name]}" if stage.name in NOTES else "")
    return f"{ICONS.get(stage.state, '')} **{stage.index}. {stage.name}** · {stage.state} · {stage.detail}{where}"


def _utc(value: Any) -> pd.Timestamp | None:
    """A stored (naive UTC) time as a UTC timestamp; None when missing."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
