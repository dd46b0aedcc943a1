"""Scoring engine vs a plain per-sample loop, on the same inputs, same template and dtype.

The baseline is DESIGN.md section 2 done the obvious way: one model call per text, batch size 1
(`seam.models.reference`). The engine is `seam.score.pipeline.SeamScorer` with its defaults
(length-sorted token batches, shared-prefix KV reuse, the Llama-family fast forward with the last
layer only at wanted positions, LM head only on scored positions, small models' PM and RM side by
side). Both include model loading.

Reports: speed-up, the largest absolute difference of every per-negative value, tokens/s, and
achieved FLOP/s as a fraction of a matmul peak measured here for that dtype.

    .venv/bin/python benchmarks/score_bench.py                    # tiny + SmolLM2 float32 + bfloat16
    .venv/bin/python benchmarks/score_bench.py --models tiny --prompts 8
    .venv/bin/python benchmarks/score_bench.py --json out.json
    .venv/bin/python benchmarks/score_bench.py --repeat 3      # shared machine: fastest of 3 alternating runs
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

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
         "you were her she there one all we can has been if more when will would who so no answer question number "
         "list capital river city water boils degrees metres kilometres sort smallest largest letters word spell "
         "count plus minus times divided equals seven twelve nineteen forty hundred France Paris Rome Italy").split()


def make_inputs(n_prompts: int, negs: int, prompt_words: int, response_words: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_prompts):
        prompt = " ".join(rng.choice(WORDS, prompt_words)).capitalize() + "?"
        gold = " ".join(rng.choice(WORDS, response_words)).capitalize() + "."
        negatives = [" ".join(rng.choice(WORDS, max(3, int(response_words * rng.uniform(0.6, 1.4))))).capitalize() + "."
                     for _ in range(negs)]
        rows.append((f"q{i}", prompt, gold, negatives))
    return rows


def matmul_peak(dtype, n: int = 2048, reps: int = 10) -> float:
    import torch

    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def nonembedding_params(model) -> int:
    emb = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - emb


def run_engine(pm_dir, rm_dir, rows, dtype: str, batch_tokens: int):
    import pandas as pd

    from seam.models.loading import load_pm, load_rm
    from seam.score.pipeline import ScoreConfig, SeamScorer

    import torch

    t0 = time.perf_counter()
    pm = load_pm(pm_dir, device="cpu", dtype=dtype)
    torch.manual_seed(0)  # a backbone without a score head gets the same random head in both runs
    rm = load_rm(rm_dir, device="cpu", dtype=dtype)
    t_load = time.perf_counter() - t0
    inst = pd.DataFrame({"id": [r[0] for r in rows], "prompt": [r[1] for r in rows], "chosen": [r[2] for r in rows]})
    negs = pd.DataFrame([{"id": r[0], "variant": "bench", "text": t} for r in rows for t in r[3]])
    scorer = SeamScorer(pm, rm, ScoreConfig(batch_tokens=batch_tokens))
    t1 = time.perf_counter()
    det = pd.concat([c.details for c in scorer.iter_chunks(inst, negs)], ignore_index=True)
    t_score = time.perf_counter() - t1
    return det, t_load, t_score, pm, rm


def run_baseline(pm_dir, rm_dir, rows, dtype: str):
    from seam.models.loading import load_pm, load_rm
    from seam.models.reference import pm_logprob_plain, rm_reward_plain
    from seam.models.templates import get_template

    import torch

    t0 = time.perf_counter()
    pm = load_pm(pm_dir, device="cpu", dtype=dtype)
    torch.manual_seed(0)  # same random score head as the engine's run
    rm = load_rm(rm_dir, device="cpu", dtype=dtype)
    t_load = time.perf_counter() - t0
    tpl = get_template("stackllama")
    out = {"rm_gold": [], "rm_neg": [], "pm_logprob_sum": [], "pm_tokens": []}
    t1 = time.perf_counter()
    for _, prompt, gold, negatives in rows:
        g = rm_reward_plain(rm.model, rm.tokenizer, tpl, prompt, gold)
        for text in negatives:
            lp, n = pm_logprob_plain(pm.model, pm.tokenizer, tpl, prompt, text)
            out["rm_gold"].append(g)
            out["rm_neg"].append(rm_reward_plain(rm.model, rm.tokenizer, tpl, prompt, text))
            out["pm_logprob_sum"].append(lp)
            out["pm_tokens"].append(n)
    t_score = time.perf_counter() - t1
    return {k: np.asarray(v) for k, v in out.items()}, t_load, t_score


def _token_work(tokenizer, groups, eos: int) -> tuple[int, int]:
    """(tokens of every text in full, tokens the engine saves by running each prompt's shared prefix once)."""
    full = saved = 0
    for prompt, responses in groups:
        seqs = [tokenizer(f"Question: {prompt}\n\nAnswer: {r}")["input_ids"] for r in responses]
        full += sum(len(x) + eos for x in seqs)
        lcp = min(len(x) for x in seqs) - 1
        for x in seqs[1:]:
            lcp = next((k for k in range(lcp) if x[k] != seqs[0][k]), lcp)
        saved += lcp * (len(seqs) - 1)
    return full, saved


def bench_case(name, pm_dir, rm_dir, rows, dtype, batch_tokens, repeat: int = 1):
    import torch

    from seam.models.loading import load_pm, load_rm
    from seam.score.formula import negative_terms

    # warm-up load, untimed: library imports and the OS file cache are then equal for both methods
    # (otherwise whichever runs first pays a few seconds of imports)
    load_pm(pm_dir, device="cpu", dtype=dtype), load_rm(rm_dir, device="cpu", dtype=dtype)
    # on a shared machine, time both methods `repeat` times, alternating, and keep each one's fastest run
    e_runs, b_runs = [], []
    for _ in range(repeat):
        det, e_load, e_score, pm, rm = run_engine(pm_dir, rm_dir, rows, dtype, batch_tokens)
        e_runs.append((e_load + e_score, e_load, e_score))
        base, b_load, b_score = run_baseline(pm_dir, rm_dir, rows, dtype)
        b_runs.append((b_load + b_score, b_load, b_score))
    _, e_load, e_score = min(e_runs)
    _, b_load, b_score = min(b_runs)
    eps, ell, term = negative_terms(base["rm_gold"], base["rm_neg"], base["pm_logprob_sum"], base["pm_tokens"])
    base.update(epsilon=eps, pm_logprob_mean=ell, term=term)
    diffs = {k: float(np.abs(det[k].to_numpy(dtype=np.float64) - base[k]).max()) for k in base}
    # tokens/s: tokens of every text in full for both models (the work the baseline does), as a
    # common unit. FLOP/s: each method's own useful work (padding not counted): the baseline runs
    # every text in full and the PM's LM head at every position; the engine runs each prompt's
    # shared prefix once, every response suffix, and the LM head only at scored tokens.
    full_pm, pre_pm = _token_work(pm.tokenizer, [(p, ns) for _, p, _, ns in rows], eos=1)
    full_rm, pre_rm = _token_work(rm.tokenizer, [(p, [g, *ns]) for _, p, g, ns in rows], eos=0)
    tokens = full_pm + full_rm
    scored = int(det["pm_tokens"].sum())
    p_pm, p_rm = nonembedding_params(pm.model), nonembedding_params(rm.model)
    head = 2 * pm.model.config.hidden_size * pm.model.config.vocab_size
    flops_base = 2 * (p_pm * full_pm + p_rm * full_rm) + head * full_pm
    flops_engine = 2 * (p_pm * (full_pm - pre_pm) + p_rm * (full_rm - pre_rm)) + head * scored
    tdtype = getattr(torch, dtype)
    peak = matmul_peak(tdtype)
    e_total, b_total = e_load + e_score, b_load + b_score
    return {
        "case": name, "dtype": dtype, "negatives": len(det), "prompts": len(rows),
        "engine_s": round(e_total, 2), "engine_score_s": round(e_score, 2),
        "baseline_s": round(b_total, 2), "baseline_score_s": round(b_score, 2),
        "speedup_total": round(b_total / e_total, 2), "speedup_scoring": round(b_score / e_score, 2),
        "engine_tokens_per_s": round(tokens / e_score), "baseline_tokens_per_s": round(tokens / b_score),
        "engine_flops_frac_of_peak": round(flops_engine / e_score / peak, 3),
        "baseline_flops_frac_of_peak": round(flops_base / b_score / peak, 3),
        "flops_ratio_baseline_over_engine": round(flops_base / flops_engine, 2),
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "runs_engine_s": [round(r[0], 2) for r in e_runs], "runs_baseline_s": [round(r[0], 2) for r in b_runs],
        "max_abs_diff": {k: float(f"{v:.3g}") for k, v in diffs.items()},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["tiny", "smollm2"], choices=["tiny", "smollm2"])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--negatives", type=int, default=16)
    ap.add_argument("--prompt-words", type=int, default=40)
    ap.add_argument("--response-words", type=int, default=20)
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="time each method N times, alternating; report each one's fastest")
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = make_inputs(args.prompts, args.negatives, args.prompt_words, args.response_words)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            if model == "tiny":
                from seam.models.tiny import build_tiny_models

                pm_dir, rm_dir = build_tiny_models(tmp, hidden=256, layers=4)
            else:
                from seam.assets import smollm2_gguf

                smol = Path(tmp) / "smol"
                smol.mkdir()
                (smol / smollm2_gguf().name).symlink_to(smollm2_gguf())
                pm_dir = rm_dir = smol
            for dtype in (["float32"] if model == "tiny" else args.dtypes):
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = bench_case(model, pm_dir, rm_dir, rows, dtype, args.batch_tokens, args.repeat)
                print(json.dumps(r), flush=True)
                results.append(r)
    print("\n| model | dtype | negatives | baseline s | engine s | speed-up (total) | speed-up (scoring) | engine tok/s | FLOP/s / peak: baseline, engine | FLOPs baseline / engine | max abs diff (logprob sum, reward) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        d = r["max_abs_diff"]
        print(f"| {r['case']} | {r['dtype']} | {r['negatives']} | {r['baseline_s']} | {r['engine_s']} | {r['speedup_total']}x | "
              f"{r['speedup_scoring']}x | {r['engine_tokens_per_s']} | {r['baseline_flops_frac_of_peak']:.0%}, "
              f"{r['engine_flops_frac_of_peak']:.0%} | {r['flops_ratio_baseline_over_engine']}x | "
              f"{d['pm_logprob_sum']:.2g}, {d['rm_neg']:.2g} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
