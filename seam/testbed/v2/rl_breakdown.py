"""Where did RL move the policy? An experiment's per-prompt evaluations split by the world's hidden cells.

A filter experiment on a world-v2 study (`seam experiment filter --project D --label D/hidden/label.jsonl`)
scores every arm on D/data/eval.jsonl; this groups those scores by the hidden assignment of each eval
prompt's skill (RM blind or covered x policy flaw-prone or not, from D/hidden/truth.json) and reports,
per arm and cell, the gold and RM scores with Student-t 95% intervals over seeds and the change from
the starting policy. It reads the hidden truth, so it is an analysis of a finished experiment, never an
input to SEAM or to an arm.

    python -m seam.testbed.v2.rl_breakdown --study D --experiment E [--out E/breakdown.md]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ...data import read_table
from ...errors import SeamError
from ...io import write_text
from ...train.stats import mean_t_ci, paired_t_ci

CELLS = ("blind & prone", "blind only", "prone only", "neither")
_EVAL = re.compile(r"^(?P<arm>.+)\.s(?P<seed>\d+)\.jsonl$")


def _cells(study: Path) -> pd.Series:
    """Eval prompt id -> hidden cell."""
    truth_file, eval_file = study / "hidden" / "truth.json", study / "data" / "eval.jsonl"
    for f in (truth_file, eval_file):
        if not f.is_file():
            raise SeamError(f"--study {study}: no {f.relative_to(study)}; point at a world-v2 study folder")
    truth = json.loads(truth_file.read_text(encoding="utf-8"))
    blind, prone = set(truth["blind"]), set(truth["prone"])
    ev = read_table(eval_file)
    skill = [m.get("skill") for m in ev["meta"]]
    cell = [CELLS[0] if s in blind and s in prone else CELLS[1] if s in blind else CELLS[2] if s in prone else CELLS[3]
            for s in skill]
    return pd.Series(cell, index=ev["id"].astype(str))


def breakdown(study: str | Path, experiment: str | Path) -> pd.DataFrame:
    """One row per (arm, cell): prompts, seeds, gold and rm means over seeds with t intervals, and the
    change in gold from the starting policy (paired by seed: the starting policy is one evaluation)."""
    study, exp = Path(study), Path(experiment)
    evals = exp / "evals"
    if not evals.is_dir():
        raise SeamError(f"--experiment {exp}: no evals/ folder; point at a finished `seam experiment` output folder")
    cells = _cells(study)
    per_seed = []
    for f in sorted(evals.glob("*.jsonl")):
        m = _EVAL.match(f.name)
        arm, seed = (m["arm"], int(m["seed"])) if m else (f.stem, -1) if f.stem == "initial" else (None, None)
        if arm is None:
            continue
        rows = read_table(f)
        rows["cell"] = rows["id"].astype(str).map(cells)
        g = rows.dropna(subset=["cell"]).groupby("cell")
        for cell, part in g:
            per_seed.append({"arm": arm, "seed": seed, "cell": cell, "n": len(part),
                             "gold": float(part["score_gold"].mean()), "rm": float(part["score_rm"].mean())})
    if not per_seed:
        raise SeamError(f"--experiment {exp}: no evaluation of an eval prompt of {study}")
    df = pd.DataFrame(per_seed)
    start = df[df["arm"] == "initial"].set_index("cell")["gold"]
    out = []
    for (arm, cell), part in df[df["arm"] != "initial"].groupby(["arm", "cell"], sort=False):
        gold = part["gold"].to_numpy()
        base = np.full(len(gold), start.get(cell, np.nan))
        d = paired_t_ci(gold, base)
        ci = mean_t_ci(gold)
        out.append({"arm": arm, "cell": cell, "prompts": int(part["n"].iloc[0]), "seeds": len(part),
                    "gold": ci.estimate, "gold_ci_low": ci.low, "gold_ci_high": ci.high,
                    "gold_vs_start": d.estimate, "gold_vs_start_ci_low": d.low, "gold_vs_start_ci_high": d.high,
                    "rm": float(part["rm"].mean()), "start_gold": float(start.get(cell, np.nan))})
    res = pd.DataFrame(out)
    manifest = exp / "experiment.json"  # the experiment's own arm order when it is there
    arms = json.loads(manifest.read_text(encoding="utf-8"))["config"].get("arms") if manifest.is_file() else None
    arms = [a for a in (arms or []) if a in set(res["arm"])] + sorted(set(res["arm"]) - set(arms or []))
    rank = {**{c: i for i, c in enumerate(CELLS)}, **{a: i for i, a in enumerate(arms)}}
    return res.sort_values(["cell", "arm"], key=lambda col: col.map(rank)).reset_index(drop=True)


def markdown(df: pd.DataFrame) -> str:
    """The breakdown as a Markdown table, one block of rows per hidden cell."""
    lines = ["| cell | arm | prompts | seeds | gold (95% t CI over seeds) | Δ gold vs starting policy | rm |",
             "|---|---|---|---|---|---|---|"]
    for r in df.to_dict("records"):
        lines.append(f"| {r['cell']} | `{r['arm']}` | {r['prompts']} | {r['seeds']} | {r['gold']:.3f} "
                     f"[{r['gold_ci_low']:.3f}, {r['gold_ci_high']:.3f}] | {r['gold_vs_start']:+.3f} "
                     f"[{r['gold_vs_start_ci_low']:+.3f}, {r['gold_vs_start_ci_high']:+.3f}] | {r['rm']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seam.testbed.v2.rl_breakdown", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", required=True, help="the world-v2 study folder (hidden/truth.json, data/eval.jsonl)")
    ap.add_argument("--experiment", required=True, help="the filter experiment's output folder (evals/)")
    ap.add_argument("--out", help="write the table here as well (Markdown); never one of the inputs")
    args = ap.parse_args(argv)
    table = markdown(breakdown(args.study, args.experiment))
    if args.out:
        write_text(args.out, table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    from .measure import run_main

    run_main(main)
