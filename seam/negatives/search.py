"""Exact band search: for each query, the top-k corpus rows whose cosine lies inside [lo, hi].

Brute force over chunked matrix products (torch; CPU or GPU), so memory stays bounded by
``block_entries`` similarity values whatever the corpus size, and the result is exact. Per query
chunk, each corpus chunk yields its in-band candidates; these are filtered (exclusion keys),
de-duplicated and pruned to k per query before the next chunk, with a total order
(similarity desc, then corpus row asc) so the output does not depend on chunk sizes.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .base import ProgressFn


def hash_keys(texts: Sequence[str], normalise: bool = False) -> np.ndarray:
    """Stable int64 keys of strings (optionally whitespace- and case-normalised)."""
    out = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        s = " ".join(t.casefold().split()) if normalise else t
        out[i] = int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little", signed=True)
    return out


@dataclass
class Exclusions:
    """Keys that forbid a (query, corpus row) pair when equal, and a key that de-duplicates results.

    pairs: list of (query keys [n], corpus keys [m]); a corpus row is skipped for a query when any
    pair matches. dedup: corpus keys [m]; among rows with the same key only the best is kept.
    """

    pairs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    dedup: np.ndarray | None = None


@dataclass
class BandResult:
    index: np.ndarray  # [n, k] int64 corpus rows, -1 where fewer than k were found
    similarity: np.ndarray  # [n, k] float32, nan where index is -1
    excluded: dict  # exclusion name -> in-band candidates dropped by it
    duplicates: int  # in-band candidates dropped as duplicates of a better one
    in_band: int  # in-band candidates seen (before exclusions)
    seconds: float


def _prune(q: np.ndarray, c: np.ndarray, s: np.ndarray, dedup: np.ndarray | None, k: int):
    """Order by (query, -sim, corpus row); drop duplicate (query, dedup key); keep k per query."""
    order = np.lexsort((c, -s.astype(np.float64), q))
    q, c, s = q[order], c[order], s[order]
    dropped = 0
    if dedup is not None and len(q):
        pairs = np.stack([q, dedup[c]], axis=1)
        _, first = np.unique(pairs, axis=0, return_index=True)
        first.sort()
        dropped = len(q) - len(first)
        q, c, s = q[first], c[first], s[first]
    if len(q):
        starts = np.r_[0, np.flatnonzero(np.diff(q)) + 1]
        sizes = np.diff(np.r_[starts, len(q)])
        rank = np.arange(len(q)) - np.repeat(starts, sizes)
        keep = rank < k
        q, c, s = q[keep], c[keep], s[keep]
    return q, c, s, dropped


def band_search(queries: np.ndarray, corpus: np.ndarray, lo: float, hi: float, k: int,
                exclusions: Exclusions | None = None, block_entries: int = 1 << 24, device: str = "cpu",
                progress: ProgressFn | None = None) -> BandResult:
    """Exact top-k (by cosine) corpus rows per query with lo <= cosine <= hi.

    queries [n, d] and corpus [m, d] must be L2-normalised float32. Duplicates counted in the
    result's `duplicates` are those dropped *while they could still have made the top k*.
    """
    import torch

    t0 = time.time()
    ex = exclusions or Exclusions()
    n, m = len(queries), len(corpus)
    idx_out = np.full((n, k), -1, dtype=np.int64)
    sim_out = np.full((n, k), np.nan, dtype=np.float32)
    excluded = {name: 0 for name in ex.names}
    dup_total = in_band = 0
    if n == 0 or m == 0:
        return BandResult(idx_out, sim_out, excluded, 0, 0, time.time() - t0)
    # square-ish blocks (e.g. 2048 x 8192 for 16M entries) keep the matrix product compute-bound
    c_chunk = int(min(m, max(256, 2 * math.isqrt(block_entries))))
    q_chunk = int(max(1, min(n, block_entries // c_chunk)))
    dev = torch.device(device)
    corpus_t = torch.from_numpy(np.ascontiguousarray(corpus, dtype=np.float32)).to(dev)
    with torch.inference_mode():
        for qa in range(0, n, q_chunk):
            qb = min(n, qa + q_chunk)
            qt = torch.from_numpy(np.ascontiguousarray(queries[qa:qb], dtype=np.float32)).to(dev)
            bq = np.zeros(0, dtype=np.int64)
            bc = np.zeros(0, dtype=np.int64)
            bs = np.zeros(0, dtype=np.float32)
            for ca in range(0, m, c_chunk):
                cb = min(m, ca + c_chunk)
                sims = qt @ corpus_t[ca:cb].T  # [q_chunk, c_chunk]
                hit = torch.nonzero((sims >= lo) & (sims <= hi), as_tuple=False)
                if hit.shape[0] == 0:
                    continue
                vals = sims[hit[:, 0], hit[:, 1]].float().cpu().numpy()
                hit = hit.cpu().numpy()
                cq = hit[:, 0].astype(np.int64) + qa
                cc = hit[:, 1].astype(np.int64) + ca
                in_band += len(cq)
                keep = np.ones(len(cq), dtype=bool)
                for name, (qk, ck) in zip(ex.names, ex.pairs):
                    bad = keep & (qk[cq] == ck[cc])
                    excluded[name] += int(bad.sum())
                    keep &= ~bad
                cq, cc, vals = cq[keep], cc[keep], vals[keep]
                bq, bc, bs, dropped = _prune(np.r_[bq, cq], np.r_[bc, cc], np.r_[bs, vals], ex.dedup, k)
                dup_total += dropped
            if len(bq):
                starts = np.r_[0, np.flatnonzero(np.diff(bq)) + 1]
                sizes = np.diff(np.r_[starts, len(bq)])
                rank = np.arange(len(bq)) - np.repeat(starts, sizes)
                idx_out[bq, rank] = bc
                sim_out[bq, rank] = bs
            if progress:
                progress(qb, n, "search")
    return BandResult(idx_out, sim_out, excluded, dup_total, in_band, time.time() - t0)
