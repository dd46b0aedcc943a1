"""File import for the Data page: uploads, previews, column mapping and problem scans (loading: db.load).

Formats are the ones `seam import` reads (stackexchange, hh, shp, trl, seam-json, hf) plus files
already in the instructions / negatives contracts (JSONL, JSON, CSV, Parquet, gzip, HF folders),
whose columns can be mapped onto the contract fields.
"""

from __future__ import annotations

import re
from itertools import islice
from pathlib import Path

import pandas as pd

from seam.data import ImportConfig, ImportStats, iter_import
from seam.data.contract import INSTRUCTION_FIELDS, NEGATIVE_FIELDS  # noqa: F401 - the page reads them here
from seam.data.contract import REQUIRED_FIELDS as REQUIRED
from seam.data.tables import iter_records


def save_upload(name: str, data: bytes, folder: Path) -> Path:
    """Write an uploaded file under `folder` (created) with a safe name; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name) or "upload"
    path = folder / safe
    tmp = path.with_name(f".{safe}.part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def preview(path: Path, n: int = 20) -> pd.DataFrame:
    """The first `n` records of a table as they are in the file (no mapping, no checks)."""
    if path.suffix.lower() == ".xml" or (path.is_dir() and (path / "Posts.xml").is_file()):
        return pd.DataFrame()  # StackExchange dumps: see the converted preview instead
    records = [rec for _, _, rec in islice(iter_records(path), n)]
    return pd.DataFrame.from_records(records)


def guess_mapping(columns: list[str], fields: tuple[str, ...]) -> dict[str, str | None]:
    """Contract field -> file column, matching names first, then common synonyms."""
    synonyms = {"prompt": ("question", "instruction", "query", "input"), "chosen": ("response", "answer", "golden", "output",
                "response_j"), "rejected": ("response_k",), "text": ("response", "negative", "answer"),
                "id": ("qid", "uid", "idx"), "variant": ("source",)}
    lower = {c.lower(): c for c in columns}
    out: dict[str, str | None] = {}
    for f in fields:
        out[f] = lower.get(f) or next((lower[s] for s in synonyms.get(f, ()) if s in lower), None)
    return out


def scan_problems(raw: pd.DataFrame, mapping: dict[str, str | None], kind: str = "instructions") -> list[str]:
    """Problems a strict load would stop at, counted over all rows of a preview frame."""
    problems: list[str] = []
    for f, col in mapping.items():
        if f in REQUIRED and not col:
            problems.append(f"no column mapped to {f} (required)")
    def rows(mask) -> str:  # noqa: ANN001
        idx = [int(i) + 1 for i in mask.to_numpy().nonzero()[0][:5]]
        return ", ".join(map(str, idx)) + ("..." if int(mask.sum()) > 5 else "")

    for f in ("prompt", "chosen", "text", "variant"):
        col = mapping.get(f)
        if col and col in raw:
            s = raw[col]
            empty = s.isna() | s.map(lambda v: isinstance(v, str) and not v.strip())
            if empty.any():
                problems.append(f"{int(empty.sum())} row(s) with an empty {f} (rows {rows(empty)})")
            wrong = s.notna() & ~s.map(lambda v: isinstance(v, str))
            if wrong.any():
                problems.append(f"{int(wrong.sum())} row(s) where {f} is not text (rows {rows(wrong)})")
    col = mapping.get("id")
    if col and col in raw and kind == "instructions":
        dup = raw[col].astype(str).duplicated(keep=False) & raw[col].notna()
        if dup.any():
            problems.append(f"{int(dup.sum())} row(s) share an id (rows {rows(dup)})")
        missing = raw[col].isna()
        if missing.any():
            problems.append(f"{int(missing.sum())} row(s) without an id (rows {rows(missing)})")
    col = mapping.get("meta")
    if col and col in raw:
        bad = raw[col].notna() & ~raw[col].map(lambda v: isinstance(v, (dict, str)) or v is None)
        if bad.any():
            problems.append(f"{int(bad.sum())} row(s) whose meta is not an object (rows {rows(bad)})")
    return problems


def converted_preview(fmt: str, path: Path, n: int = 20, split: str | None = None) -> tuple[pd.DataFrame, ImportStats]:
    """The first `n` instruction rows an importer makes of `path`, with its stats so far."""
    stats = ImportStats(fmt, str(path))
    rows = list(iter_import(fmt, path, ImportConfig(limit=n, split=split), stats))
    return pd.DataFrame(rows), stats
