"""`seam worker`: run queued jobs (negatives, score, train, PPO, eval) from the store."""

from __future__ import annotations

import argparse

from . import example_epilog


def register(subparsers) -> None:  # noqa: ANN001 - argparse's private subparsers type
    parser = subparsers.add_parser(
        "worker",
        help="run queued jobs from the store",
        description="Run jobs queued in the store (by the dashboard or the library) one at a time, recording "
                    "progress, ETA and a log.\nA worker killed mid-job resumes the job when started again.\n\n"
                    "With --backend ray, score jobs are split over a Ray cluster (one scorer per GPU, else per CPU);\n"
                    "this worker still claims the jobs and writes every result, so the numbers, the chunks and\n"
                    "resuming are the same as with the local backend.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog("seam worker --db runs/            # serve runs/seam.db until Ctrl-C",
                              "seam worker --db runs/ --once     # drain the queue, then exit",
                              "seam worker --db postgresql+psycopg://seam@dbhost/seam --backend ray --address 10.0.0.5:6379"),
    )
    from db.worker import add_arguments

    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from db.worker import run_from_args

    return run_from_args(args)
