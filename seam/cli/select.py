"""`seam select`: drop the lowest p% of an RL set by SEAM (or a baseline) and record the lineage."""

from __future__ import annotations

import argparse

from ..data import add_column_flags, columns_from_args, load_instructions, load_negatives, read_table
from ..errors import SeamError
from ..models.loading import load_pm, load_rm
from ..select import SELECT_METHODS, SelectConfig, SelectInputs, select, write_selection
from . import example_epilog
from ._common import output_path


def register(sub) -> None:
    p = sub.add_parser(
        "select", help="drop the lowest p%% of instructions by SEAM (or a baseline)",
        description="Filter an RL instruction set (paper section 6): drop the round(p x n) instructions with the "
                    "lowest SEAM (one variant, or the average rank of several), or by a baseline on the same data: "
                    "random, highest PM perplexity of the golden response (the paper's baseline), smallest RM "
                    "reward gap. Writes the kept rows and OUT.lineage.json (method, inputs with content hashes, "
                    "counts, dropped ids).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog(
            "seam select --data rl.jsonl --scores seam.jsonl --variants llm --out rl.seam-llm.jsonl",
            "seam select --data rl.jsonl --scores seam.jsonl --variants contrast llm adv --out rl.seam-rank.jsonl",
            "seam select --data rl.jsonl --method random --seed 1 --out rl.random.jsonl",
            "seam select --data rl.jsonl --method perplexity --pm models/pm --out rl.ppl.jsonl",
            "seam select --data rl.jsonl --method reward-gap --rm models/rm --negatives negs.jsonl --out rl.gap.jsonl"),
    )
    p.add_argument("--data", required=True, metavar="FILE", help="the RL instruction set")
    p.add_argument("--out", required=True, metavar="FILE", help="kept rows (.jsonl/.csv/.parquet) + OUT.lineage.json")
    p.add_argument("--method", default="seam", choices=list(SELECT_METHODS), help="what ranks the rows (default seam)")
    p.add_argument("--p", type=float, default=0.2, help="fraction to drop (default 0.2, the paper's 20%%)")
    p.add_argument("--scores", metavar="FILE", help="seam: SEAM scores (the --out of `seam score`)")
    p.add_argument("--variants", nargs="+", metavar="NAME", help="seam: variants to use; several = rank average (default: all)")
    p.add_argument("--missing", default="keep", choices=["keep", "error"],
                   help="seam: rows with no score for a variant: keep = treat as SEAM 0 (default) | error")
    p.add_argument("--seed", type=int, default=0, help="random: permutation seed (default 0)")
    p.add_argument("--pm", metavar="DIR", help="perplexity: policy model")
    p.add_argument("--pm-adapter", metavar="DIR", help="perplexity: PEFT adapter for the PM")
    p.add_argument("--rm", metavar="DIR", help="reward-gap: reward model")
    p.add_argument("--rm-adapter", metavar="DIR", help="reward-gap: PEFT adapter for the RM")
    p.add_argument("--negatives", metavar="FILE", help="reward-gap: negatives for rows without a rejected response")
    p.add_argument("--dropped", metavar="FILE", help="also write the dropped ids with their keep scores")
    p.add_argument("--template", default="stackllama", help="model baselines: stackllama | chat | format string")
    p.add_argument("--max-prompt-tokens", type=int, metavar="N", help="model baselines: cut prompts to N tokens")
    p.add_argument("--max-response-tokens", type=int, metavar="N", help="model baselines: cut responses to N tokens")
    p.add_argument("--batch-tokens", type=int, default=16384, metavar="N", help="model baselines: padded tokens per batch")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    p.add_argument("--allow-pickle", action="store_true", help="allow .bin/.pt weights (trusted checkpoints only)")
    add_column_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = SelectConfig(method=args.method, p=args.p, variants=tuple(args.variants or ()), seed=args.seed,
                       missing=args.missing, template=args.template, max_prompt_tokens=args.max_prompt_tokens,
                       max_response_tokens=args.max_response_tokens, batch_tokens=args.batch_tokens)
    cfg.validate()
    inputs = [("--data", args.data), ("--scores", args.scores), ("--negatives", args.negatives), ("--pm", args.pm),
              ("--pm-adapter", args.pm_adapter), ("--rm", args.rm), ("--rm-adapter", args.rm_adapter)]
    out = output_path(args.out, "--out", inputs)
    dropped = output_path(args.dropped, "--dropped", inputs) if args.dropped else None
    unused = {"seam": ("--pm", "--rm", "--negatives"), "random": ("--scores", "--pm", "--rm", "--negatives"),
              "perplexity": ("--scores", "--rm", "--negatives"), "reward-gap": ("--scores", "--pm")}[cfg.method]
    given = [f for f in unused if getattr(args, f.lstrip("-").replace("-", "_"))]
    if given:
        raise SeamError(f"{given[0]} is not used by --method {cfg.method}; drop it or pick the method that uses it")
    df = load_instructions(args.data, columns_from_args(args))
    sources = SelectInputs(paths={"data": args.data, "scores": args.scores, "negatives": args.negatives})
    if args.scores:
        sources.scores = read_table(args.scores)
    if cfg.method == "perplexity" and args.pm:
        sources.pm = load_pm(args.pm, args.pm_adapter, args.device, args.dtype, args.allow_pickle)
        sources.paths["pm"] = args.pm
    if cfg.method == "reward-gap" and args.rm:
        if args.negatives:
            sources.negatives = load_negatives(args.negatives, known_ids=df["id"])
        sources.rm = load_rm(args.rm, args.rm_adapter, args.device, args.dtype, args.allow_pickle)
        sources.paths["rm"] = args.rm
    sel = select(df, cfg, sources)
    paths = write_selection(sel, out, dropped, inputs)
    lin = sel.lineage
    what = cfg.method if cfg.method != "seam" else f"SEAM ({lin['info'].get('combine')} of {', '.join(lin['info']['variants'])})"
    print(f"dropped {lin['n_dropped']} of {lin['n_in']} instructions (p={cfg.p}) by {what}; kept {lin['n_kept']}")
    missing = {k: v for k, v in lin["info"].get("missing", {}).items() if v}
    if missing:
        print(f"note: rows without a SEAM score, kept as SEAM 0: {', '.join(f'{k} {v}' for k, v in missing.items())}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
