"""Exact band search: for each query, the top-k corpus rows whose cosine lies inside [lo, hi].

Brute force over chunked matrix products (torch; CPU or GPU), so memory stays bounded by
``block_entries`` similarity values whatever the corpus size, and the result is exact. Per query
chunk, each corpus chunk yields its in-band candidates; these are filtered (exclusion keys),
de-duplicated and pruned to k per query before the next chunk, with a total order
(similarity desc, then corpus row asc) so the output does not depend on chunk sizes.

For large corpora, `ivf_band_search` answers the same question through an IVF index
(`seam.negatives.ivf`, faiss): approximate, with ``nprobe`` calibrated on each run against the
exact search, exact similarities, and the same filters and order. `search` picks one of the two
(`choose_index`); the exact search stays the reference and the default below IVF_MIN_ROWS.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import SeamError
from . import ivf
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
    method: dict = field(default_factory=lambda: {"index": "exact"})  # which search ran, and its parameters


def _exclusion_masks(cq: np.ndarray, cc: np.ndarray, ex: Exclusions) -> tuple[np.ndarray, dict]:
    """(keep mask, {name: mask of the candidates that exclusion dropped}) for (query row, corpus row)
    candidates; a candidate is charged to the first exclusion that matches it."""
    keep = np.ones(len(cq), dtype=bool)
    bads = {}
    for name, (qk, ck) in zip(ex.names, ex.pairs):
        bad = keep & (qk[cq] == ck[cc])
        bads[name] = bad
        keep &= ~bad
    return keep, bads


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
                keep, bads = _exclusion_masks(cq, cc, ex)
                for name, bad in bads.items():
                    excluded[name] += int(bad.sum())
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


# ============================================================================ IVF (approximate, large corpora)

# Measured on 2 CPU cores (docs/benchmarks.md, section 6): the index pays for its build after
# 4k-12k queries at every corpus size from 100k to 1M rows, and from 20k queries the whole run takes
# less than half the exact time; below 200k rows the exact search takes at most ~1.6 ms a query,
# so exactness is kept.
IVF_MIN_ROWS = 200_000
IVF_MIN_QUERIES = 20_000
CALIBRATION_QUERIES = 256
MIN_INDEX_ROWS = 1000
MIN_CALIBRATION_PAIRS = 100
QUERY_BATCH = 8192
CANDIDATES_AT_ONCE = 1 << 22  # (query, candidate) pairs held at once by the IVF search


def choose_index(queries: int, corpus_rows: int, device: str = "cpu", index: str = "auto") -> str:
    """'exact' or 'ivf' for ``index`` = auto | exact | ivf. auto: the IVF index on CPU when faiss is
    installed, the corpus has >= IVF_MIN_ROWS rows and there are >= IVF_MIN_QUERIES queries (on a
    GPU the exact matrix products are fast enough)."""
    if index not in ("auto", "exact", "ivf"):
        raise SeamError(f"index {index!r}: use auto, exact or ivf")
    if index == "ivf" and not ivf.available():
        raise SeamError("index ivf needs faiss-cpu (pip install faiss-cpu); or use index exact")
    if index != "auto":
        return index
    if str(device).startswith("cuda") or not ivf.available():
        return "exact"
    return "ivf" if corpus_rows >= IVF_MIN_ROWS and queries >= IVF_MIN_QUERIES else "exact"


def search(queries: np.ndarray, corpus: np.ndarray, lo: float, hi: float, k: int,
           exclusions: Exclusions | None = None, block_entries: int = 1 << 24, device: str = "cpu",
           progress: ProgressFn | None = None, index: str = "auto", recall: float = 0.99) -> BandResult:
    """The band search the contrast builder runs: exact, or the IVF index (see `choose_index`)."""
    if choose_index(len(queries), len(corpus), device, index) == "ivf":
        return ivf_band_search(queries, corpus, lo, hi, k, exclusions, recall=recall, block_entries=block_entries,
                               progress=progress)
    return band_search(queries, corpus, lo, hi, k, exclusions, block_entries, device, progress)


@dataclass
class _Acc:
    """Results of the IVF band search, filled row by row."""

    index: np.ndarray
    similarity: np.ndarray
    excluded: dict
    duplicates: int = 0
    in_band: int = 0
    escalated: int = 0  # queries searched again with more candidates


def _new_acc(n: int, k: int, ex: Exclusions) -> _Acc:
    return _Acc(np.full((n, k), -1, dtype=np.int64), np.full((n, k), np.nan, dtype=np.float32),
                {name: 0 for name in ex.names})


def _ivf_rows(index: ivf.IVFIndex, queries: np.ndarray, corpus: np.ndarray, rows: np.ndarray, out_rows: np.ndarray,
              lo: float, hi: float, k: int, ex: Exclusions, nprobe: int, margin: float, acc: _Acc) -> None:
    """Band results of queries[rows] into acc at out_rows.

    Per query, the top K candidates by approximate inner product that can be in the band are
    re-scored exactly and filtered like the exact search (band, exclusions, de-duplication, total
    order). ``margin`` bounds the codes' error: no row has an exact score above its approximate
    score + margin, so none outside the candidates scores above the K-th approximate score + margin.
    A query is done when that bound is below lo or below its k-th survivor, or when its probed
    lists are exhausted; otherwise it is searched again with 4 K candidates. Within the probed
    lists the result is then the exact one.
    """
    cand = min(index.rows, 4 * k + 32)
    pending = np.arange(len(rows))
    while len(pending):
        step = max(1, CANDIDATES_AT_ONCE // cand)  # bounded memory when many queries need many candidates
        pending = np.concatenate([_ivf_round(index, queries, corpus, rows, out_rows, pending[a:a + step], cand,
                                             lo, hi, k, ex, nprobe, margin, acc)
                                  for a in range(0, len(pending), step)])
        cand = min(index.rows, cand * 4)


def _ivf_round(index: ivf.IVFIndex, queries: np.ndarray, corpus: np.ndarray, rows: np.ndarray, out_rows: np.ndarray,
               pos: np.ndarray, cand: int, lo: float, hi: float, k: int, ex: Exclusions, nprobe: int, margin: float,
               acc: _Acc) -> np.ndarray:
    """One search of queries[rows[pos]] with `cand` candidates each; fills acc for the queries that
    are done and returns the positions of the others."""
    q = queries[rows[pos]]
    approx, ids = index.search(q, cand, nprobe)
    # only candidates that can be in the band are re-scored (each is a random 4d-byte read)
    sims = ivf.exact_inner_products(q, corpus, np.where(approx >= lo - margin, ids, -1))
    band = (sims >= lo) & (sims <= hi)
    order = np.lexsort((ids, np.where(band, -sims, np.inf)), axis=1)  # per query: (-sim, corpus row), band first
    ids, sims, band = (np.take_along_axis(x, order, axis=1) for x in (ids, sims, band))
    keep = band.copy()
    bads = {}
    qrows, safe = rows[pos][:, None], np.maximum(ids, 0)
    for name, (qk, ck) in zip(ex.names, ex.pairs):  # charged to the first exclusion that matches
        bads[name] = keep & (qk[qrows] == ck[safe])
        keep &= ~bads[name]
    dup = np.zeros_like(keep)
    if ex.dedup is not None and keep.any():  # dedup holds dense codes here (see ivf_band_search)
        rr, cc = np.nonzero(keep)  # row-major: per query, most similar first
        _, first = np.unique(rr * (int(ex.dedup.max()) + 1) + ex.dedup[ids[rr, cc]], return_index=True)
        later = np.ones(len(rr), dtype=bool)
        later[first] = False
        dup[rr[later], cc[later]] = True
        keep &= ~dup
    rank = np.cumsum(keep, axis=1) - 1
    kept = keep.sum(axis=1)
    at_k = np.argmax(keep & (rank == k - 1), axis=1)
    kth = np.where(kept >= k, sims[np.arange(len(pos)), at_k], -np.inf)  # the k-th survivor's similarity
    # an unretrieved row scores at most approx[:, -1] + margin exactly: done when that cannot be in
    # the band or cannot beat the k-th survivor (or when nothing is left to retrieve)
    unseen = approx[:, -1] + margin
    done = (unseen < lo) | (unseen <= kth) | (ids.min(axis=1) < 0) | (cand >= index.rows)
    acc.in_band += int(band[done].sum())
    for name, bad in bads.items():
        acc.excluded[name] += int(bad[done].sum())
    acc.duplicates += int((dup & (sims >= kth[:, None]))[done].sum())
    pr, pc = np.nonzero(keep & (rank < k) & done[:, None])
    dest = out_rows[pos[pr]]
    acc.index[dest, rank[pr, pc]] = ids[pr, pc]
    acc.similarity[dest, rank[pr, pc]] = sims[pr, pc]
    acc.escalated += int((~done).sum())
    return pos[~done]


def _subset(ex: Exclusions, rows: np.ndarray) -> Exclusions:
    return Exclusions([(qk[rows], ck) for qk, ck in ex.pairs], list(ex.names), ex.dedup)


def _stop_margin(index: ivf.IVFIndex, queries: np.ndarray, corpus: np.ndarray, k: int) -> float:
    """1.25 x the largest |approximate - exact| inner product among the candidates of a few queries
    (plus 0.01): how far below lo the K-th approximate score must lie before a query stops."""
    approx, ids = index.search(queries[:CALIBRATION_QUERIES], min(index.rows, 4 * k + 32), 1)
    valid = ids >= 0
    if not valid.any():
        return 1.0
    sims = ivf.exact_inner_products(queries[:CALIBRATION_QUERIES], corpus, ids)
    return float(min(1.0, 1.25 * np.abs(approx[valid] - sims[valid]).max() + 0.01))


def _calibrate(index: ivf.IVFIndex, queries: np.ndarray, corpus: np.ndarray, lo: float, hi: float, k: int,
               ex: Exclusions, recall: float, seed: int, block_entries: int) -> dict:
    """Smallest nprobe whose recall of the exact band results, on a seeded sample of the queries,
    reaches 1 - (1 - recall) / 2 (a margin for the sample's noise). When the sample has fewer than
    MIN_CALIBRATION_PAIRS in-band pairs, the band's lower edge is lowered in steps of 0.1 (at most
    0.3) for the measurement: pairs of lower similarity are harder to find, so this is conservative.
    nprobe None: no nprobe up to nlist / 4 was good enough (the caller then runs the exact search)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(queries), min(len(queries), CALIBRATION_QUERIES), replace=False))
    ref = band_search(queries[rows], corpus, max(-1.0, lo - 0.3), hi, k, _subset(ex, rows), block_entries)
    for drop in (0.0, 0.1, 0.2, 0.3):
        cal_lo = max(-1.0, lo - drop)
        pairs = int((ref.similarity >= cal_lo).sum())
        if pairs >= MIN_CALIBRATION_PAIRS or cal_lo <= -1.0:
            break
    want = [set(ref.index[i][ref.similarity[i] >= cal_lo].tolist()) for i in range(len(rows))]
    margin = _stop_margin(index, queries[rows], corpus, k)
    goal = 1.0 - (1.0 - recall) / 2
    tried, chosen, nprobe = [], None, max(1, index.nlist // 256)
    while pairs and nprobe <= max(1, index.nlist // 4):
        acc = _new_acc(len(rows), k, ex)
        _ivf_rows(index, queries, corpus, rows, np.arange(len(rows)), cal_lo, hi, k, ex, nprobe, margin, acc)
        hits = sum(len(w & set(acc.index[i].tolist())) for i, w in enumerate(want))
        got = hits / pairs if pairs else 1.0
        tried.append({"nprobe": nprobe, "recall": round(got, 4)})
        if got >= goal and pairs:
            chosen = nprobe
            break
        nprobe *= 2
    if not pairs:  # nothing in or near the band in the sample: nothing to measure, take a cautious nprobe
        chosen = max(1, index.nlist // 16)
    return {"nprobe": chosen, "sample_queries": len(rows), "pairs": pairs, "band_lo": round(cal_lo, 4),
            "goal": goal, "tried": tried, "margin": round(margin, 4), "seconds": round(time.perf_counter() - t0, 3)}


def ivf_band_search(queries: np.ndarray, corpus: np.ndarray, lo: float, hi: float, k: int,
                    exclusions: Exclusions | None = None, *, index: ivf.IVFIndex | None = None,
                    nprobe: int | None = None, recall: float = 0.99, seed: int = 0, block_entries: int = 1 << 24,
                    progress: ProgressFn | None = None) -> BandResult:
    """Band search through an IVF index (faiss, CPU): same inputs and result as `band_search`.

    Approximate: a row can be missed when it lies in a list the query did not probe. ``nprobe`` is
    calibrated against the exact search on a sample of the queries (see `_calibrate`) unless given;
    the similarities reported and filtered on are exact. When no nprobe reaches the recall goal,
    or all queries fit in the calibration sample, the exact search runs instead (``method`` says
    which; also below MIN_INDEX_ROWS corpus rows). ``in_band`` and the exclusion counts cover the
    retrieved candidates only.
    """
    t0 = time.time()
    ex = exclusions or Exclusions()
    n, m = len(queries), len(corpus)
    if (n <= CALIBRATION_QUERIES and nprobe is None) or m < MIN_INDEX_ROWS:
        res = band_search(queries, corpus, lo, hi, k, ex, block_entries, "cpu", progress)
        why = "all queries fit in the calibration sample" if m >= MIN_INDEX_ROWS else "corpus too small for an index"
        res.method = {"index": "exact", "why": why}
        return res
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    corpus = np.ascontiguousarray(corpus, dtype=np.float32)
    if ex.dedup is not None:  # dense codes 0..U-1: (query, code) pairs then fit one int64
        ex = Exclusions(ex.pairs, ex.names, np.unique(ex.dedup, return_inverse=True)[1].astype(np.int64))
    index = index or ivf.IVFIndex.build(corpus, seed=seed, progress=progress)
    method = {"index": "ivf", "nlist": index.nlist, "train_seconds": round(index.train_seconds, 3),
              "add_seconds": round(index.add_seconds, 3), "index_bytes": index.code_bytes}
    if nprobe is None:
        cal = _calibrate(index, queries, corpus, lo, hi, k, ex, recall, seed, block_entries)
        method["calibration"] = cal
        nprobe, margin = cal["nprobe"], cal.get("margin", 1.0)
        if nprobe is None:
            res = band_search(queries, corpus, lo, hi, k, ex, block_entries, "cpu", progress)
            res.method = {**method, "index": "exact", "why": f"no nprobe up to nlist/4 reached recall {cal['goal']}"}
            res.seconds = time.time() - t0
            return res
    else:
        margin = _stop_margin(index, queries, corpus, k)
    method["nprobe"] = int(nprobe)
    acc = _new_acc(n, k, ex)
    t_search = time.perf_counter()
    for a in range(0, n, QUERY_BATCH):
        rows = np.arange(a, min(n, a + QUERY_BATCH))
        _ivf_rows(index, queries, corpus, rows, rows, lo, hi, k, ex, nprobe, margin, acc)
        if progress:
            progress(rows[-1] + 1, n, "search")
    method.update(search_seconds=round(time.perf_counter() - t_search, 3), escalated=acc.escalated)
    return BandResult(acc.index, acc.similarity, acc.excluded, acc.duplicates, acc.in_band, time.time() - t0, method)
