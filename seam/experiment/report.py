"""Experiment results as text and pictures: the Markdown table (`results_markdown`) and the
Plotly HTML + matplotlib PNG figures (`write_figures`), both written from the results payload the
runner builds. Plotly and matplotlib are imported only when a figure is drawn.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_output
from .config import SCORES


def format_number(v, digits: int = 3) -> str:
    """`v` with `digits` decimals (integers as they are); "-" for None and NaN."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    return f"{float(v):.{digits}f}"


def format_summary(summary: dict) -> str:
    """One line of an eval summary: `gold 0.512, rm 1.204, KL 0.031, 23.4 tokens`."""
    parts = []
    for k in ("gold", "rm"):
        if isinstance(summary.get(k), dict):
            parts.append(f"{k} {format_number(summary[k].get('mean'))}")
    if isinstance(summary.get("kl"), dict):
        parts.append(f"KL {format_number(summary['kl'].get('mean'))}")
    if isinstance(summary.get("response_tokens"), dict):
        parts.append(f"{format_number(summary['response_tokens'].get('mean'), 1)} tokens")
    return ", ".join(parts) or "no scores"


def format_p(v) -> str:
    """A p-value: three decimals, or scientific notation below 0.001; "-" for None and NaN."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.3f}" if v >= 0.001 else f"{v:.1e}"


def _interval(estimate, low, high) -> str:
    """`0.512 [0.431, 0.598]`; an estimate given as text is used as it is."""
    shown = estimate if isinstance(estimate, str) else format_number(estimate)
    return f"{shown} [{format_number(low)}, {format_number(high)}]"


def results_markdown(payload: dict) -> str:
    """The results as Markdown: the arms table, per-seed numbers, settings."""
    kind, ref = payload["kind"], payload["reference"]
    cfg = payload["config"]
    scores = list(cfg.get("eval", {}).get("judges") or SCORES)
    level = int(round(100 * cfg.get("level", 0.95)))
    lines = [f"# SEAM experiment: {kind}", ""]
    if not payload.get("complete"):
        lines += ["*Partial results: the experiment is still running (or was stopped).*", ""]
    lines += [f"Reference arm: `{ref}`. Seeds: {', '.join(map(str, payload['seeds']))}. "
              f"RL pool: {payload['rl_pool']} prompts. Eval: {payload['eval']['prompts']} prompts "
              f"({payload['eval']['source']}). Trainer: `{cfg.get('method') or 'ppo'}`.", ""]
    head = ["arm", "RL prompts"]
    for sc in scores:
        head += [f"{sc} (mean, {level}% CI)", f"Δ {sc} vs {ref} ({level}% CI)", f"win rate vs {ref}",
                 "p (prompts)", "p (seeds)"]
    head += ["KL", "tokens", "PPO objective/scores"]
    with_acc = any("rm_test_accuracy" in r for r in payload["arms"])
    if with_acc:
        head.append("retrained RM test accuracy")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    init = payload.get("initial")
    if init:
        cells = ["*starting policy (no RL)*", "-"]
        for sc in scores:
            s = init.get(sc) or {}
            cells += [_interval(s.get("mean"), s.get("ci_low"), s.get("ci_high")), "-", "-", "-", "-"]
        cells += ["-", format_number((init.get("response_tokens") or {}).get("mean"), 1), "-"]
        cells += ["-"] if with_acc else []
        lines.append("| " + " | ".join(cells) + " |")
    for r in payload["arms"]:
        cells = [f"`{r['arm']}`", format_number(r.get("n_train"))]
        for sc in scores:
            cells.append(_interval(r.get(sc), r.get(f"{sc}_ci_low"), r.get(f"{sc}_ci_high")))
            if r["arm"] == ref or f"{sc}_diff" not in r:
                cells += ["-", "-", "-", "-"]
            else:
                diff = f"{r[f'{sc}_diff']:+.3f}"
                cells += [_interval(diff, r.get(f"{sc}_diff_ci_low"), r.get(f"{sc}_diff_ci_high")),
                          format_number(r.get(f"{sc}_win_rate")), format_p(r.get(f"{sc}_p_prompts")),
                          format_p(r.get(f"{sc}_p_seeds"))]
        cells += [format_number(r.get("kl")), format_number(r.get("response_tokens"), 1),
                  format_number(r.get("ppo_objective_scores"))]
        if with_acc:
            cells.append(format_number(r.get("rm_test_accuracy")))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Scores: `gold` = the demo world's programmatic judge (0-1; correct answers score 0.6-1), `rm` = the "
              "input reward model's score (the same RM for every arm). CI: percentile bootstrap over prompts pooled "
              "across seeds. Δ and win rate: paired by prompt and seed against the reference (ties count half). "
              "p (prompts): Wilcoxon signed-rank over prompt pairs; p (seeds): paired "
              f"{cfg.get('test', 't')} test over per-seed means (needs 2+ seeds).", ""]
    lines += _seed_level_lines(payload, scores, level)
    if payload["per_seed"]:
        lines += ["Per seed:", "", "| arm | seed | RL prompts | " + " | ".join(scores) + " | KL | tokens | PPO steps |",
                  "|" + "---|" * (6 + len(scores))]
        for r in payload["per_seed"]:
            lines.append("| " + " | ".join([f"`{r['arm']}`", str(r["seed"]), format_number(r.get("n_train"))]
                                           + [format_number(r.get(sc)) for sc in scores]
                                           + [format_number(r.get("kl")), format_number(r.get("response_tokens"), 1),
                                              format_number(r.get("ppo_steps"))]) + " |")
        lines.append("")
    ppo = cfg.get("ppo") or {}
    ev = cfg.get("eval") or {}
    decoding = "greedy" if not ev.get("temperature") else f"temperature {ev.get('temperature')}"
    lines += [f"Settings: p = {cfg.get('p')}"
              + (f", variants {', '.join(cfg['variants'])}" if cfg.get("variants") else "")
              + "; PPO (overrides of `seam train ppo` defaults): "
              + (", ".join(f"{k}={v}" for k, v in ppo.items()) if ppo else "defaults")
              + (f"; {cfg['method']} (the PPO knobs mapped onto its settings; docs/experiments.md)"
                 + "".join(f", {k}={v}" for k, v in (cfg.get("trainer") or {}).items())
                 if cfg.get("method", "ppo") != "ppo" else "")
              + (f"; label file {cfg['label']}" if cfg.get("label") else "")
              + f"; dtype {cfg.get('dtype', 'auto')}; eval: {payload['eval']['prompts']} prompts, {decoding}, "
              f"at most {ev.get('max_new_tokens')} new tokens, judges {', '.join(scores)}"
              + (", KL to the starting policy" if ev.get("kl") else "") + ".", ""]
    if cfg.get("command"):
        lines += ["Command:", "", "```", cfg["command"], "```", ""]
    lines.append(f"Wall time so far: {payload['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


PAPER_GAIN = 0.045  # the paper's headline: dropping SEAM's lowest 20% improves RLHF by 4.5% (relative)


def _seed_level_lines(payload: dict, scores: list[str], level: int) -> list[str]:
    """The seed-level table: each arm against the reference and against `random`, with Student-t intervals
    over the per-seed means and the minimum detectable effect (MDE) at this run's seeds and prompts."""
    ref = payload["reference"]
    arms = [r for r in payload["arms"] if r["arm"] != ref]
    second = next((r["arm"] for r in payload["arms"] if r["arm"] == "random" and ref != "random"), None)
    if len(payload["seeds"]) < 2 or not any(r.get(f"{sc}_diff_seed_ci_low") is not None for r in arms
                                            for sc in scores):
        return []
    head = ["arm", "score", f"Δ vs `{ref}` (seed {level}% CI)", "p (seeds)", "MDE (seeds)", "MDE (prompts)"]
    if second:
        head += [f"Δ vs `{second}` (seed {level}% CI)", f"p vs `{second}` (seeds)"]
    lines = [f"Seed-level comparisons ({len(payload['seeds'])} seeds; Student-t intervals over the per-seed mean "
             "differences; MDE: the smallest true difference a two-sided 5% test detects with 80% power, at the "
             "spread of this comparison's per-seed differences (seeds) or of its prompt pairs (prompts)):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in arms:
        for sc in scores:
            if r.get(f"{sc}_diff") is None:
                continue
            cells = [f"`{r['arm']}`", sc,
                     _interval(f"{r[f'{sc}_diff']:+.3f}", r.get(f"{sc}_diff_seed_ci_low"), r.get(f"{sc}_diff_seed_ci_high")),
                     format_p(r.get(f"{sc}_p_seeds")), format_number(r.get(f"{sc}_mde_seeds")),
                     format_number(r.get(f"{sc}_mde_prompts"))]
            if second:
                d = r.get(f"{sc}_vs_{second}_diff")
                cells += ["-", "-"] if d is None or r["arm"] == second else [
                    _interval(f"{d:+.3f}", r.get(f"{sc}_vs_{second}_diff_seed_ci_low"),
                              r.get(f"{sc}_vs_{second}_diff_seed_ci_high")),
                    format_p(r.get(f"{sc}_vs_{second}_p_seeds"))]
            lines.append("| " + " | ".join(cells) + " |")
    full = next((r for r in payload["arms"] if r["arm"] == ref), {})
    if "gold" in scores and isinstance(full.get("gold"), (int, float)):
        mdes = [r.get("gold_mde_seeds") for r in arms if isinstance(r.get("gold_mde_seeds"), (int, float))]
        lines += ["", f"The paper's +{100 * PAPER_GAIN:.1f}% would be {PAPER_GAIN * full['gold']:+.3f} gold here "
                  f"(`{ref}` {full['gold']:.3f})" + (f"; this run's seed-level MDE is {_span(mdes)}"
                                                     if mdes else "") + "."]
    return lines + [""]


def _span(values: list[float]) -> str:
    lo, hi = format_number(min(values)), format_number(max(values))
    return lo if lo == hi else f"{lo} to {hi}"


def write_figures(kind: str, arms_rows: list[dict], per_seed: list[dict], histories: dict, fig_dir: Path,
                  reference: str, scores=SCORES, initial: dict | None = None) -> dict:
    """Plotly HTML + matplotlib PNG for: scores per arm (CI bars, seed dots), PPO curves, and the sweep."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    files: dict = {}
    if not arms_rows:
        return files
    scores = [s for s in scores if any(r.get(s) is not None for r in arms_rows)]
    if scores:
        files["fig_arms_html"], files["fig_arms_png"] = _fig_arms(arms_rows, per_seed, scores, fig_dir, initial)
    if histories:
        out = _fig_curves(histories, fig_dir)
        if out:
            files["fig_curves_html"], files["fig_curves_png"] = out
    if kind == "sweep" and scores:
        files["fig_sweep_html"], files["fig_sweep_png"] = _fig_sweep(arms_rows, scores[0], fig_dir, reference)
    return files


def _write_html(fig, path: Path) -> Path:
    with atomic_output(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs="directory", full_html=True)
    return path


def _save_png(mfig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(mfig)
    with atomic_output(path) as tmp:
        mfig.savefig(str(tmp), dpi=120, bbox_inches="tight")
    return path


def _err(r: dict, sc: str) -> tuple[float, float]:
    m = r.get(sc)
    lo, hi = r.get(f"{sc}_ci_low"), r.get(f"{sc}_ci_high")
    if m is None or lo is None or hi is None:
        return 0.0, 0.0
    return max(m - lo, 0.0), max(hi - m, 0.0)


def _fig_arms(arms_rows, per_seed, scores, fig_dir: Path, initial):
    """Per score: each arm's mean with its CI (diamond + whiskers) and the per-seed means (dots)."""
    import plotly.graph_objects as go
    from matplotlib.figure import Figure
    from plotly.subplots import make_subplots

    names = [r["arm"] for r in arms_rows]
    index = {n: i for i, n in enumerate(names)}
    fig = make_subplots(rows=1, cols=len(scores), subplot_titles=[f"{s} score (mean, 95% CI)" for s in scores])
    mfig = Figure(figsize=(max(4.5, 1.1 * len(names) + 1.5) * len(scores), 3.8))
    for j, sc in enumerate(scores, 1):
        means = [r.get(sc) for r in arms_rows]
        lows, highs = zip(*[_err(r, sc) for r in arms_rows])
        fig.add_trace(go.Scatter(x=names, y=means, mode="markers", name="mean, 95% CI", showlegend=j == 1,
                                 marker=dict(symbol="diamond", size=12, color="#4c78a8"),
                                 error_y=dict(type="data", symmetric=False, array=list(highs), arrayminus=list(lows))),
                      row=1, col=j)
        seeds = [r for r in per_seed if r.get(sc) is not None and r["arm"] in index]
        fig.add_trace(go.Scatter(x=[r["arm"] for r in seeds], y=[r[sc] for r in seeds], mode="markers",
                                 marker=dict(color="black", size=6), name="per seed", showlegend=j == 1,
                                 text=[f"seed {r['seed']}" for r in seeds]), row=1, col=j)
        ax = mfig.add_subplot(1, len(scores), j)
        pos = np.arange(len(names))
        ax.errorbar(pos, [m if m is not None else np.nan for m in means], yerr=[lows, highs], fmt="D", capsize=5,
                    color="#4c78a8", markersize=8, label="mean, 95% CI")
        ax.scatter([index[r["arm"]] + 0.12 for r in seeds], [r[sc] for r in seeds], color="black", s=14, zorder=3,
                   label="per seed")
        if initial and isinstance(initial.get(sc), dict) and initial[sc].get("mean") is not None:
            fig.add_hline(y=initial[sc]["mean"], line_dash="dot", annotation_text="starting policy", row=1, col=j)
            ax.axhline(initial[sc]["mean"], color="grey", linestyle=":", label="starting policy")
        ax.set_xticks(pos, names, rotation=30, ha="right")
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_title(f"{sc} score (mean, 95% CI)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if j == 1:
            ax.legend(fontsize=8)
    fig.update_layout(height=420, margin=dict(t=40, b=40))
    return _write_html(fig, fig_dir / "arms.html"), _save_png(mfig, fig_dir / "arms.png")


def _fig_curves(histories: dict, fig_dir: Path, metric: str = "objective/scores"):
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    by_arm: dict[str, list[pd.Series]] = {}
    for (arm, seed), hist in sorted(histories.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        pts = [(h["step"], h[metric]) for h in hist if h.get(metric) is not None]
        if pts:
            s = pd.Series([v for _, v in pts], index=[st for st, _ in pts]).groupby(level=0).last()
            by_arm.setdefault(arm, []).append(s)
    if not by_arm:
        return None
    fig = go.Figure()
    mfig = Figure(figsize=(6.5, 3.6))
    ax = mfig.add_subplot(1, 1, 1)
    for arm, series in by_arm.items():
        mean = pd.concat(series, axis=1).mean(axis=1)
        fig.add_trace(go.Scatter(x=mean.index.tolist(), y=mean.tolist(), mode="lines+markers", name=arm))
        ax.plot(mean.index, mean.values, marker="o", markersize=3, label=arm)
    fig.update_layout(xaxis_title="PPO update", yaxis_title=f"{metric} (mean over seeds)", height=400)
    ax.set_xlabel("PPO update")
    ax.set_ylabel(f"{metric} (mean over seeds)")
    ax.legend(fontsize=8)
    return _write_html(fig, fig_dir / "curves.html"), _save_png(mfig, fig_dir / "curves.png")


def _fig_sweep(arms_rows, score: str, fig_dir: Path, reference: str):
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    fig = go.Figure()
    mfig = Figure(figsize=(6.5, 3.6))
    ax = mfig.add_subplot(1, 1, 1)
    ref = next((r for r in arms_rows if r["arm"] == reference), None)
    methods = sorted({r["method"] for r in arms_rows if r["arm"] != reference})
    for m in methods:
        pts = sorted((r["p"], r.get(score), *_err(r, score)) for r in arms_rows
                     if r["method"] == m and r["arm"] != reference and r.get(score) is not None)
        if not pts:
            continue
        x, y, lo, hi = map(list, zip(*pts))
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=m,
                                 error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo)))
        ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=m)
    if ref is not None and ref.get(score) is not None:
        fig.add_hline(y=ref[score], line_dash="dash", annotation_text=f"{reference} (no removal)")
        ax.axhline(ref[score], color="grey", linestyle="--", label=f"{reference} (no removal)")
    fig.update_layout(xaxis_title="share of the RL set dropped", yaxis_title=f"{score} score (mean, 95% CI)", height=400)
    ax.set_xlabel("share of the RL set dropped")
    ax.set_ylabel(f"{score} score (mean, 95% CI)")
    ax.legend(fontsize=8)
    return _write_html(fig, fig_dir / "sweep.html"), _save_png(mfig, fig_dir / "sweep.png")
