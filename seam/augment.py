"""Contrast-instruction augmentation around low-SEAM instructions (paper section 7).

For each *anchor* instruction I (lowest p% by SEAM, or a random p%, or all of them), take its k
(paper: 5) most similar other instructions J_1..J_k (the contrast neighbours: similarity band
retrieval, as in SEAM_Contrast) and add

* to the PM's SFT data:   (J_j, golden response of J_j)          k rows per anchor
* to the RM's pair data:  (I, chosen = golden of I, rejected = golden of J_j)   k pairs per anchor

so the PM sees nearby instructions answered correctly and the RM learns that the answer to a
similar-looking question is worse. Neighbours come from a contrast negatives file (``meta`` with
``source_id`` and ``similarity``, as `seam negatives contrast` writes it) or are retrieved here
with `seam.negatives`' contrast builder. An anchor with fewer than k neighbours gets what exists
(counted, never padded). Baselines: ``random`` (same number of random anchors) and ``full``
(every instruction is an anchor).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .data import load_instructions, write_table
from .errors import SeamError
from .io import describe_file, new_lineage, write_lineage
from .negatives.contrast import ContrastBuilder, ContrastConfig
from .select import SelectConfig, SelectInputs, check_fraction, drop_count, keep_scores
from .settings import Settings, setting

AUGMENT_METHODS = ("seam", "random", "full")
SFT_KIND, RM_KIND = "sft", "rm-pair"


@dataclass
class AugmentConfig(Settings):
    """Which anchors, how many neighbours each, and where neighbours come from."""

    method: str = setting("seam", "seam (lowest p% by SEAM) | random (random p%) | full (all)")
    p: float = setting(0.2, "fraction of instructions to augment (paper: 0.2)")
    k: int = setting(5, "neighbours per anchor: k SFT rows and k RM pairs (paper: 5)")
    variants: tuple[str, ...] = setting((), "seam: variants (several = rank average)")
    seed: int = setting(0, "random: anchor seed")
    missing: str = setting("keep", "seam: rows without a score: keep (SEAM 0) | error")
    contrast_variant: str = setting("contrast", "variant name of the neighbours in the contrast file")
    band: tuple[float, float] = setting((0.8, 0.9), "retrieval band when no contrast file is given")
    embedder: str | None = setting(None, "sentence-transformers folder for retrieval")
    device: str = setting("auto", "retrieval device")

    def validate(self) -> None:
        if self.method not in AUGMENT_METHODS:
            raise SeamError(f"--method {self.method!r}: unknown; use one of {', '.join(AUGMENT_METHODS)}")
        check_fraction(self.p)
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise SeamError(f"--k must be a positive integer (paper: 5), got {self.k!r}")
        self.variants = tuple(self.variants or ())


@dataclass
class Augmentation:
    anchors: list[str]  # augmented instruction ids, in selection order
    sft_rows: pd.DataFrame  # instructions contract: id, prompt, chosen, rejected (None), meta
    rm_pairs: pd.DataFrame  # instructions contract with rejected
    short: dict  # anchor id -> neighbours found, for anchors with fewer than k
    lineage: dict


def choose_anchors(df: pd.DataFrame, cfg: AugmentConfig, scores: pd.DataFrame | None = None) -> tuple[list[str], dict]:
    """Anchor ids: lowest p% by SEAM, a random p%, or every row (full)."""
    if cfg.method == "full":
        return df["id"].tolist(), {}
    sel_cfg = SelectConfig(method=cfg.method, p=cfg.p, variants=cfg.variants, seed=cfg.seed, missing=cfg.missing)
    values, info = keep_scores(df, sel_cfg, SelectInputs(scores=scores))
    n = drop_count(len(df), cfg.p)
    order = np.argsort(values, kind="stable")[:n]
    return df["id"].iloc[order].tolist(), info


def retrieve_contrast(anchors: pd.DataFrame, corpus: pd.DataFrame, cfg: AugmentConfig, embedder=None) -> pd.DataFrame:
    """Contrast neighbours of `anchors` in `corpus` with `seam.negatives`' contrast builder."""
    ccfg = ContrastConfig(k=cfg.k, band=tuple(cfg.band), embedder=cfg.embedder, device=cfg.device)
    frame, _stats = ContrastBuilder(ccfg, corpus=corpus, embedder=embedder).build(anchors)
    return frame


def _neighbours(contrast: pd.DataFrame, anchors: list[str], k: int, variant: str, gold: dict[str, str]
                ) -> dict[str, list[dict]]:
    """Up to k neighbours per anchor: most similar first, distinct texts, never the anchor's own answer."""
    c = contrast
    if "variant" in c.columns:
        variants = sorted(set(c["variant"].astype(str)))
        if variant not in variants:
            raise SeamError(f"--contrast: no rows of variant {variant!r} (variants there: {', '.join(variants)}); "
                            "pass a file from `seam negatives contrast` or set --contrast-variant")
        c = c[c["variant"].astype(str) == variant]
    wanted = set(anchors)
    out: dict[str, list[dict]] = {a: [] for a in anchors}
    rows = c[c["id"].astype(str).isin(wanted)]
    records = []
    for pos, (rid, text, meta) in enumerate(zip(rows["id"].astype(str), rows["text"], rows["meta"])):
        meta = meta if isinstance(meta, dict) else {}
        sim = meta.get("similarity")
        sim = float(sim) if isinstance(sim, (int, float)) and math.isfinite(float(sim)) else None
        records.append((rid, -sim if sim is not None else math.inf, pos, text, meta, sim))
    records.sort(key=lambda r: (r[0], r[1], r[2]))
    for rid, _, _, text, meta, sim in records:
        got = out[rid]
        if len(got) >= k or text == gold.get(rid) or any(g["text"] == text for g in got):
            continue
        got.append({"text": text, "source_id": None if meta.get("source_id") is None else str(meta["source_id"]),
                    "similarity": sim, "source_prompt": meta.get("source_prompt")})
    return out


def augment(df: pd.DataFrame, cfg: AugmentConfig, contrast: pd.DataFrame | None = None,
            scores: pd.DataFrame | None = None, corpus: pd.DataFrame | None = None, paths: dict | None = None,
            embedder=None) -> Augmentation:
    """Build the SFT rows and RM pairs for the anchors chosen by `cfg.method`.

    `contrast`: a negatives frame with the neighbours (None: retrieve them now from `corpus`);
    `corpus`: where neighbour prompts are looked up by ``meta.source_id`` (default: `df`)."""
    cfg.validate()
    anchors, info = choose_anchors(df, cfg, scores)
    corpus = df if corpus is None else corpus
    by_id = df.set_index("id")
    if contrast is None:
        contrast = retrieve_contrast(by_id.loc[anchors].reset_index(), corpus, cfg, embedder)
        info["retrieved"] = {"band": list(cfg.band), "embedder": cfg.embedder}
    gold = {a: by_id.at[a, "chosen"] for a in anchors}
    neigh = _neighbours(contrast, anchors, cfg.k, cfg.contrast_variant, gold)
    corpus_rows = {str(r["id"]): (r["prompt"], r["chosen"])
                   for r in corpus.drop_duplicates("id")[["id", "prompt", "chosen"]].to_dict("records")}
    sft, pairs, no_prompt = [], [], 0
    for rank, a in enumerate(anchors):
        for j, nb in enumerate(neigh[a]):
            base = {"anchor": a, "source_id": nb["source_id"], "similarity": nb["similarity"], "method": cfg.method,
                    "anchor_rank": rank}
            pairs.append({"id": f"{a}~pair{j}", "prompt": by_id.at[a, "prompt"], "chosen": gold[a],
                          "rejected": nb["text"], "meta": {"augment": {"kind": RM_KIND, **base}}})
            src = nb["source_id"]
            if src is not None and src in corpus_rows:
                prompt, answer = corpus_rows[src]
            elif nb["source_prompt"]:
                prompt, answer = nb["source_prompt"], nb["text"]
            else:
                no_prompt += 1
                continue
            sft.append({"id": f"{a}~sft{j}~{src}", "prompt": prompt, "chosen": answer, "rejected": None,
                        "meta": {"augment": {"kind": SFT_KIND, **base}}})
    short = {a: len(v) for a, v in neigh.items() if len(v) < cfg.k}
    columns = ["id", "prompt", "chosen", "rejected", "meta"]
    lineage = new_lineage(
        "augment", method=cfg.method, p=cfg.p, k=cfg.k, n_in=len(df), n_anchors=len(anchors),
        n_sft_rows=len(sft), n_rm_pairs=len(pairs), anchors_short=short, sft_without_prompt=no_prompt,
        config=cfg.to_dict(), info=info, anchors=anchors,
        inputs={k: describe_file(v) for k, v in (paths or {}).items() if v})
    return Augmentation(anchors, pd.DataFrame(sft, columns=columns), pd.DataFrame(pairs, columns=columns), short,
                        lineage)


def _with_base(new: pd.DataFrame, base_path: str | None) -> tuple[pd.DataFrame, int]:
    if not base_path:
        return new, 0
    base = load_instructions(base_path)
    clash = set(base["id"]) & set(new["id"])
    if clash:
        raise SeamError(f"{base_path}: id {sorted(clash)[0]!r} clashes with an augmented row id; "
                        "rename it (augmented ids look like ANCHOR~sft0~SOURCE / ANCHOR~pair0)")
    return pd.concat([base, new], ignore_index=True), len(base)


def write_augmentation(aug: Augmentation, sft_out: str | os.PathLike | None = None,
                       rm_out: str | os.PathLike | None = None, sft_base: str | None = None,
                       rm_base: str | None = None, inputs: Iterable[Any] = ()) -> list[Path]:
    """Write the SFT rows and/or RM pairs (appended to the base training files when given) and
    a lineage sidecar next to each output. No output may be one of `inputs` (default: the files
    recorded in the lineage and the base files)."""
    if not sft_out and not rm_out:
        raise SeamError("nothing to write: pass --sft-out FILE and/or --rm-out FILE")
    inputs = list(inputs) or [*(v["path"] for v in aug.lineage.get("inputs", {}).values() if v),
                              ("--sft-base", sft_base), ("--rm-base", rm_base)]
    written = []
    for out, new, base, kind in ((sft_out, aug.sft_rows, sft_base, SFT_KIND), (rm_out, aug.rm_pairs, rm_base, RM_KIND)):
        if not out:
            continue
        table, n_base = _with_base(new, base)
        written.append(write_table(table, out, inputs, "--sft-out" if kind == SFT_KIND else "--rm-out"))
        lineage = dict(aug.lineage, output=str(Path(out).resolve()), output_kind=kind, base_rows=n_base,
                       added_rows=len(new), base=describe_file(base, n_base) if base else None)
        written.append(write_lineage(out, lineage))
    return written
