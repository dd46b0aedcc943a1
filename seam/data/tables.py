"""Reading and writing tables: JSONL, CSV, Parquet (by extension) and HF ``save_to_disk`` folders.

Every failure a user can fix becomes a one-line `SeamError` naming the file, the line or row, and
the fix. Writes are atomic: a temp file in the same folder, renamed over the target at the end.

Dict-valued columns (``meta``) are JSON objects in JSONL, JSON strings in CSV, and a JSON string
column in Parquet (listed in the file's schema metadata under ``seam.json_columns``); reading
turns them back into dicts.
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

# extension -> format; ".gz" may follow the text formats
_EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
}
_GZ_OK = {"jsonl", "json", "csv"}
WRITE_FORMATS = ("jsonl", "csv", "parquet")
JSON_COLUMNS_KEY = b"seam.json_columns"
DICT_COLUMNS = ("meta",)  # CSV columns whose JSON-object strings are read back as dicts
_BATCH = 2000


@dataclass(frozen=True)
class TableFormat:
    kind: str  # jsonl | json | csv | parquet | hf
    gz: bool = False
    suffix: str = ""  # the extension as written, e.g. ".jsonl.gz"


def table_format(path: str | os.PathLike) -> TableFormat:
    """Format of `path` from its extension (a folder is an HF ``save_to_disk`` dataset)."""
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
            "(.jsonl/.json/.csv may be gzipped as .gz), or an HF save_to_disk folder"
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


def _parse_json_cell(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value  # left as text: validation reports it with its row
        return parsed if isinstance(parsed, dict) else value
    return value


def _parquet_file(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SeamError(
            f"{path}: not a readable Parquet file ({' '.join(str(exc).split())}); re-export it, "
            "or check it was copied completely"
        ) from None


def _parquet_json_columns(pfile) -> list[str]:
    meta = pfile.schema_arrow.metadata or {}
    try:
        return list(json.loads(meta.get(JSON_COLUMNS_KEY, b"[]")))
    except (ValueError, TypeError):
        return []


def _load_hf(path: Path, split: str | None = None):
    """Open an HF ``save_to_disk`` folder as one `datasets.Dataset`."""
    if (path / "dataset_dict.json").is_file():
        try:
            splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        except (ValueError, KeyError) as exc:
            raise SeamError(f"{path}/dataset_dict.json is unreadable ({exc}); re-save the dataset") from None
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in splits:
            chosen = "no split was chosen" if split is None else f"split {split!r} is not there"
            raise SeamError(
                f"{path}: this DatasetDict has splits {', '.join(splits)} and {chosen}; "
                f"pass --split NAME or point at the split folder, e.g. {path / splits[0]}"
            )
        path = path / split
    if not (path / "state.json").is_file():
        raise SeamError(
            f"{path}: a folder, but not an HF save_to_disk dataset (no state.json or dataset_dict.json); "
            "pass a .jsonl/.json/.csv/.parquet file or a folder written by Dataset.save_to_disk"
        )
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - any load failure is a bad folder to the user
        detail = " ".join(str(exc).split())[:200]
        raise SeamError(f"{path}: cannot load the saved dataset ({detail}); re-save it with save_to_disk") from None
    if isinstance(ds, datasets.DatasetDict):  # pragma: no cover - handled above
        raise SeamError(f"{path}: holds several splits; point at one split folder")
    return ds


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
        import pyarrow as pa

        pfile = _parquet_file(path)
        json_cols = set(_parquet_json_columns(pfile))
        n = 0
        try:
            for batch in pfile.iter_batches(batch_size=_BATCH):
                for record in batch.to_pylist():
                    n += 1
                    yield "row", n, {k: (_parse_json_cell(v) if k in json_cols else v) for k, v in record.items()}
        except (pa.ArrowException, OSError) as exc:
            raise SeamError(f"{path}: Parquet data is corrupt near row {n + 1} ({exc}); re-export the file") from None
    else:
        ds = _load_hf(path, split)
        for n, record in enumerate(ds, 1):
            yield "row", n, record


def _csv_value(column: str, value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if column in DICT_COLUMNS:
        return _parse_json_cell(value)
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
        import pyarrow as pa

        pfile = _parquet_file(path)
        try:
            df = pfile.read().to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise SeamError(f"{path}: Parquet data is corrupt ({exc}); re-export the file") from None
        for col in _parquet_json_columns(pfile):
            if col in df.columns:
                df[col] = pd.Series([_parse_json_cell(v) for v in df[col].tolist()], dtype=object, index=df.index)
        if df.empty:
            raise SeamError(f"{path}: Parquet file has no rows; regenerate it")
        return Table(df, path, "row")
    ds = _load_hf(path)
    if len(ds) == 0:
        raise SeamError(f"{path}: the saved dataset has no rows")
    return Table(ds.to_pandas(), path, "row")


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
    .parquet; .jsonl.gz and .csv.gz too), a parent folder that exists and is writable, and not one
    of the command's `inputs` (paths or (flag, path) pairs; see `seam.io.check_not_input`)."""
    path = Path(path)
    check_not_input(path, inputs, flag)
    if path.is_dir():
        raise SeamError(f"{path}: is a folder; give a file name such as {path / 'out.jsonl'}")
    fmt = table_format(path)
    if fmt.kind not in WRITE_FORMATS:
        raise SeamError(f"{path}: cannot write {fmt.suffix} files; use .jsonl, .csv or .parquet for outputs")
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


def _to_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _write_parquet(rows: Iterable[dict], path: Path, columns: list[str] | None = None) -> int:
    """Stream rows into a Parquet file in batches. The schema comes from the first batch: dict
    columns become JSON text (listed in the schema metadata), all-null columns and columns that
    mix text with other values become text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    state: dict[str, Any] = {"writer": None, "schema": None, "keys": columns, "json": set(), "text": set()}

    def flush(batch: list[dict]) -> None:
        if state["schema"] is None:
            keys = state["keys"] or list(dict.fromkeys(k for r in batch for k in r))
            state["keys"] = keys
            state["json"] = {
                k for k in keys
                if any(isinstance(r.get(k), dict) for r in batch)
                or (k in DICT_COLUMNS and all(r.get(k) is None or isinstance(r.get(k), dict) for r in batch))
            }
            state["text"] = {
                k for k in keys
                if any(isinstance(r.get(k), str) for r in batch)
                and any(r.get(k) is not None and not isinstance(r.get(k), str) for r in batch)
            }
        keys = state["keys"]
        extra = {k for r in batch for k in r} - set(keys)
        if extra:
            raise ValueError(f"rows have columns {sorted(extra)} that the first rows did not have")
        data = {}
        for k in keys:
            values = [r.get(k) for r in batch]
            if k in state["json"] or k in state["text"]:
                values = [_to_text(v) for v in values]
            data[k] = values
        if state["schema"] is None:
            table = pa.table(data) if keys else pa.table({})
            fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
            state["schema"] = pa.schema(fields, metadata={JSON_COLUMNS_KEY: json.dumps(sorted(state["json"])).encode()})
            state["text"] |= {f.name for f in fields if pa.types.is_string(f.type)}
            state["writer"] = pq.ParquetWriter(path, state["schema"])
            table = table.cast(state["schema"])
        else:
            table = pa.table(data, schema=state["schema"])
        state["writer"].write_table(table)

    n = 0
    batch: list[dict] = []
    try:
        for row in rows:
            batch.append(json_safe(row))
            n += 1
            if len(batch) >= _BATCH:
                flush(batch)
                batch = []
        if batch or state["writer"] is None:
            flush(batch)
    finally:
        if state["writer"] is not None:
            state["writer"].close()
    return n


def write_rows(
    rows: Iterable[dict], path: Path, fmt: TableFormat | None = None, columns: list[str] | None = None
) -> int:
    """Write dict rows to `path` (no atomicity: callers wrap it in `atomic_output`). Streams:
    memory stays bounded for any number of rows. Returns the number of rows written."""
    fmt = fmt or table_format(path)
    if fmt.kind == "parquet":
        return _write_parquet(rows, path, columns)
    opener = gzip.open if fmt.gz else open
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        if fmt.kind == "jsonl":
            return _write_jsonl(rows, fh)
        if fmt.kind == "csv":
            return _write_csv(rows, fh, columns)
    raise SeamError(f"{path}: cannot write {fmt.suffix} files; use .jsonl, .csv or .parquet")


def write_table(data: pd.DataFrame | Iterable[dict], path: str | os.PathLike, inputs: Iterable[Any] = (),
                flag: str = "--out") -> Path:
    """Write a DataFrame or dict rows to .jsonl, .csv or .parquet (by extension), atomically.

    Dict columns (meta) become JSON objects in JSONL, JSON strings in CSV, and a JSON string
    column in Parquet; `read_table` and the loaders turn them back into dicts. Values go through
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
