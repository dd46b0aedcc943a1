"""The `seam` console script.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (a callable taking the parsed args and returning an exit
code). Modules are discovered automatically, so adding a command touches no shared file.
Domain errors (`SeamError`) become one ``error: ...`` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

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
    from .. import __version__

    parser = _Parser(
        prog="seam",
        description="SEAM Studio: score how seamlessly a reward model and a policy model work together.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `seam COMMAND --help` for a command's flags and an example.",
    )
    parser.add_argument("--version", action="version", version=f"seam {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (_ORDER.index(n.rstrip("_")) if n.rstrip("_") in _ORDER else len(_ORDER), n))
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        code = args.func(args)
    except SeamError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted; no output was written\n")
        return 130
    except BrokenPipeError:
        # `seam ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return int(code or 0)


def example_epilog(*lines: str) -> str:
    """Format an `Example:` section for a command's --help."""
    return "example:\n" + "\n".join(f"  {line}" for line in lines)
