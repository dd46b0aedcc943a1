"""Negative builders: contrast search throughput, and the adv attack against a small *trained* RM.

1. contrast search: `band_search` (exact, chunked matrix products) on synthetic clustered unit
   vectors (384-d, like all-MiniLM-L6-v2), corpus of 10k and 100k rows; reports queries/s, and
   checks exactness against a plain top-k on a sample of queries. Also the real builder on
   StackExchange questions (../shared/data, via the project's importer) when present: embedding
   throughput and negatives per instruction.
2. adv: trains a small RM here (a Llama sequence classifier from a config, BPE tokenizer trained
   on the texts, pairwise loss -logsigmoid(r_chosen - r_rejected)) on the demo world's preference
   pairs, reports its held-out pairwise accuracy, then attacks held-out pairs (start = rejected)
   with each recipe: success rate, RM queries per success, seconds. The same attack on the
   untrained RM is the control.

    .venv/bin/python benchmarks/negatives_bench.py                  # everything (a few minutes on 2 CPU cores)
    .venv/bin/python benchmarks/negatives_bench.py --only contrast
    .venv/bin/python benchmarks/negatives_bench.py --only adv --attack-n 40 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from seam.models.tiny import build_tokenizer as tiny_tokenizer  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "stackexchange"


# ============================================================================ contrast


def clustered_unit_vectors(n: int, d: int = 384, clusters: int | None = None, spread: float = 0.5, seed: int = 0):
    """Unit vectors around random centres (100 per centre by default); with spread 0.5 each query
    has about 50 corpus rows in the 0.8-0.9 band, so the top-30 lists fill up."""
    rng = np.random.default_rng(seed)
    clusters = clusters or max(1, n // 100)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, d), dtype=np.float32)
    for a in range(0, n, 100_000):  # in chunks: float32 throughout, so 1M rows need ~1.5 GB
        b = min(n, a + 100_000)
        x = centres[rng.integers(0, clusters, b - a)]
        x += (spread / np.sqrt(d)) * rng.standard_normal(size=(b - a, d), dtype=np.float32)
        out[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def bench_search(corpus_rows: int, queries: int, k: int = 30, band=(0.8, 0.9), check: int = 50, repeats: int = 3) -> dict:
    from seam.negatives.search import Exclusions, band_search

    c = clustered_unit_vectors(corpus_rows, seed=corpus_rows)
    q = c[:queries]
    ex = Exclusions(pairs=[(np.arange(queries), np.arange(corpus_rows))], names=["self"])
    band_search(q[:64], c, *band, k, ex)  # warm-up
    times = []
    for _ in range(repeats):  # the median of a few runs: other work on the machine adds noise
        t = time.perf_counter()
        res = band_search(q, c, *band, k, ex)
        times.append(time.perf_counter() - t)
    dt = float(np.median(times))
    found = (res.index >= 0).sum(axis=1)
    # exactness on a sample against a plain numpy top-k (same rows; order equal up to float rounding:
    # numpy and torch may round one similarity differently in the last bit, swapping near-ties)
    ok = 0
    for i in range(min(check, queries)):
        s = c @ q[i]
        s[i] = -2
        cand = np.flatnonzero((s >= band[0]) & (s <= band[1]))
        want = cand[np.lexsort((cand, -s[cand]))][:k]
        got = res.index[i][: found[i]]
        ok += int(set(got) == set(want) and np.allclose(np.sort(s[got]), np.sort(s[want]), atol=1e-6))
    return {"corpus_rows": corpus_rows, "queries": queries, "k": k, "seconds": round(dt, 2),
            "queries_per_s": round(queries / dt, 1), "mean_found": round(float(found.mean()), 2),
            "exact_on_sample": f"{ok}/{min(check, queries)}"}


def bench_contrast_real(limit_per_site: int = 400) -> dict | None:
    if not SHARED.is_dir():
        return None
    import pandas as pd

    from seam.data import ImportConfig, iter_import
    from seam.negatives import ContrastConfig, build_negatives

    rows = []
    for path in sorted(SHARED.glob("*.Posts.xml")):
        rows += list(iter_import("stackexchange", path, ImportConfig(limit=limit_per_site, max_pairs_per_question=1)))
    df = pd.DataFrame(rows)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SEAM_CACHE_DIR"] = tmp
        _, s = build_negatives("contrast", df, ContrastConfig(k=30, band=(0.8, 0.9)))
        _, s_wide = build_negatives("contrast", df, ContrastConfig(k=30, band=(0.6, 0.9)))
    return {"instructions": len(df), "embed_seconds": s["embed_seconds"],
            "embed_texts_per_s": round(len(df) / s["embed_seconds"], 1),
            "band_0.8_0.9": {"negatives": s["negatives"], "mean_per_instruction": round(s["per_instruction"]["mean"], 2),
                             "without_negatives": s["without_negatives"], "fewer_than_k": s["fewer_than_k"]},
            "band_0.6_0.9": {"negatives": s_wide["negatives"],
                             "mean_per_instruction": round(s_wide["per_instruction"]["mean"], 2),
                             "without_negatives": s_wide["without_negatives"], "fewer_than_k": s_wide["fewer_than_k"],
                             "embed_cache_hits": s_wide["embed_cache"]["hits"]}}


# ============================================================================ a small trained RM


def render(prompt: str, response: str) -> str:
    return f"Question: {prompt}\n\nAnswer: {response}"


def build_tokenizer(texts, vocab_size: int = 2000):
    return tiny_tokenizer(vocab_size, list(texts))


def new_rm(tok, hidden: int = 128, layers: int = 2, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, num_labels=1,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    torch.manual_seed(seed)
    return LlamaForSequenceClassification(cfg)


def pair_rewards(model, tok, pairs, batch: int = 64):
    import torch

    out_c, out_r = [], []
    model.eval()
    with torch.inference_mode():
        for a in range(0, len(pairs), batch):
            part = pairs[a:a + batch]
            enc = tok([render(p["prompt"], p["chosen"]) for p in part] + [render(p["prompt"], p["rejected"]) for p in part],
                      padding=True, return_tensors="pt")
            r = model(**enc).logits[:, 0]
            out_c.append(r[:len(part)])
            out_r.append(r[len(part):])
    return torch.cat(out_c).numpy(), torch.cat(out_r).numpy()


def train_rm(model, tok, pairs, epochs: int = 5, batch: int = 32, lr: float = 2e-3, seed: int = 0) -> list[float]:
    """Pairwise (Bradley-Terry) loss, AdamW; returns the mean loss per epoch."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(pairs))
        total = 0.0
        for a in range(0, len(order), batch):
            part = [pairs[int(i)] for i in order[a:a + batch]]
            enc = tok([render(p["prompt"], p["chosen"]) for p in part] + [render(p["prompt"], p["rejected"]) for p in part],
                      padding=True, return_tensors="pt")
            r = model(**enc).logits[:, 0]
            loss = -F.logsigmoid(r[:len(part)] - r[len(part):]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(part)
        losses.append(total / len(pairs))
    model.eval()
    return losses


def make_world(n_tasks: int, seed: int = 0):
    """Preference pairs of the demo world: train on rm_train+sft tasks, test on rm_test+rl tasks.
    Coverage 'all': the RM sees every corruption kind in training (no designed blind spots)."""
    from seam.testbed import Coverage, WorldConfig, generate_tasks, preference_pairs, split

    tasks = generate_tasks(WorldConfig(seed=seed, n_tasks=n_tasks))
    parts = split(tasks, seed=seed)
    cov = Coverage.from_spec("all")
    train = preference_pairs(parts["rm_train"] + parts["sft"], cov, pairs_per_task=3, seed=seed)
    test = preference_pairs(parts["rm_test"] + parts["rl"], cov, pairs_per_task=1, seed=seed + 1)
    return train, test


def bench_adv(n_tasks: int = 700, attack_n: int = 60, k: int = 10, budget: int = 300, epochs: int = 5,
              recipes=("greedy", "char", "embedding", "hotflip")) -> dict:
    import pandas as pd
    import torch

    from seam.models.loading import load_rm
    from seam.negatives import AdvConfig, build_negatives

    torch.manual_seed(0)
    train, test = make_world(n_tasks)
    tok = build_tokenizer([render(p["prompt"], p["chosen"]) for p in train + test]
                          + [p["rejected"] for p in train + test])
    out: dict = {"train_pairs": len(train), "test_pairs": len(test)}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SEAM_CACHE_DIR"] = str(Path(tmp) / "cache")
        untrained = new_rm(tok)
        c0, r0 = pair_rewards(untrained, tok, test)
        untrained.save_pretrained(Path(tmp) / "rm0")
        tok.save_pretrained(Path(tmp) / "rm0")
        model = new_rm(tok)
        t = time.perf_counter()
        losses = train_rm(model, tok, train, epochs=epochs)
        out["train_seconds"] = round(time.perf_counter() - t, 1)
        c1, r1 = pair_rewards(model, tok, test)
        out["loss_first_last"] = [round(losses[0], 4), round(losses[-1], 4)]
        out["test_accuracy_trained"] = round(float((c1 > r1).mean()), 3)
        out["test_accuracy_untrained"] = round(float((c0 > r0).mean()), 3)
        model.save_pretrained(Path(tmp) / "rm1")
        tok.save_pretrained(Path(tmp) / "rm1")
        # attack held-out pairs that the trained RM ranks correctly (the start does not fool it already)
        correct = [p for p, a, b in zip(test, c1, r1) if a > b]
        rng = np.random.default_rng(0)
        pick = [correct[int(i)] for i in rng.permutation(len(correct))[:attack_n]]
        df = pd.DataFrame([{"id": p["id"], "prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"],
                            "meta": {}} for p in pick])
        out["attacked"] = len(df)
        out["runs"] = []
        for name, folder in (("trained", "rm1"), ("untrained", "rm0")):
            rm = load_rm(Path(tmp) / folder, device="cpu")
            for recipe in (recipes if name == "trained" else ("greedy",)):
                t = time.perf_counter()
                _, s = build_negatives("adv", df, AdvConfig(k=k, search="textattack", recipe=recipe, query_budget=budget),
                                       rm=rm)
                out["runs"].append({
                    "rm": name, "recipe": recipe, "budget": budget,
                    "success_rate": round(s["success_rate"], 3), "successes": s["successes"],
                    "rm_queries_per_success": round(s["queries_per_success"], 1) if s["queries_per_success"] else None,
                    "median_attack_queries_per_success": s["median_attack_queries_per_success"],
                    "grad_calls": s["grad_calls"], "negatives_per_instruction": round(s["per_instruction"]["mean"], 2),
                    "seconds": round(time.perf_counter() - t, 1),
                })
                print(json.dumps(out["runs"][-1]), file=sys.stderr)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["contrast", "adv"], help="run one part")
    ap.add_argument("--queries", type=int, default=2000, help="queries for the search benchmark (default 2000)")
    ap.add_argument("--corpus-sizes", default="10000,100000", help="corpus rows for the search benchmark "
                    "(comma-separated; 1000000 works too: 1.5 GB of vectors)")
    ap.add_argument("--attack-n", type=int, default=60, help="held-out pairs to attack (default 60)")
    ap.add_argument("--budget", type=int, default=300, help="RM queries per instruction (default 300)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice); 1 avoids OpenMP "
                    "spin-waiting on a machine whose cores are busy with other work")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    results: dict = {"torch_threads": torch.get_num_threads()}
    if args.only in (None, "contrast"):
        sizes = [int(x) for x in args.corpus_sizes.split(",") if x.strip()]
        results["search"] = [bench_search(n, min(args.queries, 500) if n >= 500_000 else args.queries,
                                          repeats=1 if n >= 500_000 else 3) for n in sizes]
        for r in results["search"]:
            print(json.dumps(r))
        results["contrast_stackexchange"] = bench_contrast_real()
        print(json.dumps(results["contrast_stackexchange"]))
    if args.only in (None, "adv"):
        results["adv"] = bench_adv(attack_n=args.attack_n, budget=args.budget)
        print(json.dumps({k: v for k, v in results["adv"].items() if k != "runs"}))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
