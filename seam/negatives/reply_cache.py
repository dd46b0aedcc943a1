"""On-disk cache of LLM replies, keyed by (model, request): a re-run costs no request and no token.

One small JSON file per reply under ``<seam cache>/llm-replies/<key[:2]>/<key>.json``, written
atomically, so concurrent workers and processes can share it. The key is a SHA-256 of the model
name and the full request (messages, sampling settings, round); the endpoint URL and the API key
are not part of it and are never written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..cache import cache_dir
from ..io import write_text


def reply_key(model: str, request: dict) -> str:
    blob = json.dumps({"model": model, "request": request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ReplyCache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else cache_dir("llm-replies")

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self._path(key)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # a damaged entry is treated as a miss and rewritten

    def put(self, key: str, record: dict) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_text(p, json.dumps(record, ensure_ascii=False))
