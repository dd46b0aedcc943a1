"""`seam augment`: contrast-instruction augmentation of PM SFT data and RM pairs around low-SEAM instructions."""

from __future__ import annotations

import argparse

from ..augment import AugmentConfig, augment, write_augmentation
from ..data import load_instructions, load_negatives, read_table
from ..errors import SeamError
from . import example_epilog
from ._common import output_path


def register(sub) -> None:
    p = sub.add_parser(
        "augment", help="contrast-instruction augmentation for PM SFT data and RM pairs",
        description="Paper section 7: for the lowest p%% of instructions by SEAM (or a random p%%, or all), take each "
                    "one's k most similar other instructions (contrast neighbours) and add (neighbour, its golden "
                    "answer) rows to the PM's SFT data and (instruction, its golden answer vs the neighbour's answer) "
                    "pairs to the RM's training data. Neighbours come from --contrast (the output of `seam negatives "
                    "contrast`) or are retrieved now with the local embedder. Each output gets OUT.lineage.json.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog(
            "seam augment --data rl.jsonl --scores seam.jsonl --contrast negs-contrast.jsonl \\",
            "             --sft-base sft.jsonl --sft-out sft.aug.jsonl --rm-base prefs.jsonl --rm-out prefs.aug.jsonl",
            "seam augment --data rl.jsonl --method random --seed 1 --contrast negs.jsonl --sft-out sft.rand.jsonl",
            "seam augment --data rl.jsonl --method full --contrast negs.jsonl --rm-out prefs.full.jsonl"),
    )
    p.add_argument("--data", required=True, metavar="FILE", help="the RL instruction set (anchors are chosen from it)")
    p.add_argument("--method", default="seam", choices=["seam", "random", "full"], help="which anchors (default seam)")
    p.add_argument("--p", type=float, default=0.2, help="fraction of instructions to augment (default 0.2)")
    p.add_argument("--k", type=int, default=5, help="neighbours per anchor: k SFT rows + k RM pairs (default 5)")
    p.add_argument("--scores", metavar="FILE", help="seam: SEAM scores (the --out of `seam score`)")
    p.add_argument("--variants", nargs="+", metavar="NAME", help="seam: variants; several = rank average (default: all)")
    p.add_argument("--missing", default="keep", choices=["keep", "error"], help="seam: rows with no score (default keep)")
    p.add_argument("--seed", type=int, default=0, help="random: anchor seed (default 0)")
    p.add_argument("--contrast", metavar="FILE", help="contrast negatives (meta.source_id, meta.similarity); "
                                                     "without it neighbours are retrieved now")
    p.add_argument("--contrast-variant", default="contrast", metavar="NAME", help="variant name in --contrast (default contrast)")
    p.add_argument("--corpus", metavar="FILE", help="instructions the neighbours come from (default: --data)")
    p.add_argument("--band", nargs=2, type=float, default=[0.8, 0.9], metavar=("LO", "HI"),
                   help="retrieval: cosine band (default 0.8 0.9)")
    p.add_argument("--embedder", metavar="DIR", help="retrieval: sentence-transformers folder (default all-MiniLM-L6-v2)")
    p.add_argument("--device", default="auto", help="retrieval: auto | cpu | cuda")
    p.add_argument("--sft-out", metavar="FILE", help="PM SFT data: --sft-base rows + the new rows")
    p.add_argument("--rm-out", metavar="FILE", help="RM pairs: --rm-base rows + the new pairs")
    p.add_argument("--sft-base", metavar="FILE", help="the PM's original SFT data (prepended to --sft-out)")
    p.add_argument("--rm-base", metavar="FILE", help="the RM's original pairs (prepended to --rm-out)")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = AugmentConfig(method=args.method, p=args.p, k=args.k, variants=tuple(args.variants or ()), seed=args.seed,
                        missing=args.missing, contrast_variant=args.contrast_variant, band=tuple(args.band),
                        embedder=args.embedder, device=args.device)
    cfg.validate()
    if not args.sft_out and not args.rm_out:
        raise SeamError("nothing to write: pass --sft-out FILE and/or --rm-out FILE")
    inputs = [("--data", args.data), ("--scores", args.scores), ("--contrast", args.contrast), ("--corpus", args.corpus),
              ("--sft-base", args.sft_base), ("--rm-base", args.rm_base), ("--embedder", args.embedder)]
    sft_out = output_path(args.sft_out, "--sft-out", inputs) if args.sft_out else None
    rm_out = output_path(args.rm_out, "--rm-out", inputs) if args.rm_out else None
    if sft_out and rm_out and sft_out.resolve() == rm_out.resolve():
        raise SeamError(f"--sft-out and --rm-out are the same file {sft_out}; give each its own path")
    if cfg.method == "seam" and not args.scores:
        raise SeamError("--method seam needs --scores FILE (the output of `seam score`); or use --method random / full")
    if cfg.method != "seam" and args.scores:
        raise SeamError(f"--scores is not used by --method {cfg.method}; drop it")
    df = load_instructions(args.data)
    corpus = load_instructions(args.corpus) if args.corpus else None
    contrast = load_negatives(args.contrast, known_ids=df["id"]) if args.contrast else None
    scores = read_table(args.scores) if args.scores else None
    aug = augment(df, cfg, contrast=contrast, scores=scores, corpus=corpus,
                  paths={"data": args.data, "scores": args.scores, "contrast": args.contrast, "corpus": args.corpus})
    paths = write_augmentation(aug, sft_out, rm_out, args.sft_base, args.rm_base, inputs)
    print(f"augmented {len(aug.anchors)} of {len(df)} instructions ({cfg.method}, p={cfg.p}, k={cfg.k}): "
          f"{len(aug.sft_rows)} SFT rows, {len(aug.rm_pairs)} RM pairs")
    if aug.short:
        print(f"note: {len(aug.short)} anchors had fewer than {cfg.k} neighbours (never padded)")
    if aug.lineage.get("sft_without_prompt"):
        print(f"note: {aug.lineage['sft_without_prompt']} neighbours had no prompt in the corpus (no SFT row); "
              "pass --corpus with the file the contrast negatives were retrieved from")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
