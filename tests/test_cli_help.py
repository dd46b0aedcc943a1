"""Every `seam` command and subcommand documents itself with an example."""

import argparse

from seam.cli import build_parser


def _walk(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + (name,))


def test_every_command_has_help_with_an_example():
    commands = list(_walk(build_parser()))
    names = {" ".join(p) for p, _ in commands}
    for expected in ("score", "negatives contrast", "negatives llm", "negatives adv", "import", "select",
                     "augment", "train sft", "train rm", "train ppo", "demo", "serve", "worker"):
        assert expected in names, expected
    missing = [" ".join(p) for p, parser in commands
               if p and not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
               and "example" not in parser.format_help().lower()]
    assert not missing, f"commands without an example in --help: {missing}"
