"""The command line shows the library's log messages on stderr: INFO by default, -q warnings only, -v debug."""

from __future__ import annotations

import logging

import pytest

import seam.cli.select as select_cmd
from seam.cli import main


@pytest.fixture
def chatty(monkeypatch):
    """`seam select` replaced by a command that logs one message per level through a library logger."""

    def run(args) -> int:
        log = logging.getLogger("seam.select")
        log.debug("debug line")
        log.info("info line")
        log.warning("warning line")
        return 0

    monkeypatch.setattr(select_cmd, "run", run)


@pytest.mark.parametrize("flags, shown", [([], ["info line", "warning: warning line"]),
                                          (["-q"], ["warning: warning line"]),
                                          (["-v"], ["debug line", "info line", "warning: warning line"])])
def test_log_levels_follow_the_flags(chatty, capsys, flags, shown):
    assert main([*flags, "select", "--scores", "s.jsonl", "--data", "d.jsonl", "--out", "o.jsonl"]) == 0
    assert capsys.readouterr().err.splitlines() == shown


def test_the_handler_is_removed_after_the_command(chatty, capsys):
    main(["select", "--scores", "s.jsonl", "--data", "d.jsonl", "--out", "o.jsonl"])
    assert logging.getLogger("seam").handlers == [] and logging.getLogger("seam").level == logging.NOTSET
