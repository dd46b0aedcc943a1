"""Writing files safely: one atomic writer, JSON-safe values, file digests and lineage sidecars.

Every file the project writes goes through `atomic_output` (or the `write_text` / `write_json`
shortcuts built on it): the data lands in a temp file next to the target and is renamed onto it
only when the whole write succeeded, so an interrupted command never leaves a half-written file.
The writer also refuses a target that is one of the command's inputs: `seam select --data a.jsonl
--out a.jsonl` must fail with one `error:` line and leave `a.jsonl` untouched, not replace it.

>>> json_safe({"x": float("nan"), "p": Path("a/b"), "n": [1, 2.5]})
{'x': None, 'p': 'a/b', 'n': [1, 2.5]}
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import __version__
from .errors import SeamError

LINEAGE_SUFFIX = ".lineage.json"

def check_parent(path: str | os.PathLike) -> None:
    """Raise a one-line SeamError unless `path`'s folder exists and is writable."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SeamError(f"{path}: output folder {parent} does not exist; create it first with `mkdir -p {parent}`")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SeamError(f"{path}: output folder {parent} is not writable; choose another folder or fix its permissions")


def _same_path(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        with contextlib.suppress(OSError):
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    with contextlib.suppress(ValueError, OSError):
        path.resolve().relative_to(folder.resolve())
        return True
    return False


def check_not_input(out: str | os.PathLike, inputs: Iterable[Any] = (), out_flag: str = "--out") -> None:
    """Raise a one-line SeamError when `out` is one of `inputs`, lies inside an input folder, or is a
    folder that holds an input (a run folder must not swallow its own data or model).

    `inputs` holds paths or (flag, path) pairs; None entries are skipped. Comparison follows
    symlinks and hard links, so `./a.jsonl`, `a.jsonl` and a link to it all count as the same file.

    >>> check_not_input("b.jsonl", [("--data", "a.jsonl")])
    >>> check_not_input("a.jsonl", [("--data", "./a.jsonl")])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    seam.errors.SeamError: --out a.jsonl is the input --data a.jsonl; writing there would overwrite it...
    """
    target = Path(out)
    for item in inputs:
        flag, value = item if isinstance(item, tuple) else (None, item)
        if value is None or value == "":
            continue
        src = Path(value)
        named = f"the input {flag} {src}" if flag else f"the input {src}"
        if _same_path(target, src):
            raise SeamError(f"{out_flag} {target} is {named}; writing there would overwrite it. "
                            f"Choose a different output path")
        if src.is_dir() and _inside(target, src):
            raise SeamError(f"{out_flag} {target} lies inside {named}; writing there would change it. "
                            f"Choose an output path outside {src}")
        if src.exists() and _inside(src, target):
            raise SeamError(f"{out_flag} {target} holds {named}; writing there would replace it. "
                            f"Choose a different output folder")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, inputs: Iterable[Any] = (), out_flag: str = "--out") -> Iterator[Path]:
    """Yield a temp path next to `path` (same extension); rename it onto `path` on success and
    delete it (file or folder) if the block raises. Nothing is ever left half-written at `path`,
    and `path` may not be one of `inputs` (see `check_not_input`).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_output(d / "out.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "out.txt").read_text()
    'done'
    """
    path = Path(path)
    check_not_input(path, inputs, out_flag)
    check_parent(path)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
        raise


def write_text(path: str | os.PathLike, text: str, inputs: Iterable[Any] = (), out_flag: str = "--out") -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_output(path, inputs, out_flag) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data: Any, inputs: Iterable[Any] = (), out_flag: str = "--out",
               indent: int | None = 1) -> Path:
    """Write `data` as JSON (through `json_safe`, so numpy values and NaN are fine) atomically."""
    return write_text(path, json.dumps(json_safe(data), indent=indent, ensure_ascii=False) + "\n", inputs, out_flag)


def json_safe(value: Any) -> Any:
    """A copy fit for strict JSON: NaN/inf/NA -> None, numpy and torch scalars or arrays -> Python,
    Paths -> str, dates -> ISO text, mapping keys -> str; anything else unknown -> its str()."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas missing markers, without importing pandas
        return None
    if hasattr(value, "tolist"):  # numpy / torch scalar or array
        return json_safe(value.tolist())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f if math.isfinite(f) else None


# ---------------------------------------------------------------------------- digests and lineage


def file_digest(path: str | os.PathLike) -> str | None:
    """sha256 of a file, or of (name, size, sha256) of every file in a folder; None if absent."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_file():
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    if p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(f"{f.relative_to(p)}:{f.stat().st_size}:{file_digest(f)}\n".encode())
        return h.hexdigest()
    return None


def lineage_path(out: str | os.PathLike) -> Path:
    """The sidecar next to a data file: ``rl.filtered.jsonl`` -> ``rl.filtered.jsonl.lineage.json``."""
    return Path(str(out) + LINEAGE_SUFFIX)


def describe_file(path: str | os.PathLike | None, rows: int | None = None) -> dict | None:
    """Path, digest, row count and (when present) the file's own lineage, for a lineage record."""
    if not path:
        return None
    d: dict[str, Any] = {"path": str(Path(path).resolve()), "sha256": file_digest(path)}
    if rows is not None:
        d["rows"] = int(rows)
    parent = lineage_path(path)
    if parent.is_file():
        try:
            d["lineage"] = json.loads(parent.read_text(encoding="utf-8"))
        except ValueError:
            d["lineage"] = {"unreadable": str(parent)}
    return d


def new_lineage(operation: str, **fields_) -> dict:
    """The head of a lineage record: what ran, when, with which version of SEAM Studio."""
    return {"seam_lineage": 1, "operation": operation,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seam_version": __version__, **fields_}


def write_lineage(out: str | os.PathLike, lineage: dict) -> Path:
    """Write `lineage` as the sidecar of the data file `out`."""
    return write_json(lineage_path(out), lineage)
