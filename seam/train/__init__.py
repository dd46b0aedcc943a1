"""Training and evaluation on TRL 1.12 + PEFT: SFT, reward model, PPO, GRPO, RLOO, adapters, judges, statistics.

Plain functions over typed configs, each returning a result dataclass (metrics + output paths),
so the CLI, the job worker and an experiment runner all call the same thing:

    train_sft(SFTConfig) / train_rm(RMConfig) / train_ppo(PPOConfig)  -> TrainResult
    train_grpo(GRPOConfig) / train_rloo(RLOOConfig)                     -> TrainResult
    train_bon(BoNConfig): best-of-n sampling + SFT on the RM's picks      -> TrainResult
    RewardModelFunction / load_reward_function: the RM as a TRL reward function (GRPO, RLOO)
    merge_adapter(adapter, out)                                         -> Path
    evaluate_rm(RMEvalConfig) -> RMEvalResult;  evaluate_policy(PolicyEvalConfig) -> PolicyEvalResult
    compare_runs([A tables], [B tables], score)                         -> CompareResult
    export_openrlhf_run(OpenRLHFConfig)                                  -> OpenRLHFExport

Every trainer takes ``metrics_callback(step, metrics)`` (called on each log; the worker mirrors
it into the store) and ``should_stop()`` (polled after each step). See docs/training.md.
"""

from .bon import train_bon
from .common import METRICS_FILE, RUN_FILE, TrainResult, read_manifest, tensorboard_available
from .config import BoNConfig, GRPOConfig, PPOConfig, RLOOConfig, RMConfig, SFTConfig, TRAIN_CONFIGS
from .eval import (CompareResult, PolicyEvalConfig, PolicyEvalResult, RMEvalConfig, RMEvalResult, compare_runs,
                   evaluate_policy, evaluate_rm, generate)
from .grpo import train_grpo, train_rloo
from .judges import JUDGES, JudgeSettings, build_judge, parse_rating
from .merge import merge_adapter
from .openrlhf import OpenRLHFConfig, OpenRLHFExport, export_openrlhf_run
from .ppo import train_ppo
from .reward_fn import RewardModelFunction, load_reward_function
from .rm import train_rm
from .sft import train_sft
from .stats import bootstrap_ci, paired_bootstrap_ci, paired_test, win_rate

TRAINERS = {"sft": train_sft, "rm": train_rm, "ppo": train_ppo, "grpo": train_grpo, "rloo": train_rloo,
            "bon": train_bon}

__all__ = [
    "BoNConfig", "CompareResult", "GRPOConfig", "JUDGES", "JudgeSettings", "METRICS_FILE", "OpenRLHFConfig", "OpenRLHFExport",
    "PPOConfig", "PolicyEvalConfig", "PolicyEvalResult", "RLOOConfig", "RMConfig", "RMEvalConfig", "RMEvalResult",
    "RUN_FILE", "RewardModelFunction", "SFTConfig", "TRAINERS", "TRAIN_CONFIGS", "TrainResult", "bootstrap_ci",
    "build_judge", "compare_runs", "evaluate_policy", "evaluate_rm", "export_openrlhf_run", "generate",
    "load_reward_function", "merge_adapter", "paired_bootstrap_ci", "paired_test", "parse_rating", "read_manifest",
    "tensorboard_available", "train_bon", "train_grpo", "train_ppo", "train_rloo", "train_rm", "train_sft", "win_rate",
]
