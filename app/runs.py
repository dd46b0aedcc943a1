"""Runs: results tables, comparisons with confidence intervals, training curves and lineage graphs.

Runs are generic store rows (kind, name, config, status, inputs, metrics), so this works for
whatever the filter-ppo / augment-ppo jobs write: an *arm* is ``config["arm"]`` (else the run's
name), a seed ``config["seed"]``. Error bars: a Student-t interval over the seeds of an arm, or,
for an arm with one run, the run's own ``<metric>/ci_low`` and ``<metric>/ci_high`` when it logs them.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from app import stats
from db import queries

PREFERRED_METRICS = ("eval/gold_score", "eval/rm_score", "eval/win_rate", "objective/scores", "objective/rlhf_reward")
# the training curve shown first: PPO's, then GRPO / RLOO's mean reward, then best-of-n's mean pick reward
CURVE_METRICS = ("objective/rlhf_reward", "objective/scores", "reward", "bon/pick_reward_mean", "loss/policy_avg", "loss")
TRAIN_HEADLINE = ("objective/scores", "reward", "bon/pick_reward_mean")
METHODS = {"ppo": "PPO", "grpo": "GRPO", "rloo": "RLOO", "bon": "best-of-n"}  # the experiments' trainers
SUFFIXES = ("/ci_low", "/ci_high", "/n")


def headline(names: list[str]) -> list[str]:
    """Metrics worth a column in the results table: evaluations (no CI bounds or counts) and the trainer's reward."""
    keep = [n for n in names if n.startswith("eval/") and not n.endswith(SUFFIXES)]
    return keep + [n for n in TRAIN_HEADLINE if n in names]


def label_file(folder) -> str | None:
    """The project's on-policy label (a world-v2 study's hidden/label.jsonl): it enables the oracle arm."""
    from seam.experiment.labels import project_label  # lazy: seam.experiment loads pandas/scipy; only this page needs it

    found = project_label(folder)
    return str(found) if found else None


def default_curve(names: list[str]) -> str | None:
    return next((m for m in CURVE_METRICS if m in names), default_metric(names))


def arm_of(row: dict[str, Any]) -> str:
    """The arm a run belongs to; runs of a method other than PPO carry its name, so arms of two methods
    are compared side by side instead of pooled."""
    cfg = row.get("config") or {}
    arm = str(cfg.get("arm") or row.get("name") or f"run {row['id']}")
    method = cfg.get("rl_method")  # written by the filter-ppo / augment-ppo jobs on each RL run
    return f"{arm} [{METHODS.get(method, method)}]" if method and method != "ppo" else arm


def results_table(runs: pd.DataFrame, last: pd.DataFrame) -> pd.DataFrame:
    """One row per run: id, kind, arm, seed, status, and each metric's last value."""
    base = pd.DataFrame({
        "id": runs["id"], "kind": runs["kind"], "arm": [arm_of(r) for r in runs.to_dict("records")],
        "seed": [(c or {}).get("seed") for c in runs["config"]], "status": runs["status"],
    })
    if len(last):
        wide = last.pivot_table(index="run_id", columns="name", values="value", aggfunc="last")
        base = base.merge(wide, left_on="id", right_index=True, how="left")
    return base


def default_metric(names: list[str]) -> str | None:
    for m in PREFERRED_METRICS:
        if m in names:
            return m
    plain = [n for n in names if not n.endswith(SUFFIXES)]
    return plain[0] if plain else None


def compare(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per arm: runs, mean of `metric`, CI low/high (over seeds, or the run's own logged CI)."""
    rows = []
    for arm, g in table.groupby("arm", sort=False):
        if metric not in g:
            continue
        vals = g[metric].dropna().astype(float).tolist()
        if not vals:
            continue
        ci = stats.mean_ci(vals)
        low, high = ci.low, ci.high
        if len(vals) == 1 and f"{metric}/ci_low" in g and f"{metric}/ci_high" in g:
            low, high = float(g[f"{metric}/ci_low"].iloc[0]), float(g[f"{metric}/ci_high"].iloc[0])
        rows.append({"arm": arm, "runs": len(vals), "mean": ci.estimate, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def compare_figure(cmp: pd.DataFrame, metric: str) -> go.Figure:
    has_ci = cmp["ci_low"].notna() & cmp["ci_high"].notna()
    fig = go.Figure(go.Bar(
        x=cmp["arm"], y=cmp["mean"],
        error_y=dict(type="data", symmetric=False, array=(cmp["ci_high"] - cmp["mean"]).where(has_ci, 0),
                     arrayminus=(cmp["mean"] - cmp["ci_low"]).where(has_ci, 0)),
        text=[f"n={n}" for n in cmp["runs"]], textposition="outside"))
    fig.update_layout(yaxis_title=f"{metric} (mean, 95% CI)", height=340, margin=dict(t=20, b=10))
    return fig


def curves_figure(metrics: pd.DataFrame, labels: dict[int, str], metric: str) -> go.Figure:
    m = metrics[metrics["name"] == metric].copy()
    m["run"] = m["run_id"].map(labels)
    fig = px.line(m, x="step", y="value", color="run", markers=len(m) < 60)
    fig.update_layout(yaxis_title=metric, height=340, margin=dict(t=20, b=10), legend_title="run")
    return fig


def _node(kind: str, ref: Any, label: str) -> tuple[str, str]:
    return f"{kind}_{ref}", label


def lineage_dot(store, run_id: int, max_depth: int = 6) -> str:  # noqa: ANN001
    """A Graphviz DOT graph of a run's inputs, following inputs that are runs themselves."""
    datasets = store.datasets().set_index("id")["name"].to_dict()
    models = store.models().set_index("id")["name"].to_dict()
    lines = ["digraph lineage {", "rankdir=LR;", 'node [shape=box, style="rounded,filled", fillcolor="#f4f6fb", '
             'fontname="Helvetica", fontsize=10];']
    seen: set[int] = set()

    def esc(s: str) -> str:
        return html.escape(str(s)).replace('"', "'")

    def visit(rid: int, depth: int) -> None:
        if rid in seen or depth > max_depth:
            return
        seen.add(rid)
        run = store.run(rid)
        lines.append(f'run_{rid} [label="{esc(run["kind"])} #{rid}\\n{esc(run.get("name") or "")}\\n{esc(run["status"])}", '
                     'fillcolor="#dbe7ff"];')
        for inp in run["inputs"]:
            kind, ref = inp["ref_kind"], inp.get("ref_id")
            if kind == "run" and ref is not None:
                visit(int(ref), depth + 1)
                node = f"run_{ref}"
            else:
                name = {"dataset": datasets, "model": models}.get(kind, {}).get(ref) if ref is not None else None
                label = f"{kind}" + (f" #{ref}" if ref is not None else "") + (f"\\n{esc(name)}" if name else "")
                if inp.get("path"):
                    label += f"\\n{esc(str(inp['path'])[-40:])}"
                if inp.get("content_hash"):
                    label += f"\\nsha {esc(inp['content_hash'][:12])}"
                node = f"in_{rid}_{abs(hash((kind, ref, inp.get('path'), inp.get('role')))) % 10**8}"
                lines.append(f'{node} [label="{label}"];')
            lines.append(f'{node} -> run_{rid} [label="{esc(inp["role"])}", fontsize=9];')

    visit(int(run_id), 0)
    lines.append("}")
    return "\n".join(lines)


def runs_frame(store) -> pd.DataFrame:  # noqa: ANN001
    return queries.runs_with_inputs(store)
