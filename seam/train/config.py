"""Typed configs for the trainers (sft, rm, ppo, grpo, rloo), loadable from YAML with overrides.

They are `seam.settings.Settings`: every field has a ``help`` string; `add_config_flags` turns the
fields of a config class into ``--kebab-case`` flags (default None, so only flags the user typed
override the YAML file), and `load_config` builds the config from ``YAML file <- overrides`` and
validates it:

    >>> from seam.settings import load_config
    >>> cfg = load_config(SFTConfig, overrides={"model": "pm", "data": "sft.jsonl", "output_dir": "runs/sft"})
    >>> cfg.learning_rate, cfg.lora
    (0.0001, False)

Defaults follow the paper's appendix C where it gives a value (SFT lr 1e-4 with 10 warmup steps,
RM lr 2e-5, PPO lr 1.4e-5, batch 32, 200 PPO steps); the rest are TRL's.

Field names are TRL 1.12's (`SFTConfig`, `RewardConfig`, `trl.experimental.ppo.PPOConfig`,
`GRPOConfig`, `RLOOConfig`) and transformers' `TrainingArguments`' wherever the meaning is the same,
so a TRL YAML's trainer keys load as they are. The names used before are ``ALIASES``: they still
work (YAML, overrides, flags, constructor) with one deprecation line. TRL keys with a different
shape here (``bf16``, ``model_name_or_path``, ...) are unknown keys whose error says what to use
(``HINTS``). GRPO and RLOO have no paper defaults: theirs are TRL's, except max_completion_length
(128), max_prompt_tokens (256) and logging_steps (1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ..errors import SeamError
from ..settings import Alias, Settings, setting
from .common import resolve_report_to

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
REPORT_TO = ("auto", "none", "tensorboard", "wandb")

# TRL / transformers keys that have a counterpart here under another name or shape (unknown-key errors)
_HINTS = {
    "model_name_or_path": "use model",
    "use_peft": "use lora",
    "dataset_name": "use data (a local file or folder)",
    "bf16": "use dtype: bfloat16",
    "fp16": "use dtype: float16",
    "use_cpu": "use device: cpu",
    "eval_strategy": "set eval_steps (0 = evaluate only at the end)",
    "save_strategy": "set save_steps (0 = only the final model)",
    "warmup_ratio": "use warmup_steps",
    "packing": "not supported (one example per sequence)",
}


def _stop_token(stop_at_eos: bool) -> str | None:
    return "eos" if stop_at_eos else None


# ============================================================================ shared fields


@dataclass
class TrainCommon(Settings):
    """Fields every trainer shares: data, output, device, optimisation, logging, LoRA."""

    data: str = setting("", "training data file (instructions contract: JSONL, CSV, Parquet or HF folder)", metavar="FILE")
    output_dir: str = setting("", "run folder: the final model, metrics.jsonl, seam_run.json, logs/, checkpoints/", metavar="DIR")
    eval_data: str | None = setting(None, "optional held-out file evaluated at the end (and every eval_steps if set)", metavar="FILE")
    max_rows: int | None = setting(None, "use only the first N rows of the data (smoke runs)")
    template: str = setting("stackllama", "text template: stackllama | chat | a format string with {prompt} and {response}")
    max_length: int = setting(1024, "max tokens per sequence; longer responses are cut from the right (counted, never silent)")
    max_prompt_tokens: int | None = setting(None, "keep the first N prompt tokens (None = no cut; prompts longer than max_length are an error)")
    seed: int = setting(0, "seed for model init, data order, dropout and sampling")
    device: str = setting("auto", "auto | cpu | cuda")
    dtype: str = setting("auto", "mixed precision: auto (bf16 on a GPU that has it, else fp32) | float32 | bfloat16 | float16")
    learning_rate: float = setting(1e-4, "peak learning rate (AdamW)")
    num_train_epochs: float = setting(1.0, "epochs over the data (ignored when max_steps > 0)")
    max_steps: int = setting(-1, "optimizer steps; -1 = run num_train_epochs")
    per_device_train_batch_size: int = setting(8, "per-device batch size (was batch_size)")
    per_device_eval_batch_size: int | None = setting(None, "per-device batch size for evaluation; None = per_device_train_batch_size")
    gradient_accumulation_steps: int = setting(1, "micro-batches per optimizer step")
    warmup_steps: int = setting(0, "linear warm-up steps")
    weight_decay: float = setting(0.0, "AdamW weight decay")
    lr_scheduler_type: str = setting("linear", "transformers scheduler name: linear | cosine | constant | ...")
    gradient_checkpointing: bool = setting(False, "trade compute for memory")
    logging_steps: int = setting(10, "log metrics every N steps")
    eval_steps: int = setting(0, "evaluate on eval_data every N steps (0 = only at the end)")
    save_steps: int = setting(0, "also save a checkpoint every N steps under checkpoints/ (0 = only the final model)")
    report_to: str = setting("auto", "auto (tensorboard when installed, else none) | none | tensorboard | wandb "
                                     "(needs `pip install wandb`; W&B reads WANDB_API_KEY etc. from the environment)")
    lora: bool = setting(False, "train a LoRA adapter instead of all weights (the run folder then holds the adapter)")
    lora_r: int = setting(16, "LoRA rank")
    lora_alpha: int = setting(32, "LoRA alpha")
    lora_dropout: float = setting(0.05, "LoRA dropout")
    lora_target_modules: str = setting("all-linear", "comma-separated module names, or all-linear")
    allow_pickle: bool = setting(False, "allow .bin/.pt weights (pickle can run code: trusted checkpoints only)")
    disable_tqdm: bool = setting(False, "no progress bar (was quiet)")

    kind = "common"  # overridden by subclasses (class attribute, not a field)
    ALIASES = {"batch_size": "per_device_train_batch_size", "quiet": "disable_tqdm"}  # old name -> field
    HINTS = _HINTS

    def validate(self) -> None:
        need = [n for n in self._required() if not getattr(self, n)]
        if need:
            flags = ", ".join("--" + n.replace("_", "-") for n in need)
            raise SeamError(f"{self.kind} config is missing {', '.join(need)}; pass {flags} or set it in the YAML file")
        _choice(self, "device", DEVICES)
        _choice(self, "dtype", DTYPES)
        _choice(self, "report_to", REPORT_TO)
        resolve_report_to(self.report_to)  # tensorboard / wandb asked for but not installed: an error now
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "logging_steps",
                     "lora_r", "lora_alpha"):
            _positive(self, name)
        for name in ("warmup_steps", "eval_steps", "save_steps"):
            _non_negative(self, name)
        for name in ("max_rows", "max_prompt_tokens", "per_device_eval_batch_size"):
            if getattr(self, name) is not None:
                _positive(self, name)
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise SeamError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise SeamError(f"max_steps must be -1 (use epochs) or a positive integer, got {self.max_steps}")
        if self.max_steps == -1 and not self.num_train_epochs > 0:
            raise SeamError(f"num_train_epochs must be > 0, got {self.num_train_epochs}")
        if not 0 <= self.lora_dropout < 1:
            raise SeamError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")

    def _required(self) -> tuple[str, ...]:
        return ("data", "output_dir")

    @property
    def eval_batch_size(self) -> int:
        return self.per_device_eval_batch_size or self.per_device_train_batch_size

    def input_paths(self) -> list[tuple[str, str]]:
        """(flag, path) of every file or folder the run reads (data and models), for the
        output-is-not-an-input check."""
        return [("--" + f.name.replace("_", "-"), getattr(self, f.name)) for f in fields(self)
                if f.metadata.get("metavar") in ("FILE", "DIR") and f.name != "output_dir" and getattr(self, f.name)]


# ============================================================================ per trainer


@dataclass
class SFTConfig(TrainCommon):
    """Supervised fine-tuning of the policy model on (prompt, chosen) rows."""

    model: str = setting("", "base model folder (HF save_pretrained layout or one .gguf file)", metavar="DIR")
    completion_only_loss: bool = setting(True, "loss on the response tokens and the EOS only (the tokens SEAM scores)")
    warmup_steps: int = setting(10, "linear warm-up steps (paper: 10)")

    kind = "sft"

    def _required(self):
        return ("model",) + super()._required()


@dataclass
class RMConfig(TrainCommon):
    """Reward model: a one-label sequence classifier trained with the pairwise loss -log sigmoid(r+ - r-)."""

    model: str = setting("", "base folder: an RM to continue, or a causal LM (usually the SFT model) that gets a fresh score head", metavar="DIR")
    learning_rate: float = setting(2e-5, "peak learning rate (paper: 2e-5)")
    center_rewards_coefficient: float | None = setting(None, "optional penalty on mean reward^2 (TRL, e.g. 0.01)")
    append_eos: bool = setting(False, "append EOS to every text before scoring (off: the scoring contract uses no extra EOS)")
    train_layers: int | None = setting(None, "train only the top N transformer layers, the final norm and the score head "
                                        "(the rest frozen: much faster on a CPU); None = all weights")

    kind = "rm"

    def _required(self):
        return ("model",) + super()._required()


@dataclass
class PPOConfig(TrainCommon):
    """PPO (TRL 1.12 `trl.experimental.ppo`): policy and reference from the PM, reward and value from the RM."""

    sft_model_path: str = setting("", "policy model folder (the SFT'd PM; was policy); also the frozen reference "
                                  "unless ref_policy is set", metavar="DIR")
    reward_model_path: str = setting("", "reward model folder (was reward_model): a one-label sequence classifier "
                                     "sharing the policy's tokenizer; also the value model's init", metavar="DIR")
    value_model: str | None = setting(None, "value model init (default: the reward model)", metavar="DIR")
    ref_policy: str | None = setting(None, "reference policy (default: a frozen copy of the policy; with LoRA the adapter-free base)", metavar="DIR")
    learning_rate: float = setting(1.4e-5, "policy+value learning rate (paper: 1.4e-5)")
    per_device_train_batch_size: int = setting(32, "rollouts per PPO update per device (paper: 32; was batch_size)")
    max_steps: int = setting(200, "PPO updates (paper: 200; was steps); -1 = num_train_epochs passes over the prompts")
    total_episodes: int | None = setting(None, "TRL's run length in rollouts; when set it replaces max_steps: updates = "
                                         "ceil(total_episodes / (per_device_train_batch_size x gradient_accumulation_steps))")
    num_mini_batches: int = setting(1, "mini-batches per PPO update (was mini_batches)")
    num_ppo_epochs: int = setting(4, "optimisation epochs over each rollout batch (was ppo_epochs)")
    kl_coef: float = setting(0.05, "KL penalty coefficient (beta) against the reference policy")
    kl_estimator: str = setting("k1", "k1 | k3")
    response_length: int = setting(64, "max new tokens per rollout")
    temperature: float = setting(0.7, "sampling temperature for rollouts")
    stop_token: str | None = setting("eos", "eos: truncate rollouts at the first EOS; none: always generate "
                                     "response_length tokens (TRL's default; was stop_at_eos)")
    missing_eos_penalty: float | None = setting(None, "subtract this from the score of rollouts that never emit EOS")
    whiten_rewards: bool = setting(False, "whiten rewards (needs mini-batch >= 8)")
    cliprange: float = setting(0.2, "policy clip range")
    cliprange_value: float = setting(0.2, "value clip range")
    vf_coef: float = setting(0.1, "value loss coefficient")
    gamma: float = setting(1.0, "discount")
    lam: float = setting(0.95, "GAE lambda")
    local_rollout_forward_batch_size: int = setting(16, "sequences per no-grad forward in the rollout phase "
                                                    "(was rollout_forward_batch_size)")
    max_prompt_tokens: int | None = setting(256, "keep the first N prompt tokens (rendered query); None = no cut")
    warmup_steps: int = setting(0, "linear warm-up steps")
    logging_steps: int = setting(1, "log metrics every N PPO updates")

    kind = "ppo"
    ALIASES = {**TrainCommon.ALIASES, "policy": "sft_model_path", "reward_model": "reward_model_path",
               "steps": "max_steps", "mini_batches": "num_mini_batches", "ppo_epochs": "num_ppo_epochs",
               "rollout_forward_batch_size": "local_rollout_forward_batch_size",
               "stop_at_eos": Alias("stop_token", convert=_stop_token, old_type=bool)}
    HINTS = {**_HINTS, "model_name_or_path": "use sft_model_path (the policy)", "stop_token_id": "use stop_token: eos"}

    def _required(self):
        return ("sft_model_path", "reward_model_path") + super()._required()

    @property
    def local_batch(self) -> int:
        """Rollouts per PPO update on this device (TRL's local_batch_size)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    def episodes(self, n_prompts: int) -> int:
        """TRL's total_episodes for a run over `n_prompts` prompts: total_episodes, else max_steps
        updates, else num_train_epochs passes over the prompts (TRL's rule)."""
        if self.total_episodes:
            return self.total_episodes
        if self.max_steps > 0:
            return self.max_steps * self.local_batch
        return max(1, int(self.num_train_epochs * n_prompts))

    def updates(self, n_prompts: int | None = None) -> int | None:
        """PPO updates the run makes (ceil(episodes / local batch)); None when that needs `n_prompts`."""
        if n_prompts is None and not self.total_episodes and self.max_steps < 1:
            return None
        return -(-self.episodes(n_prompts or 0) // self.local_batch)

    def validate(self) -> None:
        super().validate()
        for name in ("num_mini_batches", "num_ppo_epochs", "response_length", "local_rollout_forward_batch_size"):
            _positive(self, name)
        if self.total_episodes is not None:
            _positive(self, "total_episodes")
        _choice(self, "kl_estimator", ("k1", "k3"))
        if self.stop_token not in ("eos", None):
            raise SeamError(f"stop_token must be eos or none, got {self.stop_token!r}")
        if self.kl_coef < 0:
            raise SeamError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if not self.temperature > 0:
            raise SeamError(f"temperature must be > 0 for PPO rollouts, got {self.temperature}")
        local = self.local_batch
        if local % self.num_mini_batches:
            raise SeamError(f"per_device_train_batch_size x gradient_accumulation_steps ({local}) must be a multiple "
                            f"of num_mini_batches ({self.num_mini_batches})")
        if self.whiten_rewards and local // self.num_mini_batches < 8:
            raise SeamError("whiten_rewards needs at least 8 rollouts per mini-batch; raise per_device_train_batch_size "
                            "or turn it off")



# TRL 1.12's GRPOTrainer loss_type values and scale_rewards strategies
GRPO_LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")


@dataclass
class GroupRLCommon(TrainCommon):
    """What GRPO and RLOO share (TRL 1.12's `GRPOConfig` and `RLOOConfig` name these fields alike):
    a policy sampled `num_generations` times per prompt, the reward model as the reward function."""

    model: str = setting("", "policy model folder (the SFT'd PM: HF layout, .gguf folder or LoRA run); with "
                         "beta > 0 also the frozen reference (with LoRA: the policy without its adapter)", metavar="DIR")
    reward_model_path: str = setting("", "reward model folder: a trained one-label sequence classifier; it re-reads "
                                     "the decoded text with its own tokenizer, so it may differ from the policy's",
                                     metavar="DIR")
    learning_rate: float = setting(1e-6, "peak learning rate (AdamW; TRL's default 1e-6)")
    per_device_train_batch_size: int = setting(8, "completions per device per step (num_generations per prompt, so "
                                               "prompts per step = this x gradient_accumulation_steps / num_generations)")
    num_generations: int = setting(8, "completions sampled per prompt (the group; >= 2)")
    max_completion_length: int = setting(128, "max new tokens per completion (TRL's default: 512)")
    max_prompt_tokens: int | None = setting(256, "keep the first N prompt tokens (rendered query); None = no cut")
    temperature: float = setting(1.0, "sampling temperature")
    top_p: float = setting(1.0, "nucleus sampling: keep the smallest set of tokens with this much probability (0, 1]")
    top_k: int = setting(0, "keep only the k most likely tokens (0 = off)")
    min_p: float | None = setting(None, "drop tokens below min_p x the top token's probability (None = off)")
    repetition_penalty: float = setting(1.0, "penalty on tokens already in the prompt and completion (1.0 = none)")
    beta: float = setting(0.0, "KL coefficient against the reference policy (0 = no reference model is loaded)")
    num_iterations: int = setting(1, "optimisation passes over each generated batch (mu)")
    epsilon: float = setting(0.2, "clip range of the probability ratio")
    epsilon_high: float | None = setting(None, "upper clip range (None = epsilon)")
    mask_truncated_completions: bool = setting(False, "leave completions that hit max_completion_length out of the loss")
    disable_dropout: bool = setting(False, "switch dropout off in the policy (and reference)")
    shuffle_dataset: bool = setting(True, "shuffle the prompts")
    logging_steps: int = setting(1, "log metrics every N steps")

    HINTS = {**_HINTS, "model_name_or_path": "use model (the policy)",
             "reward_model_name_or_path": "use reward_model_path",
             "reward_funcs": "the reward model is the reward function: set reward_model_path",
             "use_vllm": "not supported here (generation runs in transformers)",
             "max_prompt_length": "use max_prompt_tokens"}

    def _required(self):
        return ("model", "reward_model_path") + super()._required()

    @property
    def prompts_per_step(self) -> int:
        """Prompts one generation batch samples from (TRL: generation_batch_size / num_generations)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps // max(self.num_generations, 1)

    def validate(self) -> None:
        super().validate()
        for name in ("num_generations", "max_completion_length", "num_iterations"):
            _positive(self, name)
        if self.num_generations < 2:
            raise SeamError(f"num_generations must be at least 2 (each completion is compared with the others of its "
                            f"prompt), got {self.num_generations}")
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if batch % self.num_generations:
            raise SeamError(f"per_device_train_batch_size x gradient_accumulation_steps ({batch}) must be a multiple of "
                            f"num_generations ({self.num_generations}): every step holds whole groups of completions")
        if self.eval_data and self.eval_batch_size % self.num_generations:
            raise SeamError(f"per_device_eval_batch_size ({self.eval_batch_size}) must be a multiple of num_generations "
                            f"({self.num_generations}) to evaluate on eval_data")
        _non_negative(self, "top_k")
        checks = (("temperature", self.temperature > 0, "> 0"), ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
                  ("repetition_penalty", self.repetition_penalty > 0, "> 0"),
                  ("beta", self.beta >= 0 and math.isfinite(self.beta), ">= 0"), ("epsilon", self.epsilon > 0, "> 0"),
                  ("epsilon_high", self.epsilon_high is None or self.epsilon_high > 0, "> 0"),
                  ("min_p", self.min_p is None or 0 <= self.min_p <= 1, "in [0, 1]"))
        for name, ok, what in checks:
            if not ok:
                raise SeamError(f"{name} must be {what}, got {getattr(self, name)!r}")


@dataclass
class GRPOConfig(GroupRLCommon):
    """GRPO (TRL 1.12 `GRPOTrainer`): group-relative advantages over num_generations completions per prompt."""

    loss_type: str = setting("dapo", "TRL loss: " + " | ".join(GRPO_LOSS_TYPES) + " (dapo: TRL's default)")
    scale_rewards: str = setting("group", "divide advantages by the reward std of the group | batch | none (Dr. GRPO)")

    kind = "grpo"

    def validate(self) -> None:
        super().validate()
        _choice(self, "loss_type", GRPO_LOSS_TYPES)
        _choice(self, "scale_rewards", SCALE_REWARDS)


@dataclass
class RLOOConfig(GroupRLCommon):
    """RLOO (TRL 1.12 `RLOOTrainer`): REINFORCE with the leave-one-out mean of the other completions as baseline."""

    num_generations: int = setting(2, "completions sampled per prompt (>= 2; TRL's RLOO default 2)")
    beta: float = setting(0.05, "KL coefficient against the reference policy, subtracted from the reward "
                          "(0 = no reference model is loaded; TRL's RLOO default 0.05)")
    normalize_advantages: bool = setting(False, "normalise advantages to mean 0, std 1 per generation batch")
    reward_clip_range: tuple[float, ...] | None = setting(None, "clip rewards to [MIN, MAX] (two numbers; None = no clip)",
                                                          metavar="X")

    kind = "rloo"

    def validate(self) -> None:
        super().validate()
        r = self.reward_clip_range
        if r is not None and (len(r) != 2 or not r[0] < r[1]):
            raise SeamError(f"reward_clip_range must be two numbers MIN MAX with MIN < MAX, got {list(r)}")


@dataclass
class BoNConfig(TrainCommon):
    """Best-of-n rejection-sampling fine-tuning: each round samples num_generations completions per prompt,
    keeps the one the reward model scores highest, and fine-tunes the policy on the picks (SFT)."""

    model: str = setting("", "policy model folder (the SFT'd PM: HF layout, .gguf folder or LoRA run)", metavar="DIR")
    reward_model_path: str = setting("", "reward model folder: a trained one-label sequence classifier (it reads the "
                                     "decoded text with its own tokenizer)", metavar="DIR")
    num_generations: int = setting(8, "completions sampled per prompt (n; the RM keeps the best one)")
    rounds: int = setting(1, "sample -> pick -> fine-tune rounds (each round samples from the previous round's policy)")
    temperature: float = setting(1.0, "sampling temperature")
    top_p: float = setting(1.0, "nucleus sampling")
    max_completion_length: int = setting(128, "tokens per sampled completion")
    generation_batch_size: int = setting(32, "sequences per generate call")
    learning_rate: float = setting(5e-5, "peak learning rate of the fine-tuning on the picks")
    warmup_steps: int = setting(10, "linear warm-up steps of each round's fine-tuning")
    first_round_samples: str = setting("", "reuse the first round's samples and rewards from this file (a run's "
                                       "rounds/round-0/samples.jsonl, or an experiment's shared one) instead of "
                                       "sampling; it must cover every prompt with num_generations samples",
                                       metavar="FILE")

    kind = "bon"

    def validate(self) -> None:
        super().validate()
        for name in ("num_generations", "rounds", "max_completion_length", "generation_batch_size"):
            _positive(self, name)
        if self.num_generations < 2:
            raise SeamError(f"num_generations must be >= 2 (best of one is plain sampling), got {self.num_generations}")
        if not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise SeamError(f"temperature must be > 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        if self.eval_data:
            raise SeamError("--eval-data is not used by best-of-n; evaluate the run with `seam eval eval-policy`")

    def _required(self):
        return ("model", "reward_model_path") + super()._required()


TRAIN_CONFIGS: dict[str, type[TrainCommon]] = {"sft": SFTConfig, "rm": RMConfig, "ppo": PPOConfig,
                                                "grpo": GRPOConfig, "rloo": RLOOConfig, "bon": BoNConfig}


# ============================================================================ validation helpers


def _choice(cfg, name: str, options, allow_prefix: str | None = None) -> None:
    value = getattr(cfg, name)
    if value in options or (allow_prefix and isinstance(value, str) and value.startswith(allow_prefix)):
        return
    raise SeamError(f"{name} must be one of {', '.join(options)}, got {value!r}")


def _positive(cfg, name: str) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SeamError(f"{name} must be a positive integer, got {value!r}")


def _non_negative(cfg, name: str) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SeamError(f"{name} must be a non-negative integer, got {value!r}")
