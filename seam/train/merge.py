"""`merge_adapter`: fold a LoRA run folder into its base model and save a plain HF checkpoint."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import SeamError
from ..io import write_json
from .common import RUN_FILE, RunDir, read_manifest
from .models import adapter_base, load_causal_lm, load_classifier


def merge_adapter(adapter: str | os.PathLike, out: str | os.PathLike, base: str | None = None,
                  role: str | None = None, allow_pickle: bool = False) -> Path:
    """Merge `adapter` (a LoRA folder from `seam train ... --lora`) into its base and save to `out`.

    `base` defaults to the base recorded in the adapter folder; `role` (pm | rm) defaults to the
    run's kind (rm -> a sequence classifier, anything else -> a causal LM). The merged folder gets
    safetensors weights, the tokenizer and a seam_run.json that records where it came from."""
    folder = Path(adapter)
    if not (folder / "adapter_config.json").is_file():
        raise SeamError(f"--adapter {folder}: not a LoRA adapter folder (no adapter_config.json); "
                        "pass the run folder of a `seam train ... --lora` run")
    manifest = read_manifest(folder) or {}
    base = base or adapter_base(folder)
    if not base:
        raise SeamError(f"--adapter {folder}: does not record its base model; pass --base DIR")
    if role is None:
        role = "rm" if manifest.get("kind") == "rm" else "pm"
    if role not in ("pm", "rm"):
        raise SeamError(f"--role must be pm or rm, got {role!r}")
    run = RunDir(out, flag="--out", inputs=[("--adapter", folder), ("--base", base)])
    # Point the loader at the adapter with an explicit base (the folder's own record may be stale).
    tmp_manifest = {"base_model": str(base)}
    staged = run.create() / "_adapter"
    shutil.copytree(folder, staged)
    write_json(staged / RUN_FILE, tmp_manifest)
    try:
        if role == "rm":
            tok, model, _ = load_classifier(str(staged), "--adapter", allow_pickle)
        else:
            tok, model = load_causal_lm(str(staged), "--adapter", allow_pickle)
    except SeamError:
        shutil.rmtree(run.path, ignore_errors=True)
        raise
    shutil.rmtree(staged)
    model.save_pretrained(str(run.path), safe_serialization=True)
    tok.save_pretrained(str(run.path))
    record = {"seam_run": 1, "kind": "merge", "role": role, "base_model": str(base), "adapter": str(folder),
              "adapter_run": manifest or None}
    write_json(run.path / RUN_FILE, record)
    return run.finish()
