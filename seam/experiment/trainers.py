"""The trainer of each arm's policy: PPO (the paper's, the default) or GRPO / RLOO / best-of-n.

The experiment's PPO knobs (`cfg.ppo`: the --ppo-* flags and --ppo-config) stay the one place to set
run length, batch size, learning rate and LoRA; for another method they are mapped onto its fields
(`PPO_TO_OTHER`, then any key the trainer's config has under the same name), and the method's own
overrides (`cfg.trainer`: num_generations, beta, ...) win over the mapped ones. PPO-only keys with no
counterpart (num_mini_batches, missing_eos_penalty, ...) are reported as ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ..train import BoNConfig, GRPOConfig, PPOConfig, RLOOConfig, train_bon, train_grpo, train_ppo, train_rloo
from ..train.common import TrainResult
from ..train.config import TrainCommon
from .config import ExperimentConfig

TRAINERS: dict[str, tuple[type[TrainCommon], Callable[..., TrainResult]]] = {
    "ppo": (PPOConfig, train_ppo), "grpo": (GRPOConfig, train_grpo), "rloo": (RLOOConfig, train_rloo),
    "bon": (BoNConfig, train_bon)}

# PPOConfig field -> the field of the same meaning in GRPO / RLOO / BoN (when that config has it)
PPO_TO_OTHER = {"response_length": "max_completion_length", "kl_coef": "beta", "num_ppo_epochs": "num_iterations"}


def base_overrides(cfg: ExperimentConfig) -> dict:
    """Settings every trainer of the experiment gets from the experiment itself."""
    return {"device": cfg.device, "dtype": cfg.dtype, "template": cfg.template, "report_to": "none",
            "disable_tqdm": cfg.quiet}


def mapped_ppo(method: str, ppo: dict) -> tuple[dict, list[str]]:
    """The PPO overrides under `method`'s field names, and the PPO keys it has no field for."""
    cls = TRAINERS[method][0]
    names = {f.name for f in dataclasses.fields(cls)}
    out, ignored = {}, []
    for key, value in ppo.items():
        target = PPO_TO_OTHER.get(key, key)
        if target in names:
            out[target] = value
        else:
            ignored.append(key)
    return out, ignored


def trainer_overrides(cfg: ExperimentConfig, policy, reward_model, data, out, seed: int) -> dict:
    """The overrides of the `cfg.method` trainer config for one run (PPO: exactly the PPO step's)."""
    base = base_overrides(cfg)
    if cfg.method == "ppo":
        return {**base, **cfg.ppo, "sft_model_path": str(policy), "reward_model_path": str(reward_model),
                "data": str(data), "output_dir": str(out), "seed": seed}
    mapped, _ = mapped_ppo(cfg.method, cfg.ppo)
    merged = {**base, **mapped, **cfg.trainer}
    cls = TRAINERS[cfg.method][0]
    if cfg.method in ("grpo", "rloo") and "num_generations" not in cfg.trainer:
        # a group never exceeds the completions of one step (the trainer's default, capped at the batch)
        default = next(f.default for f in dataclasses.fields(cls) if f.name == "num_generations")
        batch = int(merged.get("per_device_train_batch_size", 8)) * int(merged.get("gradient_accumulation_steps", 1))
        merged["num_generations"] = max(2, min(default, batch))
    return {**merged, "model": str(policy), "reward_model_path": str(reward_model), "data": str(data),
            "output_dir": str(out), "seed": seed}


def planned_steps(tcfg: TrainCommon, n_prompts: int | None) -> int | None:
    """Optimizer steps (PPO: updates) the run makes, for the progress line; None when unknown."""
    if isinstance(tcfg, PPOConfig):
        return tcfg.updates(n_prompts)
    return tcfg.max_steps if tcfg.max_steps > 0 else None
