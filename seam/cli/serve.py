"""`seam serve`: the dashboard (Streamlit on 127.0.0.1) and a worker for the same store."""

from __future__ import annotations

import argparse
import os

from app.server import ServeConfig, serve

from . import example_epilog


def register(subparsers) -> None:  # noqa: ANN001 - argparse's private subparsers type
    parser = subparsers.add_parser(
        "serve",
        help="serve the dashboard on http://127.0.0.1:8501",
        description="Serve the SEAM Studio dashboard (Streamlit, headless) for a project store, and run a worker "
                    "for the same store so that jobs launched from the pages run. Ctrl-C stops both.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example_epilog("seam serve --db runs/                   # http://127.0.0.1:8501",
                              "seam serve --db runs/ --port 8600 --no-worker"),
    )
    parser.add_argument("--db", default=os.environ.get("SEAM_DB", "."), metavar="URL|DIR",
                        help="store: a folder (uses FOLDER/seam.db), a .db file or a SQLAlchemy URL "
                             "(default: $SEAM_DB, else the current folder)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; the dashboard has no authentication)")
    parser.add_argument("--port", type=int, default=8501, help="TCP port (default 8501)")
    parser.add_argument("--no-worker", action="store_true",
                        help="do not start a worker (run `seam worker --db ...` yourself, e.g. on a GPU machine)")
    parser.add_argument("--quiet", action="store_true", help="no Streamlit output and no job logs on the console")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return serve(ServeConfig(db=args.db, host=args.host, port=args.port, worker=not args.no_worker, quiet=args.quiet))
