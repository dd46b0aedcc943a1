"""Explore: cached reads, the negative's source (with the attack's edits highlighted) and Plotly charts.

The table and one instruction's breakdown are index searches (db.queries); the charts read every
SEAM row of a run (cached per run) and aggregate server-side, so the browser gets bins and a
sample of points, never 100k markers.
"""

from __future__ import annotations

import difflib
import html
import json
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app import stats
from app.ui import plain, store_for
from db import queries
from jobs import get_job

INDEX_WAIT_S = 3.0  # a filter waits this long for a dataset index being built, then asks SQL
SCATTER_POINTS = 4000  # points drawn in a scatter (the correlation uses every instruction)
HIST_BINS = 40


# --- cached reads (keyed by the store target so one server can serve several stores in tests) -----

class DatasetIndexes:
    """Per dataset: instruction_id, id, category and lower-cased prompt, held in memory for fast filters.

    Built in a background thread when a dataset is first explored (about 0.5 s per 100k
    instructions), so the first filters go to SQL and later ones are answered from memory.
    Datasets are immutable, so an index never goes stale; the `max_entries` most recent are kept.
    """

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self._data: OrderedDict[tuple[str, int], pd.DataFrame] = OrderedDict()
        self._building: dict[tuple[str, int], threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, db: str, dataset_id: int) -> pd.DataFrame | None:
        with self._lock:
            index = self._data.get((db, dataset_id))
            if index is not None:
                self._data.move_to_end((db, dataset_id))
            return index

    def build(self, store, db: str, dataset_id: int) -> pd.DataFrame:  # noqa: ANN001
        index = queries.explore_index(store, dataset_id)
        index["prompt"] = index["prompt"].str.lower()
        with self._lock:
            self._data[(db, dataset_id)] = index
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
            done = self._building.pop((db, dataset_id), None)
        if done is not None:
            done.set()
        return index

    def wait(self, db: str, dataset_id: int, timeout: float) -> pd.DataFrame | None:
        """The index, waiting up to `timeout` s for a build in progress (None if none is, or it is late)."""
        with self._lock:
            event = self._building.get((db, dataset_id))
        if event is not None:
            event.wait(timeout)
        return self.get(db, dataset_id)

    def warm(self, store, db: str, dataset_id: int) -> None:  # noqa: ANN001
        """Start building the index in the background unless it is there or on its way."""
        key = (db, dataset_id)
        with self._lock:
            if key in self._data or key in self._building:
                return
            self._building[key] = threading.Event()

        def run() -> None:
            try:
                self.build(store, db, dataset_id)
            except Exception:  # noqa: BLE001 - filters fall back to SQL
                with self._lock:
                    event = self._building.pop(key, None)
                if event is not None:
                    event.set()

        threading.Thread(target=run, name=f"explore-index-{dataset_id}", daemon=True).start()

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


INDEXES = DatasetIndexes()


@st.cache_resource(ttl=60, max_entries=16, show_spinner=False)
def _order(db: str, run_id: int, variant: str) -> np.ndarray:
    return queries.seam_order(store_for(db), run_id, variant)


def select_ids(index: pd.DataFrame, order: np.ndarray, text: str | None = None, category: str | None = None,
               descending: bool = False) -> np.ndarray:
    """Instruction ids in SEAM order (`order`, ascending) kept by the filters, as `db.queries.explore_rows` pages them.

    `index` (from `queries.explore_index`, prompts lower-cased, sorted by instruction_id) gives each
    instruction's category, id and prompt: `text` keeps a case-insensitive prompt substring or an
    exact id; `category` keeps one ``meta.category``.
    """
    ids = order[::-1] if descending else order
    if not text and not category:
        return ids
    pos = np.searchsorted(index["instruction_id"].to_numpy(), ids)
    keep = np.ones(len(ids), dtype=bool)
    if category:
        keep &= index["category"].to_numpy()[pos] == category
    if text:
        prompts = index["prompt"].iloc[pos]
        keep &= (prompts.str.contains(text.lower(), regex=False).to_numpy()
                 | (index["id"].to_numpy()[pos] == text))
    return ids[keep]


@st.cache_data(ttl=30, max_entries=32, show_spinner=False)
def filtered_ids(db: str, run_id: int, dataset_id: int, variant: str, text: str | None, category: str | None,
                 descending: bool) -> np.ndarray:
    """The page's view: every matching instruction id in order (cached, so paging costs one 50-row read).

    Filters are answered from the dataset's in-memory index (waiting for a build in progress), else
    from SQL while the index is built in the background.
    """
    if not text and not category:
        order = _order(db, run_id, variant)
        return order[::-1] if descending else order
    index = INDEXES.wait(db, dataset_id, timeout=INDEX_WAIT_S)  # the page starts building it when it opens
    if index is None:
        store = store_for(db)
        INDEXES.warm(store, db, dataset_id)
        return queries.explore_ids(store, run_id, variant, text=text, category=category, descending=descending)
    return select_ids(index, _order(db, run_id, variant), text, category, descending)


def page_rows(db: str, run_id: int, variant: str, ids: np.ndarray) -> pd.DataFrame:
    return queries.explore_rows_for(store_for(db), run_id, variant, ids.tolist())


@st.cache_data(max_entries=16, show_spinner=False)
def categories(db: str, dataset_id: int) -> list[str]:
    return queries.categories(store_for(db), dataset_id)


@st.cache_data(ttl=60, show_spinner="reading every SEAM score of the run")
def seam_wide(db: str, run_id: int) -> pd.DataFrame:
    return queries.seam_wide(store_for(db), run_id)


@st.cache_data(ttl=60, show_spinner="averaging over every negative of the run")
def variant_summary(db: str, run_id: int) -> pd.DataFrame:
    return queries.variant_summary(store_for(db), run_id)


def embedding_map(db: str, dataset_id: int) -> dict[str, Any] | None:
    """The newest finished embed-map job's result for a dataset (None when there is none yet)."""
    jobs = queries.latest_jobs(store_for(db), kind="embed-map", limit=20)
    for row in jobs.itertuples():
        payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload or "{}")
        if row.status == "done" and int(payload.get("dataset_id", -1)) == int(dataset_id):
            return _job_result(db, int(row.id))
    return None


@st.cache_data(max_entries=4, show_spinner=False)
def _job_result(db: str, job_id: int) -> dict[str, Any] | None:
    return get_job(store_for(db), job_id)["result"]


# --- a negative's source --------------------------------------------------------------------------

def diff_html(original: str, edited: str) -> str:
    """Word-level diff: removed words struck through in red, inserted words in green."""
    a, b = original.split(), edited.split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(html.escape(" ".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del style='background:#fdd;color:#900'>{html.escape(' '.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins style='background:#dfd;color:#060;text-decoration:none'>"
                       f"{html.escape(' '.join(b[j1:j2]))}</ins>")
    return " ".join(out)


def source_label(variant: str, meta: dict | None) -> str:
    """One short line saying where a negative came from."""
    m = meta or {}
    if "source_id" in m:
        sim = m.get("similarity")
        return f"retrieved from {m['source_id']}" + (f" (cosine {sim:.3f})" if isinstance(sim, (int, float)) else "")
    if "recipe" in m:
        bits = [f"attack {m['recipe']}"]
        if m.get("words_changed") is not None:
            bits.append(f"{m['words_changed']} word(s) changed")
        if "success" in m:
            bits.append("succeeded" if m["success"] else "did not reach the gold reward")
        return ", ".join(bits)
    if m.get("source") == "pm-sample":
        return f"PM sample (seed {m.get('seed')})"
    if "model" in m or "backend" in m:
        kinds = m.get("kinds") or m.get("flaw")
        return f"LLM {m.get('model') or m.get('backend')}" + (f" ({', '.join(kinds) if isinstance(kinds, list) else kinds})"
                                                               if kinds else "")
    return ", ".join(f"{k}={v}" for k, v in list(m.items())[:3]) if m else variant


def source_detail(store, dataset_id: int, gold: str, row: dict) -> None:  # noqa: ANN001
    """The negative's source in full: the retrieved instruction, the attack's edits, the LLM."""
    m = row.get("meta") or {}
    if "source_id" in m:
        found = queries.instructions_by_ext_id(store, dataset_id, [str(m["source_id"])])
        st.markdown(f"**Retrieved instruction** `{m['source_id']}`"
                    + (f" · cosine similarity **{m['similarity']:.3f}**" if isinstance(m.get("similarity"), (int, float)) else ""))
        if len(found):
            st.markdown(f"> {plain(found.iloc[0]['prompt'])}")
            st.caption("Its golden answer is this negative.")
    elif "recipe" in m:
        original = m.get("original") or gold
        against = "the attack's start" if m.get("original") else "the golden response"
        start = m.get("start") or ""
        st.markdown(f"**Attack** `{m['recipe']}` · edits against {against}"
                    + (f" (the search started from {start})" if start and start != "gold" else ""))
        st.markdown(diff_html(original, row["text"]), unsafe_allow_html=True)
        extra = {k: m[k] for k in ("rm_start", "rm_neg", "queries", "success") if k in m}
        if extra:
            st.caption(" · ".join(f"{k} {v}" for k, v in extra.items()))
    elif m.get("model") or m.get("backend"):
        st.markdown(f"**LLM** `{m.get('model') or m.get('backend')}`" + (f" via {m['backend']}" if m.get("backend") else ""))
    if m:
        with st.expander("meta"):
            st.json(m)


# --- charts ---------------------------------------------------------------------------------------

def histograms(wide: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    values = wide.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, HIST_BINS + 1)
    for v in wide.columns:
        x = wide[v].dropna().to_numpy(dtype=float)
        counts, _ = np.histogram(x, bins=edges)
        fig.add_bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, name=f"{v} (n={len(x):,})", opacity=0.65,
                    width=float(edges[1] - edges[0]))
    fig.update_layout(barmode="overlay", xaxis_title="SEAM (lower = worse)", yaxis_title="instructions",
                      legend_title="variant", margin=dict(t=30, b=10), height=360)
    return fig


def scatter(wide: pd.DataFrame, a: str, b: str, seed: int = 0) -> tuple[go.Figure, float, int]:
    both = wide[[a, b]].dropna()
    rho = stats.spearman(both[a], both[b])
    shown = both.sample(min(len(both), SCATTER_POINTS), random_state=seed) if len(both) > SCATTER_POINTS else both
    fig = px.scatter(shown, x=a, y=b, opacity=0.5, labels={a: f"SEAM {a}", b: f"SEAM {b}"})
    fig.update_layout(margin=dict(t=30, b=10), height=360)
    return fig, rho, len(both)


def likelihood_table(summary: pd.DataFrame) -> tuple[pd.DataFrame, go.Figure]:
    view = summary.rename(columns={"pm_logprob_mean": "PM log-lik / token (mean)", "pm_logprob_std": "std",
                                   "misjudged_share": "share misjudged (eps > 0)", "epsilon_mean": "eps (mean)",
                                   "term_mean": "term (mean)"})
    fig = go.Figure(go.Bar(x=summary["variant"], y=summary["pm_logprob_mean"],
                           error_y=dict(type="data", array=summary["pm_logprob_std"])))
    fig.update_layout(yaxis_title="PM log-likelihood per token", margin=dict(t=30, b=10), height=320)
    return view, fig


def overlap_matrix(columns: dict[str, pd.Series], p: float) -> pd.DataFrame:
    """Share of A's lowest-p set that is also in B's (rows A, columns B), on the instructions all share."""
    frame = pd.DataFrame(columns).dropna()
    lows = {k: set(frame.index[stats.lowest_share(frame[k].to_numpy(), p)]) for k in frame.columns}
    names = list(frame.columns)
    out = pd.DataFrame(index=names, columns=names, dtype=float)
    for x in names:
        for y in names:
            out.loc[x, y] = len(lows[x] & lows[y]) / len(lows[x]) if lows[x] else np.nan
    return out


def heatmap(matrix: pd.DataFrame, title: str) -> go.Figure:
    fig = px.imshow(matrix.astype(float), text_auto=".2f", zmin=0, zmax=1, color_continuous_scale="Blues",
                    aspect="auto")
    fig.update_layout(title=title, margin=dict(t=40, b=10), height=320)
    return fig


def embedding_figure(result: dict, wide: pd.DataFrame, variant: str) -> go.Figure:
    pts = pd.DataFrame({"instruction_id": result["instruction_id"], "x": result["x"], "y": result["y"]})
    pts["seam"] = wide[variant].reindex(pts["instruction_id"]).to_numpy() if variant in wide else np.nan
    fig = px.scatter(pts, x="x", y="y", color="seam", color_continuous_scale="RdYlGn", opacity=0.7,
                     hover_data=["instruction_id"], labels={"seam": f"SEAM {variant}"})
    fig.update_layout(margin=dict(t=30, b=10), height=420, xaxis_title="PC 1", yaxis_title="PC 2")
    return fig
