"""Typed configs for `train_sft`, `train_rm` and `train_ppo`, loadable from YAML with overrides.

Every field has a ``help`` string; `add_config_flags` turns the fields of a config class into
``--kebab-case`` flags (default None, so only flags the user typed override the YAML file), and
`load_config` builds the config from ``YAML file <- overrides`` and validates it:

    >>> cfg = load_config(SFTConfig, overrides={"model": "pm", "data": "sft.jsonl", "output_dir": "runs/sft"})
    >>> cfg.learning_rate, cfg.lora
    (0.0001, False)

Defaults follow the paper's appendix C where it gives a value (SFT lr 1e-4 with 10 warmup steps,
RM lr 2e-5, PPO lr 1.4e-5, batch 32, 200 PPO steps); the rest are TRL's.
"""

from __future__ import annotations

import argparse
import math
import os
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import SeamError

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
REPORT_TO = ("auto", "none", "tensorboard")


def _f(default, help: str, **kw):  # kw: extra metadata, e.g. metavar
    """A dataclass field with help text (mutable defaults go through default_factory)."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


# ============================================================================ shared fields


@dataclass
class TrainCommon:
    """Fields every trainer shares: data, output, device, optimisation, logging, LoRA."""

    data: str = _f("", "training data file (instructions contract: JSONL, CSV, Parquet or HF folder)", metavar="FILE")
    output_dir: str = _f("", "run folder: the final model, metrics.jsonl, seam_run.json, logs/, checkpoints/", metavar="DIR")
    eval_data: str | None = _f(None, "optional held-out file evaluated at the end (and every eval_steps if set)", metavar="FILE")
    max_rows: int | None = _f(None, "use only the first N rows of the data (smoke runs)")
    template: str = _f("stackllama", "text template: stackllama | chat | a format string with {prompt} and {response}")
    max_length: int = _f(1024, "max tokens per sequence; longer responses are cut from the right (counted, never silent)")
    max_prompt_tokens: int | None = _f(None, "keep the first N prompt tokens (None = no cut; prompts longer than max_length are an error)")
    seed: int = _f(0, "seed for model init, data order, dropout and sampling")
    device: str = _f("auto", "auto | cpu | cuda")
    dtype: str = _f("auto", "mixed precision: auto (bf16 on a GPU that has it, else fp32) | float32 | bfloat16 | float16")
    learning_rate: float = _f(1e-4, "peak learning rate (AdamW)")
    num_train_epochs: float = _f(1.0, "epochs over the data (ignored when max_steps > 0)")
    max_steps: int = _f(-1, "optimizer steps; -1 = run num_train_epochs")
    batch_size: int = _f(8, "per-device batch size")
    gradient_accumulation_steps: int = _f(1, "micro-batches per optimizer step")
    warmup_steps: int = _f(0, "linear warm-up steps")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    lr_scheduler_type: str = _f("linear", "transformers scheduler name: linear | cosine | constant | ...")
    gradient_checkpointing: bool = _f(False, "trade compute for memory")
    logging_steps: int = _f(10, "log metrics every N steps")
    eval_steps: int = _f(0, "evaluate on eval_data every N steps (0 = only at the end)")
    save_steps: int = _f(0, "also save a checkpoint every N steps under checkpoints/ (0 = only the final model)")
    report_to: str = _f("auto", "auto (tensorboard when installed, else none) | none | tensorboard")
    lora: bool = _f(False, "train a LoRA adapter instead of all weights (the run folder then holds the adapter)")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    lora_dropout: float = _f(0.05, "LoRA dropout")
    lora_target_modules: str = _f("all-linear", "comma-separated module names, or all-linear")
    allow_pickle: bool = _f(False, "allow .bin/.pt weights (pickle can run code: trusted checkpoints only)")
    quiet: bool = _f(False, "no progress bar")

    kind = "common"  # overridden by subclasses (class attribute, not a field)

    def validate(self) -> None:
        need = [n for n in self._required() if not getattr(self, n)]
        if need:
            flags = ", ".join("--" + n.replace("_", "-") for n in need)
            raise SeamError(f"{self.kind} config is missing {', '.join(need)}; pass {flags} or set it in the YAML file")
        _choice(self, "device", DEVICES)
        _choice(self, "dtype", DTYPES)
        _choice(self, "report_to", REPORT_TO)
        for name in ("batch_size", "gradient_accumulation_steps", "max_length", "logging_steps", "lora_r", "lora_alpha"):
            _positive(self, name)
        for name in ("warmup_steps", "eval_steps", "save_steps"):
            _non_negative(self, name)
        for name in ("max_rows", "max_prompt_tokens"):
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

    def input_paths(self) -> list[tuple[str, str]]:
        """(flag, path) of every file or folder the run reads (data and models), for the
        output-is-not-an-input check."""
        return [("--" + f.name.replace("_", "-"), getattr(self, f.name)) for f in fields(self)
                if f.metadata.get("metavar") in ("FILE", "DIR") and f.name != "output_dir" and getattr(self, f.name)]

    def to_dict(self) -> dict:
        return asdict(self)


# ============================================================================ per trainer


@dataclass
class SFTConfig(TrainCommon):
    """Supervised fine-tuning of the policy model on (prompt, chosen) rows."""

    model: str = _f("", "base model folder (HF save_pretrained layout or one .gguf file)", metavar="DIR")
    completion_only_loss: bool = _f(True, "loss on the response tokens and the EOS only (the tokens SEAM scores)")
    warmup_steps: int = _f(10, "linear warm-up steps (paper: 10)")

    kind = "sft"

    def _required(self):
        return ("model",) + super()._required()


@dataclass
class RMConfig(TrainCommon):
    """Reward model: a one-label sequence classifier trained with the pairwise loss -log sigmoid(r+ - r-)."""

    model: str = _f("", "base folder: an RM to continue, or a causal LM (usually the SFT model) that gets a fresh score head", metavar="DIR")
    learning_rate: float = _f(2e-5, "peak learning rate (paper: 2e-5)")
    center_rewards_coefficient: float | None = _f(None, "optional penalty on mean reward^2 (TRL, e.g. 0.01)")
    append_eos: bool = _f(False, "append EOS to every text before scoring (off: the scoring contract uses no extra EOS)")
    train_layers: int | None = _f(None, "train only the top N transformer layers, the final norm and the score head "
                                        "(the rest frozen: much faster on a CPU); None = all weights")

    kind = "rm"

    def _required(self):
        return ("model",) + super()._required()


@dataclass
class PPOConfig(TrainCommon):
    """PPO (TRL 1.12 `trl.experimental.ppo`): policy and reference from the PM, reward and value from the RM."""

    policy: str = _f("", "policy model folder (the SFT'd PM); also the frozen reference unless ref_policy is set", metavar="DIR")
    reward_model: str = _f("", "reward model folder (one-label sequence classifier sharing the policy's tokenizer)", metavar="DIR")
    value_model: str | None = _f(None, "value model init (default: the reward model)", metavar="DIR")
    ref_policy: str | None = _f(None, "reference policy (default: a frozen copy of the policy; with LoRA the adapter-free base)", metavar="DIR")
    learning_rate: float = _f(1.4e-5, "policy+value learning rate (paper: 1.4e-5)")
    batch_size: int = _f(32, "rollouts per PPO update per device (paper: 32)")
    steps: int = _f(200, "PPO updates (paper: 200); episodes = steps x batch_size x grad accumulation")
    mini_batches: int = _f(1, "mini-batches per PPO update")
    ppo_epochs: int = _f(4, "optimisation epochs over each rollout batch")
    kl_coef: float = _f(0.05, "KL penalty coefficient (beta) against the reference policy")
    kl_estimator: str = _f("k1", "k1 | k3")
    response_length: int = _f(64, "max new tokens per rollout")
    temperature: float = _f(0.7, "sampling temperature for rollouts")
    stop_at_eos: bool = _f(True, "truncate rollouts at the first EOS")
    missing_eos_penalty: float | None = _f(None, "subtract this from the score of rollouts that never emit EOS")
    whiten_rewards: bool = _f(False, "whiten rewards (needs mini-batch >= 8)")
    cliprange: float = _f(0.2, "policy clip range")
    cliprange_value: float = _f(0.2, "value clip range")
    vf_coef: float = _f(0.1, "value loss coefficient")
    gamma: float = _f(1.0, "discount")
    lam: float = _f(0.95, "GAE lambda")
    rollout_forward_batch_size: int = _f(16, "sequences per no-grad forward in the rollout phase")
    max_prompt_tokens: int | None = _f(256, "keep the first N prompt tokens (rendered query); None = no cut")
    warmup_steps: int = _f(0, "linear warm-up steps")
    logging_steps: int = _f(1, "log metrics every N PPO updates")

    kind = "ppo"

    def _required(self):
        return ("policy", "reward_model") + super()._required()

    def validate(self) -> None:
        super().validate()
        for name in ("steps", "mini_batches", "ppo_epochs", "response_length", "rollout_forward_batch_size"):
            _positive(self, name)
        _choice(self, "kl_estimator", ("k1", "k3"))
        if self.kl_coef < 0:
            raise SeamError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if not self.temperature > 0:
            raise SeamError(f"temperature must be > 0 for PPO rollouts, got {self.temperature}")
        local = self.batch_size * self.gradient_accumulation_steps
        if local % self.mini_batches:
            raise SeamError(f"batch_size x gradient_accumulation_steps ({local}) must be a multiple of mini_batches ({self.mini_batches})")
        if self.whiten_rewards and local // self.mini_batches < 8:
            raise SeamError("whiten_rewards needs at least 8 rollouts per mini-batch; raise batch_size or turn it off")


TRAIN_CONFIGS: dict[str, type[TrainCommon]] = {"sft": SFTConfig, "rm": RMConfig, "ppo": PPOConfig}


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


# ============================================================================ YAML + overrides


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(tp) -> tuple[type, bool]:
    """(scalar type, optional?) of an annotation like `int | None`."""
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 else str), True
    return tp, False


def coerce(cls, name: str, value: Any, source: str = "config"):
    """Convert a YAML/CLI value to the field's type; SeamError naming the key when it cannot."""
    tp, optional = _base_type(_field_types(cls)[name])
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        if optional:
            return None
        raise SeamError(f"{source}: {name} cannot be empty; give a {tp.__name__}")
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off"):
                return False
            raise ValueError(value)
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        raise SeamError(f"{source}: {name} must be a {tp.__name__}, got {value!r}") from None
    return value


def load_yaml(path: str | os.PathLike) -> dict:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SeamError(f"--config {p}: file not found; pass a YAML file with one key per config field")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = " ".join(str(exc).split())[:160]
        raise SeamError(f"--config {p}: not valid YAML ({first}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SeamError(f"--config {p}: the YAML must be a mapping of field: value, got {type(data).__name__}")
    return data


def load_config(cls, path: str | os.PathLike | None = None, overrides: dict | None = None, validate: bool = True):
    """Build `cls` from an optional YAML file, then `overrides` (values that are None are ignored).

    Unknown keys, wrong types and invalid values raise SeamError naming the key."""
    names = [f.name for f in fields(cls)]
    values: dict[str, Any] = {}
    if path is not None:
        raw = load_yaml(path)
        unknown = sorted(set(map(str, raw)) - set(names))
        if unknown:
            raise SeamError(f"--config {path}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(names)}")
        values.update({k: coerce(cls, k, v, f"--config {path}") for k, v in raw.items()})
    for k, v in (overrides or {}).items():
        if k not in names:
            raise SeamError(f"unknown {cls.kind} config key {k!r}; valid keys: {', '.join(names)}")
        if v is not None:
            values[k] = coerce(cls, k, v, "--" + k.replace("_", "-"))
    cfg = cls(**values)
    if validate:
        cfg.validate()
    return cfg


def add_config_flags(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = (),
                     aliases: dict[str, tuple[str, ...]] | None = None) -> None:
    """One flag per field (``--learning-rate``; bools as ``--lora/--no-lora``), all default None.

    `aliases` adds extra option strings for a field (``{"output_dir": ("--out",)}``)."""
    aliases = aliases or {}
    hints = _field_types(cls)
    defaults = cls.__dataclass_fields__
    group = parser.add_argument_group(f"{cls.kind} settings (override --config)")
    own = set(cls.__dict__.get("__annotations__", {}))  # the trainer's own fields first
    for f in sorted(fields(cls), key=lambda f: f.name not in own):
        if f.name in skip:
            continue
        tp, _ = _base_type(hints[f.name])
        flags = ("--" + f.name.replace("_", "-"),) + tuple(aliases.get(f.name, ()))
        default = defaults[f.name].default
        if default is MISSING and defaults[f.name].default_factory is not MISSING:  # pragma: no cover
            default = defaults[f.name].default_factory()
        shown = "" if default in ("", None) else f" (default {default})"
        help_ = (f.metadata.get("help", "") + shown).replace("%", "%%")
        if tp is bool:
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            group.add_argument(*flags, dest=f.name, default=None, metavar=f.metadata.get("metavar") or {int: "N", float: "X"}.get(tp, "VALUE"),
                               help=help_)


def config_from_args(cls, args: argparse.Namespace, extra: dict | None = None):
    """`load_config(cls, args.config, {field: args.<field>} + extra)`."""
    overrides = {f.name: getattr(args, f.name, None) for f in fields(cls)}
    overrides.update({k: v for k, v in (extra or {}).items() if v is not None})
    return load_config(cls, getattr(args, "config", None), overrides)
