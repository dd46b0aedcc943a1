"""Parquet for `seam.data.tables`: dict columns (``meta``) as structs, nested values as Python.

Writing streams rows in batches. A column of dicts becomes a Parquet struct (the union of the keys
seen, as `datasets` and pandas readers expect) and is listed in the schema metadata under
``seam.struct_columns``; a later batch with new keys or wider types rewrites what was written with
the widened schema (read back from the partial file, so memory stays bounded). A dict column whose
values cannot share one struct type (a key that is a number in one row and text in another), or that
has no keys at all, or that holds a null value anywhere (a struct cannot tell a null key from an
absent one), is written as JSON text and listed under ``seam.json_columns``, the layout of files
written before structs: reading parses those back into dicts, exactly.

Reading returns nested values (structs, lists) as plain Python dicts and lists with their exact
types (pandas' own conversion would turn integers with gaps into floats and lists into arrays). A
struct gives every row every key, so in ``meta`` (and in the struct columns this module wrote) keys
whose value is null are dropped on reading; for files written here that is exact, since dicts with
null values are written as JSON text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import SeamError
from ..io import json_safe

JSON_COLUMNS_KEY = b"seam.json_columns"
STRUCT_COLUMNS_KEY = b"seam.struct_columns"
DICT_COLUMNS = ("meta",)  # columns whose values are JSON objects (dicts) in every format
BATCH = 2000


# ----------------------------------------------------------------------------------------- reading


def drop_nulls(value: Any) -> Any:
    """A struct read back: dicts without their None-valued keys, recursively (lists too)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def parse_json_cell(value: Any) -> Any:
    """A JSON-object string back to a dict (anything else unchanged: validation reports it)."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        return parsed if isinstance(parsed, dict) else value
    return value


def parquet_file(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SeamError(
            f"{path}: not a readable Parquet file ({' '.join(str(exc).split())}); re-export it, "
            "or check it was copied completely"
        ) from None


def _listed(schema, key: bytes) -> set[str]:
    meta = schema.metadata or {}
    try:
        return set(json.loads(meta.get(key, b"[]")))
    except (ValueError, TypeError):
        return set()


def _cleaners(schema) -> tuple[set[str], set[str]]:
    """(JSON text columns to parse, struct columns whose null keys to drop) of an Arrow schema."""
    import pyarrow as pa

    structs = _listed(schema, STRUCT_COLUMNS_KEY)
    structs |= {f.name for f in schema if f.name in DICT_COLUMNS and pa.types.is_struct(f.type)}
    return _listed(schema, JSON_COLUMNS_KEY), structs


def _fix(name: str, value: Any, json_cols: set[str], struct_cols: set[str]) -> Any:
    if name in json_cols:
        return parse_json_cell(value)
    if name in struct_cols:
        return drop_nulls(value)
    return value


def arrow_records(table_or_batch) -> Iterator[dict]:
    """Rows of an Arrow table or record batch as dicts (JSON-text and struct columns fixed)."""
    json_cols, struct_cols = _cleaners(table_or_batch.schema)
    for record in table_or_batch.to_pylist():
        yield {k: _fix(k, v, json_cols, struct_cols) for k, v in record.items()}


def arrow_frame(table) -> pd.DataFrame:
    """An Arrow table as a DataFrame; nested columns hold plain Python values (see the module doc)."""
    import pyarrow as pa

    json_cols, struct_cols = _cleaners(table.schema)
    nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
    rest = table.drop_columns(nested) if nested else table
    df = rest.to_pandas() if rest.num_columns else pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    for name in nested:
        df[name] = pd.Series(table.column(name).to_pylist(), dtype=object, index=df.index)
    for name in json_cols | struct_cols:
        if name in df.columns:
            values = [_fix(name, v, json_cols, struct_cols) for v in df[name].tolist()]
            df[name] = pd.Series(values, dtype=object, index=df.index)
    return df[[f.name for f in table.schema]]


def iter_parquet(path: Path) -> Iterator[tuple[str, int, dict]]:
    """Stream a Parquet file's rows as ("row", number, record)."""
    import pyarrow as pa

    pfile = parquet_file(path)
    n = 0
    try:
        for batch in pfile.iter_batches(batch_size=BATCH):
            for record in arrow_records(pa.Table.from_batches([batch], schema=pfile.schema_arrow)):
                n += 1
                yield "row", n, record
    except (pa.ArrowException, OSError) as exc:
        raise SeamError(f"{path}: Parquet data is corrupt near row {n + 1} ({exc}); re-export the file") from None


def read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa

    pfile = parquet_file(path)
    try:
        table = pfile.read()
    except (pa.ArrowException, OSError) as exc:
        raise SeamError(f"{path}: Parquet data is corrupt ({exc}); re-export the file") from None
    return arrow_frame(table)


# ----------------------------------------------------------------------------------------- writing


def to_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _has_null(value: Any) -> bool:
    """Whether a dict (or list) holds a None-valued key anywhere: a struct cannot tell that key
    from an absent one, so such a column is written as JSON text to come back exactly."""
    if isinstance(value, dict):
        return any(v is None or _has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


def _infer(values: list):
    """The Arrow type pyarrow infers for `values`, or None when they share none."""
    import pyarrow as pa

    try:
        return pa.array(values).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return None


def _widen(old, new):
    """The type holding both `old` and `new` (a struct gains keys, null becomes a type), or None."""
    import pyarrow as pa

    try:
        schema = pa.unify_schemas([pa.schema([pa.field("x", old)]), pa.schema([pa.field("x", new)])],
                                  promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return schema.field("x").type


def _writable(type_) -> bool:
    """Parquet cannot store a struct without fields (anywhere inside the type)."""
    import pyarrow as pa

    if pa.types.is_struct(type_):
        return type_.num_fields > 0 and all(_writable(type_.field(i).type) for i in range(type_.num_fields))
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return _writable(type_.value_type)
    return True


class ParquetRows:
    """Streams dict rows into one Parquet file (see the module doc for the column rules)."""

    def __init__(self, path: Path, columns: list[str] | None = None):
        self.path = Path(path)
        self.keys = columns
        self.schema = None  # pyarrow schema once the first batch is in
        self.writer = None
        self.dicts: set[str] = set()  # dict-valued columns
        self.json: set[str] = set()  # ... of them written as JSON text
        self.text: set[str] = set()  # columns that mix text with other values: written as text

    def _columns(self, batch: list[dict]) -> dict[str, list]:
        extra = {k for r in batch for k in r} - set(self.keys)
        if extra:
            raise ValueError(f"rows have columns {sorted(extra)} that the first rows did not have")
        data = {}
        for k in self.keys:
            values = [r.get(k) for r in batch]
            if k in self.json or k in self.text:
                values = [to_text(v) for v in values]
            data[k] = values
        return data

    def _start(self, batch: list[dict]) -> None:
        import pyarrow as pa

        keys = self.keys or list(dict.fromkeys(k for r in batch for k in r))
        self.keys = keys
        self.dicts = {
            k for k in keys
            if any(isinstance(r.get(k), dict) for r in batch)
            or (k in DICT_COLUMNS and all(r.get(k) is None or isinstance(r.get(k), dict) for r in batch))
        }
        self.text = {
            k for k in keys if k not in self.dicts
            and any(isinstance(r.get(k), str) for r in batch)
            and any(r.get(k) is not None and not isinstance(r.get(k), str) for r in batch)
        }
        fields = []
        for k in keys:
            values = [r.get(k) for r in batch]
            if k in self.dicts:
                type_ = _infer([v if v else None for v in values])  # {} alone has no struct type
                if (type_ is None or not pa.types.is_struct(type_) or not _writable(type_)
                        or any(_has_null(v) for v in values)):
                    self.json.add(k)
                    type_ = pa.string()
            elif k in self.text:
                type_ = pa.string()
            else:
                type_ = _infer(values)
                if type_ is None:
                    raise SeamError(f"{self.path.name}: column {k!r} mixes values of different types; make them one type")
                if pa.types.is_null(type_):
                    type_ = pa.string()
                elif not _writable(type_):  # e.g. lists of empty objects: kept as JSON text
                    self.text.add(k)
                    type_ = pa.string()
            fields.append(pa.field(k, type_))
        self._open(pa.schema(fields))

    def _open(self, schema) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.text |= {f.name for f in schema if pa.types.is_string(f.type) and f.name not in self.dicts}
        structs = sorted(self.dicts - self.json)
        meta = {JSON_COLUMNS_KEY: json.dumps(sorted(self.json)).encode(),
                STRUCT_COLUMNS_KEY: json.dumps(structs).encode()}
        self.schema = schema.with_metadata(meta)
        self.writer = pq.ParquetWriter(self.path, self.schema)

    def _widened(self, data: dict[str, list]):
        """The schema the batch needs (None: the current one), switching dict columns that cannot
        share one struct type to JSON text."""
        import pyarrow as pa

        fields, changed = [], False
        for field in self.schema:
            type_ = field.type
            if pa.types.is_nested(type_):
                values = data[field.name]
                new = _infer(values)
                wide = None if new is None else _widen(type_, new)
                nulls = field.name in self.dicts and any(_has_null(v) for v in values)
                if wide is None or not _writable(wide) or nulls:
                    if field.name not in self.dicts:
                        raise SeamError(f"{self.path.name}: column {field.name!r} holds values that do not share one "
                                        "type (e.g. text in some rows, lists in others); make them one type")
                    self.json.add(field.name)
                    wide = pa.string()
                if not wide.equals(type_):
                    type_, changed = wide, True
            fields.append(pa.field(field.name, type_))
        return pa.schema(fields) if changed else None

    def _rewrite(self, schema) -> None:
        """Reopen the file with `schema`, copying the rows written so far (converted) into it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.writer.close()
        part = self.path.with_name(self.path.name + ".part")
        os.replace(self.path, part)
        try:
            self._open(schema)
            for old in pq.ParquetFile(part).iter_batches(batch_size=BATCH):
                rows = [{k: (to_text(drop_nulls(v)) if k in self.json and not isinstance(v, str) else v)
                         for k, v in r.items()} for r in old.to_pylist()]
                self.writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
        finally:
            part.unlink(missing_ok=True)

    def write(self, batch: list[dict]) -> None:
        import pyarrow as pa

        batch = [json_safe(r) for r in batch]
        if self.schema is None:
            self._start(batch)
            data = self._columns(batch)
        else:
            data = self._columns(batch)
            wider = self._widened(data)
            if wider is not None:
                self._rewrite(wider)
                data = self._columns(batch)
        self.writer.write_table(pa.table(data, schema=self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_parquet(rows: Iterable[dict], path: Path, columns: list[str] | None = None) -> int:
    """Stream dict rows into a Parquet file in batches; returns the number of rows."""
    out = ParquetRows(path, columns)
    n = 0
    batch: list[dict] = []
    try:
        for row in rows:
            batch.append(row)
            n += 1
            if len(batch) >= BATCH:
                out.write(batch)
                batch = []
        if batch or out.schema is None:
            out.write(batch)
    finally:
        out.close()
    return n
