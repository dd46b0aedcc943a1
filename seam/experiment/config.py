"""Experiment settings: `EvalSettings`, `ExperimentConfig` and one subclass per experiment (filter,
augment, sweep), the constants they share, and the checks of trainer overrides.

A config only describes an experiment; `validate()` checks it (one-line `SeamError`s) before any
file is read or model loaded. `seam.experiment.runner` runs it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import SeamError
from ..select import check_fraction
from ..settings import Settings, resolve_aliases, setting, warn_renamed
from ..train.config import DTYPES, TRAIN_CONFIGS
from ..train.judges import JUDGES
from ..train.stats import PAIRED_TESTS

EXPERIMENT_KINDS = ("filter", "augment", "sweep")
# arm base name -> selection method (None: the reference arm, the data unchanged)
FILTER_ARMS: dict[str, str | None] = {"full": None, "seam": "seam", "random": "random", "perplexity": "perplexity",
                                      "reward-gap": "reward-gap", "skill-prior": "skill-prior", "oracle": "oracle"}
LABEL_ARMS = ("skill-prior", "oracle")  # filter arms that read the hidden label file (--label)
METHODS = ("ppo", "grpo", "rloo", "bon")  # the trainer of each arm's policy
AUGMENT_ARMS: dict[str, str | None] = {"original": None, "seam": "seam", "random": "random", "full": "full"}
ARM_ALIASES = {"reward_gap": "reward-gap", "rewardgap": "reward-gap", "ppl": "perplexity", "skill_prior": "skill-prior",
               "skillprior": "skill-prior"}
REFERENCE = {"filter": "full", "augment": "original", "sweep": "full"}
DEFAULT_RATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
MANIFEST = "experiment.json"
SCORES = ("gold", "rm")  # judged scores compared between arms (gold first: the headline)


def arm_alias(name: str) -> str:
    """The canonical spelling of an arm or method name (`reward_gap` -> `reward-gap`, `ppl` -> `perplexity`)."""
    name = str(name).strip()
    return ARM_ALIASES.get(name, name)


@dataclass
class EvalSettings(Settings):
    """How each arm's final policy is evaluated."""

    n_prompts: int | None = setting(40, "held-out prompts used (the first N of the eval set); None = all")
    max_new_tokens: int = setting(48, "max tokens per generated response")
    temperature: float = setting(0.0, "0 = greedy decoding (deterministic per policy)")
    batch_size: int = setting(16, "prompts per generation batch")
    kl: bool = setting(True, "also estimate KL(policy || starting policy) per response (one more forward pass each)")
    holdout: float = setting(0.2, "without an eval file: the share of the RL set held out (seeded) as eval prompts")
    judges: tuple[str, ...] = setting(SCORES, "judges: gold (demo world rows) and rm (the input RM as a fixed yardstick)")

    def validate(self) -> None:
        if self.n_prompts is not None and (isinstance(self.n_prompts, bool) or int(self.n_prompts) < 1):
            raise SeamError(f"--n-eval must be a positive number of prompts, got {self.n_prompts!r}")
        if int(self.max_new_tokens) < 1 or int(self.batch_size) < 1:
            raise SeamError("--max-new-tokens and the eval batch size must be positive integers")
        if self.temperature < 0:
            raise SeamError(f"eval temperature must be >= 0, got {self.temperature}")
        if not 0 < self.holdout < 1:
            raise SeamError(f"eval holdout must be a fraction in (0, 1), got {self.holdout}")
        self.judges = tuple(self.judges)
        bad = [j for j in self.judges if j not in ("gold", "rm")]
        if bad or not self.judges:
            raise SeamError(f"experiment judges must be gold and/or rm (got {list(self.judges)}); "
                            f"other judges ({', '.join(j for j in JUDGES if j not in SCORES)}) run with `seam train eval-policy`")


@dataclass
class ExperimentConfig(Settings):
    """Settings every experiment shares. `ppo` / `sft` / `rm` hold overrides of the trainers' configs."""

    arms: tuple[str, ...] = setting((), "arms to run (default: every arm of the experiment)")
    seeds: tuple[int, ...] = setting((0,), "one PPO run per arm and seed (also the random baselines' seed)")
    p: float = setting(0.2, "share of the RL set dropped (filter) or augmented (augment); paper: 0.2")
    variants: tuple[str, ...] = setting((), "SEAM variants (several: ranks averaged); default all in the scores file")
    ppo: dict = setting({}, "PPOConfig overrides (max_steps, per_device_train_batch_size, response_length, lora, ...)")
    method: str = setting("ppo", "trainer of each arm's policy: ppo | grpo | rloo | bon (the ppo knobs are mapped "
                                 "onto the others' fields; see docs/experiments.md)")
    trainer: dict = setting({}, "grpo / rloo / bon: overrides of that trainer's config (num_generations, beta, ...); "
                                "win over the mapped ppo knobs")
    label: str | None = setting(None, "hidden label file (JSONL: id, S, skill), e.g. a world-v2 study's "
                                      "hidden/label.jsonl: the oracle and skill-prior arms")
    eval: EvalSettings = setting(EvalSettings(), "evaluation settings")
    template: str = setting("stackllama", "text template for training and evaluation")
    device: str = setting("auto", "auto | cpu | cuda (training and evaluation)")
    dtype: str = setting("auto", "auto | float32 | bfloat16 | float16: evaluation weights and the trainers' mixed precision")
    test: str = setting("t", "paired test over per-seed means: t | wilcoxon | permutation | sign")
    level: float = setting(0.95, "confidence level of the intervals")
    eval_initial: bool = setting(True, "also evaluate the starting policy (no RL), as a point of reference")
    quiet: bool = setting(True, "no per-trainer progress bars (the experiment reports per unit)")
    command: str | None = setting(None, "the command line, recorded in the results")

    kind = "experiment"

    def arm_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def validate(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        if not self.seeds:
            raise SeamError("--seeds: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise SeamError(f"--seeds {list(self.seeds)}: a seed is repeated; give distinct seeds")
        check_fraction(self.p)
        self.variants = tuple(self.variants or ())
        self.arms = tuple(self.arms or ())
        if self.test not in PAIRED_TESTS:
            raise SeamError(f"--test must be one of {', '.join(PAIRED_TESTS)}, got {self.test!r}")
        if self.dtype not in DTYPES:
            raise SeamError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not 0 < self.level < 1:
            raise SeamError(f"--level must be in (0, 1), got {self.level}")
        if not isinstance(self.ppo, dict):
            raise SeamError(f"ppo overrides must be a mapping of PPOConfig fields, got {type(self.ppo).__name__}")
        self.eval.validate()
        self.ppo = _check_overrides("ppo", self.ppo, _PPO_OWNED)
        self.method = str(self.method).strip().lower()
        if self.method not in METHODS:
            raise SeamError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not isinstance(self.trainer, dict):
            raise SeamError(f"trainer overrides must be a mapping, got {type(self.trainer).__name__}")
        if self.trainer and self.method == "ppo":
            raise SeamError("trainer overrides are for --method grpo, rloo or bon; PPO settings go in ppo overrides")
        if self.trainer:
            self.trainer = _check_overrides(self.method, self.trainer, _GROUP_OWNED)
        needs = sorted({arm_alias(str(a).partition("@")[0].partition(":")[0]) for a in self.label_arm_names()}
                       & set(LABEL_ARMS))
        if needs and not self.label:
            raise SeamError(f"the {needs[0]} arm needs --label FILE (JSONL with id, S, skill; a world-v2 study "
                            "writes it to <study>/hidden/label.jsonl)")

    def label_arm_names(self) -> tuple[str, ...]:
        """The arm (or method) names that may need the label file."""
        return self.arm_names()

    def to_dict(self) -> dict[str, Any]:
        """The fields (`eval` as a dict) and ``kind``, as manifests record them."""
        return {**super().to_dict(), "kind": self.kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, where: str | None = None, validate: bool = True):
        """As `Settings.from_dict`; a ``kind`` key (as `to_dict` writes it) must name this experiment."""
        data = dict(data or {})
        kind = data.pop("kind", cls.kind)
        if kind != cls.kind:
            raise SeamError(f"{where or cls.__name__ + ' settings'}: kind {kind!r} does not match; "
                            f"these are the settings of a {cls.kind} experiment")
        return super().from_dict(data, where=where, validate=validate)


@dataclass
class FilterExperimentConfig(ExperimentConfig):
    """Full RL set vs dropping the lowest p% by SEAM vs the baselines (paper section 6)."""

    kind = "filter"

    def arm_names(self) -> tuple[str, ...]:
        return self.arms or ("full", "seam", "random", "perplexity")


@dataclass
class AugmentExperimentConfig(ExperimentConfig):
    """Original training data vs contrast-instruction augmentation around anchors (paper section 7)."""

    k: int = setting(5, "contrast neighbours per anchor: k SFT rows and k RM pairs (paper: 5)")
    sft: dict = setting({}, "SFTConfig overrides for retraining the PM (max_steps, lora, learning_rate, ...)")
    rm: dict = setting({}, "RMConfig overrides for retraining the RM (max_steps, train_layers, ...)")
    train_seed: int | None = setting(None, "seed of the SFT/RM retraining and of the random anchors (default: the first seed)")

    kind = "augment"

    def arm_names(self) -> tuple[str, ...]:
        return self.arms or ("original", "seam", "random", "full")

    def validate(self) -> None:
        super().validate()
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise SeamError(f"--k must be a positive integer (paper: 5), got {self.k!r}")
        self.sft = _check_overrides("sft", self.sft, _TRAIN_OWNED)
        self.rm = _check_overrides("rm", self.rm, _TRAIN_OWNED)


@dataclass
class SweepConfig(ExperimentConfig):
    """The SEAM filter (and optional baselines) at several drop rates, against the full RL set."""

    rates: tuple[float, ...] = setting(DEFAULT_RATES, "drop rates to sweep (fractions)")
    methods: tuple[str, ...] = setting(("seam",), "selection methods swept: seam, random, perplexity, reward-gap")

    kind = "sweep"

    def arm_names(self) -> tuple[str, ...]:
        if self.arms:
            return self.arms
        return ("full",) + tuple(f"{m}@{r:g}" for m in self.methods for r in self.rates)

    def label_arm_names(self) -> tuple[str, ...]:
        return tuple(self.arms) + tuple(self.methods)

    def validate(self) -> None:
        super().validate()
        self.rates = tuple(float(r) for r in self.rates)
        if not self.rates:
            raise SeamError("--rates: give at least one drop rate")
        for r in self.rates:
            check_fraction(r, "--rates")
        self.methods = tuple(arm_alias(m) for m in self.methods)
        for m in self.methods:
            if m not in FILTER_ARMS or FILTER_ARMS[m] is None:
                raise SeamError(f"--methods {m!r}: unknown; sweep one or more of "
                                f"{', '.join(k for k, v in FILTER_ARMS.items() if v)}")


EXPERIMENT_CONFIGS: dict[str, type[ExperimentConfig]] = {
    "filter": FilterExperimentConfig, "augment": AugmentExperimentConfig, "sweep": SweepConfig}

# Trainer fields the experiment sets itself (an override of these would break the design).
_PPO_OWNED = ("sft_model_path", "reward_model_path", "data", "output_dir", "seed", "eval_data", "ref_policy")
_TRAIN_OWNED = ("model", "data", "output_dir", "eval_data")
_GROUP_OWNED = ("model", "reward_model_path", "data", "output_dir", "eval_data", "seed", "first_round_samples")


def canonical_overrides(what: str, overrides: dict | None) -> dict:
    """Trainer overrides with the trainer config's old names (``ALIASES``, e.g. ``steps``) renamed to
    the current ones, silently: for comparing with overrides stored by an earlier version."""
    return resolve_aliases(TRAIN_CONFIGS[what], overrides or {}, f"{what} overrides")[0]


def _check_overrides(what: str, overrides: dict, owned: tuple[str, ...]) -> dict:
    """The overrides under the current names (old names: one deprecation line); unknown or owned keys are errors."""
    cls = TRAIN_CONFIGS[what]
    names = {f.name for f in dataclasses.fields(cls)}
    canonical, renamed = resolve_aliases(cls, overrides, f"{what} overrides")
    for key in canonical:
        if key in owned:
            raise SeamError(f"{what} override {key!r} is set by the experiment itself; remove it")
        if key not in names:
            raise SeamError(f"unknown {what} setting {key!r}; valid: {', '.join(sorted(names - set(owned)))}")
    warn_renamed(f"{what} overrides", renamed)
    return canonical

