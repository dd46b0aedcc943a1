"""`seam score`: SEAM per (instruction, variant) from a PM, an RM, instructions and negatives."""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from ..data import (add_column_flags, columns_from_args, load_instructions, load_negatives, negative_columns_from_args,
                    write_rows, write_table)
from ..io import atomic_output
from ..models.loading import load_pm, load_rm, resolve_device
from ..score.formula import SCORE_COLUMNS
from ..score.config import ScoreConfig
from ..score.pipeline import SeamScorer
from ..settings import add_config_flags, config_from_args
from . import example_epilog
from ._common import output_path


MODEL_REF = "a local HF folder, a folder with one .gguf file, a PEFT adapter folder, or a hub id (org/name[@rev]) from the local Hugging Face cache (never downloaded)"


def add_model_flags(p: argparse.ArgumentParser, pm: bool = True, rm: bool = True, placement: bool = True) -> None:
    """The model flags: --pm/--rm (+ adapters), --device, --dtype, --allow-pickle; with `placement`
    also --pm-device/--rm-device, --device-map and (with `rm`) --rm-label, read back by `model_kwargs`."""
    if pm:
        p.add_argument("--pm", required=True, metavar="REF", help=f"policy model: {MODEL_REF}")
        p.add_argument("--pm-adapter", metavar="REF", help="PEFT adapter (folder or cached hub id) to apply to the PM")
    if rm:
        p.add_argument("--rm", required=True, metavar="REF",
                       help=f"reward model (a sequence classifier): {MODEL_REF}")
        p.add_argument("--rm-adapter", metavar="REF", help="PEFT adapter (folder or cached hub id) to apply to the RM")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    if placement:
        for role in ("pm",) * pm + ("rm",) * rm:
            p.add_argument(f"--{role}-device", metavar="DEV", help=f"device of the {role.upper()} only (overrides --device)")
        p.add_argument("--device-map", metavar="auto", choices=("auto", "balanced", "balanced_low_0", "sequential"),
                       help="spread each model without its own --pm-device/--rm-device over the GPUs (then the CPU) "
                            "with accelerate: for models that do not fit one device")
        if rm:
            p.add_argument("--rm-label", metavar="N",
                           help="which output logit of a multi-label RM is the reward: an index or a label name "
                                "(default: the RM's single label; required when it has several)")
    p.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16 (auto: float32 on CPU, bfloat16 on GPU)")
    p.add_argument("--allow-pickle", action="store_true", help="allow .bin/.pt weights (pickle can run code: only for trusted checkpoints)")


def model_kwargs(args: argparse.Namespace, role: str, device: str | None = None) -> dict:
    """load_pm / load_rm keyword arguments for `role` from the flags of `add_model_flags`."""
    own = getattr(args, f"{role}_device", None)
    if own:
        resolve_device(own, f"--{role}-device")  # a bad value is named by its own flag
    out = {"device": own or device or args.device,
           "device_map": None if own else getattr(args, "device_map", None)}
    if role == "rm":
        out["label"] = getattr(args, "rm_label", None)
    return out


def register(sub) -> None:
    p = sub.add_parser(
        "score", help="compute SEAM scores for an RL instruction set",
        description="Score how seamlessly the RM and PM agree on each instruction (DESIGN.md section 2). "
                    "Lower SEAM = the RM is fooled by worse answers the PM is likely to produce.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog(
            "seam score --pm models/pm --rm models/rm --data rl.jsonl --negatives negs.jsonl \\",
            "           --out seam.jsonl --details seam-details.parquet",
            "",
            "Outputs: --out has one row per (id, variant): id, variant, seam, n_negatives, n_misjudged, rm_gold;",
            "--details has one row per negative (rm_gold, rm_neg, epsilon, pm_logprob_sum, pm_tokens, term).",
        ),
    )
    add_model_flags(p)
    p.add_argument("--data", required=True, metavar="FILE", help="instructions file (JSONL, CSV, Parquet or HF save_to_disk folder)")
    p.add_argument("--negatives", required=True, metavar="FILE", help="negatives file: id, variant, text[, meta]")
    p.add_argument("--out", required=True, metavar="FILE", help="SEAM scores output (.jsonl, .csv or .parquet)")
    p.add_argument("--details", metavar="FILE", help="also write one row per negative")
    # the scoring settings' flags come from ScoreConfig's fields (one definition with the Score page)
    add_config_flags(p, ScoreConfig, skip=("device", "dtype"), title="scoring settings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_column_flags(p, kind="instructions")
    add_column_flags(p, kind="negatives")
    p.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    t0 = time.time()
    cfg = config_from_args(ScoreConfig, args)  # checked before any file is read or model loaded
    inputs = [("--data", args.data), ("--negatives", args.negatives), ("--pm", args.pm), ("--pm-adapter", args.pm_adapter),
              ("--rm", args.rm), ("--rm-adapter", args.rm_adapter)]
    out = output_path(args.out, "--out", inputs)
    details_path = output_path(args.details, "--details", inputs) if args.details else None
    instructions = load_instructions(args.data, columns_from_args(args))
    negatives = load_negatives(args.negatives, known_ids=instructions["id"], columns=negative_columns_from_args(args))
    pm = load_pm(args.pm, args.pm_adapter, dtype=cfg.dtype, allow_pickle=args.allow_pickle,
                 **model_kwargs(args, "pm", cfg.device))
    rm = load_rm(args.rm, args.rm_adapter, dtype=cfg.dtype, allow_pickle=args.allow_pickle,
                 **model_kwargs(args, "rm", cfg.device))
    scorer = SeamScorer(pm, rm, cfg)
    bar = None

    def progress(done: int, total: int, step: str) -> None:
        nonlocal bar
        if bar is None:  # created lazily so that early errors print on a clean line
            bar = tqdm(total=total, unit="seq", desc="scoring", file=sys.stderr, disable=args.quiet, dynamic_ncols=True)
        bar.set_postfix_str(step, refresh=False)
        bar.update(done - bar.n)

    # Details stream straight into a temp file (memory stays flat however many negatives);
    # the per-(id, variant) scores are small and are written once at the end. Both land atomically.
    scores = []

    def detail_rows():
        for chunk in scorer.iter_chunks(instructions, negatives, progress=progress):
            scores.append(chunk.scores)
            yield from chunk.details.to_dict("records")

    def write_scores() -> pd.DataFrame:
        frame = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=SCORE_COLUMNS)
        write_table(frame, out)
        return frame

    try:
        if details_path is not None:
            with atomic_output(details_path) as tmp:  # renamed only once the scores are written too
                write_rows(detail_rows(), tmp)
                sc = write_scores()
        else:
            for _ in detail_rows():
                pass
            sc = write_scores()
    finally:
        if bar is not None:
            bar.close()
    s = scorer.stats
    per_variant = ", ".join(f"{v}: {n}" for v, n in sorted(s.variants.items())) or "none"
    print(f"scored {s.instructions} instructions, {s.negatives} negatives ({per_variant}) in {time.time() - t0:.1f}s "
          f"on {pm.info['device']}/{pm.info['dtype']}")
    if s.without_negatives:
        print(f"note: {s.without_negatives} instructions have no negatives and get no SEAM row")
    if s.pm_truncated or s.rm_truncated:
        print(f"note: truncated responses: {s.pm_truncated} for the PM, {s.rm_truncated} for the RM "
              "(raise --max-response-tokens / --max-prompt-tokens to avoid)")
    if len(sc):
        for v, g in sc.groupby("variant"):
            print(f"  {v}: mean SEAM {g['seam'].mean():.4f}, misjudged {int(g['n_misjudged'].sum())}/{int(g['n_negatives'].sum())} negatives")
    print(f"wrote {out}" + (f" and {details_path}" if details_path else ""))
    return 0
