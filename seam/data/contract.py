"""Load and validate the instructions and negatives contracts (DESIGN.md section 3).

Each loader maps the file's columns onto the contract, checks every row, and returns a DataFrame
with exactly the contract's columns, in the file's row order. The first bad row stops the load
with a `SeamError` naming the file, the row (the line number for JSONL), the rule and the fix.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd

from ..errors import SeamError
from .chat import MESSAGES_KEY, ChatPrompt, as_messages, last_assistant, render_messages
from .columns import INSTRUCTION_FLAGS, NEGATIVE_FLAGS, InstructionColumns, NegativeColumns
from .tables import Table, _type_name, read_table_located

# The column lists of DESIGN.md section 3, in one place: the formula, the store and the importers use these.
INSTRUCTION_FIELDS = ("id", "prompt", "chosen", "rejected", "meta")
NEGATIVE_FIELDS = ("id", "variant", "text", "meta")
REQUIRED_FIELDS = frozenset({"id", "prompt", "chosen", "variant", "text"})  # the rest are optional
SCORE_COLUMNS = ("id", "variant", "seam", "n_negatives", "n_misjudged", "rm_gold")
DETAIL_COLUMNS = ("id", "variant", "neg_index", "rm_gold", "rm_neg", "epsilon", "pm_logprob_sum", "pm_tokens",
                  "pm_logprob_mean", "term")


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _preview(value: Any, width: int = 40) -> str:
    text = repr(value.tolist() if hasattr(value, "tolist") else value)
    return text if len(text) <= width else text[: width - 3] + "..."


class _Rows:
    """Per-row checks that share the table's location info for error messages."""

    def __init__(self, table: Table):
        self.table = table

    def fail(self, i: int, message: str) -> SeamError:
        return SeamError(f"{self.table.path} {self.table.where(i)}: {message}")

    def id(self, i: int, value: Any, field: str = "id") -> str:
        if isinstance(value, bool):
            raise self.fail(
                i, f"{field} must be a string or integer, got {_type_name(value)}; give every row a unique id"
            )
        if isinstance(value, numbers.Integral):
            return str(int(value))
        if isinstance(value, float) and not math.isnan(value) and value.is_integer():
            return str(int(value))  # integer ids that pandas stored as floats
        if _missing(value) or (isinstance(value, str) and not value.strip()):
            raise self.fail(i, f"{field} is missing or blank; give every row a unique id (e.g. its row number)")
        if not isinstance(value, str):
            raise self.fail(
                i, f"{field} must be a string or integer, got {_type_name(value)} ({_preview(value)}); "
                "give every row a unique text id"
            )
        return value.strip()

    def text(self, i: int, value: Any, field: str, optional: bool = False) -> str | None:
        if _missing(value) or (isinstance(value, str) and not value.strip()):
            if optional:
                return None
            what = "missing" if _missing(value) else ("empty" if value == "" else "whitespace only")
            raise self.fail(i, f"{field} is {what}; every row needs a non-empty {field}: fill it in or drop the row")
        if not isinstance(value, str):
            hint = (" (chat messages must be {role, content} objects; other list layouts convert with `seam import trl`)"
                    if _type_name(value) == "a list" else "")
            raise self.fail(
                i, f"{field} must be a string, got {_type_name(value)} ({_preview(value)}); convert it to text{hint}"
            )
        return value

    def prompt(self, i: int, value: Any) -> tuple[str, list[dict] | None]:
        """A prompt: text, or a list of chat messages (their readable rendering + the messages)."""
        messages = as_messages(value)
        if messages is None:
            return self.text(i, value, "prompt"), None
        text = render_messages(messages)
        if not text.strip():
            raise self.fail(i, "prompt holds chat messages without any text; fill them in or drop the row")
        return text, messages

    def response(self, i: int, value: Any, field: str, optional: bool = False) -> str | None:
        """A response: text, or TRL's conversational completion (messages ending in an assistant turn,
        whose content is the response)."""
        messages = as_messages(value)
        if messages is None:
            return self.text(i, value, field, optional)
        reply = last_assistant(messages)
        if reply is None:
            raise self.fail(
                i, f"{field} holds chat messages whose last turn is {messages[-1]['role']!r}, not 'assistant'; "
                f"the {field} response must be the last assistant turn"
            )
        if len(messages) > 1:
            raise self.fail(
                i, f"{field} holds {len(messages)} messages; give the conversation in prompt and only the reply here "
                "(implicit-prompt TRL rows convert with `seam import trl`)"
            )
        return self.text(i, reply, field, optional)

    def messages(self, i: int, meta: dict) -> list[dict] | None:
        if MESSAGES_KEY not in meta or meta[MESSAGES_KEY] is None:
            return None
        messages = as_messages(meta[MESSAGES_KEY])
        if messages is None:
            raise self.fail(
                i, f"meta.{MESSAGES_KEY} must be a list of {{\"role\": ..., \"content\": ...}} chat messages, got "
                f"{_type_name(meta[MESSAGES_KEY])} ({_preview(meta[MESSAGES_KEY])}); fix it or remove the key"
            )
        return messages

    def meta(self, i: int, value: Any, field: str = "meta") -> dict:
        if _missing(value) or (isinstance(value, str) and not value.strip()):
            return {}
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = value
            value = parsed
        if not isinstance(value, dict):
            raise self.fail(
                i, f"{field} must be a JSON object like {{\"source\": \"x\"}}, got {_type_name(value)} "
                f"({_preview(value)}); fix the value or leave it empty"
            )
        return value


def _require(table: Table, mapping: dict[str, str], required: tuple[str, ...], flags: dict[str, tuple[str, str]]):
    found = [str(c) for c in table.df.columns]
    for field in required:
        name = mapping[field]
        if name not in found:
            flag = flags[field][0]
            raise SeamError(
                f"{table.path}: missing column {name!r} (columns found: {', '.join(found) or 'none'}); "
                f"rename that column to {name!r} or pass {flag} NAME to say which column holds the {field}"
            )


def _column(table: Table, name: str) -> list:
    if name in table.df.columns:
        return table.df[name].tolist()
    return [None] * len(table.df)


def load_instructions(path: str | os.PathLike, columns: InstructionColumns | None = None) -> pd.DataFrame:
    """Load an instructions file (JSONL/CSV/Parquet/HF folder) as columns exactly
    ``id, prompt, chosen, rejected, meta`` (id/prompt/chosen str, rejected str or None, meta dict).

    Chat rows (seam.data.chat): `prompt` may be a list of {role, content} messages and
    `chosen`/`rejected` TRL's one-message assistant completions; the messages go to meta["messages"]
    and `prompt` becomes their readable rendering, a `ChatPrompt` carrying the messages (as it does
    for rows that already hold meta["messages"]). Plain-string rows load as before.

    Integer ids become strings. Errors name the file, the row (JSONL: line number) and the fix:
    missing column, empty or non-text prompt/chosen, non-text rejected, missing or duplicate id,
    meta that is not a JSON object (CSV may hold meta as a JSON string).
    """
    cols = columns or InstructionColumns()
    mapping = {f: getattr(cols, f) for f in INSTRUCTION_FIELDS}
    table = read_table_located(path, text_columns=[mapping[f] for f in ("id", "prompt", "chosen", "rejected")])
    _require(table, mapping, ("id", "prompt", "chosen"), INSTRUCTION_FLAGS)
    check = _Rows(table)
    out: dict[str, list] = {f: [] for f in INSTRUCTION_FIELDS}
    first_row: dict[str, int] = {}
    raw = zip(*(_column(table, mapping[f]) for f in INSTRUCTION_FIELDS))
    for i, (rid, prompt, chosen, rejected, meta) in enumerate(raw):
        rid = check.id(i, rid)
        if rid in first_row:
            j = first_row[rid]
            first, second = table.where(j), table.where(i).split()[-1]
            raise SeamError(
                f"{table.path} {table.unit}s {first.split()[-1]} and {second}: duplicate id {rid!r}; "
                "ids must be unique: rename or drop one of the rows"
            )
        first_row[rid] = i
        out["id"].append(rid)
        text, messages = check.prompt(i, prompt)
        meta = check.meta(i, meta)
        if messages is not None:
            meta = {**meta, MESSAGES_KEY: messages}
        else:
            messages = check.messages(i, meta)
            if messages is not None:
                meta = {**meta, MESSAGES_KEY: messages}
        out["prompt"].append(ChatPrompt(text, messages) if messages else text)
        out["chosen"].append(check.response(i, chosen, "chosen"))
        out["rejected"].append(check.response(i, rejected, "rejected", optional=True))
        out["meta"].append(meta)
    return pd.DataFrame({f: pd.Series(v, dtype=object) for f, v in out.items()})


def load_negatives(
    path: str | os.PathLike,
    known_ids: Iterable[str] | None = None,
    columns: NegativeColumns | None = None,
) -> pd.DataFrame:
    """Load a negatives file as columns exactly ``id, variant, text, meta`` (str, str, str, dict).

    With `known_ids` (the ids of the instructions file), every negative must point at one of them.
    Errors name the file, the row and the fix: missing column, empty/non-text text, empty variant,
    unknown id, meta that is not an object.
    """
    cols = columns or NegativeColumns()
    mapping = {f: getattr(cols, f) for f in NEGATIVE_FIELDS}
    table = read_table_located(path, text_columns=[mapping[f] for f in ("id", "variant", "text")])
    _require(table, mapping, ("id", "variant", "text"), NEGATIVE_FLAGS)
    known = None if known_ids is None else {str(k) for k in known_ids}
    check = _Rows(table)
    out: dict[str, list] = {f: [] for f in NEGATIVE_FIELDS}
    raw = zip(*(_column(table, mapping[f]) for f in NEGATIVE_FIELDS))
    for i, (rid, variant, text, meta) in enumerate(raw):
        rid = check.id(i, rid)
        if known is not None and rid not in known:
            raise check.fail(
                i, f"id {rid!r} is not an id of the instructions; negatives must point at ids of the --data file "
                "(were both files made from the same data?)"
            )
        out["id"].append(rid)
        out["variant"].append(check.text(i, variant, "variant").strip())
        out["text"].append(check.text(i, text, "text"))
        out["meta"].append(check.meta(i, meta))
    return pd.DataFrame({f: pd.Series(v, dtype=object) for f, v in out.items()})


def iter_instruction_chunks(df: pd.DataFrame, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Yield consecutive row slices of at most `chunk_size` rows (original order)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise SeamError(f"chunk size must be a positive integer, got {chunk_size!r}")
    for start in range(0, len(df), int(chunk_size)):
        yield df.iloc[start:start + int(chunk_size)]
