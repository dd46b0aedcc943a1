"""A small, complete project built through the store API: the dashboard's test and screenshot fixture.

    from app.sample_project import build_sample_project
    info = build_sample_project("/tmp/proj")       # 28 instructions x 3 variants x 3 negatives
    # seam serve --db /tmp/proj

It holds tiny random PM/RM checkpoints (seam.models.tiny), an RL set from the demo world
(seam.testbed, with meta.category), three negative variants with the meta each real builder
writes (contrast: source_id and similarity; llm: backend and model; adv: recipe and words
changed), a score run filled by the real `score` job through the worker, and a few annotations by
two annotators. The numbers are real outputs of random tiny models: useful to exercise every page,
not to read anything into. Pages never import this module.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class SampleProject:
    folder: Path
    dataset_id: int
    pm_model_id: int
    rm_model_id: int
    score_run_id: int
    variants: tuple[str, ...]
    n_instructions: int


def _bow_cosine(a: str, b: str) -> float:
    ca, cb = Counter(a.lower().split()), Counter(b.lower().split())
    dot = sum(ca[w] * cb[w] for w in ca)
    return dot / math.sqrt(sum(v * v for v in ca.values()) * sum(v * v for v in cb.values()) or 1.0)


def _contrast_rows(rows: list[dict], k: int) -> list[dict]:
    """Golden answers of the most similar other instructions (bag-of-words cosine), as the contrast builder does."""
    out = []
    for r in rows:
        scored = sorted(((_bow_cosine(r["prompt"], o["prompt"]), o) for o in rows if o["id"] != r["id"]),
                        key=lambda x: (-x[0], x[1]["id"]))
        for rank, (sim, o) in enumerate(scored[:k]):
            out.append({"id": r["id"], "variant": "contrast", "text": o["chosen"],
                        "meta": {"source_id": o["id"], "similarity": round(sim, 4), "rank": rank + 1}})
    return out


def _adv_rows(tasks, k: int, seed: int) -> list[dict]:
    """Word edits of the golden answer (swaps and deletions), with the adv builder's meta."""
    rng = np.random.default_rng(seed)
    out = []
    for t in tasks:
        words = t.golden.split()
        seen = set()
        for rank in range(k):
            w = list(words)
            changed = 0
            for _ in range(1 + rank % 2):
                j = int(rng.integers(0, len(w)))
                if rng.random() < 0.5 and len(w) > 3:
                    del w[j]
                else:
                    j2 = min(j + 1, len(w) - 1)
                    w[j], w[j2] = w[j2], w[j]
                changed += 1
            text = " ".join(w)
            if text == t.golden or text in seen:
                continue
            seen.add(text)
            out.append({"id": t.id, "variant": "adv", "text": text,
                        "meta": {"recipe": "char", "start": "gold", "rank": rank + 1, "words_changed": changed}})
    return out


LLM_KINDS = ("wrong_value", "hedge", "verbose_padding", "irrelevant")


def build_sample_project(folder: str | Path, *, n_tasks: int = 28, k: int = 3, seed: int = 0,
                         annotations: bool = True, quiet: bool = True) -> SampleProject:
    """Build the project in `folder` (its store is ``folder/seam.db``; models under ``folder/models``)."""
    from db import enqueue_job, open_store
    from db.worker import Worker
    from seam.models.tiny import build_tiny_models
    from seam.testbed import WorldConfig, generate_tasks, instructions_rows, negatives_rows

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pm_dir, rm_dir = build_tiny_models(folder / "models", seed=seed)
    store = open_store(folder)
    try:
        pm = store.register_model("pm", pm_dir, name="tiny-pm")
        rm = store.register_model("rm", rm_dir, name="tiny-rm")
        tasks = generate_tasks(WorldConfig(seed=seed, n_tasks=n_tasks))
        rows = instructions_rows(tasks)
        ds = store.import_instructions("demo-rl", pd.DataFrame(rows), source_path="seam.testbed")
        llm = negatives_rows(tasks, kinds=LLM_KINDS[:k], seed=seed, variant="llm")
        for r in llm:
            r["meta"] = {"backend": "rules", "model": "rules", "kinds": [r["meta"]["corruption"]]}
        negs = pd.DataFrame(_contrast_rows(rows, k) + llm + _adv_rows(tasks, k, seed))
        store.import_negatives(ds, negs)
        variants = ("adv", "contrast", "llm")
        run = store.create_score_run(ds, list(variants), {"template": "stackllama", "weighting": "paper",
                                                          "aggregate": "sum", "device": "cpu"},
                                     pm_model_id=pm, rm_model_id=rm, name="tiny demo")
        enqueue_job(store, "score", {"score_run_id": run, "chunk_size": 64})
        Worker(store, echo=not quiet).run(once=True)
        if store.score_run(run)["status"] != "done":
            from db import list_jobs

            raise RuntimeError(f"sample score job did not finish: {list_jobs(store).iloc[0].to_dict()}")
        if annotations:
            _annotate(store, run)
        return SampleProject(folder, ds, pm, rm, run, variants, len(rows))
    finally:
        store.close()


def _annotate(store, run: int) -> None:  # noqa: ANN001
    """Two annotators judge golden vs one negative on the six lowest-SEAM contrast instructions."""
    from db import queries

    low = store.lowest_seam(run, "contrast", limit=6)
    for n, inst in enumerate(low["instruction_id"].tolist()):
        negs = queries.breakdown(store, run, inst, "contrast")
        neg = negs.iloc[0]
        item = f"gold|negative:{int(neg['negative_id'])}"
        meta: dict[str, Any] = {"item": item, "mode": "golden-vs-negative", "variant": "contrast",
                                "rm_a": float(neg["rm_gold"]), "rm_b": float(neg["rm_neg"])}
        gold = queries.instruction(store, inst)["chosen"]
        for who, choice in (("alice", "a"), ("bob", "a" if n % 3 else "b")):
            store.add_annotation(inst, gold, neg["text"], choice, who, response_a_ref="gold",
                                 response_b_ref=f"negative:{int(neg['negative_id'])}", score_run_id=run,
                                 duration_s=3.0 + n, meta=meta)


def ensure_sample_project(folder: str | Path, **kwargs: Any) -> Path:
    """Build the sample project in `folder` unless a complete one is already there; returns the folder.

    Tests share one build per session this way (copy the folder before changing it).
    """
    folder = Path(folder)
    done = folder / ".sample-complete"
    if not done.is_file():
        import shutil

        if folder.exists():
            shutil.rmtree(folder)
        build_sample_project(folder, **kwargs)
        done.write_text("ok\n")
    return folder


def copy_project(src: str | Path, dst: str | Path) -> Path:
    """Copy a project folder (its store and files) so a test can change it freely."""
    import shutil

    return Path(shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".sample-complete")))
