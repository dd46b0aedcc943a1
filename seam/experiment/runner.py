"""Experiments: does filtering or augmenting the data by SEAM make RLHF better? (paper sections 6-7)

Three experiments, each a set of *arms* run over seeds, every arm ending in a PPO run evaluated
on the same held-out prompts:

* `run_filter_experiment`   full RL set vs SEAM-filtered vs random removal vs PM perplexity (and
                            reward gap): select -> PPO -> evaluate.
* `run_augment_experiment`  original PM/RM training data vs SEAM-augmented vs random anchors vs
                            full augmentation: augment -> retrain SFT and RM -> PPO -> evaluate.
* `run_sweep`               the SEAM filter (and optional baselines) at drop rates 10..80%.

Evaluation: greedy responses to the held-out prompts, judged by the demo world's gold judge (rows
whose meta carries a testbed task) and by a fixed reward model (the input RM, the same yardstick
for every arm), plus response length and a KL estimate to the arm's starting policy. Aggregation:
per arm the mean over seeds and prompts with a bootstrap CI, and paired comparisons with the
reference arm (full / original): the bootstrap CI of the difference, the win rate, a paired test
over prompts (Wilcoxon) and, with two or more seeds, over per-seed means (`test`, default t).

Outputs (all under the `out` folder, written atomically):

    experiment.json        config + inputs (a re-run with the same config resumes; another config is refused)
    data/                  eval.jsonl (held-out prompts), rl.pool.jsonl (the RL set PPO draws from)
    selections/            one selected RL set (or augmented SFT/RM files) per arm [and seed], with lineage
    runs/<arm>/s<seed>/    the PPO run folder (model or LoRA adapter, metrics.jsonl, seam_run.json)
    train/<arm>/{sft,rm}/  augment only: the retrained PM and RM of each arm
    evals/<arm>.s<seed>.jsonl / .json   per-prompt responses and scores, and their summary
    results.json, results.md            the results table, per-seed numbers, comparisons
    figures/*.html, *.png               Plotly figures (PNG drawn with matplotlib)

The library never touches the store: `hooks` (progress, per-step metrics, unit start/end,
should_stop) let the job worker mirror everything into it. See docs/experiments.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import SeamError

EXPERIMENT_KINDS = ("filter", "augment", "sweep")
# arm base name -> selection method (None: the reference arm, the data unchanged)
FILTER_ARMS: dict[str, str | None] = {"full": None, "seam": "seam", "random": "random", "perplexity": "perplexity",
                                      "reward-gap": "reward-gap"}
AUGMENT_ARMS: dict[str, str | None] = {"original": None, "seam": "seam", "random": "random", "full": "full"}
ARM_ALIASES = {"reward_gap": "reward-gap", "rewardgap": "reward-gap", "ppl": "perplexity"}
REFERENCE = {"filter": "full", "augment": "original", "sweep": "full"}
DEFAULT_RATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
MANIFEST = "experiment.json"
SCORES = ("gold", "rm")  # judged scores compared between arms (gold first: the headline)

ProgressFn = Callable[[float, str], None]


class ExperimentStopped(Exception):
    """Raised when `hooks.should_stop()` said stop; finished units are kept on disk for a resume."""


# ============================================================================ configs


def _f(default, help: str):
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class EvalSettings:
    """How each arm's final policy is evaluated."""

    n_prompts: int | None = _f(40, "held-out prompts used (the first N of the eval set); None = all")
    max_new_tokens: int = _f(48, "max tokens per generated response")
    temperature: float = _f(0.0, "0 = greedy decoding (deterministic per policy)")
    batch_size: int = _f(16, "prompts per generation batch")
    kl: bool = _f(True, "also estimate KL(policy || starting policy) per response (one more forward pass each)")
    holdout: float = _f(0.2, "without an eval file: the share of the RL set held out (seeded) as eval prompts")
    judges: tuple[str, ...] = _f(SCORES, "judges: gold (demo world rows) and rm (the input RM as a fixed yardstick)")

    def validate(self) -> None:
        if self.n_prompts is not None and (isinstance(self.n_prompts, bool) or int(self.n_prompts) < 1):
            raise SeamError(f"--n-eval must be a positive number of prompts, got {self.n_prompts!r}")
        if int(self.max_new_tokens) < 1 or int(self.batch_size) < 1:
            raise SeamError("--max-new-tokens and the eval batch size must be positive integers")
        if self.temperature < 0:
            raise SeamError(f"eval temperature must be >= 0, got {self.temperature}")
        if not 0 < self.holdout < 1:
            raise SeamError(f"eval holdout must be a fraction in (0, 1), got {self.holdout}")
        from .train.judges import JUDGES

        self.judges = tuple(self.judges)
        bad = [j for j in self.judges if j not in ("gold", "rm")]
        if bad or not self.judges:
            raise SeamError(f"experiment judges must be gold and/or rm (got {list(self.judges)}); "
                            f"other judges ({', '.join(j for j in JUDGES if j not in SCORES)}) run with `seam train eval-policy`")


@dataclass
class ExperimentConfig:
    """Settings every experiment shares. `ppo` / `sft` / `rm` hold overrides of the trainers' configs."""

    arms: tuple[str, ...] = _f((), "arms to run (default: every arm of the experiment)")
    seeds: tuple[int, ...] = _f((0,), "one PPO run per arm and seed (also the random baselines' seed)")
    p: float = _f(0.2, "share of the RL set dropped (filter) or augmented (augment); paper: 0.2")
    variants: tuple[str, ...] = _f((), "SEAM variants (several: ranks averaged); default all in the scores file")
    ppo: dict = _f({}, "PPOConfig overrides (steps, batch_size, response_length, lora, ...)")
    eval: EvalSettings = field(default_factory=EvalSettings, metadata={"help": "evaluation settings"})
    template: str = _f("stackllama", "text template for training and evaluation")
    device: str = _f("auto", "auto | cpu | cuda (training and evaluation)")
    dtype: str = _f("auto", "auto | float32 | bfloat16 | float16: evaluation weights and the trainers' mixed precision")
    test: str = _f("t", "paired test over per-seed means: t | wilcoxon | permutation | sign")
    level: float = _f(0.95, "confidence level of the intervals")
    eval_initial: bool = _f(True, "also evaluate the starting policy (no PPO), as a point of reference")
    quiet: bool = _f(True, "no per-trainer progress bars (the experiment reports per unit)")
    command: str | None = _f(None, "the command line, recorded in the results")

    kind = "experiment"

    def arm_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def validate(self) -> None:
        from .select import check_fraction
        from .train.stats import PAIRED_TESTS

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
        from .train.config import DTYPES

        if self.dtype not in DTYPES:
            raise SeamError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not 0 < self.level < 1:
            raise SeamError(f"--level must be in (0, 1), got {self.level}")
        if not isinstance(self.ppo, dict):
            raise SeamError(f"ppo overrides must be a mapping of PPOConfig fields, got {type(self.ppo).__name__}")
        self.eval.validate()
        _check_overrides("ppo", self.ppo, _PPO_OWNED)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = self.kind
        return d


@dataclass
class FilterExperimentConfig(ExperimentConfig):
    """Full RL set vs dropping the lowest p% by SEAM vs the baselines (paper section 6)."""

    kind = "filter"

    def arm_names(self) -> tuple[str, ...]:
        return self.arms or ("full", "seam", "random", "perplexity")


@dataclass
class AugmentExperimentConfig(ExperimentConfig):
    """Original training data vs contrast-instruction augmentation around anchors (paper section 7)."""

    k: int = _f(5, "contrast neighbours per anchor: k SFT rows and k RM pairs (paper: 5)")
    sft: dict = _f({}, "SFTConfig overrides for retraining the PM (max_steps, lora, learning_rate, ...)")
    rm: dict = _f({}, "RMConfig overrides for retraining the RM (max_steps, train_layers, ...)")
    train_seed: int | None = _f(None, "seed of the SFT/RM retraining and of the random anchors (default: the first seed)")

    kind = "augment"

    def arm_names(self) -> tuple[str, ...]:
        return self.arms or ("original", "seam", "random", "full")

    def validate(self) -> None:
        super().validate()
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise SeamError(f"--k must be a positive integer (paper: 5), got {self.k!r}")
        _check_overrides("sft", self.sft, _TRAIN_OWNED)
        _check_overrides("rm", self.rm, _TRAIN_OWNED)


@dataclass
class SweepConfig(ExperimentConfig):
    """The SEAM filter (and optional baselines) at several drop rates, against the full RL set."""

    rates: tuple[float, ...] = _f(DEFAULT_RATES, "drop rates to sweep (fractions)")
    methods: tuple[str, ...] = _f(("seam",), "selection methods swept: seam, random, perplexity, reward-gap")

    kind = "sweep"

    def arm_names(self) -> tuple[str, ...]:
        if self.arms:
            return self.arms
        return ("full",) + tuple(f"{m}@{r:g}" for m in self.methods for r in self.rates)

    def validate(self) -> None:
        from .select import check_fraction

        super().validate()
        self.rates = tuple(float(r) for r in self.rates)
        if not self.rates:
            raise SeamError("--rates: give at least one drop rate")
        for r in self.rates:
            check_fraction(r, "--rates")
        self.methods = tuple(_alias(m) for m in self.methods)
        for m in self.methods:
            if m not in FILTER_ARMS or FILTER_ARMS[m] is None:
                raise SeamError(f"--methods {m!r}: unknown; sweep one or more of "
                                f"{', '.join(k for k, v in FILTER_ARMS.items() if v)}")


EXPERIMENT_CONFIGS: dict[str, type[ExperimentConfig]] = {
    "filter": FilterExperimentConfig, "augment": AugmentExperimentConfig, "sweep": SweepConfig}

# Trainer fields the experiment sets itself (an override of these would break the design).
_PPO_OWNED = ("policy", "reward_model", "data", "output_dir", "seed", "eval_data", "ref_policy")
_TRAIN_OWNED = ("model", "data", "output_dir", "eval_data")


def _check_overrides(what: str, overrides: dict, owned: tuple[str, ...]) -> None:
    from .train.config import TRAIN_CONFIGS

    cls = TRAIN_CONFIGS[what]
    names = {f.name for f in dataclasses.fields(cls)}
    for key in overrides:
        if key in owned:
            raise SeamError(f"{what} override {key!r} is set by the experiment itself; remove it")
        if key not in names:
            raise SeamError(f"unknown {what} setting {key!r}; valid: {', '.join(sorted(names - set(owned)))}")


# ============================================================================ inputs


@dataclass
class ExperimentInputs:
    """Files and models an experiment reads (paths)."""

    rl: str = _f("", "RL instructions (the set PPO draws prompts from; the one SEAM scored)")
    pm: str = _f("", "policy model: PPO starts here (filter); SFT starts here (augment)")
    rm: str = _f("", "reward model: PPO's reward (filter) and the fixed RM judge of every arm")
    scores: str | None = _f(None, "SEAM scores file (`seam score --out`): seam arms")
    eval: str | None = _f(None, "held-out eval prompts (instructions contract; testbed meta for the gold judge)")
    negatives: str | None = _f(None, "negatives file: reward-gap rows without rejected; augment's contrast neighbours")
    sft: str | None = _f(None, "augment: the PM's original SFT data")
    rm_train: str | None = _f(None, "augment: the RM's original preference pairs")
    rm_test: str | None = _f(None, "augment: RM test pairs (accuracy of each retrained RM)")
    project: str | None = _f(None, "a `seam demo` folder: without an eval file, its world's unused RL tasks are the eval set")

    def to_dict(self) -> dict:
        return {k: (str(Path(v).resolve()) if v else None) for k, v in asdict(self).items()}


def project_inputs(project: str | os.PathLike, **overrides: str | None) -> ExperimentInputs:
    """The inputs of a `seam demo` project folder (data/, models/, results/); `overrides` win.

    Missing optional files are left None; the held-out eval set of a demo project is derived by
    `demo_heldout` when no eval file is given."""
    root = Path(project)
    if not root.is_dir():
        raise SeamError(f"--project {root}: not a folder; pass the folder `seam demo --dir` built, or give --rl/--pm/--rm")
    layout = {"rl": "data/rl.jsonl", "pm": "models/pm", "rm": "models/rm", "scores": "results/seam.jsonl",
              "negatives": "data/negatives.jsonl", "sft": "data/sft.jsonl", "rm_train": "data/rm_train.jsonl",
              "rm_test": "data/rm_test.jsonl", "eval": "data/eval.jsonl"}
    values = {k: (str(root / rel) if (root / rel).exists() else None) for k, rel in layout.items()}
    values.update({k: v for k, v in overrides.items() if v})
    for key in ("rl", "pm", "rm"):
        if not values.get(key):
            raise SeamError(f"--project {root}: no {layout[key]}; is it a `seam demo` folder? "
                            f"(or pass --{key.replace('_', '-')} explicitly)")
    return ExperimentInputs(**values, project=str(root))


def demo_heldout(project: str | os.PathLike, n: int | None, seed: int = 0) -> pd.DataFrame | None:
    """Held-out prompts of a demo project: tasks of the world's RL split that are not in data/rl.jsonl.

    The demo world is deterministic (demo.json records its seed and size), so the RL split is
    rebuilt and the tasks the demo did not put in the RL set become the eval prompts (`n` of them,
    a seeded sample). None when the folder is not a demo project or the rebuilt world does not
    match its rl.jsonl."""
    from .data import load_instructions
    from .testbed import WorldConfig, generate_tasks, instructions_rows, split

    root = Path(project)
    manifest = root / "demo.json"
    rl_path = root / "data" / "rl.jsonl"
    if not manifest.is_file() or not rl_path.is_file():
        return None
    try:
        cfg = json.loads(manifest.read_text(encoding="utf-8"))["config"]
        world_seed, n_tasks = int(cfg["seed"]), int(cfg["n_tasks"])
    except (ValueError, KeyError, TypeError):
        return None
    parts = split(generate_tasks(WorldConfig(seed=world_seed, n_tasks=n_tasks)), seed=world_seed)
    rl = load_instructions(rl_path)
    by_id = {t.id: t for t in parts["rl"]}
    if any(by_id.get(i) is None or by_id[i].prompt != p for i, p in zip(rl["id"], rl["prompt"])):
        return None
    used = set(rl["id"])
    rest = [t for t in parts["rl"] if t.id not in used]
    if not rest:
        return None
    order = np.random.default_rng(seed + 101).permutation(len(rest))
    if n is not None:
        order = order[:n]
    rows = instructions_rows([rest[i] for i in sorted(order)])
    return pd.DataFrame(rows)


# ============================================================================ arms


@dataclass(frozen=True)
class Arm:
    name: str  # as given: full, seam, seam:llm, random, seam@0.3, ...
    method: str | None  # selection / augmentation method; None = the reference (data unchanged)
    p: float
    variants: tuple[str, ...]

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in self.name.replace("@", "-p"))

    @property
    def seeded(self) -> bool:
        """True when the arm's data depends on the seed (random selection)."""
        return self.method == "random"


def _alias(name: str) -> str:
    name = str(name).strip()
    return ARM_ALIASES.get(name, name)


def parse_arm(name: str, kind: str, p: float, variants: tuple[str, ...]) -> Arm:
    """`seam`, `seam:contrast+llm` (those variants), `random`, `seam@0.3` (drop rate 0.3), ..."""
    raw = str(name).strip()
    base, _, rate = raw.partition("@")
    base, _, var = base.partition(":")
    base = _alias(base)
    table = AUGMENT_ARMS if kind == "augment" else FILTER_ARMS
    if base not in table:
        raise SeamError(f"--arms {raw!r}: unknown {kind} arm; use {', '.join(table)} "
                        "(seam:VARIANT for one variant, METHOD@RATE for another drop rate)")
    method = table[base]
    if var and method != "seam":
        raise SeamError(f"--arms {raw!r}: only the seam arm takes variants (seam:contrast)")
    if rate:
        try:
            p = float(rate)
        except ValueError:
            raise SeamError(f"--arms {raw!r}: the rate after @ must be a fraction, e.g. seam@0.3") from None
        from .select import check_fraction

        check_fraction(p, f"--arms {raw}")
    vs = tuple(v for v in var.split("+") if v) if var else tuple(variants)
    canonical = base + (f":{var}" if var else "") + (f"@{rate}" if rate else "")
    return Arm(canonical, method, 0.0 if method is None else p, vs)


def build_arms(cfg: ExperimentConfig) -> list[Arm]:
    """The arms, reference first (so each seed's comparisons are available as soon as an arm ends)."""
    arms = [parse_arm(a, cfg.kind, cfg.p, cfg.variants) for a in cfg.arm_names()]
    names = [a.name for a in arms]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SeamError(f"--arms: {dup[0]!r} is given twice; list each arm once")
    ref = REFERENCE[cfg.kind]
    return sorted(arms, key=lambda a: a.name != ref)


# ============================================================================ results


@dataclass
class Unit:
    """One piece of work, as hooks see it."""

    phase: str  # select | augment | sft | rm | ppo | initial
    arm: str
    seed: int | None
    index: int  # position among the experiment's training units (ppo, sft, rm)
    total: int
    paths: dict = field(default_factory=dict)  # data / output files of the unit
    config: dict = field(default_factory=dict)  # the trainer config or the selection config

    @property
    def key(self) -> str:
        return f"{self.phase}/{self.arm}" + ("" if self.seed is None else f"/s{self.seed}")


@dataclass
class UnitResult:
    unit: Unit
    cached: bool  # True: found finished on disk (a resumed experiment), not rerun
    seconds: float
    summary: dict = field(default_factory=dict)  # eval summary (ppo / initial), trainer metrics (sft / rm), counts (select)
    train: dict = field(default_factory=dict)  # trainer result (steps, metrics, rows, output_dir, adapter)
    vs_reference: dict = field(default_factory=dict)  # ppo: win rate and mean difference vs the reference, same seed


@dataclass
class ExperimentResult:
    kind: str
    out_dir: Path
    config: dict
    inputs: dict
    arms: list[dict]  # one summary row per arm (see `table`)
    per_seed: list[dict]  # arm, seed, n_train, gold, rm, kl, tokens, ppo score, seconds
    comparisons: list[dict]  # arm vs reference per score
    initial: dict | None  # eval summary of the starting policy
    units: list[UnitResult]
    files: dict  # name -> path of results.json / results.md / figures
    seconds: float
    eval_prompts: int
    reference: str

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.arms)


@dataclass
class ExperimentHooks:
    """How a caller (CLI, job worker) follows an experiment. Every hook is optional."""

    progress: ProgressFn | None = None  # (fraction 0..1, step text)
    log: Callable[[str], None] | None = None  # one line per event
    metrics: Callable[[Unit, int, dict], None] | None = None  # every logged trainer step
    on_start: Callable[[Unit], None] | None = None  # a unit starts (not called for cached units)
    on_end: Callable[[UnitResult], None] | None = None  # a unit ended (also for cached units)
    should_stop: Callable[[], bool] | None = None  # polled between units and after every trainer step


# ============================================================================ entry points


def run_filter_experiment(inputs: ExperimentInputs, cfg: FilterExperimentConfig, out_dir: str | os.PathLike,
                          hooks: ExperimentHooks | None = None) -> ExperimentResult:
    """Full RL set vs SEAM filter vs baselines: select -> PPO -> evaluate, per arm and seed."""
    return _Runner(inputs, cfg, out_dir, hooks).run()


def run_augment_experiment(inputs: ExperimentInputs, cfg: AugmentExperimentConfig, out_dir: str | os.PathLike,
                           hooks: ExperimentHooks | None = None) -> ExperimentResult:
    """Original vs augmented PM/RM training data: augment -> SFT + RM -> PPO -> evaluate."""
    return _Runner(inputs, cfg, out_dir, hooks).run()


def run_sweep(inputs: ExperimentInputs, cfg: SweepConfig, out_dir: str | os.PathLike,
              hooks: ExperimentHooks | None = None) -> ExperimentResult:
    """The filter at several drop rates (`cfg.rates`) against the full RL set."""
    return _Runner(inputs, cfg, out_dir, hooks).run()


RUNNERS: dict[str, Callable[..., ExperimentResult]] = {
    "filter": run_filter_experiment, "augment": run_augment_experiment, "sweep": run_sweep}


# ============================================================================ the runner


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _json(path: Path, data: Any) -> None:
    from .train.common import _clean

    _atomic_text(path, json.dumps(_clean(data), indent=1, ensure_ascii=False) + "\n")


def _finished_run(folder: Path) -> dict | None:
    """The manifest of a finished, not-stopped run folder; None otherwise."""
    from .train.common import read_manifest

    man = read_manifest(folder) if folder.is_dir() else None
    if man and not man.get("stopped"):
        return man
    return None


@contextlib.contextmanager
def _plain_model(path: str, role: str, scratch: Path):
    """(model folder, adapter or None) loadable by `seam.models.loading`; stacked adapters are merged
    into a scratch folder for the duration."""
    from .train.models import split_model_arg

    base, adapter = split_model_arg(str(path), f"--{role}")
    if adapter is None:
        yield str(path), None
        return
    _, deeper = split_model_arg(base, f"--{role}")
    if deeper is None:
        yield base, str(adapter)
        return
    from .train.merge import merge_adapter

    tmp = scratch / f".merged-{role}-{os.getpid()}-{time.time_ns()}"
    try:
        merge_adapter(str(path), tmp, role=role)
        yield str(tmp), None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Runner:
    def __init__(self, inputs: ExperimentInputs, cfg: ExperimentConfig, out_dir, hooks: ExperimentHooks | None):
        self.inputs = inputs
        self.cfg = cfg
        self.out = Path(out_dir)
        self.hooks = hooks or ExperimentHooks()
        self.units: list[UnitResult] = []
        self.evals: dict[tuple[str, int], pd.DataFrame] = {}  # (arm, seed) -> per-prompt rows
        self.histories: dict[tuple[str, int], list[dict]] = {}
        self.n_train: dict[tuple[str, int], int] = {}
        self._selections: dict[tuple[str, int | None], Path] = {}
        self._trained: dict[str, tuple[str, str]] = {}  # augment arm -> (policy dir, rm dir)
        self.rm_accuracy: dict[str, float] = {}  # augment arm -> its retrained RM's test accuracy
        self._loaded: dict[str, Any] = {}
        self._done_weight = 0.0
        self._t0 = time.time()

    # ---------------------------------------------------------------- plumbing

    def say(self, line: str) -> None:
        if self.hooks.log:
            self.hooks.log(line)

    def stop_requested(self) -> bool:
        return bool(self.hooks.should_stop and self.hooks.should_stop())

    def check_stop(self) -> None:
        if self.stop_requested():
            raise ExperimentStopped("stopped on request; finished units are kept and a re-run resumes after them")

    def progress(self, extra: float, step: str) -> None:
        if self.hooks.progress:
            self.hooks.progress(min(1.0, (self._done_weight + extra) / self._total_weight), step)

    # ---------------------------------------------------------------- validation and setup

    def _validate(self) -> None:
        cfg, inp = self.cfg, self.inputs
        cfg.validate()
        self.arms = build_arms(cfg)
        self.reference = REFERENCE[cfg.kind]
        for key in ("rl", "pm", "rm"):
            if not getattr(inp, key):
                raise SeamError(f"--{key} is required (or --project with a demo layout)")
        for key, value in asdict(inp).items():
            if value and not Path(value).exists():
                raise SeamError(f"--{key.replace('_', '-')} {value}: not found; check the path")
        methods = {a.method for a in self.arms}
        if methods & {"seam"} and not inp.scores:
            raise SeamError("the seam arm needs SEAM scores: pass --scores FILE (the output of `seam score`)")
        if cfg.kind == "augment":
            for key in ("sft", "rm_train"):
                if not getattr(inp, key):
                    raise SeamError(f"seam experiment augment retrains the PM and RM: pass --{key.replace('_', '-')} FILE "
                                    "(the original SFT rows / RM pairs)")
        # trainer overrides are checked now, not after an hour of training
        from .train.config import PPOConfig, RMConfig, SFTConfig, load_config

        load_config(PPOConfig, overrides=self._ppo_overrides("policy", "rm", "data", str(self.out / "x"), 0))
        if cfg.kind == "augment":
            load_config(SFTConfig, overrides=self._sft_overrides("data", str(self.out / "x")))
            load_config(RMConfig, overrides=self._rm_overrides("data", str(self.out / "x")))

    def _ppo_overrides(self, policy, reward_model, data, out, seed) -> dict:
        base = {"device": self.cfg.device, "dtype": self.cfg.dtype, "template": self.cfg.template, "report_to": "none",
                "quiet": self.cfg.quiet}
        return {**base, **self.cfg.ppo, "policy": str(policy), "reward_model": str(reward_model), "data": str(data),
                "output_dir": str(out), "seed": seed}

    def _sft_overrides(self, data, out) -> dict:
        base = {"device": self.cfg.device, "dtype": self.cfg.dtype, "template": self.cfg.template, "report_to": "none",
                "quiet": self.cfg.quiet, "seed": self._train_seed}
        return {**base, **self.cfg.sft, "model": self.inputs.pm, "data": str(data), "output_dir": str(out)}

    def _rm_overrides(self, data, out) -> dict:
        base = {"device": self.cfg.device, "dtype": self.cfg.dtype, "template": self.cfg.template, "report_to": "none",
                "quiet": self.cfg.quiet, "seed": self._train_seed}
        return {**base, **self.cfg.rm, "model": self.inputs.pm, "data": str(data), "output_dir": str(out),
                "eval_data": self.inputs.rm_test}

    @property
    def _train_seed(self) -> int:
        ts = getattr(self.cfg, "train_seed", None)
        return int(ts) if ts is not None else int(self.cfg.seeds[0])

    def _prepare_out(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        record = {"seam_experiment": 1, "kind": self.cfg.kind, "config": _comparable(self.cfg.to_dict()),
                  "inputs": self.inputs.to_dict()}
        path = self.out / MANIFEST
        if path.is_file():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                old = {}
            diff = _differences(old, record)
            if diff:
                raise SeamError(f"--out {self.out} holds a different experiment ({diff}); choose a new folder, "
                                "or delete it to start over")
            self.say(f"resuming the experiment in {self.out}")
        elif any(p for p in self.out.iterdir() if not p.name.startswith(".")):
            raise SeamError(f"--out {self.out} is not empty and holds no {MANIFEST}; choose a new folder")
        else:
            _json(path, record)

    def _load_data(self) -> None:
        from .data import load_instructions, write_table

        rl = load_instructions(self.inputs.rl)
        ev_cfg = self.cfg.eval
        if self.inputs.eval:
            ev = load_instructions(self.inputs.eval)
            overlap = set(ev["id"]) & set(rl["id"])
            if overlap:
                self.say(f"warning: {len(overlap)} eval ids are also in the RL set (first {sorted(overlap)[0]!r}); "
                         "they are removed from the RL pool")
                rl = rl[~rl["id"].isin(overlap)].reset_index(drop=True)
            source = str(Path(self.inputs.eval).resolve())
        elif self.inputs.project and (held := demo_heldout(self.inputs.project, ev_cfg.n_prompts)) is not None:
            ev = held
            overlap = set(ev["id"]) & set(rl["id"])
            rl = rl[~rl["id"].isin(overlap)].reset_index(drop=True)
            source = f"demo world: {len(ev)} tasks of the RL split that the demo left out of data/rl.jsonl"
            self.say(f"eval set: {source}")
        else:
            n_hold = max(1, int(round(ev_cfg.holdout * len(rl))))
            order = np.random.default_rng(12345).permutation(len(rl))
            hold = np.zeros(len(rl), dtype=bool)
            hold[order[:n_hold]] = True
            ev = rl[hold].reset_index(drop=True)
            rl = rl[~hold].reset_index(drop=True)
            source = f"held out: {n_hold} of the RL set ({ev_cfg.holdout:.0%}, seeded)"
            self.say(f"no eval set given: {source}")
        if ev_cfg.n_prompts is not None:
            ev = ev.iloc[: int(ev_cfg.n_prompts)].reset_index(drop=True)
        if len(ev) == 0:
            raise SeamError("the eval set is empty; pass --eval FILE with held-out prompts")
        if "gold" in ev_cfg.judges:
            n_gold = sum(isinstance(m, dict) and {"category", "answer", "params"} <= set(m) for m in ev["meta"])
            if n_gold == 0:
                self.say("note: no eval row carries demo-world meta; the gold judge scores nothing (rm judge only)")
        self.pool = rl
        self.eval_df = ev
        self.eval_source = source
        data = self.out / "data"
        data.mkdir(exist_ok=True)
        self.pool_file, self.eval_file = data / "rl.pool.jsonl", data / "eval.jsonl"
        for df, path in ((rl, self.pool_file), (ev, self.eval_file)):
            if not path.is_file():
                write_table(df, path)
        self.scores = None
        if self.inputs.scores:
            from .data import read_table

            s = read_table(self.inputs.scores)
            if "id" not in s.columns:
                raise SeamError(f"--scores {self.inputs.scores}: no id column; pass the --out file of `seam score`")
            self.scores = s[s["id"].astype(str).isin(set(rl["id"]))].reset_index(drop=True)
        self.negatives = None
        if self.inputs.negatives:
            from .data import load_negatives

            self.negatives = load_negatives(self.inputs.negatives)

    def _plan(self) -> None:
        """Weights for progress: a PPO unit counts 1 (eval included), an SFT or RM retraining 0.5."""
        n_ppo = len(self.arms) * len(self.cfg.seeds)
        n_train = 2 * len(self.arms) if self.cfg.kind == "augment" else 0
        self._total_weight = n_ppo + 0.5 * n_train + (0.2 if self.cfg.eval_initial else 0)
        self._n_units = n_ppo + n_train
        self._unit_index = 0

    # ---------------------------------------------------------------- the loop

    def run(self) -> ExperimentResult:
        self._validate()
        self._prepare_out()
        self._load_data()
        self._plan()
        self.say(f"{self.cfg.kind} experiment: arms {', '.join(a.name for a in self.arms)}; seeds "
                 f"{', '.join(map(str, self.cfg.seeds))}; {len(self.pool)} RL prompts, {len(self.eval_df)} eval prompts")
        self.initial = None
        if self.cfg.eval_initial:
            self.initial = self._initial_eval()
        for seed in self.cfg.seeds:
            for arm in self.arms:
                self.check_stop()
                self._ppo_unit(arm, seed)
                self._write_results(figures=False)
        self.files = self._write_results(figures=True)
        with contextlib.suppress(OSError):
            (self.out / "scratch").rmdir()  # only when empty
        return self._result()

    def _initial_eval(self) -> dict:
        unit = Unit("initial", "initial", None, 0, 0, {"policy": self.inputs.pm})
        rows_path, summary_path = self.out / "evals" / "initial.jsonl", self.out / "evals" / "initial.json"
        t0 = time.time()
        if rows_path.is_file() and summary_path.is_file():
            summary = json.loads(summary_path.read_text(encoding="utf-8"))["eval"]
            self._done_weight += 0.2
            self._emit_end(UnitResult(unit, True, 0.0, summary))
            return summary
        self.progress(0.0, "evaluating the starting policy")
        self._fire_start(unit)
        rows, summary = self._evaluate(self.inputs.pm, ref=None)
        self._save_eval(rows, summary, rows_path, summary_path)
        self._done_weight += 0.2
        self._emit_end(UnitResult(unit, False, time.time() - t0, summary))
        self.say(f"starting policy: {_fmt_summary(summary)}")
        return summary

    def _fire_start(self, unit: Unit) -> None:
        if self.hooks.on_start:
            self.hooks.on_start(unit)

    def _emit_end(self, res: UnitResult) -> None:
        self.units.append(res)
        if self.hooks.on_end:
            self.hooks.on_end(res)

    # ---------------------------------------------------------------- data of an arm

    def _arm_data(self, arm: Arm, seed: int) -> Path:
        """The RL file PPO trains on (filter / sweep); for augment the pool, after training the arm's models."""
        if self.cfg.kind == "augment":
            self._augment_models(arm)
            return self.pool_file
        key = (arm.name, seed if arm.seeded else None)
        if key in self._selections:
            return self._selections[key]
        if arm.method is None:
            self._selections[key] = self.pool_file
            self.n_train[key] = len(self.pool)
            return self.pool_file
        from .select import SelectConfig, SelectInputs, lineage_path, select, write_selection

        name = f"rl.{arm.slug}" + (f".s{seed}" if arm.seeded else "") + ".jsonl"
        path = self.out / "selections" / name
        unit = Unit("select", arm.name, seed if arm.seeded else None, self._unit_index, self._n_units, {"data": str(path)})
        sel_cfg = SelectConfig(method=arm.method, p=arm.p, variants=arm.variants, seed=seed, template=self.cfg.template)
        unit.config = asdict(sel_cfg)
        t0 = time.time()
        if path.is_file() and lineage_path(path).is_file():
            lineage = json.loads(lineage_path(path).read_text(encoding="utf-8"))
            self.n_train[key] = int(lineage.get("n_kept", 0))
            self._selections[key] = path
            self._emit_end(UnitResult(unit, True, 0.0, _selection_summary(lineage)))
            return path
        self._fire_start(unit)
        self.progress(0.0, f"{arm.name}: selecting")
        inputs = SelectInputs(scores=self.scores, negatives=self.negatives,
                              paths={"data": self.pool_file, "scores": self.inputs.scores,
                                     "negatives": self.inputs.negatives if arm.method == "reward-gap" else None})
        if arm.method == "perplexity":
            inputs.pm = self._model("pm")
            inputs.paths["pm"] = self.inputs.pm
        if arm.method == "reward-gap":
            inputs.rm = self._model("rm")
            inputs.paths["rm"] = self.inputs.rm
        sel = select(self.pool, sel_cfg, inputs)
        path.parent.mkdir(exist_ok=True)
        write_selection(sel, path)
        self.n_train[key] = len(sel.kept)
        self._selections[key] = path
        self._emit_end(UnitResult(unit, False, time.time() - t0, _selection_summary(sel.lineage)))
        self.say(f"{arm.name}: kept {len(sel.kept)} of {len(self.pool)} RL prompts ({arm.method}, p={arm.p:g})")
        return path

    def _model(self, role: str):
        """The input PM / RM, loaded once (selection baselines)."""
        if role not in self._loaded:
            from .models.loading import load_pm, load_rm

            loader = load_pm if role == "pm" else load_rm
            path = self.inputs.pm if role == "pm" else self.inputs.rm
            scratch = self.out / "scratch"
            scratch.mkdir(exist_ok=True)
            with _plain_model(path, role, scratch) as (folder, adapter):
                self._loaded[role] = loader(folder, adapter, device=self.cfg.device, dtype=self.cfg.dtype)
        return self._loaded[role]

    def _augment_models(self, arm: Arm) -> tuple[str, str]:
        """(policy, reward model) of an augment arm: SFT and RM retrained on its data (once per arm)."""
        if arm.name in self._trained:
            return self._trained[arm.name]
        from .augment import AugmentConfig, augment, write_augmentation
        from .select import lineage_path

        sel_dir = self.out / "selections"
        sel_dir.mkdir(exist_ok=True)
        if arm.method is None:
            sft_file, rm_file = Path(self.inputs.sft), Path(self.inputs.rm_train)
        else:
            sft_file, rm_file = sel_dir / f"sft.{arm.slug}.jsonl", sel_dir / f"rm_pairs.{arm.slug}.jsonl"
            unit = Unit("augment", arm.name, None, self._unit_index, self._n_units,
                        {"sft_data": str(sft_file), "rm_data": str(rm_file)})
            acfg = AugmentConfig(method=arm.method, p=arm.p, k=self.cfg.k, variants=arm.variants, seed=self._train_seed)
            unit.config = asdict(acfg)
            if all(f.is_file() and lineage_path(f).is_file() for f in (sft_file, rm_file)):
                lineage = json.loads(lineage_path(rm_file).read_text(encoding="utf-8"))
                self._emit_end(UnitResult(unit, True, 0.0, _augment_summary(lineage)))
            else:
                self._fire_start(unit)
                self.progress(0.0, f"{arm.name}: augmenting")
                t0 = time.time()
                contrast = self._contrast_rows()
                aug = augment(self.pool, acfg, contrast=contrast, scores=self.scores, corpus=self.pool,
                              paths={"data": self.pool_file, "scores": self.inputs.scores,
                                     "contrast": self.inputs.negatives})
                write_augmentation(aug, sft_file, rm_file, sft_base=self.inputs.sft, rm_base=self.inputs.rm_train)
                self._emit_end(UnitResult(unit, False, time.time() - t0, _augment_summary(aug.lineage)))
                self.say(f"{arm.name}: {len(aug.anchors)} anchors, +{len(aug.sft_rows)} SFT rows, "
                         f"+{len(aug.rm_pairs)} RM pairs")
        train_dir = self.out / "train" / arm.slug
        train_dir.mkdir(parents=True, exist_ok=True)
        sft_out = self._train_unit("sft", arm, sft_file, train_dir / "sft")
        rm_out = self._train_unit("rm", arm, rm_file, train_dir / "rm")
        self._trained[arm.name] = (sft_out, rm_out)
        return sft_out, rm_out

    def _contrast_rows(self) -> pd.DataFrame | None:
        """Contrast neighbours from the negatives file, without any neighbour taken from an eval prompt."""
        negs = self.negatives
        if negs is None or "contrast" not in set(negs["variant"].astype(str)):
            self.say("no contrast negatives given: neighbours are retrieved now (contrast builder)")
            return None
        c = negs[negs["variant"].astype(str) == "contrast"]
        eval_ids = set(self.eval_df["id"])
        src = [(m or {}).get("source_id") if isinstance(m, dict) else None for m in c["meta"]]
        keep = np.array([s is None or str(s) not in eval_ids for s in src], dtype=bool)
        return c[keep].reset_index(drop=True)

    def _train_unit(self, phase: str, arm: Arm, data: Path, out: Path) -> str:
        from .train import RMConfig, SFTConfig, load_config, train_rm, train_sft

        cls, fn, overrides = ((SFTConfig, train_sft, self._sft_overrides(data, out)) if phase == "sft"
                              else (RMConfig, train_rm, self._rm_overrides(data, out)))
        tcfg = load_config(cls, overrides=overrides)
        unit = Unit(phase, arm.name, None, self._unit_index, self._n_units, {"data": str(data), "output_dir": str(out),
                                                                               "base": self.inputs.pm}, tcfg.to_dict())
        self._unit_index += 1
        man = _finished_run(out)
        if man is not None:
            self._done_weight += 0.5
            self._note_accuracy(phase, arm, man.get("metrics", {}))
            self._emit_end(UnitResult(unit, True, 0.0, man.get("metrics", {}), _train_info(man)))
            return str(out)
        if out.exists():
            shutil.rmtree(out)
        self._fire_start(unit)
        self.progress(0.0, f"{arm.name}: training {phase.upper()}")
        total = max(1, tcfg.max_steps if tcfg.max_steps > 0 else 1)

        def on_metrics(step: int, m: dict) -> None:
            if self.hooks.metrics:
                self.hooks.metrics(unit, step, m)
            if tcfg.max_steps > 0:
                self.progress(0.5 * min(step / total, 1.0), f"{arm.name}: {phase.upper()} step {step}/{total}")

        res = fn(tcfg, metrics_callback=on_metrics, should_stop=self.stop_requested)
        if res.stopped:
            shutil.rmtree(res.output_dir, ignore_errors=True)
            raise ExperimentStopped(f"stopped during the {phase.upper()} training of arm {arm.name}")
        self._done_weight += 0.5
        man = _finished_run(out) or {}
        self._note_accuracy(phase, arm, res.metrics)
        self._emit_end(UnitResult(unit, False, res.seconds, res.metrics, _train_info(man)))
        acc = res.metrics.get("eval_accuracy")
        self.say(f"{arm.name}: {phase.upper()} trained, {res.steps} steps in {res.seconds:.0f}s"
                 + (f", RM test accuracy {acc:.3f}" if isinstance(acc, (int, float)) else ""))
        return str(out)

    def _note_accuracy(self, phase: str, arm: Arm, metrics: dict) -> None:
        acc = (metrics or {}).get("eval_accuracy")
        if phase == "rm" and isinstance(acc, (int, float)):
            self.rm_accuracy[arm.name] = float(acc)

    # ---------------------------------------------------------------- PPO + eval

    def _ppo_unit(self, arm: Arm, seed: int) -> None:
        from .train import PPOConfig, load_config, train_ppo

        data = self._arm_data(arm, seed)
        key = (arm.name, seed)
        if self.cfg.kind == "augment":
            policy, reward = self._trained[arm.name]
            self.n_train[key] = len(self.pool)
        else:
            policy, reward = self.inputs.pm, self.inputs.rm
            self.n_train[key] = self.n_train[(arm.name, seed if arm.seeded else None)]
        run_dir = self.out / "runs" / arm.slug / f"s{seed}"
        rows_path = self.out / "evals" / f"{arm.slug}.s{seed}.jsonl"
        summary_path = rows_path.with_suffix(".json")
        pcfg = load_config(PPOConfig, overrides=self._ppo_overrides(policy, reward, data, run_dir, seed))
        unit = Unit("ppo", arm.name, seed, self._unit_index, self._n_units,
                    {"data": str(data), "output_dir": str(run_dir), "policy": str(policy), "reward_model": str(reward),
                     "eval_data": str(self.eval_file), "eval_rows": str(rows_path), "eval_summary": str(summary_path)},
                    pcfg.to_dict())
        self._unit_index += 1
        t0 = time.time()
        man = _finished_run(run_dir)
        if man is not None and rows_path.is_file() and summary_path.is_file():
            stored = json.loads(summary_path.read_text(encoding="utf-8"))
            self.evals[key] = pd.read_json(rows_path, lines=True, dtype={"id": str})
            self.histories[key] = _read_history(run_dir)
            self._done_weight += 1
            self._emit_end(UnitResult(unit, True, float(stored.get("seconds", 0.0)), stored["eval"], _train_info(man),
                                      self._vs_reference(arm, seed)))
            return
        if run_dir.exists() and man is None:
            shutil.rmtree(run_dir)  # a stopped or broken run: redo it
        self._fire_start(unit)
        label = f"{arm.name} seed {seed}"
        self.progress(0.0, f"{label}: PPO")
        if man is None:
            run_dir.parent.mkdir(parents=True, exist_ok=True)

            def on_metrics(step: int, m: dict) -> None:
                if self.hooks.metrics:
                    self.hooks.metrics(unit, step, m)
                self.progress(0.85 * min(step / pcfg.steps, 1.0), f"{label}: PPO step {step}/{pcfg.steps}")

            res = train_ppo(pcfg, metrics_callback=on_metrics, should_stop=self.stop_requested)
            if res.stopped:
                shutil.rmtree(res.output_dir, ignore_errors=True)
                raise ExperimentStopped(f"stopped during PPO of arm {arm.name}, seed {seed}")
            man = _finished_run(run_dir) or {}
            self.histories[key] = res.history
            self.say(f"{label}: PPO {res.steps} steps in {res.seconds:.0f}s, objective/scores "
                     f"{_num(res.metrics.get('objective/scores'))}")
        else:
            self.histories[key] = _read_history(run_dir)
        self.check_stop()
        self.progress(0.85, f"{label}: evaluating")
        rows, summary = self._evaluate(run_dir, ref=policy if self.cfg.eval.kl else None)
        seconds = time.time() - t0
        self._save_eval(rows, summary, rows_path, summary_path, seconds)
        self.evals[key] = rows
        self._done_weight += 1
        res_unit = UnitResult(unit, False, seconds, summary, _train_info(man), self._vs_reference(arm, seed))
        self._emit_end(res_unit)
        self.say(f"{label}: {_fmt_summary(summary)}" + (f"; win rate vs {self.reference} "
                                                        f"{_num(res_unit.vs_reference.get('gold', {}).get('win_rate'))}"
                                                        if res_unit.vs_reference else ""))

    def _evaluate(self, policy: str | Path, ref: str | Path | None) -> tuple[pd.DataFrame, dict]:
        from .train.eval import PolicyEvalConfig, evaluate_policy
        from .train.judges import JudgeSettings

        ev = self.cfg.eval
        scratch = self.out / "scratch"
        scratch.mkdir(exist_ok=True)
        with contextlib.ExitStack() as stack:
            pm, pm_adapter = stack.enter_context(_plain_model(str(policy), "pm", scratch))
            ref_dir = ref_adapter = None
            if ref is not None:
                ref_dir, ref_adapter = stack.enter_context(_plain_model(str(ref), "pm", scratch))
            rm_dir, rm_adapter = stack.enter_context(_plain_model(self.inputs.rm, "rm", scratch))
            judge = JudgeSettings(rm=rm_dir, rm_adapter=rm_adapter, template=self.cfg.template)
            pcfg = PolicyEvalConfig(data=str(self.eval_file), pm=pm, pm_adapter=pm_adapter, judges=tuple(ev.judges),
                                    ref=ref_dir, ref_adapter=ref_adapter, template=self.cfg.template,
                                    max_new_tokens=ev.max_new_tokens, temperature=ev.temperature,
                                    seed=0, batch_size=ev.batch_size, device=self.cfg.device, dtype=self.cfg.dtype,
                                    judge=judge)
            result = evaluate_policy(pcfg)
        rows = result.rows.copy()
        rows["id"] = rows["id"].astype(str)
        return rows, result.summary

    def _save_eval(self, rows: pd.DataFrame, summary: dict, rows_path: Path, summary_path: Path,
                   seconds: float = 0.0) -> None:
        from .data import write_table

        rows_path.parent.mkdir(parents=True, exist_ok=True)
        write_table(rows, rows_path)
        _json(summary_path, {"eval": summary, "seconds": seconds})

    def _vs_reference(self, arm: Arm, seed: int) -> dict:
        """Win rate and mean difference vs the reference arm of the same seed, per score."""
        from .train.stats import paired_bootstrap_ci, win_rate

        ref = self.evals.get((self.reference, seed))
        mine = self.evals.get((arm.name, seed))
        if ref is None or mine is None or arm.name == self.reference:
            return {}
        out = {}
        for s in self.cfg.eval.judges:
            col = f"score_{s}"
            m = mine[["id", col]].merge(ref[["id", col]], on="id", suffixes=("_a", "_b"))
            x, y = m[f"{col}_a"].to_numpy(float), m[f"{col}_b"].to_numpy(float)
            if not np.isfinite(x).any():
                continue
            w = win_rate(x, y, level=self.cfg.level)
            d = paired_bootstrap_ci(x, y, level=self.cfg.level)
            out[s] = {"win_rate": w.rate, "win_ci_low": w.ci.low, "win_ci_high": w.ci.high, "diff": d.estimate,
                      "diff_ci_low": d.low, "diff_ci_high": d.high, "n": d.n}
        return out

    # ---------------------------------------------------------------- aggregation and outputs

    def _aggregate(self) -> tuple[list[dict], list[dict], list[dict]]:
        from .train.eval import compare_runs
        from .train.stats import bootstrap_ci

        cfg = self.cfg
        seeds = list(cfg.seeds)
        per_seed, arms_rows, comparisons = [], [], []
        for arm in self.arms:
            done = [s for s in seeds if (arm.name, s) in self.evals]
            if not done:
                continue
            for s in done:
                rows = self.evals[(arm.name, s)]
                hist = self.histories.get((arm.name, s)) or []
                last = {}
                for h in hist:
                    last.update({k: v for k, v in h.items() if v is not None})
                rec = {"arm": arm.name, "seed": s, "n_train": self.n_train.get((arm.name, s))}
                for sc in cfg.eval.judges:
                    rec[sc] = _nanmean(rows.get(f"score_{sc}"))
                rec["kl"] = _nanmean(rows.get("kl"))
                rec["response_tokens"] = _nanmean(rows.get("response_tokens"))
                rec["ppo_steps"] = last.get("step")
                rec["ppo_objective_scores"] = last.get("objective/scores")
                per_seed.append(rec)
            row: dict = {"arm": arm.name, "method": arm.method or "none", "p": arm.p, "seeds": len(done),
                         "n_train": self.n_train.get((arm.name, done[0]))}
            for sc in cfg.eval.judges:
                pooled = np.concatenate([self.evals[(arm.name, s)][f"score_{sc}"].to_numpy(float) for s in done])
                ci = bootstrap_ci(pooled, level=cfg.level)
                row.update({sc: ci.estimate, f"{sc}_ci_low": ci.low, f"{sc}_ci_high": ci.high, f"{sc}_n": ci.n})
                row[f"{sc}_per_seed"] = [_nanmean(self.evals[(arm.name, s)][f"score_{sc}"]) for s in done]
            for extra in ("kl", "response_tokens"):
                vals = [r[extra] for r in per_seed if r["arm"] == arm.name and r[extra] is not None]
                row[extra] = float(np.mean(vals)) if vals else None
            objs = [r["ppo_objective_scores"] for r in per_seed if r["arm"] == arm.name
                    and r["ppo_objective_scores"] is not None]
            row["ppo_objective_scores"] = float(np.mean(objs)) if objs else None
            if arm.name in self.rm_accuracy:
                row["rm_test_accuracy"] = self.rm_accuracy[arm.name]
            ref_seeds = [s for s in done if (self.reference, s) in self.evals]
            if arm.name != self.reference and ref_seeds:
                for sc in cfg.eval.judges:
                    a = [self.evals[(arm.name, s)] for s in ref_seeds]
                    b = [self.evals[(self.reference, s)] for s in ref_seeds]
                    if not any(np.isfinite(t[f"score_{sc}"].to_numpy(float)).any() for t in a):
                        continue
                    c = compare_runs(a, b, score=sc, test=cfg.test, level=cfg.level).to_dict()
                    comparisons.append({"arm": arm.name, "reference": self.reference, "score": sc,
                                        "seeds": ref_seeds, **c})
                    row[f"{sc}_diff"] = c["diff"]["estimate"]
                    row[f"{sc}_diff_ci_low"] = c["diff"]["low"]
                    row[f"{sc}_diff_ci_high"] = c["diff"]["high"]
                    row[f"{sc}_win_rate"] = c["win_rate"]["rate"]
                    row[f"{sc}_p_prompts"] = c["prompt_test"]["p_value"]
                    row[f"{sc}_p_seeds"] = (c["seed_test"] or {}).get("p_value")
            arms_rows.append(row)
        return arms_rows, per_seed, comparisons

    def _write_results(self, figures: bool) -> dict:
        arms_rows, per_seed, comparisons = self._aggregate()
        self._agg = (arms_rows, per_seed, comparisons)
        files = {"results_json": self.out / "results.json", "results_md": self.out / "results.md"}
        payload = {
            "kind": self.cfg.kind, "reference": self.reference, "config": self.cfg.to_dict(),
            "inputs": self.inputs.to_dict(), "eval": {"source": self.eval_source, "prompts": len(self.eval_df),
                                                      "file": str(self.eval_file)},
            "rl_pool": len(self.pool), "seeds": list(self.cfg.seeds), "arms": arms_rows, "per_seed": per_seed,
            "comparisons": comparisons, "initial": self.initial,
            "seconds": round(time.time() - self._t0, 1), "complete": figures,
        }
        if figures:
            fig_dir = self.out / "figures"
            files.update(write_figures(self.cfg.kind, arms_rows, per_seed, self.histories, fig_dir,
                                       self.reference, self.cfg.eval.judges, self.initial))
            payload["figures"] = {k: str(v) for k, v in files.items() if k.startswith("fig")}
        _json(files["results_json"], payload)
        _atomic_text(files["results_md"], results_markdown(payload))
        return files

    def _result(self) -> ExperimentResult:
        arms_rows, per_seed, comparisons = self._agg
        return ExperimentResult(
            kind=self.cfg.kind, out_dir=self.out, config=self.cfg.to_dict(), inputs=self.inputs.to_dict(),
            arms=arms_rows, per_seed=per_seed, comparisons=comparisons, initial=self.initial, units=self.units,
            files={k: Path(v) for k, v in self.files.items()}, seconds=round(time.time() - self._t0, 1),
            eval_prompts=len(self.eval_df), reference=self.reference)


# ============================================================================ small helpers


def _comparable(d: dict) -> dict:
    """The config without fields that do not change results (so a resume may differ in them)."""
    d = json.loads(json.dumps(d, default=str))
    for k in ("quiet", "command"):
        d.pop(k, None)
    return d


def _differences(old: dict, new: dict) -> str:
    diffs = []
    for section in ("kind", "config", "inputs"):
        a, b = old.get(section), new.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    diffs.append(f"{section}.{k}: {a.get(k)!r} -> {b.get(k)!r}")
        elif a != b:
            diffs.append(f"{section}: {a!r} -> {b!r}")
    return "; ".join(diffs[:3]) + (f" and {len(diffs) - 3} more" if len(diffs) > 3 else "")


def _read_history(run_dir: Path) -> list[dict]:
    from .train.common import METRICS_FILE

    p = run_dir / METRICS_FILE
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def _train_info(man: dict) -> dict:
    keep = ("kind", "output_dir", "adapter", "base_model", "steps", "seconds", "rows", "metrics")
    return {k: man.get(k) for k in keep if k in man}


def _selection_summary(lineage: dict) -> dict:
    return {k: lineage.get(k) for k in ("method", "p", "n_in", "n_kept", "n_dropped", "cutoff", "output")}


def _augment_summary(lineage: dict) -> dict:
    return {k: lineage.get(k) for k in ("method", "p", "k", "n_anchors", "n_sft_rows", "n_rm_pairs",
                                        "sft_without_prompt")}


def _nanmean(values) -> float | None:
    if values is None:
        return None
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if len(a) else None


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    return f"{float(v):.{digits}f}"


def _fmt_summary(summary: dict) -> str:
    parts = []
    for k in ("gold", "rm"):
        if isinstance(summary.get(k), dict):
            parts.append(f"{k} {_num(summary[k].get('mean'))}")
    if isinstance(summary.get("kl"), dict):
        parts.append(f"KL {_num(summary['kl'].get('mean'))}")
    if isinstance(summary.get("response_tokens"), dict):
        parts.append(f"{_num(summary['response_tokens'].get('mean'), 1)} tokens")
    return ", ".join(parts) or "no scores"


def _p(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.3f}" if v >= 0.001 else f"{v:.1e}"


# ============================================================================ tables and figures


def results_markdown(payload: dict) -> str:
    """The results as Markdown: the arms table, per-seed numbers, settings."""
    kind, ref = payload["kind"], payload["reference"]
    cfg = payload["config"]
    scores = list(cfg.get("eval", {}).get("judges") or SCORES)
    level = int(round(100 * cfg.get("level", 0.95)))
    lines = [f"# SEAM experiment: {kind}", ""]
    if not payload.get("complete"):
        lines += ["*Partial results: the experiment is still running (or was stopped).*", ""]
    lines += [f"Reference arm: `{ref}`. Seeds: {', '.join(map(str, payload['seeds']))}. "
              f"RL pool: {payload['rl_pool']} prompts. Eval: {payload['eval']['prompts']} prompts "
              f"({payload['eval']['source']}).", ""]
    head = ["arm", "RL prompts"]
    for sc in scores:
        head += [f"{sc} (mean, {level}% CI)", f"Δ {sc} vs {ref} ({level}% CI)", f"win rate vs {ref}",
                 "p (prompts)", "p (seeds)"]
    head += ["KL", "tokens", "PPO objective/scores"]
    with_acc = any("rm_test_accuracy" in r for r in payload["arms"])
    if with_acc:
        head.append("retrained RM test accuracy")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    init = payload.get("initial")
    if init:
        cells = ["*starting policy (no PPO)*", "-"]
        for sc in scores:
            s = init.get(sc) or {}
            cells += [f"{_num(s.get('mean'))} [{_num(s.get('ci_low'))}, {_num(s.get('ci_high'))}]", "-", "-", "-", "-"]
        cells += ["-", _num((init.get("response_tokens") or {}).get("mean"), 1), "-"] + (["-"] if with_acc else [])
        lines.append("| " + " | ".join(cells) + " |")
    for r in payload["arms"]:
        cells = [f"`{r['arm']}`", _num(r.get("n_train"))]
        for sc in scores:
            cells.append(f"{_num(r.get(sc))} [{_num(r.get(f'{sc}_ci_low'))}, {_num(r.get(f'{sc}_ci_high'))}]")
            if r["arm"] == ref or f"{sc}_diff" not in r:
                cells += ["-", "-", "-", "-"]
            else:
                cells += [f"{r[f'{sc}_diff']:+.3f} [{_num(r.get(f'{sc}_diff_ci_low'))}, {_num(r.get(f'{sc}_diff_ci_high'))}]",
                          _num(r.get(f"{sc}_win_rate")), _p(r.get(f"{sc}_p_prompts")), _p(r.get(f"{sc}_p_seeds"))]
        cells += [_num(r.get("kl")), _num(r.get("response_tokens"), 1), _num(r.get("ppo_objective_scores"))]
        if with_acc:
            cells.append(_num(r.get("rm_test_accuracy")))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Scores: `gold` = the demo world's programmatic judge (0-1; correct answers score 0.6-1), `rm` = the "
              "input reward model's score (the same RM for every arm). CI: percentile bootstrap over prompts pooled "
              "across seeds. Δ and win rate: paired by prompt and seed against the reference (ties count half). "
              "p (prompts): Wilcoxon signed-rank over prompt pairs; p (seeds): paired "
              f"{cfg.get('test', 't')} test over per-seed means (needs 2+ seeds).", ""]
    if payload["per_seed"]:
        lines += ["Per seed:", "", "| arm | seed | RL prompts | " + " | ".join(scores) + " | KL | tokens | PPO steps |",
                  "|" + "---|" * (6 + len(scores))]
        for r in payload["per_seed"]:
            lines.append("| " + " | ".join([f"`{r['arm']}`", str(r["seed"]), _num(r.get("n_train"))]
                                           + [_num(r.get(sc)) for sc in scores]
                                           + [_num(r.get("kl")), _num(r.get("response_tokens"), 1),
                                              _num(r.get("ppo_steps"))]) + " |")
        lines.append("")
    ppo = cfg.get("ppo") or {}
    ev = cfg.get("eval") or {}
    decoding = "greedy" if not ev.get("temperature") else f"temperature {ev.get('temperature')}"
    lines += [f"Settings: p = {cfg.get('p')}"
              + (f", variants {', '.join(cfg['variants'])}" if cfg.get("variants") else "")
              + "; PPO (overrides of `seam train ppo` defaults): "
              + (", ".join(f"{k}={v}" for k, v in ppo.items()) if ppo else "defaults")
              + f"; dtype {cfg.get('dtype', 'auto')}; eval: {payload['eval']['prompts']} prompts, {decoding}, "
              f"at most {ev.get('max_new_tokens')} new tokens, judges {', '.join(scores)}"
              + (", KL to the starting policy" if ev.get("kl") else "") + ".", ""]
    if cfg.get("command"):
        lines += ["Command:", "", "```", cfg["command"], "```", ""]
    lines.append(f"Wall time so far: {payload['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def write_figures(kind: str, arms_rows: list[dict], per_seed: list[dict], histories: dict, fig_dir: Path,
                  reference: str, scores=SCORES, initial: dict | None = None) -> dict:
    """Plotly HTML + matplotlib PNG for: scores per arm (CI bars, seed dots), PPO curves, and the sweep."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    files: dict = {}
    if not arms_rows:
        return files
    scores = [s for s in scores if any(r.get(s) is not None for r in arms_rows)]
    if scores:
        files["fig_arms_html"], files["fig_arms_png"] = _fig_arms(arms_rows, per_seed, scores, fig_dir, initial)
    if histories:
        out = _fig_curves(histories, fig_dir)
        if out:
            files["fig_curves_html"], files["fig_curves_png"] = out
    if kind == "sweep" and scores:
        files["fig_sweep_html"], files["fig_sweep_png"] = _fig_sweep(arms_rows, scores[0], fig_dir, reference)
    return files


def _write_html(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.html")
    fig.write_html(str(tmp), include_plotlyjs="directory", full_html=True)
    os.replace(tmp, path)
    return path


def _save_png(mfig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(mfig)
    tmp = path.with_name(f".{path.name}.tmp.png")
    mfig.savefig(str(tmp), dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def _err(r: dict, sc: str) -> tuple[float, float]:
    m = r.get(sc)
    lo, hi = r.get(f"{sc}_ci_low"), r.get(f"{sc}_ci_high")
    if m is None or lo is None or hi is None:
        return 0.0, 0.0
    return max(m - lo, 0.0), max(hi - m, 0.0)


def _fig_arms(arms_rows, per_seed, scores, fig_dir: Path, initial):
    """Per score: each arm's mean with its CI (diamond + whiskers) and the per-seed means (dots)."""
    import plotly.graph_objects as go
    from matplotlib.figure import Figure
    from plotly.subplots import make_subplots

    names = [r["arm"] for r in arms_rows]
    index = {n: i for i, n in enumerate(names)}
    fig = make_subplots(rows=1, cols=len(scores), subplot_titles=[f"{s} score (mean, 95% CI)" for s in scores])
    mfig = Figure(figsize=(max(4.5, 1.1 * len(names) + 1.5) * len(scores), 3.8))
    for j, sc in enumerate(scores, 1):
        means = [r.get(sc) for r in arms_rows]
        lows, highs = zip(*[_err(r, sc) for r in arms_rows])
        fig.add_trace(go.Scatter(x=names, y=means, mode="markers", name="mean, 95% CI", showlegend=j == 1,
                                 marker=dict(symbol="diamond", size=12, color="#4c78a8"),
                                 error_y=dict(type="data", symmetric=False, array=list(highs), arrayminus=list(lows))),
                      row=1, col=j)
        seeds = [r for r in per_seed if r.get(sc) is not None and r["arm"] in index]
        fig.add_trace(go.Scatter(x=[r["arm"] for r in seeds], y=[r[sc] for r in seeds], mode="markers",
                                 marker=dict(color="black", size=6), name="per seed", showlegend=j == 1,
                                 text=[f"seed {r['seed']}" for r in seeds]), row=1, col=j)
        ax = mfig.add_subplot(1, len(scores), j)
        pos = np.arange(len(names))
        ax.errorbar(pos, [m if m is not None else np.nan for m in means], yerr=[lows, highs], fmt="D", capsize=5,
                    color="#4c78a8", markersize=8, label="mean, 95% CI")
        ax.scatter([index[r["arm"]] + 0.12 for r in seeds], [r[sc] for r in seeds], color="black", s=14, zorder=3,
                   label="per seed")
        if initial and isinstance(initial.get(sc), dict) and initial[sc].get("mean") is not None:
            fig.add_hline(y=initial[sc]["mean"], line_dash="dot", annotation_text="starting policy", row=1, col=j)
            ax.axhline(initial[sc]["mean"], color="grey", linestyle=":", label="starting policy")
        ax.set_xticks(pos, names, rotation=30, ha="right")
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_title(f"{sc} score (mean, 95% CI)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if j == 1:
            ax.legend(fontsize=8)
    fig.update_layout(height=420, margin=dict(t=40, b=40))
    return _write_html(fig, fig_dir / "arms.html"), _save_png(mfig, fig_dir / "arms.png")


def _fig_curves(histories: dict, fig_dir: Path, metric: str = "objective/scores"):
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    by_arm: dict[str, list[pd.Series]] = {}
    for (arm, seed), hist in sorted(histories.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        pts = [(h["step"], h[metric]) for h in hist if h.get(metric) is not None]
        if pts:
            s = pd.Series([v for _, v in pts], index=[st for st, _ in pts]).groupby(level=0).last()
            by_arm.setdefault(arm, []).append(s)
    if not by_arm:
        return None
    fig = go.Figure()
    mfig = Figure(figsize=(6.5, 3.6))
    ax = mfig.add_subplot(1, 1, 1)
    for arm, series in by_arm.items():
        mean = pd.concat(series, axis=1).mean(axis=1)
        fig.add_trace(go.Scatter(x=mean.index.tolist(), y=mean.tolist(), mode="lines+markers", name=arm))
        ax.plot(mean.index, mean.values, marker="o", markersize=3, label=arm)
    fig.update_layout(xaxis_title="PPO update", yaxis_title=f"{metric} (mean over seeds)", height=400)
    ax.set_xlabel("PPO update")
    ax.set_ylabel(f"{metric} (mean over seeds)")
    ax.legend(fontsize=8)
    return _write_html(fig, fig_dir / "curves.html"), _save_png(mfig, fig_dir / "curves.png")


def _fig_sweep(arms_rows, score: str, fig_dir: Path, reference: str):
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    fig = go.Figure()
    mfig = Figure(figsize=(6.5, 3.6))
    ax = mfig.add_subplot(1, 1, 1)
    ref = next((r for r in arms_rows if r["arm"] == reference), None)
    methods = sorted({r["method"] for r in arms_rows if r["arm"] != reference})
    for m in methods:
        pts = sorted((r["p"], r.get(score), *_err(r, score)) for r in arms_rows
                     if r["method"] == m and r["arm"] != reference and r.get(score) is not None)
        if not pts:
            continue
        x, y, lo, hi = map(list, zip(*pts))
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=m,
                                 error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo)))
        ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=m)
    if ref is not None and ref.get(score) is not None:
        fig.add_hline(y=ref[score], line_dash="dash", annotation_text=f"{reference} (no removal)")
        ax.axhline(ref[score], color="grey", linestyle="--", label=f"{reference} (no removal)")
    fig.update_layout(xaxis_title="share of the RL set dropped", yaxis_title=f"{score} score (mean, 95% CI)", height=400)
    ax.set_xlabel("share of the RL set dropped")
    ax.set_ylabel(f"{score} score (mean, 95% CI)")
    ax.legend(fontsize=8)
    return _write_html(fig, fig_dir / "sweep.html"), _save_png(mfig, fig_dir / "sweep.png")


def print_progress_hooks(stream=None) -> ExperimentHooks:
    """Hooks that print one line per event to stderr (the CLI's)."""
    stream = stream or sys.stderr
    t0 = time.time()

    def log(line: str) -> None:
        print(f"[{time.time() - t0:6.0f}s] {line}", file=stream, flush=True)

    return ExperimentHooks(log=log)
