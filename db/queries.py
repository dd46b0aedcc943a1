"""Read (and two small write) queries the dashboard needs beyond `Store`'s own calls.

Functions take the store first. The explorer's two hot queries stay index searches at 100k
instructions: `explore_rows` walks ``ix_seam_scores_run_variant_seam`` in SEAM order and stops
after one page (a text or category filter looks up each visited instruction by primary key), and
`breakdown` searches the ``score_details`` unique index joined to ``negatives`` on its natural key.
Aggregates over every per-negative row (`variant_summary`) scan the run and are meant to be cached.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func, or_, select, update

from seam.errors import SeamError
from seam.io import json_safe

from .models import (
    Annotation,
    Dataset,
    Instruction,
    Job,
    Negative,
    RegisteredModel,
    Run,
    RunInput,
    RunMetric,
    ScoreDetail,
    ScoreRun,
    SeamScore,
    utcnow,
)
from .store import Store

POLICY_VARIANT = "policy"  # PM samples written by the generate-samples job


def _frame(store: Store, query) -> pd.DataFrame:  # noqa: ANN001
    """A query's rows as a DataFrame, built column by column (3x faster than from Row objects at 100k rows)."""
    with store.read() as conn:
        result = conn.execute(query)
        keys, rows = list(result.keys()), result.fetchall()
    if not rows:
        return pd.DataFrame(columns=keys)
    return pd.DataFrame({k: list(col) for k, col in zip(keys, zip(*rows))})


def _meta(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# --- project summary ------------------------------------------------------------------------------

def score_runs(store: Store, limit: int | None = None) -> pd.DataFrame:
    """Score runs, newest first: dataset and model names, variants, settings, status, SEAM rows stored."""
    r, d = ScoreRun.__table__, Dataset.__table__
    pm, rm = RegisteredModel.__table__.alias("pm"), RegisteredModel.__table__.alias("rm")
    n_scores = (select(func.count()).select_from(SeamScore.__table__)
                .where(SeamScore.__table__.c.score_run_id == r.c.id).scalar_subquery())
    query = (select(r.c.id, r.c.name, r.c.dataset_id, d.c.name.label("dataset"), r.c.pm_model_id,
                    pm.c.name.label("pm"), r.c.rm_model_id, rm.c.name.label("rm"), r.c.variants, r.c.settings,
                    r.c.status, r.c.created_at, r.c.finished_at, n_scores.label("seam_rows"))
             .join(d, d.c.id == r.c.dataset_id).outerjoin(pm, pm.c.id == r.c.pm_model_id)
             .outerjoin(rm, rm.c.id == r.c.rm_model_id).order_by(r.c.id.desc()))
    if limit:
        query = query.limit(limit)
    return _frame(store, query)


def negative_counts(store: Store, dataset_id: int | None = None) -> pd.DataFrame:
    """Negatives per (dataset, variant): dataset_id, variant, negatives, instructions."""
    n, i = Negative.__table__, Instruction.__table__
    query = (select(i.c.dataset_id, n.c.variant, func.count().label("negatives"),
                    func.count(func.distinct(n.c.instruction_id)).label("instructions"))
             .join(i, i.c.id == n.c.instruction_id).group_by(i.c.dataset_id, n.c.variant)
             .order_by(i.c.dataset_id, n.c.variant))
    if dataset_id is not None:
        query = query.where(i.c.dataset_id == dataset_id)
    return _frame(store, query)


def job_health(store: Store, stale_after_s: float = 60.0) -> dict[str, Any]:
    """Queue counts, the running jobs' freshest heartbeat and the oldest queued job's age (seconds)."""
    t = Job.__table__
    now = utcnow()
    with store.read() as conn:
        counts = dict(conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all())
        beat = conn.execute(select(func.max(t.c.heartbeat_at)).where(t.c.status == "running")).scalar()
        oldest = conn.execute(select(func.min(t.c.created_at)).where(t.c.status == "queued")).scalar()
    beat_age = (now - beat).total_seconds() if beat else None
    return {
        "counts": {s: int(counts.get(s, 0)) for s in ("queued", "running", "done", "failed", "cancelled")},
        "heartbeat_age_s": beat_age,
        "running_alive": beat_age is not None and beat_age < stale_after_s,
        "oldest_queued_age_s": (now - oldest).total_seconds() if oldest else None,
    }


def latest_jobs(store: Store, kind: str | None = None, limit: int = 50) -> pd.DataFrame:
    """Newest jobs first (optionally of one kind), with payload and result but without the log."""
    t = Job.__table__
    query = select(*[c for c in t.c if c.name != "log"]).order_by(t.c.id.desc()).limit(limit)
    if kind:
        query = query.where(t.c.kind == kind)
    return _frame(store, query)


# --- models ---------------------------------------------------------------------------------------

def set_model_validation(store: Store, model_id: int, *, fingerprint: str | None, report: Mapping[str, Any]) -> None:
    """Record a validation (fingerprint and `report` under meta["validation"]) on a registered model."""
    t = RegisteredModel.__table__
    with store.write() as conn:
        meta = conn.execute(select(t.c.meta).where(t.c.id == model_id)).scalar()
        if conn.execute(select(t.c.id).where(t.c.id == model_id)).scalar() is None:
            raise SeamError(f"no registered model {model_id} in {store.display}; register it first")
        meta = dict(_meta(meta) or {})
        meta["validation"] = json_safe(dict(report))
        values: dict[str, Any] = {"meta": meta}
        if fingerprint:
            values["fingerprint"] = fingerprint
        conn.execute(update(t).where(t.c.id == model_id).values(**values))


# --- explorer -------------------------------------------------------------------------------------

def _category(i):  # noqa: ANN001, ANN202 - the instructions table
    return i.c.meta["category"].as_string()


def _explore_filter(run_id: int, variant: str, text: str | None, category: str | None):  # noqa: ANN202
    s, i = SeamScore.__table__, Instruction.__table__
    cond = [s.c.score_run_id == int(run_id), s.c.variant == variant]
    if text and text.strip():
        needle = text.strip()
        cond.append(or_(i.c.prompt.contains(needle, autoescape=True), i.c.ext_id == needle))
    if category:
        cond.append(_category(i) == category)
    return and_(*cond)


def explore_rows(store: Store, run_id: int, variant: str, *, text: str | None = None, category: str | None = None,
                 limit: int = 50, offset: int = 0, descending: bool = False, prompt_chars: int = 300) -> pd.DataFrame:
    """One page of instructions ordered by SEAM for a variant (lowest first unless `descending`).

    Columns: instruction_id, id, prompt (cut to `prompt_chars`), category, seam, n_negatives,
    n_misjudged, rm_gold. `text` matches a substring of the prompt or the exact id; `category`
    the instruction's ``meta.category``.
    """
    s, i = SeamScore.__table__, Instruction.__table__
    order = [s.c.seam.desc(), s.c.instruction_id.desc()] if descending else [s.c.seam, s.c.instruction_id]
    query = (select(s.c.instruction_id, i.c.ext_id.label("id"), func.substr(i.c.prompt, 1, prompt_chars).label("prompt"),
                    _category(i).label("category"), s.c.seam, s.c.n_negatives, s.c.n_misjudged, s.c.rm_gold)
             .join(i, i.c.id == s.c.instruction_id).where(_explore_filter(run_id, variant, text, category))
             .order_by(*order).limit(int(limit)).offset(int(offset)))
    return _frame(store, query)


def explore_ids(store: Store, run_id: int, variant: str, *, text: str | None = None, category: str | None = None,
                descending: bool = False) -> np.ndarray:
    """Every instruction id `explore_rows` pages through with these filters, in its order (one scan)."""
    s, i = SeamScore.__table__, Instruction.__table__
    order = [s.c.seam.desc(), s.c.instruction_id.desc()] if descending else [s.c.seam, s.c.instruction_id]
    query = select(s.c.instruction_id).select_from(s)
    if (text and text.strip()) or category:
        query = query.join(i, i.c.id == s.c.instruction_id)
    query = query.where(_explore_filter(run_id, variant, text, category)).order_by(*order)
    with store.read() as conn:
        return np.fromiter(conn.execute(query).scalars(), dtype=np.int64)


def explore_count(store: Store, run_id: int, variant: str, *, text: str | None = None,
                  category: str | None = None) -> int:
    """How many instructions `explore_rows` pages through with these filters."""
    s, i = SeamScore.__table__, Instruction.__table__
    query = select(func.count()).select_from(s)
    if (text and text.strip()) or category:
        query = query.join(i, i.c.id == s.c.instruction_id)
    query = query.where(_explore_filter(run_id, variant, text, category))
    with store.read() as conn:
        return int(conn.execute(query).scalar())


def explore_index(store: Store, dataset_id: int) -> pd.DataFrame:
    """instruction_id, id, category, prompt of every instruction of a dataset (for filtering in memory)."""
    i = Instruction.__table__
    return _frame(store, select(i.c.id.label("instruction_id"), i.c.ext_id.label("id"), _category(i).label("category"),
                                i.c.prompt).where(i.c.dataset_id == int(dataset_id)).order_by(i.c.id))


def seam_order(store: Store, run_id: int, variant: str) -> np.ndarray:
    """Instruction ids of a run's variant, lowest SEAM first (ties by instruction): one index range scan."""
    s = SeamScore.__table__
    with store.read() as conn:
        ids = conn.execute(select(s.c.instruction_id).where(s.c.score_run_id == int(run_id), s.c.variant == variant)
                           .order_by(s.c.seam, s.c.instruction_id)).scalars()
        return np.fromiter(ids, dtype=np.int64)


def explore_rows_for(store: Store, run_id: int, variant: str, instruction_ids: Sequence[int],
                     prompt_chars: int = 300) -> pd.DataFrame:
    """`explore_rows`' columns for the given instructions, in the given order (one page)."""
    s, i = SeamScore.__table__, Instruction.__table__
    ids = [int(x) for x in instruction_ids]
    cols = ["instruction_id", "id", "prompt", "category", "seam", "n_negatives", "n_misjudged", "rm_gold"]
    if not ids:
        return pd.DataFrame(columns=cols)
    df = _frame(store, select(s.c.instruction_id, i.c.ext_id.label("id"),
                              func.substr(i.c.prompt, 1, prompt_chars).label("prompt"), _category(i).label("category"),
                              s.c.seam, s.c.n_negatives, s.c.n_misjudged, s.c.rm_gold)
                .join(i, i.c.id == s.c.instruction_id)
                .where(s.c.score_run_id == int(run_id), s.c.variant == variant, s.c.instruction_id.in_(ids)))
    return df.set_index("instruction_id").reindex(ids).reset_index()[cols]


def categories(store: Store, dataset_id: int) -> list[str]:
    """Distinct ``meta.category`` values of a dataset's instructions (sorted; empty when none)."""
    i = Instruction.__table__
    cat = _category(i)
    with store.read() as conn:
        rows = conn.execute(select(cat).where(i.c.dataset_id == dataset_id, cat.is_not(None)).distinct()).scalars().all()
    return sorted(str(r) for r in rows if r not in (None, ""))


def instruction(store: Store, instruction_id: int) -> dict[str, Any]:
    """One instruction row: instruction_id, dataset_id, id, prompt, chosen, rejected, meta."""
    i = Instruction.__table__
    with store.read() as conn:
        row = conn.execute(select(i.c.id.label("instruction_id"), i.c.dataset_id, i.c.ext_id.label("id"), i.c.prompt,
                                  i.c.chosen, i.c.rejected, i.c.meta).where(i.c.id == int(instruction_id))).mappings().first()
    if row is None:
        raise SeamError(f"no instruction {instruction_id} in {store.display}")
    out = dict(row)
    out["meta"] = _meta(out["meta"]) or {}
    return out


def instruction_page(store: Store, dataset_id: int, limit: int = 50, offset: int = 0) -> pd.DataFrame:
    """A page of a dataset's instructions in import order: id, prompt, chosen, rejected, meta."""
    i = Instruction.__table__
    df = _frame(store, select(i.c.ext_id.label("id"), i.c.prompt, i.c.chosen, i.c.rejected, i.c.meta)
                .where(i.c.dataset_id == int(dataset_id)).order_by(i.c.id).limit(int(limit)).offset(int(offset)))
    df["meta"] = [_meta(m) for m in df["meta"]]
    return df


def instructions_by_ext_id(store: Store, dataset_id: int, ext_ids: Sequence[str]) -> pd.DataFrame:
    """id, prompt, chosen of the given external ids (those found) in a dataset."""
    i = Instruction.__table__
    ids = [str(e) for e in dict.fromkeys(ext_ids)]
    if not ids:
        return pd.DataFrame(columns=["id", "prompt", "chosen"])
    return _frame(store, select(i.c.ext_id.label("id"), i.c.prompt, i.c.chosen)
                  .where(i.c.dataset_id == dataset_id, i.c.ext_id.in_(ids)))


def breakdown(store: Store, run_id: int, instruction_id: int, variant: str | None = None) -> pd.DataFrame:
    """Every negative of one instruction in a run (optionally one variant): numbers, text, meta, negative_id."""
    d, n = ScoreDetail.__table__, Negative.__table__
    query = (select(d.c.variant, d.c.neg_index, n.c.id.label("negative_id"), n.c.text, d.c.rm_gold, d.c.rm_neg,
                    d.c.epsilon, d.c.pm_logprob_sum, d.c.pm_tokens, d.c.pm_logprob_mean, d.c.term, n.c.meta)
             .select_from(d.outerjoin(n, and_(n.c.instruction_id == d.c.instruction_id, n.c.variant == d.c.variant,
                                              n.c.neg_index == d.c.neg_index)))
             .where(d.c.instruction_id == int(instruction_id), d.c.score_run_id == int(run_id))
             .order_by(d.c.variant, d.c.neg_index))
    if variant:
        query = query.where(d.c.variant == variant)
    df = _frame(store, query)
    df["meta"] = [_meta(m) for m in df["meta"]]
    return df


def instruction_seams(store: Store, run_id: int, instruction_id: int) -> pd.DataFrame:
    """SEAM of one instruction for every variant of a run."""
    s = SeamScore.__table__
    return _frame(store, select(s.c.variant, s.c.seam, s.c.n_negatives, s.c.n_misjudged, s.c.rm_gold)
                  .where(s.c.score_run_id == int(run_id), s.c.instruction_id == int(instruction_id))
                  .order_by(s.c.variant))


def seam_wide(store: Store, run_id: int) -> pd.DataFrame:
    """SEAM of every instruction in a run, one column per variant (index: instruction_id)."""
    s = SeamScore.__table__
    df = _frame(store, select(s.c.instruction_id, s.c.variant, s.c.seam).where(s.c.score_run_id == int(run_id)))
    if df.empty:
        return pd.DataFrame()
    return df.pivot(index="instruction_id", columns="variant", values="seam")


def variant_summary(store: Store, run_id: int) -> pd.DataFrame:
    """Per variant over all negatives of a run (the paper's Table 1 and more).

    Columns: variant, negatives, pm_logprob_mean (mean of the per-token log-likelihood),
    pm_logprob_std, misjudged_share (eps > 0), epsilon_mean, term_mean. Scans the run's rows.
    """
    d = ScoreDetail.__table__
    lp = d.c.pm_logprob_mean
    query = (select(d.c.variant, func.count().label("negatives"), func.avg(lp).label("pm_logprob_mean"),
                    func.avg(lp * lp).label("_sq"),
                    func.avg(case((d.c.epsilon > 0, 1.0), else_=0.0)).label("misjudged_share"),
                    func.avg(d.c.epsilon).label("epsilon_mean"), func.avg(d.c.term).label("term_mean"))
             .where(d.c.score_run_id == int(run_id)).group_by(d.c.variant).order_by(d.c.variant))
    df = _frame(store, query)
    if len(df):
        var = (df["_sq"] - df["pm_logprob_mean"] ** 2).clip(lower=0)
        df["pm_logprob_std"] = var ** 0.5
    else:
        df["pm_logprob_std"] = []
    return df.drop(columns="_sq")


# --- annotation -----------------------------------------------------------------------------------

def ordered_instructions(store: Store, run_id: int, variant: str, limit: int = 1000) -> pd.DataFrame:
    """instruction_id and seam of a run's variant, lowest SEAM first (the annotation queue's order)."""
    s = SeamScore.__table__
    return _frame(store, select(s.c.instruction_id, s.c.seam)
                  .where(s.c.score_run_id == int(run_id), s.c.variant == variant)
                  .order_by(s.c.seam, s.c.instruction_id).limit(int(limit)))


def policy_samples(store: Store, dataset_id: int, instruction_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """PM samples (negatives of variant "policy"): instruction_id, negative_id, neg_index, text, meta."""
    n, i = Negative.__table__, Instruction.__table__
    query = (select(n.c.instruction_id, n.c.id.label("negative_id"), n.c.neg_index, n.c.text, n.c.meta)
             .join(i, i.c.id == n.c.instruction_id)
             .where(i.c.dataset_id == int(dataset_id), n.c.variant == POLICY_VARIANT)
             .order_by(n.c.instruction_id, n.c.neg_index))
    if instruction_ids is not None:
        query = query.where(n.c.instruction_id.in_([int(x) for x in instruction_ids]))
    df = _frame(store, query)
    df["meta"] = [_meta(m) or {} for m in df["meta"]]
    return df


def annotations(store: Store, *, score_run_id: int | None = None, dataset_id: int | None = None) -> pd.DataFrame:
    """Annotations joined with their instruction (id, prompt, dataset_id); meta parsed."""
    a, i = Annotation.__table__, Instruction.__table__
    query = (select(a, i.c.ext_id.label("id_ext"), i.c.prompt, i.c.dataset_id)
             .join(i, i.c.id == a.c.instruction_id).order_by(a.c.id))
    if score_run_id is not None:
        query = query.where(a.c.score_run_id == int(score_run_id))
    if dataset_id is not None:
        query = query.where(i.c.dataset_id == int(dataset_id))
    df = _frame(store, query)
    df["meta"] = [_meta(m) or {} for m in df["meta"]]
    return df


def annotated_keys(store: Store, annotator: str) -> set[tuple[int, str]]:
    """(instruction_id, item key) pairs this annotator already judged (item key from meta["item"])."""
    a = Annotation.__table__
    with store.read() as conn:
        rows = conn.execute(select(a.c.instruction_id, a.c.meta).where(a.c.annotator == annotator)).all()
    out = set()
    for inst, meta in rows:
        item = (_meta(meta) or {}).get("item")
        if item:
            out.add((int(inst), str(item)))
    return out


def runs_with_inputs(store: Store) -> pd.DataFrame:
    """Every run with its inputs as a list of dicts (for the lineage view)."""
    runs = _frame(store, select(Run.__table__).order_by(Run.id))
    inputs = _frame(store, select(RunInput.__table__).order_by(RunInput.id))
    grouped = {k: g.drop(columns="run_id").to_dict("records") for k, g in inputs.groupby("run_id")} if len(inputs) else {}
    runs["inputs"] = [grouped.get(r, []) for r in runs["id"]]
    for col in ("config", "artifacts"):
        runs[col] = [_meta(v) or {} for v in runs[col]]
    return runs


def last_metrics(store: Store, run_ids: Sequence[int]) -> pd.DataFrame:
    """Each run's last logged value of every metric: run_id, name, step, value."""
    m = RunMetric.__table__
    ids = [int(r) for r in run_ids]
    if not ids:
        return pd.DataFrame(columns=["run_id", "name", "step", "value"])
    last = (select(m.c.run_id, m.c.name, func.max(m.c.step).label("step"))
            .where(m.c.run_id.in_(ids)).group_by(m.c.run_id, m.c.name).subquery())
    query = (select(m.c.run_id, m.c.name, m.c.step, m.c.value)
             .join(last, and_(last.c.run_id == m.c.run_id, last.c.name == m.c.name, last.c.step == m.c.step))
             .order_by(m.c.run_id, m.c.name, m.c.id))
    return _frame(store, query).drop_duplicates(["run_id", "name"], keep="last").reset_index(drop=True)


def metrics_for(store: Store, run_ids: Sequence[int], names: Sequence[str] | None = None) -> pd.DataFrame:
    """run_id, step, name, value for several runs (optionally some metric names only)."""
    m = RunMetric.__table__
    ids = [int(r) for r in run_ids]
    if not ids:
        return pd.DataFrame(columns=["run_id", "step", "name", "value"])
    query = select(m.c.run_id, m.c.step, m.c.name, m.c.value).where(m.c.run_id.in_(ids)).order_by(m.c.run_id, m.c.step)
    if names:
        query = query.where(m.c.name.in_(list(names)))
    return _frame(store, query)


def metric_names(store: Store, run_ids: Sequence[int]) -> list[str]:
    m = RunMetric.__table__
    ids = [int(r) for r in run_ids]
    if not ids:
        return []
    with store.read() as conn:
        return sorted(conn.execute(select(m.c.name).where(m.c.run_id.in_(ids)).distinct()).scalars().all())


def rewards_for_refs(store: Store, run_id: int, negative_ids: Sequence[int],
                     instruction_ids: Sequence[int]) -> tuple[dict[int, float], dict[int, float]]:
    """RM rewards a score run stored: ({negative id: rm_neg}, {instruction id: rm_gold})."""
    n, d, s = Negative.__table__, ScoreDetail.__table__, SeamScore.__table__
    neg: dict[int, float] = {}
    gold: dict[int, float] = {}
    nids, iids = [int(x) for x in dict.fromkeys(negative_ids)], [int(x) for x in dict.fromkeys(instruction_ids)]
    with store.read() as conn:
        for a in range(0, len(nids), 900):
            q = (select(n.c.id, d.c.rm_neg).join(d, and_(d.c.instruction_id == n.c.instruction_id,
                                                         d.c.variant == n.c.variant, d.c.neg_index == n.c.neg_index))
                 .where(d.c.score_run_id == int(run_id), n.c.id.in_(nids[a:a + 900])))
            neg.update({int(k): v for k, v in conn.execute(q).all() if v is not None})
        for a in range(0, len(iids), 900):
            q = (select(s.c.instruction_id, func.max(s.c.rm_gold))
                 .where(s.c.score_run_id == int(run_id), s.c.instruction_id.in_(iids[a:a + 900]))
                 .group_by(s.c.instruction_id))
            gold.update({int(k): v for k, v in conn.execute(q).all() if v is not None})
    return neg, gold


def seams_for(store: Store, run_id: int, variant: str, instruction_ids: Sequence[int]) -> dict[int, float]:
    """{instruction id: SEAM} of one variant in a run, for the given instructions."""
    s = SeamScore.__table__
    ids = [int(x) for x in dict.fromkeys(instruction_ids)]
    out: dict[int, float] = {}
    with store.read() as conn:
        for a in range(0, len(ids), 900):
            out.update({int(k): float(v) for k, v in conn.execute(
                select(s.c.instruction_id, s.c.seam).where(s.c.score_run_id == int(run_id), s.c.variant == variant,
                                                           s.c.instruction_id.in_(ids[a:a + 900]))).all()})
    return out
