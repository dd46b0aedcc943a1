"""Negative-sample builders: the paper's three sources of worse answers behind one interface.

    >>> from seam.negatives import BUILDERS, build_negatives, LLMConfig
    >>> sorted(BUILDERS)
    ['adv', 'contrast', 'llm']

``build_negatives(name, instructions, config, progress=None)`` returns (negatives frame, stats):
the frame has the columns of DESIGN.md section 3 (``id, variant, text, meta``), the stats a dict
(negatives per instruction, how many got fewer than k, and each builder's own numbers).
Builders: `ContrastBuilder` (contrast), `LLMBuilder` (llm), `AdvBuilder` (adv). Heavy
dependencies (torch, sentence-transformers, openai, textattack) load only inside ``build``.
See docs/negatives.md.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..errors import SeamError
from .adv import AdvBuilder, AdvConfig
from .base import NEGATIVE_COLUMNS, NegativeBuilder, ProgressFn, summary_lines
from .contrast import ContrastBuilder, ContrastConfig
from .llm import BACKENDS, LLMBuilder, LLMConfig

BUILDERS: dict[str, type] = {"contrast": ContrastBuilder, "llm": LLMBuilder, "adv": AdvBuilder}


def make_builder(name: str, config: Any = None, **kwargs) -> NegativeBuilder:
    """The registered builder `name` with its config (default config when None)."""
    if name not in BUILDERS:
        raise SeamError(f"unknown negative builder {name!r}; choose one of {', '.join(BUILDERS)}")
    cls = BUILDERS[name]
    if config is not None and not isinstance(config, cls.Config):
        raise SeamError(f"builder {name!r} takes a {cls.Config.__name__}, got {type(config).__name__}")
    return cls(config, **kwargs)


def build_negatives(name: str, instructions: pd.DataFrame, config: Any = None, progress: ProgressFn | None = None,
                    **kwargs) -> tuple[pd.DataFrame, dict]:
    """Run builder `name` on an instructions frame; returns (negatives frame, stats dict)."""
    return make_builder(name, config, **kwargs).build(instructions, progress)


__all__ = [
    "BACKENDS", "BUILDERS", "NEGATIVE_COLUMNS", "AdvBuilder", "AdvConfig", "ContrastBuilder", "ContrastConfig",
    "LLMBuilder", "LLMConfig", "NegativeBuilder", "ProgressFn", "build_negatives", "make_builder", "summary_lines",
]
