"""What every negative builder shares: the interface, the output frame, and the common stats.

A builder turns an instructions frame (``id, prompt, chosen, rejected, meta``, as returned by
`seam.data.load_instructions`) into a negatives frame (``id, variant, text, meta``, DESIGN.md
section 3) plus a stats dict. Builders never pad: an instruction that got fewer than ``k``
negatives is counted in the stats (``fewer_than_k``), never filled up with copies.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Protocol

import numpy as np
import pandas as pd

from ..errors import SeamError

ProgressFn = Callable[[int, int, str], None]  # (done, total, step)
NEGATIVE_COLUMNS = ("id", "variant", "text", "meta")
REQUIRED_INPUT = ("id", "prompt", "chosen")


class NegativeBuilder(Protocol):
    """One negative source. ``build`` returns (negatives frame, stats dict)."""

    name: str

    def build(self, instructions: pd.DataFrame, progress: ProgressFn | None = None) -> tuple[pd.DataFrame, dict]:
        ...


def check_instructions(df: pd.DataFrame, what: str = "instructions") -> pd.DataFrame:
    """The frame must carry id, prompt and chosen (as `load_instructions` returns); rejected optional."""
    missing = [c for c in REQUIRED_INPUT if c not in df.columns]
    if missing:
        raise SeamError(f"{what} lack column(s) {', '.join(missing)} (found {', '.join(map(str, df.columns))}); "
                        "load them with seam.data.load_instructions")
    if "rejected" not in df.columns:
        df = df.assign(rejected=None)
    return df


def check_k(k: int, flag: str = "--k") -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise SeamError(f"{flag} {k!r}: must be a positive integer (the paper uses 30)")


def negatives_frame(ids: Iterable[str], variant: str, texts: Iterable[str], metas: Iterable[dict]) -> pd.DataFrame:
    """A negatives frame with exactly the contract's columns (object dtype)."""
    ids, texts, metas = list(ids), list(texts), list(metas)
    return pd.DataFrame({
        "id": pd.Series(ids, dtype=object),
        "variant": pd.Series([variant] * len(ids), dtype=object),
        "text": pd.Series(texts, dtype=object),
        "meta": pd.Series(metas, dtype=object),
    })


def count_stats(variant: str, instruction_ids: Iterable[str], negatives: pd.DataFrame, k: int, started: float) -> dict:
    """Stats every builder reports: negatives per instruction, how many got fewer than k or none."""
    ids = list(instruction_ids)
    counts = negatives.groupby("id").size() if len(negatives) else pd.Series(dtype=int)
    per = np.array([int(counts.get(i, 0)) for i in ids], dtype=np.int64)
    return {
        "variant": variant,
        "instructions": len(ids),
        "negatives": int(per.sum()),
        "k": int(k),
        "per_instruction": {
            "mean": float(per.mean()) if len(per) else 0.0,
            "min": int(per.min()) if len(per) else 0,
            "max": int(per.max()) if len(per) else 0,
        },
        "fewer_than_k": int((per < k).sum()),
        "without_negatives": int((per == 0).sum()),
        "seconds": round(time.time() - started, 3),
    }


def summary_lines(stats: dict) -> list[str]:
    """Human-readable lines for the common stats plus each builder's own (`stats['lines']`)."""
    p = stats["per_instruction"]
    lines = [
        f"{stats['variant']}: {stats['negatives']} negatives for {stats['instructions']} instructions "
        f"(per instruction mean {p['mean']:.2f}, min {p['min']}, max {p['max']}) in {stats['seconds']:.1f}s",
    ]
    if stats["fewer_than_k"]:
        lines.append(f"note: {stats['fewer_than_k']} instructions got fewer than k={stats['k']} negatives "
                     f"({stats['without_negatives']} got none); nothing was padded")
    lines.extend(stats.get("lines", []))
    return lines
