"""An inverted-file (IVF) index over the corpus embeddings, for the contrast search at large corpus sizes.

faiss `IndexIVFPQFastScan`: a k-means coarse quantizer (``nlist`` lists, spherical k-means on a
seeded sample of the corpus) and 4-bit product-quantised codes of the vectors (d/2 sub-vectors of
2 dimensions), scanned with SIMD lookup tables. A search probes the ``nprobe`` lists closest to the
query and returns the top candidates by *approximate* inner product; `exact_inner_products` then
recomputes their cosines from the float32 corpus (faiss `fvec_inner_products_by_idx`), so every
similarity the contrast search reports or filters on is exact. The index holds d/4 bytes of codes
plus an 8-byte id per row (104 MB at 1M x 384; the float32 corpus itself is 1.5 GB), not a second
copy of the corpus.

faiss-cpu is a dependency (requirements.txt); `available()` is False where it is not installed, and
the search then stays exact. The band logic, the calibration of ``nprobe`` against the exact search
and the automatic choice live in `seam.negatives.search`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

TRAIN_PER_LIST = 40  # k-means sample: rows per list (faiss warns below 39)
KMEANS_ITERATIONS = 10
ADD_CHUNK = 65_536  # rows added per call (progress, and bounded temporary memory)


def available() -> bool:
    """Whether faiss can be imported (the IVF index needs it; the exact search does not)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def default_nlist(rows: int) -> int:
    """About 4 sqrt(rows) lists, a power of two, between 16 and 16384 (4096 at 1M rows)."""
    return int(min(16384, max(16, 2 ** round(math.log2(4 * math.sqrt(max(rows, 1)))))))


def _sub_quantizers(d: int) -> int:
    return d // 2 if d % 2 == 0 else d


@dataclass
class IVFIndex:
    """A trained and filled faiss IVF index over one corpus (see the module docstring)."""

    index: Any
    nlist: int
    rows: int
    train_seconds: float
    add_seconds: float
    code_bytes: int  # codes plus ids held by the index
    quantizer: Any = None  # kept alive here: the faiss index points to it without owning it

    @classmethod
    def build(cls, corpus: np.ndarray, nlist: int | None = None, seed: int = 0, progress=None) -> "IVFIndex":
        """Train on a seeded sample (``TRAIN_PER_LIST`` rows per list) and add every row."""
        import faiss

        corpus = np.ascontiguousarray(corpus, dtype=np.float32)
        m, d = corpus.shape
        nlist = int(nlist or default_nlist(m))
        if m < TRAIN_PER_LIST * nlist:  # enough rows per list for k-means (a power of two, as by default)
            nlist = 2 ** int(math.log2(max(1, m // TRAIN_PER_LIST)))
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        take = min(m, TRAIN_PER_LIST * nlist)
        sample = corpus[np.sort(rng.choice(m, take, replace=False))] if take < m else corpus
        km = faiss.Kmeans(d, nlist, niter=KMEANS_ITERATIONS, seed=seed, spherical=True,
                          max_points_per_centroid=TRAIN_PER_LIST, verbose=False)
        km.train(sample)
        quantizer = faiss.IndexFlatIP(d)
        quantizer.add(km.centroids)
        index = faiss.IndexIVFPQFastScan(quantizer, d, nlist, _sub_quantizers(d), 4, faiss.METRIC_INNER_PRODUCT)
        index.by_residual = False  # codes of the vectors themselves: faster to add, same recall after re-ranking
        # the PQ codebooks (the quantizer is already trained): d/2 tiny k-means problems, faster on one
        # thread than with two threads waiting on each other, and steady when the machine is busy
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            index.train(sample[: min(len(sample), 16_384)])
        finally:
            faiss.omp_set_num_threads(threads)
        t1 = time.perf_counter()
        for a in range(0, m, ADD_CHUNK):
            index.add(corpus[a:a + ADD_CHUNK])
            if progress:
                progress(min(m, a + ADD_CHUNK), m, "index")
        t2 = time.perf_counter()
        code_bytes = m * (index.code_size + 8)
        return cls(index, nlist, m, t1 - t0, t2 - t1, code_bytes, quantizer)

    def search(self, queries: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (approximate inner product, ids -1 past the end) over the ``nprobe`` closest lists."""
        import faiss

        params = faiss.SearchParametersIVF(nprobe=int(min(nprobe, self.nlist)))
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), int(k), params=params)


def exact_inner_products(queries: np.ndarray, corpus: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """[n, K] float32: queries[i] . corpus[ids[i, j]], -inf where ids is -1 (faiss, multi-threaded)."""
    import faiss

    q = np.ascontiguousarray(queries, dtype=np.float32)
    c = np.ascontiguousarray(corpus, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    out = np.empty(ids.shape, dtype=np.float32)
    if ids.size:
        faiss.fvec_inner_products_by_idx(faiss.swig_ptr(out), faiss.swig_ptr(q), faiss.swig_ptr(c),
                                         faiss.swig_ptr(ids), q.shape[1], ids.shape[0], ids.shape[1])
    return out
