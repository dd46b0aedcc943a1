"""Load models for training (float32 master weights, train mode) with the project's safety rules.

Models load through `seam.models.loading` (the same path as scoring): local folders only, GGUF
folders converted once, never ``trust_remote_code``, pickle weights only with ``allow_pickle``.
A LoRA run folder (adapter files,
no config.json) may be passed wherever a model is expected: its base model (from
adapter_config.json or seam_run.json) is loaded and the adapter merged in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import SeamError
from ..models.loading import apply_adapter, load_pm, load_rm, resolve_checkpoint
from ..models.loading import load_tokenizer as load_hf_tokenizer
from ..models.refs import resolve_model_ref


def adapter_base(folder: Path) -> str | None:
    """The base model path recorded by a LoRA folder (adapter_config.json or seam_run.json)."""
    for name, key in (("seam_run.json", "base_model"), ("adapter_config.json", "base_model_name_or_path")):
        p = folder / name
        if p.is_file():
            try:
                value = json.loads(p.read_text(encoding="utf-8")).get(key)
            except ValueError:
                value = None
            if value:
                return str(value)
    return None


def split_model_arg(path: str, flag: str) -> tuple[str, Path | None]:
    """(base model path, adapter folder or None) for a --model value."""
    folder = Path(path)
    if folder.is_dir() and (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        base = adapter_base(folder)
        if not base:
            raise SeamError(f"{flag} {folder}: a LoRA adapter folder that does not name its base model; "
                            "merge it with `seam train merge --adapter DIR --base BASE --out DIR` and pass the merged folder")
        resolved = resolve_model_ref(base, f"{flag} {folder}: its base model")  # a hub id: from the local HF cache
        if not resolved.is_dir():
            raise SeamError(f"{flag} {folder}: its base model {base} is not a local folder any more; "
                            "merge the adapter with `seam train merge --base BASE` and pass the merged folder")
        return str(resolved), folder
    return path, None


def load_tokenizer(path: str, flag: str, allow_pickle: bool = False, _depth: int = 0):
    base, adapter = split_model_arg(path, flag)
    if adapter is not None:
        if (adapter / "tokenizer_config.json").is_file():
            return load_hf_tokenizer(adapter, flag)
        return load_tokenizer(base, flag, allow_pickle, _depth + 1)
    return load_hf_tokenizer(resolve_checkpoint(base, flag, allow_pickle), flag)


def _check_depth(depth: int, path: str, flag: str) -> None:
    if depth > 8:
        raise SeamError(f"{flag} {path}: adapters stacked more than 8 deep (or a cycle in their base models); "
                        "merge them with `seam train merge`")


def load_causal_lm(path: str, flag: str, allow_pickle: bool = False, _depth: int = 0):
    """(tokenizer, model) for a policy: the PM loader (`seam.models.loading.load_pm`) in float32 on
    the CPU. A LoRA run folder is loaded as its base (itself possibly a LoRA run) with the adapter
    merged, trainable."""
    _check_depth(_depth, path, flag)
    base, adapter = split_model_arg(path, flag)
    if adapter is not None:
        _, model = load_causal_lm(base, flag, allow_pickle, _depth + 1)
        return load_tokenizer(path, flag, allow_pickle), apply_adapter(model, adapter, flag, allow_pickle, trainable=True)
    loaded = load_pm(base, device="cpu", dtype="float32", allow_pickle=allow_pickle, flag=flag)
    return loaded.tokenizer, loaded.model


def load_classifier(path: str, flag: str, allow_pickle: bool = False, _depth: int = 0):
    """(tokenizer, model, fresh_head) for an RM / value model: the RM loader (`load_rm`, one label)
    in float32 on the CPU. A causal LM checkpoint gets a new score head (seeded by the caller's
    set_seed); a LoRA run folder is loaded as its base with the adapter merged, trainable."""
    _check_depth(_depth, path, flag)
    base, adapter = split_model_arg(path, flag)
    if adapter is not None:
        _, model, fresh = load_classifier(base, flag, allow_pickle, _depth + 1)
        merged = apply_adapter(model, adapter, flag, allow_pickle, trainable=True)
        return load_tokenizer(path, flag, allow_pickle), merged, fresh
    loaded = load_rm(base, device="cpu", dtype="float32", allow_pickle=allow_pickle, flag=flag, warn_fresh_head=False)
    if not hasattr(loaded.model, "score"):
        raise SeamError(f"{flag} {base}: {type(loaded.model).__name__} has no `.score` head; TRL's PPO and SEAM need a "
                        "decoder classifier (Llama, Qwen, Mistral, GPT-2 ...)")
    return loaded.tokenizer, loaded.model, bool(loaded.info.get("fresh_head"))


def same_tokenizer(a, b) -> bool:
    """True when two tokenizers map text to the same ids (same vocabulary and special ids)."""
    if len(a) != len(b) or a.eos_token_id != b.eos_token_id or a.pad_token_id != b.pad_token_id:
        return False
    return a.get_vocab() == b.get_vocab()
