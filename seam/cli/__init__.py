"""The `seam` console script.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (a callable taking the parsed args and returning an exit
code). Modules are discovered automatically, so adding a command touches no shared file.
Domain errors (`SeamError`) become one ``error: ...`` line on stderr and exit code 2; that line
always starts a line of its own, even right after a progress bar's carriage return.
Helpers the commands share (output paths checked against the inputs) live in `._common`.

The library reports through `logging` (loggers under ``seam``); the command line shows its INFO
messages and above on stderr, ``-q`` only warnings and errors, ``-v`` debug messages too.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from .. import __version__
from ..errors import SeamError

# Commands listed first in `seam --help`; others follow alphabetically.
_ORDER = ["score", "negatives", "import", "select", "augment", "train", "eval", "experiment", "export", "demo", "serve",
          "worker"]


class _Parser(argparse.ArgumentParser):
    """argparse that keeps the one-line `error:` contract and exit code 2 for bad flags."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="seam",
        description="SEAM Studio: score how seamlessly a reward model and a policy model work together.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `seam COMMAND --help` for a command's flags and an example.",
    )
    parser.add_argument("--version", action="version", version=f"seam {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log messages (-vv: debug)")
    parser.add_argument("-q", "--quiet-log", action="store_true", help="log only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (_ORDER.index(n.rstrip("_")) if n.rstrip("_") in _ORDER else len(_ORDER), n))
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


class _TrackedStderr:
    """sys.stderr while a command runs: remembers whether the last text written ended its line
    (a progress bar ends with a carriage return), so the `error:` line can start a fresh one."""

    def __init__(self, stream):
        self.stream = stream
        self.at_line_start = True

    def write(self, text: str) -> int:
        if text:
            self.at_line_start = text.endswith("\n")
        return self.stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def _close_progress_bars() -> None:
    """Close the tqdm bars still open (an exception skipped their close), so none redraws later."""
    std = sys.modules.get("tqdm.std")  # tqdm itself is imported only by the commands that draw bars
    for bar in list(getattr(getattr(std, "tqdm", None), "_instances", ())):
        bar.close()


class _LogFormat(logging.Formatter):
    """Info as the plain message; warnings and above prefixed by their level (``warning: ...``)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def _setup_logging(stream, verbose: int, quiet: bool) -> logging.Handler:
    """One stderr handler on the `seam` logger for this command (removed again when it ends)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_LogFormat())
    logger = logging.getLogger("seam")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    return handler


def _print_error(stderr: _TrackedStderr, message: str) -> None:
    _close_progress_bars()
    stderr.write(("" if stderr.at_line_start else "\n") + f"error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    stderr = sys.stderr
    sys.stderr = tracked = _TrackedStderr(stderr)
    handler = _setup_logging(tracked, getattr(args, "verbose", 0), getattr(args, "quiet_log", False))
    try:
        return int(args.func(args) or 0)
    except SeamError as exc:
        _print_error(tracked, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _print_error(tracked, "interrupted; no output was written")
        return 130
    except BrokenPipeError:
        # `seam ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        logger = logging.getLogger("seam")
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        if sys.stderr is tracked:
            sys.stderr = stderr


def example_epilog(*lines: str) -> str:
    """Format an `Example:` section for a command's --help."""
    return "example:\n" + "\n".join(f"  {line}" for line in lines)
