"""Exporters: the instructions contract -> files other RLHF stacks read directly.

* TRL: `export_trl_preference` (prompt, chosen, rejected: RewardTrainer / DPOTrainer) and
  `export_trl_prompts` (prompt only: PPO / GRPO prompt sets). Chat data (rows with
  meta["messages"], see `seam.data.chat`) is written in TRL's conversational format: ``prompt`` the
  list of messages (system prompt included), ``chosen`` / ``rejected`` one assistant message each;
  ``conversational=False`` writes the readable strings instead.
* OpenRLHF: `export_openrlhf` (prompts: key ``prompt``, train with ``--input_key prompt``;
  preference: ``prompt``/``chosen``/``rejected``, train with ``--prompt_key prompt
  --chosen_key chosen --rejected_key rejected``).
* SEAM reference JSON: `export_seam_json` (a JSON array with ``question``, ``response_j`` (better),
  ``response_k`` (worse), the stack-exchange-paired names; `seam import seam-json` reads it back).

All writes are atomic; the format follows the extension (.jsonl, .csv, .parquet, .hf; .json for
`export_seam_json`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import SeamError
from ..io import check_parent, json_safe, write_json
from .chat import assistant_turn, conversation, has_messages
from .tables import write_table

OPENRLHF_KINDS = ("prompts", "preference")


def _need(df: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SeamError(
            f"{what} needs columns {', '.join(columns)}; missing {', '.join(missing)} "
            "(load the file with seam.data.load_instructions first)"
        )


def _need_rejected(df: pd.DataFrame, what: str) -> None:
    absent = df["rejected"].isna() | (df["rejected"].astype(str).str.strip() == "")
    if absent.any():
        first = df.loc[absent].iloc[0]
        where = f"id {first['id']!r}" if "id" in df.columns else f"row {int(absent.to_numpy().argmax()) + 1}"
        raise SeamError(
            f"{what}: {int(absent.sum())} of {len(df)} rows have no rejected response (first: {where}); "
            "preference data needs one per row: keep only rows with a rejected response, or export prompts instead"
        )


def _trl_frame(df: pd.DataFrame, columns: tuple[str, ...], conversational: bool | None) -> pd.DataFrame:
    """The TRL columns of `df`; conversational (auto: when any row holds chat messages) turns the
    prompt into its messages (a plain prompt: one user turn) and each response into one assistant turn."""
    if conversational is None:
        conversational = has_messages(df)
    if not conversational:
        return df[list(columns)]
    metas = df["meta"].tolist() if "meta" in df.columns else [None] * len(df)
    out = {"prompt": [conversation(p, m) for p, m in zip(df["prompt"].tolist(), metas)]}
    for col in columns[1:]:
        out[col] = [assistant_turn(v) for v in df[col].tolist()]
    return pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in out.items()})


def export_trl_preference(df: pd.DataFrame, path: str | os.PathLike, conversational: bool | None = None) -> Path:
    """Write ``prompt, chosen, rejected`` (TRL's preference layout; conversational for chat data)."""
    _need(df, ("prompt", "chosen", "rejected"), "TRL preference export")
    _need_rejected(df, "TRL preference export")
    return write_table(_trl_frame(df, ("prompt", "chosen", "rejected"), conversational), path)


def export_trl_prompts(df: pd.DataFrame, path: str | os.PathLike, conversational: bool | None = None) -> Path:
    """Write ``prompt`` only (TRL's prompt-only layout, for RL; conversational for chat data)."""
    _need(df, ("prompt",), "TRL prompt export")
    return write_table(_trl_frame(df, ("prompt",), conversational), path)


def export_openrlhf(df: pd.DataFrame, path: str | os.PathLike, kind: str = "prompts") -> Path:
    """Write OpenRLHF's keys: ``kind="prompts"`` -> ``prompt`` (``--input_key prompt``);
    ``kind="preference"`` -> ``prompt, chosen, rejected`` (``--prompt_key prompt --chosen_key chosen
    --rejected_key rejected``)."""
    if kind not in OPENRLHF_KINDS:
        raise SeamError(f"OpenRLHF export kind must be one of {', '.join(OPENRLHF_KINDS)}, got {kind!r}")
    if kind == "prompts":
        _need(df, ("prompt",), "OpenRLHF prompt export")
        return write_table(df[["prompt"]], path)
    _need(df, ("prompt", "chosen", "rejected"), "OpenRLHF preference export")
    _need_rejected(df, "OpenRLHF preference export")
    return write_table(df[["prompt", "chosen", "rejected"]], path)


def export_seam_json(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the SEAM reference layout: a JSON array of {id, question, response_j, response_k, meta}
    (response_k omitted where there is no rejected response)."""
    _need(df, ("id", "prompt", "chosen"), "SEAM JSON export")
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise SeamError(f"{path}: the SEAM JSON export writes a .json file; change the extension to .json")
    check_parent(path)
    records = []
    for row in df.to_dict("records"):
        record = {"id": row["id"], "question": row["prompt"], "response_j": row["chosen"]}
        rejected = json_safe(row.get("rejected"))
        if isinstance(rejected, str) and rejected.strip():
            record["response_k"] = rejected
        if isinstance(row.get("meta"), dict) and row["meta"]:
            record["meta"] = row["meta"]
        records.append(record)
    return write_json(path, records)
