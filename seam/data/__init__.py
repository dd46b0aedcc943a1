"""Data layer: read/write tables, load and validate the instructions and negatives contracts,
import public preference datasets, and export to TRL / OpenRLHF / SEAM JSON. Chat data keeps its
messages (`seam.data.chat`).

See docs/data.md for the file contracts, the importers and the exporters.
"""

from .chat import ChatPrompt, has_messages, with_messages
from .columns import (
    InstructionColumns,
    NegativeColumns,
    add_column_flags,
    columns_from_args,
    negative_columns_from_args,
)
from .contract import iter_instruction_chunks, load_instructions, load_negatives
from .export import export_openrlhf, export_seam_json, export_trl_preference, export_trl_prompts
from .importers import IMPORTERS, ImportConfig, ImportStats, iter_import, run_import
from ..io import atomic_output  # the one atomic writer (seam.io), kept importable from seam.data
from .tables import check_output_path, read_table, write_rows, write_table

__all__ = [
    "ChatPrompt",
    "IMPORTERS",
    "ImportConfig",
    "ImportStats",
    "InstructionColumns",
    "NegativeColumns",
    "add_column_flags",
    "atomic_output",
    "check_output_path",
    "columns_from_args",
    "export_openrlhf",
    "export_seam_json",
    "export_trl_preference",
    "export_trl_prompts",
    "has_messages",
    "iter_import",
    "iter_instruction_chunks",
    "load_instructions",
    "load_negatives",
    "negative_columns_from_args",
    "read_table",
    "run_import",
    "write_rows",
    "with_messages",
    "write_table",
]
