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

The package, in the order an experiment uses it:

    config.py   EvalSettings, ExperimentConfig and its subclasses, the constants, override checks
    arms.py     ExperimentInputs, project_inputs, demo_heldout; Arm, parse_arm, build_arms
    labels.py   the label arms (oracle, skill-prior): load_label, label_selection
    trainers.py the trainer of each arm (method: ppo | grpo | rloo | bon) and the PPO knobs mapped onto it
    steps.py    one unit: select / augment / train SFT or RM / PPO + evaluate; Unit, hooks, stop
    runner.py   validation, plan, resume, the loop over arms and seeds, results; run_* entry points
    report.py   results_markdown and the figures (Plotly HTML + matplotlib PNG)
"""

from .arms import Arm, ExperimentInputs, build_arms, demo_heldout, parse_arm, project_inputs
from .config import (ARM_ALIASES, AUGMENT_ARMS, DEFAULT_RATES, EXPERIMENT_CONFIGS, EXPERIMENT_KINDS, FILTER_ARMS,
                     LABEL_ARMS, MANIFEST, METHODS, REFERENCE, SCORES, AugmentExperimentConfig, EvalSettings, ExperimentConfig,
                     FilterExperimentConfig, SweepConfig)
from .report import format_number, format_p, format_summary, results_markdown, write_figures
from .runner import (RUNNERS, ExperimentResult, print_progress_hooks, run_augment_experiment, run_filter_experiment,
                     run_sweep)
from .steps import ExperimentHooks, ExperimentStopped, ProgressFn, Unit, UnitResult

__all__ = [
    "ARM_ALIASES", "AUGMENT_ARMS", "Arm", "AugmentExperimentConfig", "DEFAULT_RATES", "EXPERIMENT_CONFIGS",
    "EXPERIMENT_KINDS", "EvalSettings", "ExperimentConfig", "ExperimentHooks", "ExperimentInputs", "ExperimentResult",
    "ExperimentStopped", "FILTER_ARMS", "FilterExperimentConfig", "LABEL_ARMS", "MANIFEST", "METHODS", "ProgressFn", "REFERENCE", "RUNNERS",
    "SCORES", "SweepConfig", "Unit", "UnitResult", "build_arms", "demo_heldout", "format_number", "format_p",
    "format_summary", "parse_arm", "print_progress_hooks", "project_inputs", "results_markdown", "run_augment_experiment",
    "run_filter_experiment", "run_sweep", "write_figures",
]
