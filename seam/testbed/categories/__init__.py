"""The task categories: how each one generates, renders, reads and near-misses its answers.

A category is a small object with seven methods (see `base.Category`); `REGISTRY` maps names to them.
`stream` yields parameter dicts (JSON-native) in a seeded order; `build` turns parameters into
(question, answer, golden); `render` writes the golden sentence around any answer text (used by
the value corruptions); `read` is the correctness half of the gold judge; `near_miss` and
`wrong_value` produce the off_by_one and wrong_value answers.
"""

from __future__ import annotations

from .base import Category, Reading, pick, read_numeric
from .facts import Facts
from .numeric import Arithmetic, Comparison, UnitConversion
from .words import Counting, Sorting, Spelling

REGISTRY: dict[str, Category] = {c.name: c for c in (
    Arithmetic(), Comparison(), UnitConversion(), Counting(), Spelling(), Sorting(), Facts())}
CATEGORIES: tuple[str, ...] = tuple(REGISTRY)

__all__ = ["CATEGORIES", "REGISTRY", "Category", "Reading", "read_numeric", "pick"]
