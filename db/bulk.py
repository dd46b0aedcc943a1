"""Fast bulk inserts and DataFrame checks shared by the store's import calls.

Per-negative rows go in by the million, so they skip the ORM: rows are plain tuples, and on
SQLite they go straight to the driver's ``executemany`` (about 3x faster than Core dicts);
other databases get a Core ``insert`` with dicts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from itertools import islice

import numpy as np
import pandas as pd
from sqlalchemy import JSON, Connection, Table

from seam.errors import SeamError

BATCH_ROWS = 20_000


def bulk_insert(conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    """Insert `rows` (tuples in `columns` order) into `table` on `conn`'s open transaction."""
    json_cols = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    sqlite = conn.dialect.name == "sqlite"
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    rows, n = iter(rows), 0
    while batch := list(islice(rows, BATCH_ROWS)):
        n += len(batch)
        if sqlite:
            if json_cols:
                batch = [_dump_json(row, json_cols) for row in batch]
            conn.exec_driver_sql(sql, batch)
        else:
            conn.execute(table.insert(), [dict(zip(columns, row)) for row in batch])
    return n


def _dump_json(row: tuple, json_cols: list[int]) -> tuple:
    out = list(row)
    for i in json_cols:
        if out[i] is not None:
            out[i] = json.dumps(out[i], ensure_ascii=False, default=str)
    return tuple(out)


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SeamError(
            f"{what} is missing column(s) {', '.join(missing)} (has: {', '.join(map(str, df.columns))}); "
            "see DESIGN.md section 3 for the layout"
        )


def text_column(df: pd.DataFrame, column: str, what: str, *, required: bool = True) -> list:
    """A column as a list of str (None where missing); a missing required value is an error."""
    if column not in df.columns:
        return [None] * len(df)
    series = df[column]
    missing = series.isna().to_numpy()
    if missing.any():
        if required:
            raise SeamError(f"{what} row {int(missing.argmax())}: {column} is empty; every row needs a {column}")
        values = [None if m else v for v, m in zip(series.tolist(), missing)]
    else:
        values = series.tolist()
    if not all(type(v) is str for v in values if v is not None):
        values = [v if v is None or isinstance(v, str) else str(v) for v in values]
    return values


def meta_column(df: pd.DataFrame, what: str) -> list:
    """`meta` as a list of dicts/None (JSON strings are parsed)."""
    if "meta" not in df.columns:
        return [None] * len(df)
    out: list = []
    for i, v in enumerate(df["meta"].tolist()):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, str):
            try:
                out.append(json.loads(v))
            except json.JSONDecodeError:
                raise SeamError(f"{what} row {i}: meta is not JSON ({v[:60]!r}); pass an object") from None
        elif isinstance(v, dict):
            out.append(v)
        else:
            raise SeamError(f"{what} row {i}: meta must be an object, got {type(v).__name__}")
    return out


def number_column(df: pd.DataFrame, column: str, what: str, *, integer: bool = False) -> list:
    """A numeric column as Python numbers (None where missing), checked to be numeric."""
    try:
        series = pd.to_numeric(df[column], errors="raise")
    except (ValueError, TypeError):
        bad = pd.to_numeric(df[column], errors="coerce").isna() & df[column].notna()
        i = int(bad.to_numpy().nonzero()[0][0])
        raise SeamError(f"{what} row {i}: {column} must be a number, got {df[column].iloc[i]!r}") from None
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    missing = np.isnan(values)
    if integer:
        if missing.any():
            return [None if m else int(v) for v, m in zip(values.tolist(), missing)]
        return values.astype(np.int64).tolist()
    if missing.any():
        return [None if m else v for v, m in zip(values.tolist(), missing)]
    return values.tolist()
