"""Contrast search: the IVF index (faiss) against the exact search, side by side.

For each corpus size and data set: build the IVF index (seeded), run the contrast band search
(band 0.8-0.9, k=30, each query's own row excluded, responses de-duplicated) for ``--queries`` queries drawn from the corpus
with the index (nprobe calibrated against the exact search, as the builder does), then the exact
search on a subsample of the same queries (its queries/s, and the reference for recall: the share
of the exact results the index also returns). Reports build time, calibration, queries/s, recall,
memory, and the number of queries above which the index pays for its build.

Data sets (seeded numpy generators; 384-d float32 unit vectors, like all-MiniLM-L6-v2; 1M rows are
1.5 GB):
  clustered  100 rows per random centre, spread 0.5 (benchmarks/negatives_bench.py's vectors): about
             50 rows per query in the band; what the IVF lists capture best.
  planted    groups of 1-8 rows around uniform random centres (cosines ~0.77-0.92 inside a group, ~0
             outside): no structure beyond the groups, so the lists cut through them; the hard case.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/search_bench.py                     # 1M rows, both sets
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/search_bench.py --rows 100000,200000,500000,1000000 \
        --datasets planted --json out.json

OMP_WAIT_POLICY=PASSIVE keeps torch's idle OpenMP threads (the exact search) from spinning against
faiss's. Run on a quiet machine: both searches use every core.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BAND, K = (0.8, 0.9), 30


def planted(rows: int, d: int = 384, seed: int = 0) -> np.ndarray:
    """Groups of 1-8 unit vectors around uniform random centres (tests/test_search_ivf.py's data)."""
    rng = np.random.default_rng(seed)
    out = np.empty((rows, d), dtype=np.float32)
    a = 0
    while a < rows:  # in chunks of ~90k rows: float32 throughout
        sizes = rng.integers(1, 9, 20_000)
        n = min(rows - a, int(sizes.sum()))
        group = np.repeat(np.arange(len(sizes)), sizes)[:n]
        centres = rng.standard_normal((len(sizes), d), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        spread = rng.uniform(0.3, 0.55, len(sizes)).astype(np.float32)
        x = centres[group] + (spread[group, None] / np.sqrt(d)) * rng.standard_normal((n, d), dtype=np.float32)
        out[a:a + n] = x / np.linalg.norm(x, axis=1, keepdims=True)
        a += n
    return out


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench(dataset: str, rows: int, queries: int, exact_queries: int | None, seed: int = 0) -> dict:
    from negatives_bench import clustered_unit_vectors
    from seam.negatives import ivf
    from seam.negatives.search import Exclusions, band_search, ivf_band_search

    c = clustered_unit_vectors(rows, seed=rows) if dataset == "clustered" else planted(rows, seed=rows)
    n = min(queries, rows)
    q = c[:n]  # the rows are in random order: the first n are a random sample
    # as the builder: each query's own row excluded, and responses de-duplicated (here all distinct, so
    # nothing is dropped, but both searches pay for the check)
    dedup = np.random.default_rng(seed).permutation(rows).astype(np.int64)
    ex = Exclusions(pairs=[(np.arange(n), np.arange(rows))], names=["self"], dedup=dedup)
    rss0 = rss_mb()
    t = time.perf_counter()
    index = ivf.IVFIndex.build(c, seed=seed)
    build = time.perf_counter() - t
    rss1 = rss_mb()
    t = time.perf_counter()
    res = ivf_band_search(q, c, *BAND, K, ex, index=index, seed=seed)
    ivf_total = time.perf_counter() - t
    m = res.method
    cal = m.get("calibration", {})
    search_s = m["search_seconds"]
    # the exact search on a subsample of the same queries: its speed, and the reference for recall
    ne = min(n, exact_queries or max(1000, int(4e8 // rows)))
    sub = np.linspace(0, n - 1, ne).astype(np.int64)
    band_search(q[:64], c, *BAND, K)  # warm-up
    t = time.perf_counter()
    ref = band_search(q[sub], c, *BAND, K, Exclusions(pairs=[(sub, np.arange(rows))], names=["self"], dedup=dedup))
    exact_s = time.perf_counter() - t
    hits = sum(len(set(e[e >= 0]) & set(a[a >= 0])) for e, a in zip(ref.index, res.index[sub]))
    pairs = int((ref.index >= 0).sum())
    exact_qps, ivf_qps = ne / exact_s, n / search_s
    fixed = build + cal.get("seconds", 0.0)
    per_query_gain = 1 / exact_qps - 1 / ivf_qps
    return {
        "dataset": dataset, "rows": rows, "queries": n, "nlist": index.nlist, "nprobe": m.get("nprobe"),
        "train_seconds": round(index.train_seconds, 1), "add_seconds": round(index.add_seconds, 1),
        "build_seconds": round(build, 1), "calibration_seconds": cal.get("seconds"),
        "calibration": {key: cal.get(key) for key in ("tried", "pairs", "margin")},
        "ivf_search_seconds": round(search_s, 2), "ivf_queries_per_s": round(ivf_qps, 1),
        "ivf_total_seconds": round(ivf_total + build, 1), "escalated": m.get("escalated"),
        "exact_queries": ne, "exact_seconds": round(exact_s, 2), "exact_queries_per_s": round(exact_qps, 1),
        "speedup_search": round(ivf_qps / exact_qps, 1),
        "recall": round(hits / pairs, 4) if pairs else None, "recall_pairs": pairs,
        "index_mb": round(index.code_bytes / 2**20, 1), "rss_growth_build_mb": round(rss1 - rss0, 1),
        "corpus_mb": round(c.nbytes / 2**20, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "break_even_queries": int(fixed / per_query_gain) if per_query_gain > 0 else None,
        "exact_seconds_all_queries_est": round(n / exact_qps, 1),
    }


def table(results: list[dict]) -> str:
    head = ("| data | corpus rows | nlist / nprobe | build s (train + add) | calibration s | IVF queries/s | "
            "exact queries/s | speed-up | recall vs exact | index MB | break-even queries |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        lines.append(f"| {r['dataset']} | {r['rows']:,} | {r['nlist']} / {r['nprobe']} | {r['build_seconds']} "
                     f"({r['train_seconds']} + {r['add_seconds']}) | {r['calibration_seconds']} | "
                     f"{r['ivf_queries_per_s']:,.0f} | {r['exact_queries_per_s']:,.1f} | {r['speedup_search']}x | "
                     f"{r['recall']} ({r['recall_pairs']:,} pairs) | {r['index_mb']} | {r['break_even_queries']:,} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="1000000", help="comma-separated corpus sizes")
    ap.add_argument("--datasets", default="clustered,planted")
    ap.add_argument("--queries", type=int, default=20_000, help="queries through the IVF index")
    ap.add_argument("--exact-queries", type=int, default=None,
                    help="queries through the exact search (default: 1000, more below 400k rows)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    results = []
    for dataset in args.datasets.split(","):
        for rows in map(int, args.rows.split(",")):
            r = bench(dataset, rows, args.queries, args.exact_queries)
            print(json.dumps(r), flush=True)
            results.append(r)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
