"""`seam experiment {filter,augment,sweep}`: SEAM filtering / augmentation vs baselines, PPO per arm and seed."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..errors import SeamError
from ..settings import coerce, load_yaml, resolve_aliases, warn_renamed
from . import example_epilog

_INPUT_FLAGS = ("rl", "scores", "pm", "rm", "eval", "negatives", "sft", "rm_train", "rm_test")
# CLI flag -> PPOConfig field (the common knobs; anything else via --ppo-config FILE.yaml)
_PPO_FLAGS = {"ppo_steps": "max_steps", "ppo_batch_size": "per_device_train_batch_size",
              "response_length": "response_length", "lora": "lora", "lora_r": "lora_r", "ppo_epochs": "num_ppo_epochs",
              "ppo_learning_rate": "learning_rate", "kl_coef": "kl_coef", "mini_batches": "num_mini_batches",
              "ppo_temperature": "temperature",
              "gradient_accumulation_steps": "gradient_accumulation_steps", "missing_eos_penalty": "missing_eos_penalty"}

_DESCRIPTIONS = {
    "filter": ("compare the full RL set, the SEAM-filtered set and baselines with PPO (paper section 6)",
               "Arms (--arms): full (the whole RL set; the reference), seam (drop the lowest p%% by SEAM; seam:VARIANT "
               "for one variant), random (drop a random p%%, re-drawn per seed), perplexity (drop the highest PM "
               "perplexity), reward-gap (drop the smallest RM reward gap), skill-prior (drop the skills with the "
               "highest mean label S in the other cross-fitting folds; needs --label), oracle (the positive control: "
               "drop the highest on-policy label S; needs --label). Each arm: select -> PPO (or --method grpo | rloo | "
               "bon) from the PM against the RM -> greedy responses to held-out prompts scored by the gold judge (demo world) and the RM, per "
               "seed; then bootstrap CIs and paired tests against `full`."),
    "augment": ("compare original vs SEAM-augmented PM/RM training data with PPO (paper section 7)",
                "Arms (--arms): original (the PM's SFT data and the RM's pairs as given; the reference), seam "
                "(contrast-instruction augmentation around the lowest p%% by SEAM), random (around a random p%%), "
                "full (around every instruction). Each arm: augment -> SFT from the PM and RM retraining (once per "
                "arm) -> PPO per seed -> evaluation as in `seam experiment filter`."),
    "sweep": ("the SEAM filter at drop rates 10..80%% against the full RL set",
              "Arms: full plus METHOD@RATE for every --methods (default seam) and --rates (default 0.1 .. 0.8); "
              "each runs PPO per seed and is evaluated as in `seam experiment filter`. The figure plots the score "
              "against the drop rate."),
}

_EXAMPLES = {
    "filter": ("seam experiment filter --project demo-project --seeds 0 1 --ppo-steps 8 --ppo-batch-size 8 \\",
               "    --ppo-epochs 1 --response-length 24 --lora --ppo-learning-rate 1e-4 --dtype bfloat16 --threads 1",
               "seam experiment filter --rl rl.jsonl --scores seam.jsonl --pm models/pm --rm models/rm --eval test.jsonl \\",
               "    --arms full seam:llm random --p 0.2 --seeds 0 1 2 --ppo-config ppo.yaml --out runs/exp"),
    "augment": ("seam experiment augment --project demo-project --seeds 0 --sft-steps 20 --rm-steps 40 \\",
                "    --ppo-steps 8 --lora --out runs/exp-augment",),
    "sweep": ("seam experiment sweep --project demo-project --rates 0.1 0.3 0.5 0.8 --methods seam random \\",
              "    --seeds 0 --ppo-steps 8 --lora --out runs/exp-sweep",),
}


def register(sub) -> None:
    p = sub.add_parser("experiment", help="SEAM filter / augment experiments with PPO over seeds (results + figures)",
                       description="Run the paper's experiments end to end and write a results table (JSON + Markdown) "
                                   "and Plotly figures (HTML + PNG). See docs/experiments.md.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=example_epilog(*_EXAMPLES["filter"][:2], *_EXAMPLES["augment"], *_EXAMPLES["sweep"]))
    kinds = p.add_subparsers(dest="experiment_kind", metavar="KIND", parser_class=type(p))
    for kind in ("filter", "augment", "sweep"):
        short, long = _DESCRIPTIONS[kind]
        k = kinds.add_parser(kind, help=short, description=long, formatter_class=argparse.RawDescriptionHelpFormatter,
                             epilog=example_epilog(*_EXAMPLES[kind]))
        _add_common(k, kind)
        k.set_defaults(func=run, kind=kind)
    p.set_defaults(func=lambda args: _no_kind(p))


def _no_kind(p) -> int:
    p.print_help(sys.stderr)
    return 2


def _add_common(p: argparse.ArgumentParser, kind: str) -> None:
    g = p.add_argument_group("inputs (default: the files of a `seam demo` folder given with --project)")
    g.add_argument("--project", metavar="DIR", help="a folder built by `seam demo` (data/, models/, results/)")
    g.add_argument("--rl", metavar="FILE", help="RL instructions (the set SEAM scored)")
    g.add_argument("--scores", metavar="FILE", help="SEAM scores (the --out of `seam score`)")
    g.add_argument("--pm", metavar="DIR", help="policy model (PPO starts here; augment: SFT starts here)")
    g.add_argument("--rm", metavar="DIR", help="reward model (PPO's reward; the fixed RM judge of every arm)")
    g.add_argument("--eval", metavar="FILE", help="held-out eval prompts (default: a demo project's unused world "
                                                 "tasks, else a seeded 20%% of the RL set held out)")
    g.add_argument("--negatives", metavar="FILE", help="negatives (reward-gap rows without rejected; augment's "
                                                      "contrast neighbours)")
    if kind == "augment":
        g.add_argument("--sft", metavar="FILE", help="the PM's original SFT data")
        g.add_argument("--rm-train", metavar="FILE", help="the RM's original preference pairs")
        g.add_argument("--rm-test", metavar="FILE", help="RM test pairs (each retrained RM's accuracy)")
    g.add_argument("--out", metavar="DIR", help="output folder (default: PROJECT/experiments/" + kind + "); a re-run "
                                                "with the same settings resumes after the finished runs")

    e = p.add_argument_group("arms and seeds")
    e.add_argument("--arms", nargs="+", metavar="ARM", help="arms to run (default: all of this experiment)")
    e.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="N", help="one PPO run per arm and seed (default 0)")
    if kind == "sweep":
        e.add_argument("--rates", nargs="+", type=float, metavar="X", help="drop rates (default 0.1 0.2 ... 0.8)")
        e.add_argument("--methods", nargs="+", metavar="NAME", default=["seam"],
                       help="methods swept: seam random perplexity reward-gap (default seam)")
    else:
        e.add_argument("--p", type=float, default=0.2, help="share dropped / augmented (default 0.2, the paper's)")
    e.add_argument("--variants", nargs="+", metavar="NAME", help="SEAM variants (several: ranks averaged; default all)")
    if kind == "augment":
        e.add_argument("--k", type=int, default=5, help="contrast neighbours per anchor (default 5, the paper's)")
    if kind != "augment":
        e.add_argument("--label", metavar="FILE", help="hidden label file (JSONL: id, S, skill; a world-v2 study's "
                                                       "hidden/label.jsonl): the oracle and skill-prior arms")

    t = p.add_argument_group("PPO (overrides of `seam train ppo` settings)")
    if kind != "sweep":
        t.add_argument("--method", default="ppo", choices=["ppo", "grpo", "rloo", "bon"],
                       help="trainer of each arm's policy (default ppo); for grpo / rloo / bon the flags below map "
                            "onto its settings (see docs/experiments.md)")
        t.add_argument("--num-generations", type=int, metavar="N", help="grpo / rloo / bon: completions per prompt")
    t.add_argument("--ppo-config", metavar="FILE", help="YAML with any `seam train ppo` settings (flags below win)")
    t.add_argument("--ppo-steps", type=int, metavar="N", help="PPO updates (default 200)")
    t.add_argument("--ppo-batch-size", type=int, metavar="N", help="rollouts per update (default 32)")
    t.add_argument("--gradient-accumulation-steps", type=int, metavar="N", help="micro-batches per update (default 1)")
    t.add_argument("--mini-batches", type=int, metavar="N", help="mini-batches per update (default 1)")
    t.add_argument("--ppo-epochs", type=int, metavar="N", help="optimisation epochs per rollout batch (default 4)")
    t.add_argument("--response-length", type=int, metavar="N", help="max new tokens per rollout (default 64)")
    t.add_argument("--ppo-learning-rate", type=float, metavar="X", help="learning rate (default 1.4e-5)")
    t.add_argument("--kl-coef", type=float, metavar="X", help="KL penalty (default 0.05)")
    t.add_argument("--ppo-temperature", type=float, metavar="X", help="rollout sampling temperature (default 0.7)")
    t.add_argument("--missing-eos-penalty", type=float, metavar="X", help="subtract from rollouts without EOS")
    t.add_argument("--lora", action=argparse.BooleanOptionalAction, default=None, help="PPO trains a LoRA adapter")
    t.add_argument("--lora-r", type=int, metavar="N", help="LoRA rank (default 16)")
    if kind == "augment":
        a = p.add_argument_group("SFT / RM retraining (augment)")
        a.add_argument("--sft-config", metavar="FILE", help="YAML with `seam train sft` settings")
        a.add_argument("--rm-config", metavar="FILE", help="YAML with `seam train rm` settings")
        a.add_argument("--sft-steps", type=int, metavar="N", help="SFT optimizer steps (default: one epoch)")
        a.add_argument("--rm-steps", type=int, metavar="N", help="RM optimizer steps (default: one epoch)")
        a.add_argument("--sft-lora", action=argparse.BooleanOptionalAction, default=None, help="SFT trains a LoRA adapter")
        a.add_argument("--rm-train-layers", type=int, metavar="N", help="RM: train only the top N layers + head")
        a.add_argument("--train-seed", type=int, metavar="N", help="seed of SFT/RM retraining and random anchors "
                                                                   "(default: the first --seeds)")

    v = p.add_argument_group("evaluation and statistics")
    v.add_argument("--n-eval", type=int, default=40, metavar="N", help="held-out prompts evaluated (default 40)")
    v.add_argument("--max-new-tokens", type=int, default=48, metavar="N", help="tokens per eval response (default 48)")
    v.add_argument("--eval-batch-size", type=int, default=16, metavar="N", help="prompts per generation batch")
    v.add_argument("--judge", nargs="+", choices=["gold", "rm"], default=["gold", "rm"], help="judges (default gold rm)")
    v.add_argument("--no-kl", action="store_true", help="skip the KL estimate against the starting policy")
    v.add_argument("--no-initial-eval", action="store_true", help="do not evaluate the starting policy")
    v.add_argument("--test", default="t", choices=["t", "wilcoxon", "permutation", "sign"],
                   help="paired test over per-seed means (default t)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16: evaluation weights and the "
                                                   "trainers' mixed precision (auto: float32 on a CPU)")
    p.add_argument("--template", default="stackllama", help="stackllama | chat | a format string")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads for this process (default: torch's "
                                                           "choice; 1 is much faster on a CPU other jobs share)")
    p.add_argument("--verbose", action="store_true", help="show each trainer's progress bar")


def _yaml_overrides(what: str, path) -> dict:
    """The `what` trainer's overrides in a --ppo-config / --sft-config / --rm-config YAML file, typed."""
    # lazy: every `seam` command imports this module to build its parser; seam.train loads pandas
    from ..train.config import TRAIN_CONFIGS

    cls = TRAIN_CONFIGS[what]
    names = " (max_steps, per_device_train_batch_size, ...)" if what == "ppo" else ""
    out: dict = {}
    raw, renamed = resolve_aliases(cls, load_yaml(path), f"--{what}-config {path}")  # old names: one deprecation line
    for k, v in raw.items():
        if k not in cls.__dataclass_fields__:
            raise SeamError(f"--{what}-config {path}: unknown key {k!r}; use `seam train {what} --help` names "
                            f"with underscores{names}")
        out[k] = coerce(cls, k, v, f"--{what}-config {path}")
    warn_renamed(f"--{what}-config {path}", renamed)
    return out


def _ppo_overrides(args) -> dict:
    out = _yaml_overrides("ppo", args.ppo_config) if args.ppo_config else {}
    for flag, name in _PPO_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            out[name] = value
    return out


def _train_overrides(args, what: str) -> dict:
    path = getattr(args, f"{what}_config", None)
    out = _yaml_overrides(what, path) if path else {}
    steps = getattr(args, f"{what}_steps", None)
    if steps is not None:
        out["max_steps"] = steps
    if what == "sft" and args.sft_lora is not None:
        out["lora"] = args.sft_lora
    if what == "rm" and args.rm_train_layers is not None:
        out["train_layers"] = args.rm_train_layers
    return out


def build_config(args):
    # lazy: every `seam` command imports this module to build its parser; seam.experiment loads pandas and seam.train
    from ..experiment import EXPERIMENT_CONFIGS, EvalSettings

    ev = EvalSettings(n_prompts=args.n_eval, max_new_tokens=args.max_new_tokens, batch_size=args.eval_batch_size,
                      kl=not args.no_kl, judges=tuple(dict.fromkeys(args.judge)))
    common = dict(arms=tuple(args.arms or ()), seeds=tuple(args.seeds), variants=tuple(args.variants or ()),
                  ppo=_ppo_overrides(args), eval=ev, template=args.template, device=args.device, dtype=args.dtype, test=args.test,
                  eval_initial=not args.no_initial_eval, quiet=not args.verbose, command=_command())
    if args.kind == "sweep":
        extra = {"methods": tuple(args.methods)}
        if args.rates:
            extra["rates"] = tuple(args.rates)
    else:
        extra = {"p": args.p}
    if args.kind != "sweep":
        extra.update(method=args.method,
                     trainer={} if args.num_generations is None else {"num_generations": args.num_generations})
    if args.kind != "augment" and args.label:
        extra["label"] = args.label
    if args.kind == "augment":
        extra.update(k=args.k, sft=_train_overrides(args, "sft"), rm=_train_overrides(args, "rm"),
                     train_seed=args.train_seed)
    return EXPERIMENT_CONFIGS[args.kind].from_dict({**common, **extra}, where=f"seam experiment {args.kind}")


def _command() -> str | None:
    argv0 = Path(sys.argv[0]).name if sys.argv else ""
    if argv0 == "seam" and len(sys.argv) > 1 and sys.argv[1] == "experiment":
        return "seam " + shlex.join(sys.argv[1:])
    return None


def build_inputs(args):
    from ..experiment import ExperimentInputs, project_inputs  # lazy: as in build_config

    given = {k: getattr(args, k, None) for k in _INPUT_FLAGS}
    if args.project:
        return project_inputs(args.project, **given)
    missing = [k for k in ("rl", "pm", "rm") if not given.get(k)]
    if missing:
        raise SeamError(f"give --project DIR (a `seam demo` folder) or all of --rl, --pm and --rm "
                        f"(missing: {', '.join('--' + m for m in missing)})")
    return ExperimentInputs(**{k: v for k, v in given.items() if v})


def run(args) -> int:
    from ..experiment import RUNNERS, print_progress_hooks  # lazy: as in build_config

    cfg = build_config(args)
    inputs = build_inputs(args)
    if args.threads is not None:
        if args.threads < 1:
            raise SeamError(f"--threads must be a positive integer, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    if args.out:
        out = Path(args.out)
    elif args.project:
        out = Path(args.project) / "experiments" / args.kind
    else:
        raise SeamError("--out DIR is required without --project")
    if out.exists() and not out.is_dir():
        raise SeamError(f"--out {out} is a file; pass a folder")
    if not out.parent.exists():
        raise SeamError(f"--out {out}: parent folder {out.parent} does not exist; create it first")
    result = RUNNERS[args.kind](inputs, cfg, out, print_progress_hooks())
    print(_summary(result))
    print(f"results: {result.files['results_md']} (and {result.files['results_json'].name})")
    figs = [str(v) for k, v in result.files.items() if k.startswith("fig_")]
    if figs:
        print("figures: " + ", ".join(figs))
    print(f"done in {result.seconds:.0f}s")
    return 0


def _summary(result) -> str:
    from ..experiment import format_number as _num  # lazy: as in build_config

    scores = [s for s in ("gold", "rm") if any(r.get(s) is not None for r in result.arms)]
    head = f"{'arm':<18} {'n':>5} " + " ".join(f"{s:>8} {'d_' + s:>8} {'win':>6}" for s in scores)
    lines = [head]
    for r in result.arms:
        cells = [f"{r['arm']:<18}", f"{_num(r.get('n_train')):>5}"]
        for s in scores:
            cells += [f"{_num(r.get(s)):>8}", f"{_num(r.get(f'{s}_diff')):>8}", f"{_num(r.get(f'{s}_win_rate')):>6}"]
        lines.append(" ".join(cells))
    return "\n".join(lines)
