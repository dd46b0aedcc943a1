"""The project's own cache folder (converted models, embeddings, LLM replies, NLTK data)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``$SEAM_CACHE_DIR`` or ``$XDG_CACHE_HOME/seam`` or ``~/.cache/seam``, joined with ``parts`` and created."""
    root = os.environ.get("SEAM_CACHE_DIR")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "seam"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
