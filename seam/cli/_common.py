"""What the command modules share: output paths checked before any work starts.

Every command that writes a file checks its outputs here, before it reads data or loads a model:
the path must be writable and must not be one of the command's inputs (`seam.io.check_not_input`),
so `seam select --data a.jsonl --out a.jsonl` fails at once with one `error:` line and leaves
`a.jsonl` untouched. (The leading underscore keeps this module out of the command discovery.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..data import check_output_path
from ..errors import SeamError
from ..io import check_not_input, check_parent

Inputs = Iterable[Any]  # paths or (flag, path) pairs; None paths are skipped


def output_path(path: str | os.PathLike, flag: str, inputs: Inputs = ()) -> Path:
    """A table output (.jsonl/.csv/.parquet) validated before any long work; errors name the flag."""
    check_not_input(path, inputs, flag)
    try:
        return check_output_path(path)
    except SeamError as exc:
        raise SeamError(f"{flag} {exc}") from None


def json_output_path(path: str | os.PathLike | None, flag: str = "--out", inputs: Inputs = (),
                     suffix: str | None = ".json") -> Path | None:
    """A JSON output (a summary or stats file) validated like `output_path`; None stays None.
    `suffix=None` accepts any file name."""
    if path is None:
        return None
    check_not_input(path, inputs, flag)
    p = Path(path)
    if p.is_dir():
        raise SeamError(f"{flag} {p}: is a folder; give a file name such as {p / 'summary.json'}")
    if suffix and p.suffix.lower() != suffix:
        raise SeamError(f"{flag} {p}: the file is JSON; use a {suffix} file name")
    try:
        check_parent(p)
    except SeamError as exc:
        raise SeamError(f"{flag} {exc}") from None
    return p
