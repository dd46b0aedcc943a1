"""`train_bon`: best-of-n rejection-sampling fine-tuning (the cheapest RL arm).

Each round: sample `num_generations` completions per prompt from the current policy (the project's
batched `generate`, rendered with the run's template), score every completion with the reward model
as `seam score` would (`RewardModelFunction`: the RM reads the decoded text with its own
tokenizer), keep each prompt's best completion, and fine-tune the current policy on the picks with
`train_sft` (full or LoRA; a LoRA round is merged before the next round samples). The run folder
holds the final policy (a plain model: merged when --lora), `rounds/round-K/{samples.jsonl,
picks.jsonl, sft/}`, metrics.jsonl (one row per round: the mean reward of all samples and of the
picks) and seam_run.json. `first_round_samples` reuses a stored first round (the filter experiment
samples the whole RL pool once per seed and every arm picks from those samples: common random
numbers, and one generation instead of one per arm).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np

from ..data import write_table
from ..errors import SeamError
from ..models.loading import load_pm
from ..models.templates import get_template
from .common import (begin_run, METRICS_FILE, MetricsCallback, StopFn, TrainResult, write_manifest)
from .config import BoNConfig, SFTConfig
from .data import load_rows
from .eval import generate
from .merge import merge_adapter
from .reward_fn import load_reward_function
from .sft import train_sft


def _sft_config(cfg: BoNConfig, model: str, data: Path, out: Path) -> SFTConfig:
    shared = {f.name: getattr(cfg, f.name) for f in fields(SFTConfig) if hasattr(cfg, f.name)}
    return SFTConfig(**{**shared, "model": model, "data": str(data), "output_dir": str(out), "eval_data": None,
                        "max_rows": None, "disable_tqdm": True})


SAMPLES_FILE = "samples.jsonl"


def sample_round(cfg: BoNConfig, model: str, prompts: list[str], reward, r: int = 0) -> tuple[list[str], np.ndarray]:
    """`cfg.num_generations` completions per prompt from `model` (seed `cfg.seed + r`) and the RM's reward
    of each: (the completions, prompt-major, and a (prompts, n) array of rewards)."""
    n = cfg.num_generations
    loaded = load_pm(model, device=cfg.device, dtype=cfg.dtype, allow_pickle=cfg.allow_pickle)
    flat = [p for p in prompts for _ in range(n)]
    samples = generate(loaded, flat, get_template(cfg.template, loaded.tokenizer),
                       max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature, top_p=cfg.top_p,
                       seed=cfg.seed + r, batch_size=cfg.generation_batch_size,
                       max_prompt_tokens=cfg.max_prompt_tokens)
    del loaded
    return samples, np.asarray(reward(flat, samples), dtype=float).reshape(len(prompts), n)


def write_samples(path: Path, ids: list[str], prompts: list[str], samples: list[str], scores: np.ndarray) -> None:
    """One row per prompt: id, prompt, its n samples and their rewards (what `first_round_samples` reads)."""
    n = scores.shape[1]
    write_table([{"id": i, "prompt": p, "samples": samples[k * n:(k + 1) * n], "rewards": scores[k].tolist()}
                 for k, (i, p) in enumerate(zip(ids, prompts))], path)


def read_samples(path: str, ids: list[str], prompts: list[str], n: int) -> tuple[list[str], np.ndarray]:
    """The stored samples and rewards of `ids`, in their order; a SeamError when the file does not cover
    them all with `n` samples each, or stores another prompt under an id."""
    if not Path(path).is_file():
        raise SeamError(f"--first-round-samples {path}: no such file; pass a samples.jsonl a best-of-n round wrote")
    stored = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                stored[str(row["id"])] = row
    samples, scores = [], []
    for i, p in zip(ids, prompts):
        row = stored.get(i)
        if row is None:
            raise SeamError(f"--first-round-samples {path}: no samples for prompt id {i!r}; the file must cover "
                            "every prompt of --data")
        if row["prompt"] != p or len(row["samples"]) != n or len(row["rewards"]) != n:
            raise SeamError(f"--first-round-samples {path}: the row of id {i!r} has another prompt or not "
                            f"{n} samples and rewards (--num-generations {n}); sample anew without the flag")
        samples += [str(t) for t in row["samples"]]
        scores.append([float(v) for v in row["rewards"]])
    return samples, np.asarray(scores, dtype=float)


def train_bon(cfg: BoNConfig, metrics_callback: MetricsCallback | None = None,
              should_stop: StopFn | None = None) -> TrainResult:
    """Run `cfg.rounds` best-of-n rounds from `cfg.model`; returns the finished run."""
    timer, run = begin_run(cfg)
    rows = load_rows(cfg.data, cfg.max_rows)
    prompts = rows["prompt"].tolist()
    ids = rows["id"].astype(str).tolist()
    n = cfg.num_generations
    # stored first-round samples are checked before anything is written; the RM loads only when it scores
    first = read_samples(cfg.first_round_samples, ids, prompts, n) if cfg.first_round_samples else None
    reward = None
    if first is None or cfg.rounds > 1:
        reward = load_reward_function(cfg.reward_model_path, cfg.template, device=cfg.device, dtype=cfg.dtype,
                                      allow_pickle=cfg.allow_pickle)
    run.create()
    current, history, stopped, steps, truncated = cfg.model, [], False, 0, 0
    for r in range(cfg.rounds):
        if r == 0 and first is not None:
            samples, scores = first
        else:
            samples, scores = sample_round(cfg, current, prompts, reward, r)
        # an empty completion is never a pick (nothing to fine-tune on); a prompt with only empty ones is skipped
        usable = np.asarray([bool(t.strip()) for t in samples]).reshape(len(prompts), n)
        best = np.where(usable, scores, -np.inf).argmax(axis=1)
        keep = usable.any(axis=1)
        if not keep.any():
            raise SeamError(f"round {r}: every sampled completion is empty; raise --max-completion-length or "
                            "check the policy's EOS token")
        folder = run.path / "rounds" / f"round-{r}"
        folder.mkdir(parents=True)
        write_samples(folder / SAMPLES_FILE, ids, prompts, samples, scores)
        picks = [{"id": i, "prompt": p, "chosen": samples[k * n + int(b)],
                  "meta": {"reward": float(scores[k, b]), "mean_reward": float(scores[k].mean()), "round": r}}
                 for k, (i, p, b) in enumerate(zip(ids, prompts, best)) if keep[k]]
        write_table(picks, folder / "picks.jsonl")
        res = train_sft(_sft_config(cfg, current, folder / "picks.jsonl", folder / "sft"),
                        should_stop=should_stop)
        steps += res.steps
        truncated += res.rows.get("truncated", 0)
        current = str(res.output_dir)
        if res.adapter:  # the next round samples from (and the run ends with) a plain model
            current = str(merge_adapter(res.output_dir, folder / "merged"))
        picked = scores[np.arange(len(prompts)), best][keep]
        metrics = {"bon/sample_reward_mean": float(scores.mean()), "bon/pick_reward_mean": float(picked.mean()),
                   "bon/pick_reward_std": float(picked.std()), "bon/prompts_skipped": int((~keep).sum()),
                   "sft/train_loss": res.metrics.get("train_loss"), "round": r}
        history.append({"step": r + 1, **metrics})
        with open(run.path / METRICS_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": r + 1, **metrics}) + "\n")
        if metrics_callback is not None:
            metrics_callback(r + 1, metrics)
        if res.stopped or (should_stop is not None and should_stop()):
            stopped = True
            break
    for item in Path(current).iterdir():  # the final policy at the top of the run folder
        if item.is_file() and item.name not in (METRICS_FILE, "seam_run.json"):
            shutil.copy2(item, run.path / item.name)
    result = TrainResult(kind="bon", output_dir=run.final, adapter=False, base_model=cfg.model,
                         metrics={k: v for k, v in history[-1].items() if k != "step"}, history=history, steps=steps,
                         seconds=timer.seconds, rows={"train": len(prompts), "eval": 0, "truncated": truncated},
                         stopped=stopped, config=cfg.to_dict())
    write_manifest(run.path, result, {"rounds_done": len(history)})
    run.finish()
    return result
