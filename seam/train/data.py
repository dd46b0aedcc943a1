"""Instructions rows -> tokenized datasets for the TRL trainers, with SEAM's token accounting.

The texts are rendered and tokenized exactly as `seam score` does (DESIGN.md section 2), so the
model is trained on the tokens it is later scored on:

* SFT: ``template(prompt, chosen)`` with default special tokens + EOS; the loss covers the response
  tokens and the EOS (the PM's scored tokens), or every token with ``completion_only_loss=False``.
* RM: ``template(prompt, chosen)`` and ``template(prompt, rejected)``, default special tokens, no
  extra EOS (``append_eos=True`` adds one, as TRL does by default).
* PPO: the query is the rendered text up to where the response would start.

Responses that do not fit are cut from the right and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data import load_instructions
from ..errors import SeamError
from ..models.scoring import cut_to_tokens, Encoder

_SENTINEL = "\u2063SEAM-RESPONSE\u2063"  # never produced by real data


@dataclass
class Built:
    dataset: object  # datasets.Dataset
    rows: int
    truncated: int


def load_rows(path: str, max_rows: int | None = None, flag: str = "--data") -> pd.DataFrame:
    if not path:
        raise SeamError(f"{flag} is required; pass an instructions file")
    df = load_instructions(path)
    if max_rows:
        df = df.iloc[:max_rows].reset_index(drop=True)
    if df.empty:
        raise SeamError(f"{flag} {path}: no rows to train on; the file is empty")
    return df


def check_pairs(df: pd.DataFrame, flag: str = "--data") -> pd.DataFrame:
    """`df` unchanged when every row has a rejected response (reward model data); else a SeamError.
    Cheap: run it before any model loads."""
    missing = df["rejected"].isna()
    if missing.all():
        raise SeamError(f"{flag}: no row has a rejected response; the reward model trains on (chosen, rejected) pairs")
    if missing.any():
        first = df.loc[missing, "id"].iloc[0]
        raise SeamError(f"{flag}: {int(missing.sum())} of {len(df)} rows have no rejected response (first: id {first!r}); "
                        "drop them or fill the rejected column")
    return df


def _context(model, tokenizer, max_length: int) -> int:
    limit = getattr(model.config, "max_position_embeddings", None) or max_length
    return int(min(limit, max_length))


def sft_dataset(df: pd.DataFrame, tokenizer, template, model, max_length: int, max_prompt_tokens=None,
                completion_only_loss: bool = True) -> Built:
    from datasets import Dataset

    enc = Encoder(tokenizer, template, _context(model, tokenizer, max_length), max_prompt_tokens, None, append_eos=True)
    encoded = enc.encode(df["prompt"].tolist(), df["chosen"].tolist())
    input_ids, labels = [], []
    for e in encoded:
        ids = np.asarray(e.ids, dtype=np.int64)
        if completion_only_loss:
            lab = np.full(len(ids), -100, dtype=np.int64)
            lab[e.scored] = ids[e.scored]
        else:
            lab = ids.copy()
        input_ids.append(ids.tolist())
        labels.append(lab.tolist())
    return Built(Dataset.from_dict({"input_ids": input_ids, "labels": labels}), len(encoded),
                 int(sum(e.truncated for e in encoded)))


def rm_dataset(df: pd.DataFrame, tokenizer, template, model, max_length: int, max_prompt_tokens=None,
               append_eos: bool = False, flag: str = "--data") -> Built:
    from datasets import Dataset

    check_pairs(df, flag)
    extra = 1 if append_eos else 0
    enc = Encoder(tokenizer, template, _context(model, tokenizer, max_length) - extra, max_prompt_tokens, None,
                   append_eos=False)
    prompts = df["prompt"].tolist()
    chosen = enc.encode(prompts, df["chosen"].tolist())
    rejected = enc.encode(prompts, df["rejected"].tolist())
    eos = [tokenizer.eos_token_id] if append_eos else []
    data = {"chosen_ids": [e.ids + eos for e in chosen], "rejected_ids": [e.ids + eos for e in rejected]}
    truncated = int(sum(a.truncated or b.truncated for a, b in zip(chosen, rejected)))
    return Built(Dataset.from_dict(data), len(df), truncated)


def queries(prompts: list[str], tokenizer, template, max_prompt_tokens=None) -> tuple[list[str], int]:
    """Rendered query texts (everything before the response) and how many prompts were cut."""
    cut_prompts, cut = cut_to_tokens(tokenizer, prompts, max_prompt_tokens)
    out = []
    for p in cut_prompts:
        r = template.render(p, _SENTINEL)
        out.append(r.text[: r.response_start])
    return out, int(cut.sum())


def ppo_dataset(df: pd.DataFrame, tokenizer, template, max_prompt_tokens=None) -> Built:
    from datasets import Dataset

    texts, cut = queries(df["prompt"].tolist(), tokenizer, template, max_prompt_tokens)
    ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
    return Built(Dataset.from_dict({"input_ids": ids}), len(texts), cut)
