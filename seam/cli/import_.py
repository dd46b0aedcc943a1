"""`seam import`: convert a public preference dataset into the instructions format."""

from __future__ import annotations

import argparse

from ..data.importers import IMPORTERS, ImportConfig, run_import
from . import example_epilog


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import",
        help="convert StackExchange / HH-RLHF / SHP / TRL / SEAM JSON / HF data into the instructions format",
        description=(
            "Convert a public preference dataset into the instructions contract\n"
            "(id, prompt, chosen, rejected, meta) and write it atomically. Prints how many rows\n"
            "were read, written and skipped (with reasons). Chat data (TRL conversational rows)\n"
            "keeps its messages, system prompt included, in meta.messages. Layouts: docs/data.md."
        ),
        epilog=example_epilog(
            "seam import stackexchange beer.Posts.xml --out beer_pairs.jsonl --max-pairs-per-question 10",
            "seam import hh harmless-base-test.jsonl.gz --out hh.parquet --limit 1000",
            "seam import hf ./my_saved_dataset --split train --out rl_set.jsonl",
            "seam import trl ultrafeedback.parquet --out rl_set.hf   # an HF save_to_disk folder",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=sorted(IMPORTERS), metavar="KIND",
                        help=f"source layout: {', '.join(sorted(IMPORTERS))}")
    parser.add_argument("source", metavar="SOURCE", help="file (or HF save_to_disk folder) to import")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="output .jsonl, .csv, .parquet, or .hf (an HF save_to_disk folder)")
    parser.add_argument("--limit", type=int, metavar="N", help="stop after writing N rows")
    se = parser.add_argument_group("stackexchange options")
    se.add_argument("--min-answers", type=int, default=2, metavar="N",
                    help="skip questions with fewer than N answers (default: 2)")
    se.add_argument("--max-pairs-per-question", type=int, metavar="N",
                    help="keep at most N pairs per question, largest score gap first (default: all)")
    se.add_argument("--site", metavar="NAME", help="id prefix (default: from the file name, e.g. beer)")
    parser.add_argument("--split", metavar="NAME", help="split of an HF DatasetDict folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = ImportConfig(
        limit=args.limit, min_answers=args.min_answers, max_pairs_per_question=args.max_pairs_per_question,
        site=args.site, split=args.split,
    )
    stats = run_import(args.kind, args.source, args.out, config, progress=True)  # refuses --out SOURCE
    print(f"wrote {stats['pairs_written']} rows to {stats['out']} ({args.kind}: {args.source})")
    print(f"rows read: {stats['rows_read']}")
    print(f"rows skipped: {stats['rows_skipped']}")
    for reason, count in stats["skipped"].items():
        print(f"  {count:>8}  {reason}")
    for key, value in stats.items():
        if key not in ("importer", "source", "out", "rows_read", "pairs_written", "rows_skipped", "skipped"):
            print(f"{key.replace('_', ' ')}: {value}")
    return 0
