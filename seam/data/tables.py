"""Reading and writing tables: JSONL, CSV, Parquet (by extension) and HF ``save_to_disk`` folders.

Every failure a user can fix becomes a one-line `SeamError` naming the file, the line or row, and
the fix. Writes are atomic: a temp file in the same folder, renamed over the target at the end.

Dict-valued columns (``meta``) are JSON objects in JSONL, JSON strings in CSV, and structs in
Parquet and HF folders (`seam.data.parquet`; Parquet files with ``meta`` as JSON text, the older
layout, still read back as dicts). An output path ending in ``.hf`` is written as an HF
``save_to_disk`` folder (`seam.data.hf`).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import math
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import SeamError
from ..io import atomic_output, check_not_input, check_parent, json_safe
from .hf import iter_hf, read_hf, write_hf
from .parquet import BATCH as _BATCH
from .parquet import DICT_COLUMNS, iter_parquet, parse_json_cell, read_parquet, write_parquet

# extension -> format; ".gz" may follow the text formats
_EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
    ".hf": "hf",
}
_GZ_OK = {"jsonl", "json", "csv"}
WRITE_FORMATS = ("jsonl", "csv", "parquet", "hf")


@dataclass(frozen=True)
class TableFormat:
    kind: str  # jsonl | json | csv | parquet | hf (an HF save_to_disk folder)
    gz: bool = False
    suffix: str = ""  # the extension as written, e.g. ".jsonl.gz"


def table_format(path: str | os.PathLike) -> TableFormat:
    """Format of `path` from its extension (a folder, or a name ending in .hf, is an HF
    ``save_to_disk`` dataset)."""
    path = Path(path)
    if path.is_dir():
        return TableFormat("hf")
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    ext = suffixes[-2] if gz and len(suffixes) >= 2 else (suffixes[-1] if suffixes and not gz else "")
    kind = _EXTENSIONS.get(ext)
    if kind is None or (gz and kind not in _GZ_OK):
        got = "".join(path.suffixes[-2:] if gz else path.suffixes[-1:]) or "no extension"
        raise SeamError(
            f"{path}: unknown file type ({got}); use .jsonl, .json, .csv or .parquet "
            "(.jsonl/.json/.csv may be gzipped as .gz), or an HF save_to_disk folder (.hf)"
        )
    return TableFormat(kind, gz, (ext + ".gz") if gz else ext)


# ----------------------------------------------------------------------------------------- reading


def _check_input(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise SeamError(f"{path}: file not found; check the path (relative paths start at {Path.cwd()})")
    if path.is_file() and path.stat().st_size == 0:
        raise SeamError(f"{path}: file is empty (0 bytes); point at a file with a header/rows, or regenerate it")
    return path


def _open_binary(path: Path, gz: bool):
    return gzip.open(path, "rb") if gz else open(path, "rb")


def iter_text_lines(path: Path, gz: bool = False) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) from a UTF-8 (optionally gzipped) file, streaming.

    Bytes that are not UTF-8 raise a `SeamError` with the line and byte offset.
    """
    offset = 0
    try:
        with _open_binary(path, gz) as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    hint = ""
                    if lineno == 1 and raw[:2] == b"\x1f\x8b":
                        hint = " (it looks gzip-compressed: add .gz to the file name)"
                    raise SeamError(
                        f"{path} line {lineno}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte offset "
                        f"{offset + exc.start}){hint}; re-save the file as UTF-8, e.g. "
                        "`iconv -f latin1 -t utf-8 IN > OUT`"
                    ) from None
                if lineno == 1:
                    text = text.lstrip("\ufeff")
                offset += len(raw)
                yield lineno, text
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise SeamError(f"{path}: not a readable gzip file ({exc}); re-download it or drop the .gz extension") from None


def _iter_jsonl(path: Path, gz: bool) -> Iterator[tuple[str, int, dict]]:
    for lineno, text in iter_text_lines(path, gz):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SeamError(
                f"{path} line {lineno}: invalid JSON ({exc.msg} at column {exc.colno}); "
                "each line must hold one JSON object: fix or delete that line"
            ) from None
        if not isinstance(record, dict):
            raise SeamError(
                f"{path} line {lineno}: expected a JSON object {{...}}, got {_type_name(record)}; "
                "each line must hold one JSON object with the row's columns"
            )
        yield "line", lineno, record


def _iter_json(path: Path, gz: bool) -> Iterator[tuple[str, int, dict]]:
    """A .json file: a JSON array of objects, or JSON lines."""
    first = ""
    with contextlib.closing(iter_text_lines(path, gz)) as lines:
        for _, text in lines:
            if text.strip():
                first = text.lstrip()[:1]
                break
    if first != "[":
        yield from _iter_jsonl(path, gz)
        return
    text = "".join(t for _, t in iter_text_lines(path, gz))
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeamError(
            f"{path} line {exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno}); fix the file "
            "(it must be a JSON array of objects, or one JSON object per line)"
        ) from None
    for i, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise SeamError(
                f"{path} item {i}: expected a JSON object {{...}}, got {_type_name(record)}; "
                "the array must hold one object per row"
            )
        yield "item", i, record


def _check_utf8(path: Path, gz: bool) -> None:
    for _ in iter_text_lines(path, gz):
        pass


def _read_csv(path: Path, gz: bool, text_columns: set[str] | None, chunksize: int | None = None):
    """pandas CSV reader; `text_columns` are kept as text (None: every column)."""
    _check_utf8(path, gz)
    try:
        header = pd.read_csv(path, nrows=0, compression="gzip" if gz else None, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise SeamError(f"{path}: file is empty (no header row); write a header line with the column names") from None
    dtype = {c: str for c in header.columns if text_columns is None or c in text_columns or c in DICT_COLUMNS}
    try:
        return pd.read_csv(
            path, dtype=dtype, keep_default_na=False, na_values=[""], chunksize=chunksize,
            compression="gzip" if gz else None, encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise SeamError(
            f"{path}: cannot parse CSV ({' '.join(str(exc).split())}); check quoting and the number of fields per row"
        ) from None


def iter_records(path: str | os.PathLike, split: str | None = None) -> Iterator[tuple[str, int, dict]]:
    """Stream the rows of any supported table as ``(unit, number, record)``.

    ``unit`` is "line" (JSONL: the file's line number), "item" (JSON array) or "row" (CSV, Parquet,
    HF: 1-based data row). Memory stays bounded for JSONL, CSV, Parquet and HF folders.
    """
    path = _check_input(path)
    fmt = table_format(path)
    if fmt.kind == "jsonl":
        yield from _iter_jsonl(path, fmt.gz)
    elif fmt.kind == "json":
        yield from _iter_json(path, fmt.gz)
    elif fmt.kind == "csv":
        n = 0
        chunks = _read_csv(path, fmt.gz, None, chunksize=_BATCH)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except (pd.errors.ParserError, ValueError) as exc:
                raise SeamError(
                    f"{path}: cannot parse CSV after row {n} ({' '.join(str(exc).split())}); "
                    "check quoting and the number of fields per row"
                ) from None
            for record in chunk.to_dict("records"):
                n += 1
                yield "row", n, {k: _csv_value(k, v) for k, v in record.items()}
    elif fmt.kind == "parquet":
        yield from iter_parquet(path)
    else:
        yield from iter_hf(path, split)


def _csv_value(column: str, value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if column in DICT_COLUMNS:
        return parse_json_cell(value)
    return value


@dataclass
class Table:
    """A table read from disk plus where each row came from (for error messages)."""

    df: pd.DataFrame
    path: Path
    unit: str  # "line" | "item" | "row"
    numbers: list[int] | None = None  # source line/item numbers; None = 1..n

    def where(self, i: int) -> str:
        """Human location of the i-th (0-based) row: 'line 7', 'row 3'."""
        return f"{self.unit} {self.numbers[i] if self.numbers is not None else i + 1}"


def read_table_located(path: str | os.PathLike, text_columns: Iterable[str] = ()) -> Table:
    """`read_table` that also says where each row came from. CSV columns named in `text_columns`
    are kept as text (no number parsing); other CSV columns get pandas' type inference."""
    path = _check_input(path)
    fmt = table_format(path)
    if fmt.kind in ("jsonl", "json"):
        reader = _iter_jsonl if fmt.kind == "jsonl" else _iter_json
        units, numbers, records = [], [], []
        for unit, number, record in reader(path, fmt.gz):
            units.append(unit)
            numbers.append(number)
            records.append(record)
        if not records:
            raise SeamError(f"{path}: no rows (only blank lines); add one JSON object per line")
        # object dtype keeps ints as ints and None as None (no float/NaN coercion)
        columns = list(dict.fromkeys(k for r in records for k in r))
        df = pd.DataFrame({c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns})
        return Table(df, path, units[0], numbers)
    if fmt.kind == "csv":
        df = _read_csv(path, fmt.gz, set(text_columns))
        if df.empty:
            raise SeamError(f"{path}: has a header but no data rows; add rows below the header")
        for col in df.columns:
            if col in DICT_COLUMNS:
                df[col] = pd.Series([_csv_value(col, v) for v in df[col].tolist()], dtype=object, index=df.index)
        return Table(df, path, "row")
    if fmt.kind == "parquet":
        df = read_parquet(path)
        if df.empty:
            raise SeamError(f"{path}: Parquet file has no rows; regenerate it")
        return Table(df, path, "row")
    return Table(read_hf(path), path, "row")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a JSONL (.jsonl, or .json holding JSON lines or an array), CSV or Parquet file (by
    extension; text formats may be .gz) or an HF ``save_to_disk`` folder into a DataFrame.

    Raises `SeamError` (file + line/row + fix) on an unknown extension, a missing or empty file,
    invalid JSON, non-UTF-8 bytes, or a corrupt Parquet file.
    """
    return read_table_located(path).df


# ----------------------------------------------------------------------------------------- writing


def check_output_path(path: str | os.PathLike, inputs: Iterable[Any] = (), flag: str = "--out") -> Path:
    """Validate an output path before long work starts: a known table extension (.jsonl, .csv,
    .parquet; .jsonl.gz and .csv.gz too; .hf for an HF ``save_to_disk`` folder, which must not exist
    yet), a parent folder that exists and is writable, and not one of the command's `inputs` (paths
    or (flag, path) pairs; see `seam.io.check_not_input`)."""
    path = Path(path)
    check_not_input(path, inputs, flag)
    if path.suffix.lower() == ".hf" and path.exists():
        raise SeamError(f"{path}: already exists; HF dataset folders are never replaced: remove it or choose a new name")
    if path.is_dir():
        raise SeamError(f"{path}: is a folder; give a file name such as {path / 'out.jsonl'} "
                        f"(or a new folder name ending in .hf for an HF save_to_disk dataset)")
    fmt = table_format(path)
    if fmt.kind not in WRITE_FORMATS:
        raise SeamError(f"{path}: cannot write {fmt.suffix} files; use .jsonl, .csv or .parquet for outputs "
                        "(or .hf for an HF save_to_disk folder)")
    check_parent(path)
    return path


def _iter_rows(data) -> Iterator[dict]:
    if isinstance(data, pd.DataFrame):
        columns = [str(c) for c in data.columns]
        for start in range(0, len(data), _BATCH):
            for values in data.iloc[start:start + _BATCH].itertuples(index=False, name=None):
                yield dict(zip(columns, values))
    else:
        for row in data:
            if not isinstance(row, dict):
                raise TypeError(f"write_table needs a DataFrame or dicts, got a {type(row).__name__} row")
            yield row


def _write_jsonl(rows: Iterable[dict], fh) -> int:
    n = 0
    for row in rows:
        fh.write(json.dumps(json_safe(row), ensure_ascii=False, allow_nan=False))
        fh.write("\n")
        n += 1
    return n


def _csv_cell(value: Any) -> Any:
    value = json_safe(value)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _write_csv(rows: Iterable[dict], fh, columns: list[str] | None) -> int:
    rows = iter(rows)
    head: list[dict] = []
    if columns is None:  # columns from the first rows (all rows of the contract share keys)
        for row in rows:
            head.append(row)
            if len(head) >= _BATCH:
                break
        columns = list(dict.fromkeys(k for r in head for k in r))
    writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    n = 0
    for row in (*head, *rows) if head else rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
        n += 1
    return n


def write_rows(
    rows: Iterable[dict], path: Path, fmt: TableFormat | None = None, columns: list[str] | None = None
) -> int:
    """Write dict rows to `path` (no atomicity: callers wrap it in `atomic_output`). Streams:
    memory stays bounded for any number of rows. Returns the number of rows written."""
    fmt = fmt or table_format(path)
    if fmt.kind == "parquet":
        return write_parquet(rows, path, columns)
    if fmt.kind == "hf":
        return write_hf(rows, path, columns)
    opener = gzip.open if fmt.gz else open
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        if fmt.kind == "jsonl":
            return _write_jsonl(rows, fh)
        if fmt.kind == "csv":
            return _write_csv(rows, fh, columns)
    raise SeamError(f"{path}: cannot write {fmt.suffix} files; use .jsonl, .csv or .parquet")


def write_table(data: pd.DataFrame | Iterable[dict], path: str | os.PathLike, inputs: Iterable[Any] = (),
                flag: str = "--out") -> Path:
    """Write a DataFrame or dict rows to .jsonl, .csv, .parquet or an HF ``save_to_disk`` folder
    (.hf), by extension, atomically.

    Dict columns (meta) become JSON objects in JSONL, JSON strings in CSV, and structs in Parquet
    and HF folders; `read_table` and the loaders turn them back into dicts. Values go through
    `seam.io.json_safe` (NaN, inf and NA become empty). `path` may not be one of `inputs`.
    """
    path = check_output_path(path, inputs, flag)
    fmt = table_format(path)
    columns = [str(c) for c in data.columns] if isinstance(data, pd.DataFrame) else None
    with atomic_output(path) as tmp:
        write_rows(_iter_rows(data), tmp, fmt, columns)
    return path


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"
