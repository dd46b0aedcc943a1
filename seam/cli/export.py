"""`seam export`: `openrlhf` (prompt set + RM in OpenRLHF's layout and the matching train_ppo_ray
command) and `trl` (an instructions file in TRL's preference or prompt-only layout; chat data in
TRL's conversational format)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from ..data import export_trl_preference, export_trl_prompts, load_instructions
from ..train.openrlhf import OpenRLHFConfig, export_openrlhf_run, format_command, launch
from . import example_epilog
from ._common import output_path

_SKIP = ("extra",)


def register(sub) -> None:
    p = sub.add_parser("export", help="export data and models for other RLHF stacks (OpenRLHF, TRL)",
                       description="Export for scale-out training on other stacks.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=example_epilog("seam export openrlhf --data rl.seam-llm.jsonl --pm runs/sft --rm runs/rm "
                                             "--out export/openrlhf"))
    inner = p.add_subparsers(dest="export_target", metavar="TARGET", parser_class=type(p))
    _add_openrlhf(inner)
    _add_trl(inner)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _add_openrlhf(sub) -> None:
    p = sub.add_parser(
        "openrlhf", help="prompts + RM for OpenRLHF's train_ppo_ray, and the command to run it",
        description="Write OUT/prompts.jsonl (key prompt, rendered with --template), OUT/reward_model/ (HF folder with "
                    "a bias-free `score` head), OUT/policy/ (only when the PM has a LoRA adapter), OUT/train_ppo_ray.sh "
                    "and OUT/export.json, then print the `ray job submit ... openrlhf.cli.train_ppo_ray` command. "
                    "--launch runs it (needs the ray CLI and a reachable Ray GPU cluster). Paths are absolute: keep OUT "
                    "on storage all Ray nodes can read. See docs/training.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog(
            "seam export openrlhf --data rl.seam-llm.jsonl --pm runs/sft --rm runs/rm --out export/ppo-seam \\",
            "                     --gpus-per-node 8 --rollout-batch-size 32 --train-batch-size 32",
            "seam export openrlhf ... --launch --address http://head:8265 --extra --use_tensorboard /logs",
            "",
            "--extra takes everything after it, so put it last."),
    )
    for f in fields(OpenRLHFConfig):
        if f.name in _SKIP or f.name == "allow_pickle":
            continue
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "").replace("%", "%%")
        default = f.default
        if default not in ("", None):
            help_ += f" (default {default})"
        kind = {int: int, float: float}.get(type(default)) if default not in ("", None) else None
        if f.name in ("vllm_num_engines",):
            kind = int
        p.add_argument(flag, dest=f.name, type=kind, default=None, required=f.name in ("data", "pm", "rm", "out"),
                       metavar="N" if kind is int else ("X" if kind is float else "VALUE"), help=help_)
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="everything after --extra is appended to the train_ppo_ray command verbatim")
    p.add_argument("--launch", action="store_true", help="submit the job now (ray CLI + reachable cluster)")
    p.add_argument("--allow-pickle", action="store_true", help="allow .bin/.pt weights (trusted checkpoints only)")
    p.set_defaults(func=run_openrlhf)


def run_openrlhf(args) -> int:
    values = {f.name: getattr(args, f.name) for f in fields(OpenRLHFConfig)
              if f.name not in _SKIP and getattr(args, f.name, None) is not None}
    cfg = OpenRLHFConfig(**values, extra=tuple(args.extra or ()))
    exp = export_openrlhf_run(cfg)
    print(f"exported {exp.n_prompts} prompts to {exp.prompts}")
    print(f"reward model: {exp.reward_model}; policy: {exp.policy}")
    print(f"command (also in {exp.script}):")
    print("  " + format_command(exp.command))
    if args.launch:
        return launch(exp)
    return 0


def _add_trl(sub) -> None:
    p = sub.add_parser(
        "trl", help="an instructions file in TRL's preference or prompt-only layout",
        description="Write --data (an instructions file) as TRL reads it: prompt/chosen/rejected (DPOTrainer, "
                    "RewardTrainer) or, with --prompts, prompt only (PPO, GRPO, RLOO). Chat data (rows with "
                    "meta.messages, e.g. from `seam import trl`) is written in TRL's conversational format: prompt "
                    "a list of messages with the system prompt, chosen/rejected one assistant message each. "
                    "The file type follows --out (.jsonl, .csv, .parquet, or .hf for a save_to_disk folder). "
                    "See docs/data.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog("seam export trl --data rl.kept.jsonl --out dpo.jsonl",
                              "seam export trl --data rl.kept.jsonl --prompts --out ppo_prompts.hf"),
    )
    p.add_argument("--data", required=True, metavar="FILE", help="instructions file (JSONL, CSV, Parquet or HF folder)")
    p.add_argument("--out", required=True, metavar="FILE", help="output .jsonl, .csv, .parquet or .hf")
    p.add_argument("--prompts", action="store_true", help="prompt-only layout (RL prompt sets)")
    p.add_argument("--format", dest="trl_format", choices=("auto", "standard", "conversational"), default="auto",
                   help="auto (default): conversational when the data holds chat messages; standard: text columns; "
                        "conversational: messages, plain prompts as one user turn")
    p.set_defaults(func=run_trl)


def run_trl(args) -> int:
    out = output_path(args.out, "--out", [("--data", args.data)])
    df = load_instructions(args.data)
    conversational = {"auto": None, "standard": False, "conversational": True}[args.trl_format]
    writer = export_trl_prompts if args.prompts else export_trl_preference
    writer(df, out, conversational=conversational)
    print(f"wrote {len(df)} rows to {out} (TRL {'prompt-only' if args.prompts else 'preference'})")
    return 0
