"""Files in and out of the store: content hashes for lineage, and the export layouts.

Reading, validating and writing files is the data layer's job (`seam.data`: JSONL / CSV /
Parquet by extension, or an HF ``save_to_disk`` folder for a path ending in ``.hf``; atomic
writes, one-line errors); this module only maps the store's export layout names onto its exporters.
The TRL layouts write chat data (rows with meta["messages"]) in TRL's conversational format.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from seam.data import export_openrlhf, export_seam_json, export_trl_preference, export_trl_prompts, write_table
from seam.errors import SeamError


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (lineage hashes); a folder hashes its files' names and bytes."""
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def frame_sha256(df: pd.DataFrame, columns: list[str]) -> str:
    """Content hash of a frame's rows (in order) over `columns`, for frames that have no file."""
    digest = hashlib.sha256()
    present = [c for c in columns if c in df.columns]
    for row in df[present].itertuples(index=False, name=None):
        row = tuple(None if (isinstance(v, float) and v != v) else v for v in row)  # NaN and None hash alike
        digest.update(json.dumps(row, default=str, ensure_ascii=False, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _seam_layout(df: pd.DataFrame, path: str | Path) -> Path:
    return write_table(df[["id", "prompt", "chosen", "rejected", "meta"]], path)


# layout name -> writer(instructions frame, path) -> path written
EXPORT_LAYOUTS: dict[str, Callable[[pd.DataFrame, str | Path], Path]] = {
    "trl-preference": export_trl_preference,  # prompt, chosen, rejected (messages for chat data)
    "trl-prompts": export_trl_prompts,  # prompt (RL prompt sets; messages for chat data)
    "openrlhf-prompts": lambda df, path: export_openrlhf(df, path, kind="prompts"),  # --input_key prompt
    "openrlhf-preference": lambda df, path: export_openrlhf(df, path, kind="preference"),
    "seam": _seam_layout,  # DESIGN.md section 3 instructions: id, prompt, chosen, rejected, meta
    "seam-json": export_seam_json,  # the SEAM reference repo's JSON array (.json)
}


def export_instructions(df: pd.DataFrame, path: str | Path, layout: str) -> Path:
    try:
        writer = EXPORT_LAYOUTS[layout]
    except KeyError:
        raise SeamError(f"unknown export layout {layout!r}; choose one of {', '.join(EXPORT_LAYOUTS)}") from None
    return Path(writer(df, path))
