"""`seam eval {eval-rm,eval-policy,compare}`: RM accuracy, policy quality, run-vs-run comparisons."""

from __future__ import annotations

import argparse

from . import example_epilog
from .train import register_eval


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="evaluate reward models and policies; compare runs",
        description="RM accuracy on a preference split; policy quality by gold / RM / LLM judges; "
                    "win rates and paired tests between runs (bootstrap confidence intervals).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog("seam eval eval-rm --rm runs/rm --data rm_test.jsonl",
                              "seam eval compare --help"),
    )
    register_eval(p.add_subparsers(dest="eval_command", metavar="WHAT"))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
