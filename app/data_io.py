"""File import for the Data page: previews, column mapping, problem scans, and loading into the store.

Formats are the ones `seam import` reads (stackexchange, hh, shp, trl, seam-json, hf) plus files
already in the instructions / negatives contracts (JSONL, JSON, CSV, Parquet, gzip, HF folders),
whose columns can be mapped onto the contract fields.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd

from seam.data import IMPORTERS, ImportConfig, ImportStats, iter_import, load_instructions, load_negatives
from seam.data.columns import InstructionColumns, NegativeColumns
from seam.data.tables import iter_records
from seam.errors import SeamError

CONTRACT = "instructions file"
FORMATS = (CONTRACT, *sorted(IMPORTERS))
INSTRUCTION_FIELDS = ("id", "prompt", "chosen", "rejected", "meta")
NEGATIVE_FIELDS = ("id", "variant", "text", "meta")
REQUIRED = {"id", "prompt", "chosen", "variant", "text"}


@dataclass
class ImportReport:
    dataset_id: int | None = None
    rows: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


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


def import_instructions(store, fmt: str, path: Path, name: str, mapping: dict[str, str | None] | None = None,  # noqa: ANN001
                        config: ImportConfig | None = None) -> ImportReport:
    """Load `path` (contract file with `mapping`, or through importer `fmt`) as dataset `name`."""
    report = ImportReport()
    if fmt == CONTRACT:
        cols = InstructionColumns(**{f: c for f, c in (mapping or {}).items() if c})
        if not (mapping or {}).get("rejected"):
            cols.rejected = "\x00absent"  # an unmapped optional column: never matches a file column
        if not (mapping or {}).get("meta"):
            cols.meta = "\x00absent"
        df = load_instructions(path, cols)
        report.counts = {"rows read": len(df), "rows imported": len(df)}
    elif fmt in IMPORTERS:
        stats = ImportStats(fmt, str(path))
        df = pd.DataFrame(list(iter_import(fmt, path, config or ImportConfig(), stats)))
        if df.empty:
            raise SeamError(f"{path}: nothing to import ({stats.rows_read} rows read); check that it is a {fmt} file")
        d = stats.as_dict()
        report.counts = {"rows read": d["rows_read"], "rows imported": d["pairs_written"], "rows skipped": d["rows_skipped"]}
        report.problems = [f"{count} skipped: {reason}" for reason, count in d["skipped"].items()]
    else:
        raise SeamError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    report.dataset_id = store.import_instructions(name, df, source_path=path)
    report.rows = len(df)
    return report


def import_negatives(store, dataset_id: int, path: Path, mapping: dict[str, str | None],  # noqa: ANN001
                     replace: bool = False) -> ImportReport:
    cols = NegativeColumns(**{f: c for f, c in mapping.items() if c})
    if not mapping.get("meta"):
        cols.meta = "\x00absent"
    df = load_negatives(path, known_ids=store.instruction_ids(dataset_id), columns=cols)
    n = store.import_negatives(dataset_id, df, replace=replace)
    by_variant = Counter(df["variant"])
    return ImportReport(dataset_id, n, {"negatives": n, **{f"variant {v}": c for v, c in sorted(by_variant.items())}})
