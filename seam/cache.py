"""The project's own cache folder (converted models, embeddings, LLM replies, NLTK data), and a
cache of whole-file hashes.

`file_hash` hashes a whole file with xxHash (XXH3, 128 bits: several GB/s, so a model's weights
cost about as long as reading them once) and remembers the result in ``<cache>/file-hashes.json``,
keyed by the resolved path and stamped with the file's size, mtime_ns, ctime_ns and inode: a file
that is rewritten, touched, or replaced by another (even one with the same mtime) is hashed again;
an unchanged one is answered from the cache without reading it. Symlinks resolve to their target,
so snapshots of the Hugging Face cache that share a blob share its entry.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

HASH_FILE = "file-hashes.json"
HASH_VERSION = 1  # bump if the hash or the stamp changes: entries of another version are ignored
MAX_ENTRIES = 4096  # the oldest entries are dropped beyond this
_CHUNK = 16 << 20

_memo: dict[str, tuple[list[int], str]] = {}  # this process's answers (resolved path -> (stamp, hash))


def cache_dir(*parts: str) -> Path:
    """``$SEAM_CACHE_DIR`` or ``$XDG_CACHE_HOME/seam`` or ``~/.cache/seam``, joined with ``parts`` and created."""
    root = os.environ.get("SEAM_CACHE_DIR")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "seam"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def hash_file_uncached(path: str | os.PathLike) -> str:
    """XXH3-128 of a whole file, as 32 hex characters (reads it once, in 16 MB blocks)."""
    import xxhash

    h = xxhash.xxh3_128()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _store_path() -> Path:
    return cache_dir() / HASH_FILE


def _read_store() -> dict[str, dict]:
    try:
        data = json.loads(_store_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != HASH_VERSION or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]


def _write_entry(real: str, stamp: list[int], digest: str) -> None:
    """Add one entry (read, update, atomic replace; a concurrent writer may drop it: it is only a cache)."""
    files = _read_store()
    files.pop(real, None)
    files[real] = {"stamp": stamp, "xxh3_128": digest}
    if len(files) > MAX_ENTRIES:
        files = dict(list(files.items())[-MAX_ENTRIES:])
    target = _store_path()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{HASH_FILE}.", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": HASH_VERSION, "files": files}, fh)
        os.replace(tmp, target)
    except OSError:  # a read-only cache folder: the hash is still right, just not remembered
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def file_hash(path: str | os.PathLike) -> str:
    """XXH3-128 of the whole file at `path` (hex), from the cache when the file has not changed."""
    real = os.path.realpath(path)
    stamp = _stamp(os.stat(real))
    hit = _memo.get(real)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    entry = _read_store().get(real)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("xxh3_128"), str):
        digest = entry["xxh3_128"]
    else:
        digest = hash_file_uncached(real)
        if _stamp(os.stat(real)) != stamp:  # changed while being read: answer, but remember nothing
            return digest
        _write_entry(real, stamp, digest)
    _memo[real] = (stamp, digest)
    return digest
