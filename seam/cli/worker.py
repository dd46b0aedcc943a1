"""`seam worker`: run queued jobs (negatives, score, train, PPO, eval) from the store."""

from __future__ import annotations

import argparse
import contextlib
import os

from db.store import open_store
from jobs.context import Handler
from jobs.worker import Worker, serve

from ..errors import SeamError
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
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=os.environ.get("SEAM_DB", "."),
                        help="store: a folder (uses FOLDER/seam.db), a .db file or a SQLAlchemy URL "
                             "(default: $SEAM_DB, else the current folder)")
    parser.add_argument("--once", action="store_true", help="run queued jobs until the queue is empty, then exit")
    parser.add_argument("--poll", type=float, default=2.0, metavar="SECONDS",
                        help="how often to look for new jobs when the queue is empty (default: 2)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: run jobs in this process; ray: score chunks as Ray tasks over a Ray cluster "
                             "(results are still written by this worker; needs pip install 'seam-studio[ray]')")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="Ray cluster for --backend ray: local (start one in this worker, on 127.0.0.1), auto "
                             "(the one `ray start` runs on this machine) or HOST:PORT (default: $RAY_ADDRESS, else local)")
    parser.add_argument("--ray-scorers", type=int, default=None, metavar="N",
                        help="Ray actors holding the models (default: one per GPU in the cluster, else one per CPU)")
    parser.add_argument("--stale-after", type=float, default=60.0, metavar="SECONDS",
                        help="a running job whose worker's heartbeat is older than this is taken over (default: 60)")
    parser.add_argument("--quiet", action="store_true", help="do not echo job logs on stderr")


def run(args: argparse.Namespace) -> int:
    if args.poll <= 0:
        raise SeamError(f"--poll must be a positive number of seconds, got {args.poll}")
    kind = getattr(args, "backend", "local")
    address, scorers = getattr(args, "address", None), getattr(args, "ray_scorers", None)
    if kind != "ray" and (address or scorers):
        raise SeamError("--address and --ray-scorers are for --backend ray; add --backend ray or drop them")
    with contextlib.ExitStack() as stack:
        handlers: dict[str, Handler] = {}
        backend = None
        if kind == "ray":
            from jobs.ray_backend import RayBackend, RayConfig  # lazy: only --backend ray needs it

            backend = RayBackend(RayConfig(address=address, scorers=scorers))  # checks the flags first
        store = open_store(args.db)
        stack.callback(store.close)
        if backend is not None:
            stack.enter_context(backend)
            handlers = backend.handlers()
        worker = Worker(store, poll_s=args.poll, stale_after_s=args.stale_after, echo=not args.quiet,
                        handlers=handlers)
        if backend is not None:
            worker.say(f"backend: {backend.describe()}")
        return serve(worker, store, once=args.once)
