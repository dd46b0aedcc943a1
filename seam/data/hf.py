"""HF `datasets` folders (``Dataset.save_to_disk``) for `seam.data.tables`: reading and writing.

Reading: a folder holding ``state.json`` (one dataset) or ``dataset_dict.json`` (pick a split).
Writing: an output path ending in ``.hf`` is written as a ``save_to_disk`` folder, for any table
the project writes (instructions, negatives, scores, details, selections). Rows stream into a
Parquet file first (`seam.data.parquet`: ``meta`` as a struct), which `datasets` turns into Arrow
files on disk; the staging files sit next to the target and are removed afterwards.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from ..errors import SeamError
from .parquet import BATCH, arrow_frame, arrow_records, write_parquet


def load_hf(path: Path, split: str | None = None):
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


def iter_hf(path: Path, split: str | None = None) -> Iterator[tuple[str, int, dict]]:
    """Stream a saved dataset's rows as ("row", number, record); ``meta`` structs lose null keys."""
    ds = load_hf(path, split).with_format("arrow")
    n = 0
    for batch in ds.iter(batch_size=BATCH):
        for record in arrow_records(batch):
            n += 1
            yield "row", n, record


def read_hf(path: Path) -> pd.DataFrame:
    ds = load_hf(path)
    if len(ds) == 0:
        raise SeamError(f"{path}: the saved dataset has no rows")
    return arrow_frame(ds.with_format("arrow")[:])


def write_hf(rows: Iterable[dict], path: Path, columns: list[str] | None = None) -> int:
    """Write dict rows as an HF ``save_to_disk`` folder at `path` (which must not exist yet).
    Returns the number of rows."""
    import datasets

    path = Path(path)
    staging = path.with_name(path.name + ".staging")
    staging.mkdir()
    try:
        parquet = staging / "rows.parquet"
        n = write_parquet(rows, parquet, columns)
        with _quiet():  # no progress bars
            ds = datasets.Dataset.from_parquet(str(parquet), cache_dir=str(staging / "cache"), keep_in_memory=False)
            ds.save_to_disk(str(path))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return n


class _quiet:
    """Silence `datasets`' progress bars for the duration of a block."""

    def __enter__(self):
        import datasets

        self.was = datasets.utils.logging.is_progress_bar_enabled()
        datasets.utils.logging.disable_progress_bar()

    def __exit__(self, *exc):
        import datasets

        if self.was:
            datasets.utils.logging.enable_progress_bar()
