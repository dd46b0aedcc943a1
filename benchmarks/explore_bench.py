"""Explore page latency at full scale: the table and one instruction's breakdown, as the page issues them.

Builds (or reuses) a store of N instructions x V variants x K negatives (default 100,000 x 3 x 30:
9M negatives and 9M per-negative score rows) with ``meta.category`` on every instruction, then times

  * one table view as the page computes it (the matching ids in SEAM order from a cached in-memory
    index of the dataset, then one page of 50 rows from the store) for: no filter, a category, a
    common word, a rare word, highest first, deep pages; cold and warm; and the same views done
    entirely in SQL (db.queries.explore_count + explore_rows) for reference;
  * the queries of one breakdown (instruction, its SEAM per variant, every negative with text and
    meta, the retrieved instructions of contrast negatives);
  * the whole page script (streamlit.testing AppTest, cached store handle, caches as in production)
    on first load, on a text-filter change and on a category change.

    nice python benchmarks/explore_bench.py --keep            # build /tmp/seam_explore_bench (minutes), keep it
    python benchmarks/explore_bench.py --reuse                # time again on the kept store
    python benchmarks/explore_bench.py --instructions 5000    # a quick look
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from db import open_store, queries  # noqa: E402
from jobs.kinds.synthetic import synthetic_frames  # noqa: E402

WORDS = np.array("the a model answer reward policy question because however data result value method error "
                 "python function returns list string number people time year way day thing world life hand "
                 "part child eye woman place work week case point government company system program".split())
CATEGORIES = ("arithmetic", "comparison", "counting", "facts", "sorting", "spelling", "unit_conversion")
RARE = "zyzzyva"  # planted in a few prompts: a text filter that must scan every prompt to fill a page


def texts(rng: np.random.Generator, n: int, n_words: int) -> list[str]:
    return [" ".join(row) for row in WORDS[rng.integers(0, len(WORDS), size=(n, n_words))]]


def build(store, n: int, variants: list[str], k: int, chunk: int, seed: int) -> int:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    ids = [f"q{i}" for i in range(n)]
    prompts = texts(rng, n, 30)
    for i in rng.choice(n, size=max(1, n // 5000), replace=False):
        prompts[i] = f"{prompts[i]} {RARE}"
    cats = rng.integers(0, len(CATEGORIES), n)
    df = pd.DataFrame({"id": ids, "prompt": prompts, "chosen": texts(rng, n, 60), "rejected": None,
                       "meta": [{"category": CATEGORIES[c]} for c in cats]})
    ds = store.import_instructions("bench", df)
    run = store.create_score_run(ds, variants, {"weighting": "paper", "aggregate": "sum"}, name="bench")
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        part = ids[start:start + chunk]
        details, scores = synthetic_frames(part, variants, k, seed)
        meta = [{"source_id": f"q{int(j)}", "similarity": round(float(s), 4)} if v == "contrast" else
                {"recipe": "greedy", "words_changed": 2} if v == "adv" else {"backend": "rules", "model": "rules"}
                for v, j, s in zip(details["variant"], rng.integers(0, n, len(details)), rng.uniform(0.8, 0.9, len(details)))]
        negatives = details[["id", "variant", "neg_index"]].assign(text=texts(rng, len(details), 25), meta=meta)
        store.import_negatives(ds, negatives)
        store.save_score_results(run, details, scores)
        done = min(start + chunk, n)
        sys.stderr.write(f"\r  built {done:,}/{n:,} instructions ({time.perf_counter() - t0:.0f} s)")
    sys.stderr.write("\n")
    store.set_score_run_status(run, "done")
    return run


def pct(values: list[float]) -> dict:
    ms = np.asarray(values) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "max_ms": round(float(ms.max()), 2), "n": len(ms)}


CASES = {
    "no filter": dict(),
    "category": dict(category="facts"),
    "common word": dict(text="model"),
    f"rare word ({RARE})": dict(text=RARE),
    "highest first": dict(descending=True),
}


def time_sql(store, run: int, variants: list[str], n: int, reps: int) -> dict:  # noqa: ANN001
    """db.queries.explore_count + explore_rows: the filters in SQL (no in-memory index)."""
    out = {}
    for name, kw in {**CASES, "deep page (offset n/2)": dict(offset=n // 2)}.items():
        times = []
        for r in range(reps):
            variant = variants[r % len(variants)]
            t = time.perf_counter()
            total = queries.explore_count(store, run, variant, text=kw.get("text"), category=kw.get("category"))
            rows = queries.explore_rows(store, run, variant, limit=50, **kw)
            times.append(time.perf_counter() - t)
            assert total > 0 and len(rows) > 0, name
        out[name] = pct(times)
    return out


def time_page_path(store, db: str, run: int, dataset_id: int, variants: list[str], n: int, reps: int) -> dict:  # noqa: ANN001
    """What the Explore page runs for its table: app.explore.filtered_ids (cached) + one page of rows."""
    from app import explore

    def view(variant: str, kw: dict, page: int = 0) -> int:
        ids = explore.filtered_ids(db, run, dataset_id, variant, kw.get("text"), kw.get("category"),
                                   kw.get("descending", False))
        rows = explore.page_rows(db, run, variant, ids[page * 50:(page + 1) * 50])
        assert len(ids) > 0 and len(rows) > 0
        return len(ids)

    out: dict = {}
    cold, cold_filter, build = [], [], []
    for r in range(max(3, reps // 4)):
        explore._order.clear()
        explore.filtered_ids.clear()
        t = time.perf_counter()
        view(variants[r % len(variants)], {})
        cold.append(time.perf_counter() - t)
        explore.INDEXES.clear()
        explore.filtered_ids.clear()
        t = time.perf_counter()
        explore.INDEXES.build(store, db, dataset_id)
        build.append(time.perf_counter() - t)
        explore.INDEXES.clear()
        explore.filtered_ids.clear()
        explore.INDEXES.warm(store, db, dataset_id)  # what the page does when it opens
        t = time.perf_counter()
        view(variants[r % len(variants)], {"text": "model"})  # a filter typed at once: waits for the build
        cold_filter.append(time.perf_counter() - t)
    out["first view, cold (SEAM order + 50 rows)"] = pct(cold)
    out["building the dataset index (in the background from page load)"] = pct(build)
    out["a filter typed right after page load (waits for the index)"] = pct(cold_filter)
    for name, kw in CASES.items():
        times = []
        for r in range(reps):
            explore.filtered_ids.clear()  # a new filter: only the dataset index and the SEAM order are cached
            t = time.perf_counter()
            view(variants[r % len(variants)], kw)
            times.append(time.perf_counter() - t)
        out[f"new filter: {name}"] = pct(times)
    times = []
    for r in range(reps):
        t = time.perf_counter()
        view(variants[0], {}, page=(n // 100) + r)
        times.append(time.perf_counter() - t)
    out["another page of the same view (deep pages)"] = pct(times)
    return out


def time_breakdown(store, run: int, dataset_id: int, reps: int, seed: int) -> dict:  # noqa: ANN001
    rng = np.random.default_rng(seed + 1)
    ids = list(store.instruction_ids(dataset_id).values())
    times = []
    for inst in rng.choice(ids, size=reps, replace=False):
        t = time.perf_counter()
        queries.instruction(store, int(inst))
        queries.instruction_seams(store, run, int(inst))
        rows = queries.breakdown(store, run, int(inst))
        sources = [m["source_id"] for m in rows["meta"] if m and "source_id" in m]
        queries.instructions_by_ext_id(store, dataset_id, sources[:1])
        times.append(time.perf_counter() - t)
        assert len(rows) > 0 and rows["text"].notna().all()
    return pct(times)


def time_page(folder: Path, reps: int) -> dict:
    from streamlit.testing.v1 import AppTest

    import streamlit as st

    os.environ["SEAM_DB"] = str(folder)
    from app import explore

    st.cache_data.clear()
    st.cache_resource.clear()
    explore.INDEXES.clear()
    at = AppTest.from_file(str(ROOT / "pages" / "explore.py"), default_timeout=120)
    t = time.perf_counter()
    at.run()
    first = time.perf_counter() - t
    assert not at.exception, at.exception
    words = list(WORDS[:reps])
    filt, cat = [], []
    for w in words:  # a new word each time: the count is never a cache hit
        t = time.perf_counter()
        at.text_input(key="explore-text").input(str(w)).run()
        filt.append(time.perf_counter() - t)
        assert not at.exception and at.subheader, "no breakdown after a text filter"
    at.text_input(key="explore-text").input("").run()
    for r in range(reps):
        t = time.perf_counter()
        at.selectbox(key="explore-category").set_value(CATEGORIES[r % len(CATEGORIES)]).run()
        cat.append(time.perf_counter() - t)
    return {"first load, cold caches (ms)": round(first * 1000, 1), "text filter change": pct(filt),
            "category change": pct(cat)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instructions", type=int, default=100_000)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--negatives", type=int, default=30)
    parser.add_argument("--chunk", type=int, default=2_000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--db", default="/tmp/seam_explore_bench", help="folder of the benchmark store")
    parser.add_argument("--reuse", action="store_true", help="time an existing --db instead of building it")
    parser.add_argument("--keep", action="store_true", help="keep the store afterwards")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    variants = ["contrast", "llm", "adv", "extra1", "extra2"][: args.variants]
    folder = Path(args.db)
    if not args.reuse and folder.exists():
        shutil.rmtree(folder)
    store = open_store(folder)
    try:
        if args.reuse:
            run = int(queries.score_runs(store).iloc[0]["id"])
        else:
            run = build(store, args.instructions, variants, args.negatives, args.chunk, args.seed)
        dataset_id = int(store.score_run(run)["dataset_id"])
        n = len(store.instruction_ids(dataset_id))
        queries.explore_rows(store, run, variants[0])  # a dashboard that is already open: warm page cache
        result = {
            "instructions": n, "variants": variants, "negatives_per_variant": args.negatives,
            "db_bytes": sum(p.stat().st_size for p in folder.glob("seam.db*")),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
            "table, as the page runs it": time_page_path(store, str(folder), run, dataset_id, variants, n, args.reps),
            "table in SQL only (db.queries.explore_count + explore_rows)": time_sql(store, run, variants, n, args.reps),
            "breakdown queries": time_breakdown(store, run, dataset_id, args.reps, args.seed),
        }
    finally:
        store.close()
    result["page script (AppTest)"] = time_page(folder, args.reps)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if not args.keep and not args.reuse:
        shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
