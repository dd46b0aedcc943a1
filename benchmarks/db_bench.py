"""Store benchmark: ingest rate and explorer query latency at full scale.

Builds a SQLite store with N instructions x V variants x K negatives (default 100,000 x 3 x 30
= 9M per-negative rows, plus 9M negative texts) through the public `Store` calls, then times the
two explorer queries the dashboard runs:
  * lowest 100 by SEAM for a variant in a score run, with the instruction prompt joined;
  * one instruction's breakdown: all its negatives across variants, numbers and text.

    nice python benchmarks/db_bench.py                      # full size, db under /tmp (several minutes)
    python benchmarks/db_bench.py --instructions 2000       # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db import open_store  # noqa: E402
from jobs.kinds.synthetic import synthetic_frames  # noqa: E402

WORDS = np.array("the a model answer reward policy question because however data result value method error "
                 "python function returns list string number people time year way day thing world life hand "
                 "part child eye woman place work week case point government company system program".split())


def _texts(rng: np.random.Generator, n: int, n_words: int) -> list[str]:
    picks = WORDS[rng.integers(0, len(WORDS), size=(n, n_words))]
    return [" ".join(row) for row in picks]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def build(store, n_inst: int, variants: list[str], k: int, chunk: int, seed: int) -> tuple[int, dict]:
    rng = np.random.default_rng(seed)
    ids = [f"q{i}" for i in range(n_inst)]
    timings: dict = {}

    t = time.perf_counter()
    df = pd.DataFrame({"id": ids, "prompt": _texts(rng, n_inst, 30), "chosen": _texts(rng, n_inst, 60),
                       "rejected": None, "meta": None})
    ds = store.import_instructions("bench", df)
    timings["instructions"] = {"rows": n_inst, "seconds": time.perf_counter() - t}
    del df

    run = store.create_score_run(ds, variants, {"weighting": "paper", "aggregate": "sum"})
    neg_rows = det_rows = 0
    neg_s = det_s = 0.0
    for start in range(0, n_inst, chunk):
        part = ids[start:start + chunk]
        details, scores = synthetic_frames(part, variants, k, seed)
        negatives = details[["id", "variant", "neg_index"]].assign(text=_texts(rng, len(details), 25))
        t = time.perf_counter()
        neg_rows += store.import_negatives(ds, negatives)
        neg_s += time.perf_counter() - t
        t = time.perf_counter()
        n_det, _ = store.save_score_results(run, details, scores)
        det_s += time.perf_counter() - t
        det_rows += n_det
        done = min(start + chunk, n_inst)
        sys.stderr.write(f"\r  built {done:,}/{n_inst:,} instructions "
                         f"({det_rows / max(det_s, 1e-9):,.0f} score rows/s, {neg_rows / max(neg_s, 1e-9):,.0f} negatives/s)")
    sys.stderr.write("\n")
    timings["negatives"] = {"rows": neg_rows, "seconds": neg_s}
    timings["score_details"] = {"rows": det_rows, "seconds": det_s, "note": "includes the per-(instruction, variant) SEAM rows"}
    return run, timings


def time_queries(store, run: int, variants: list[str], n_inst: int, reps: int, seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    inst_ids = list(store.instruction_ids(store.score_run(run)["dataset_id"]).values())
    out = {}

    lowest = []
    store.lowest_seam(run, variants[0], 100)  # warm the page cache like a dashboard already open
    for i in range(reps):
        t = time.perf_counter()
        df = store.lowest_seam(run, variants[i % len(variants)], limit=100)
        lowest.append(time.perf_counter() - t)
        assert len(df) == min(100, n_inst)
    out["lowest_100_by_seam"] = lowest

    breakdown = []
    picks = rng.choice(inst_ids, size=reps, replace=False if len(inst_ids) >= reps else True)
    for inst in picks:
        t = time.perf_counter()
        df = store.instruction_breakdown(run, int(inst))
        breakdown.append(time.perf_counter() - t)
        assert len(df) > 0 and df["text"].notna().all()
    out["instruction_breakdown"] = breakdown
    return out


def query_plans(store, run: int, variant: str, inst: int) -> dict:
    plans = {}
    with store.read() as conn:
        for name, sql, params in [
            ("lowest", "SELECT s.instruction_id, i.ext_id, i.prompt, s.seam FROM seam_scores s JOIN instructions i "
                       "ON i.id = s.instruction_id WHERE s.score_run_id = ? AND s.variant = ? ORDER BY s.seam, "
                       "s.instruction_id LIMIT 100", (run, variant)),
            ("breakdown", "SELECT d.*, n.text FROM score_details d LEFT JOIN negatives n ON n.instruction_id = "
                          "d.instruction_id AND n.variant = d.variant AND n.neg_index = d.neg_index WHERE "
                          "d.instruction_id = ? AND d.score_run_id = ? ORDER BY d.variant, d.neg_index", (inst, run)),
        ]:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            plans[name] = [r[-1] for r in rows]
    return plans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instructions", type=int, default=100_000)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--negatives", type=int, default=30, help="negatives per (instruction, variant)")
    parser.add_argument("--chunk", type=int, default=2_000, help="instructions per ingest call")
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--db", default="/tmp/seam_db_bench", help="folder for the benchmark store (replaced)")
    parser.add_argument("--reuse", action="store_true", help="time queries on an existing --db instead of rebuilding")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    variants = ["contrast", "llm", "adv", "extra1", "extra2"][: args.variants]
    folder = Path(args.db)
    if not args.reuse and folder.exists():
        shutil.rmtree(folder)
    store = open_store(folder)
    total = args.instructions * args.variants * args.negatives
    print(f"store: {folder / 'seam.db'}; {args.instructions:,} instructions x {args.variants} variants x "
          f"{args.negatives} negatives = {total:,} per-negative rows")
    if args.reuse:
        run, timings = int(store.score_run(1)["id"]), {}
    else:
        t = time.perf_counter()
        run, timings = build(store, args.instructions, variants, args.negatives, args.chunk, args.seed)
        timings["build_total_s"] = time.perf_counter() - t
    with store.write() as conn:
        conn.exec_driver_sql("ANALYZE")
    size_gb = sum(p.stat().st_size for p in folder.glob("seam.db*")) / 1e9
    queries = time_queries(store, run, variants, args.instructions, args.reps, args.seed)
    plans = query_plans(store, run, variants[0], 1)
    store.close()

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"SQLite file {size_gb:.2f} GB")
    for name in ("instructions", "negatives", "score_details"):
        if name in timings:
            t = timings[name]
            print(f"ingest {name:14s} {t['rows']:>11,} rows in {t['seconds']:7.1f} s = {t['rows'] / t['seconds']:>9,.0f} rows/s")
    print(f"\n| query ({args.reps} reps) | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|")
    for name, values in queries.items():
        print(f"| {name} | {_pct(values, 50):.2f} | {_pct(values, 95):.2f} | {max(values) * 1000:.2f} |")
    for name, plan in plans.items():
        print(f"plan {name}: {' / '.join(plan)}")
    cmd = "nice python benchmarks/db_bench.py" + "".join(
        f" --{k} {v}" for k, v in [("instructions", args.instructions), ("variants", args.variants),
                                   ("negatives", args.negatives)] if v != parser.get_default(k))
    print(f"\nreproduce: {cmd}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "config": vars(args), "ingest": timings, "db_gb": size_gb, "plans": plans,
            "queries_ms": {k: {"p50": _pct(v, 50), "p95": _pct(v, 95), "max": max(v) * 1000} for k, v in queries.items()},
        }, indent=1))
    if not args.keep and not args.reuse:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
