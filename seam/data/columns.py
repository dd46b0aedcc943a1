"""Column mappings from a user's file onto the data contracts, and the matching CLI flags.

A file may name its columns differently from the contract (``question`` instead of ``prompt``);
an `InstructionColumns` / `NegativeColumns` says which file column fills which contract field.
Commands expose them as ``--prompt-col NAME`` etc. through `add_column_flags`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields


@dataclass
class InstructionColumns:
    """File column names for the instructions contract (id, prompt, chosen, rejected, meta)."""

    id: str = "id"  # unique row id (string or integer)
    prompt: str = "prompt"  # the instruction text
    chosen: str = "chosen"  # the golden (preferred) response
    rejected: str = "rejected"  # optional worse response
    meta: str = "meta"  # optional JSON object with anything else


@dataclass
class NegativeColumns:
    """File column names for the negatives contract (id, variant, text, meta)."""

    id: str = "id"  # id of the instruction this negative belongs to
    variant: str = "variant"  # negative source: contrast | llm | adv | any name
    text: str = "text"  # the worse response
    meta: str = "meta"  # optional JSON object (source id, similarity, recipe, model...)


# contract field -> (flag, args attribute) per kind. Negatives use their own flags so that one
# command can take both an instructions file and a negatives file.
INSTRUCTION_FLAGS = {
    "id": ("--id-col", "id_col"),
    "prompt": ("--prompt-col", "prompt_col"),
    "chosen": ("--chosen-col", "chosen_col"),
    "rejected": ("--rejected-col", "rejected_col"),
    "meta": ("--meta-col", "meta_col"),
}
NEGATIVE_FLAGS = {
    "id": ("--neg-id-col", "neg_id_col"),
    "variant": ("--variant-col", "variant_col"),
    "text": ("--text-col", "text_col"),
    "meta": ("--neg-meta-col", "neg_meta_col"),
}
_KINDS = {
    "instructions": (InstructionColumns, INSTRUCTION_FLAGS, "instruction file columns"),
    "negatives": (NegativeColumns, NEGATIVE_FLAGS, "negatives file columns"),
}


def add_column_flags(parser: argparse.ArgumentParser, kind: str = "instructions") -> None:
    """Add ``--id-col --prompt-col --chosen-col --rejected-col --meta-col`` (kind="instructions")
    or ``--neg-id-col --variant-col --text-col --neg-meta-col`` (kind="negatives") to `parser`."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    cls, flags, title = _KINDS[kind]
    group = parser.add_argument_group(title, "use these when your file names its columns differently")
    defaults = cls()
    for field in fields(cls):
        flag, dest = flags[field.name]
        default = getattr(defaults, field.name)
        group.add_argument(
            flag, dest=dest, default=default, metavar="NAME",
            help=f"column holding the {field.name} (default: {default})",
        )


def columns_from_args(args: argparse.Namespace) -> InstructionColumns:
    """Build `InstructionColumns` from flags added by ``add_column_flags(parser)``."""
    return _from_args(args, InstructionColumns, INSTRUCTION_FLAGS)


def negative_columns_from_args(args: argparse.Namespace) -> NegativeColumns:
    """Build `NegativeColumns` from flags added by ``add_column_flags(parser, "negatives")``."""
    return _from_args(args, NegativeColumns, NEGATIVE_FLAGS)


def _from_args(args, cls, flags):
    defaults = cls()
    values = {}
    for field in fields(cls):
        value = getattr(args, flags[field.name][1], None)
        values[field.name] = value if value else getattr(defaults, field.name)
    return cls(**values)
