"""Load models for training (float32 master weights, train mode) with the project's safety rules.

Checkpoints follow `seam.models.loading`: local folders only, GGUF folders converted once, never
``trust_remote_code``, pickle weights only with ``allow_pickle``. A LoRA run folder (adapter files,
no config.json) may be passed wherever a model is expected: its base model (from
adapter_config.json or seam_run.json) is loaded and the adapter merged in memory.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..errors import SeamError
from ..models.loading import check_model_folder, resolve_checkpoint
from ..models.loading import load_tokenizer as load_hf_tokenizer


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
        if not Path(base).is_dir():
            raise SeamError(f"{flag} {folder}: its base model {base} is not a local folder any more; "
                            "merge the adapter with `seam train merge --base BASE` and pass the merged folder")
        return base, folder
    return path, None


def _merge_adapter(model, adapter: Path, flag: str, allow_pickle: bool):
    if not (adapter / "adapter_model.safetensors").is_file() and not allow_pickle:
        raise SeamError(f"{flag} {adapter}: adapter weights are not safetensors; convert them or pass --allow-pickle")
    from peft import PeftConfig, PeftModel

    try:
        config = PeftConfig.from_pretrained(str(adapter))
        if config.task_type == "CAUSAL_LM" and not hasattr(model, "prepare_inputs_for_generation"):
            # an SFT adapter laid on the same backbone inside a classifier (RM / value model from the SFT run)
            config.task_type = None
        merged = PeftModel.from_pretrained(model, str(adapter), config=config, is_trainable=False).merge_and_unload()
    except Exception as exc:
        raise SeamError(f"{flag} {adapter}: cannot apply this adapter ({type(exc).__name__}: {exc}); "
                        "check it was trained for this base model") from exc
    for p in merged.parameters():  # loading froze the base weights; the merged model is trained next
        p.requires_grad_(True)
    return merged


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
    """(tokenizer, model) for a policy: AutoModelForCausalLM in float32.

    A LoRA run folder is loaded as its base (itself possibly a LoRA run) with the adapter merged."""
    import torch
    from transformers import AutoModelForCausalLM

    _check_depth(_depth, path, flag)
    base, adapter = split_model_arg(path, flag)
    if adapter is not None:
        _, model = load_causal_lm(base, flag, allow_pickle, _depth + 1)
        return load_tokenizer(path, flag, allow_pickle), _merge_adapter(model, adapter, flag, allow_pickle)
    folder = resolve_checkpoint(base, flag, allow_pickle)
    tok = load_hf_tokenizer(folder, flag)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, trust_remote_code=False,
                                                         use_safetensors=None if allow_pickle else True)
    except ValueError as exc:
        raise SeamError(f"{flag} {folder}: not a causal language model ({exc}); pass a decoder checkpoint") from exc
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return tok, model


def load_classifier(path: str, flag: str, allow_pickle: bool = False, _depth: int = 0):
    """(tokenizer, model, fresh_head) for an RM / value model: a one-label sequence classifier in float32.

    A causal LM checkpoint gets a new score head (seeded by the caller's set_seed); a LoRA run
    folder is loaded as its base with the adapter merged."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    _check_depth(_depth, path, flag)
    base, adapter = split_model_arg(path, flag)
    if adapter is not None:
        _, model, fresh = load_classifier(base, flag, allow_pickle, _depth + 1)
        return load_tokenizer(path, flag, allow_pickle), _merge_adapter(model, adapter, flag, allow_pickle), fresh
    folder = resolve_checkpoint(base, flag, allow_pickle)
    check_model_folder(folder, flag, allow_pickle)
    tok = load_hf_tokenizer(folder, flag)
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    is_classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    if is_classifier and config.num_labels != 1:
        raise SeamError(f"{flag} {folder}: the classifier has {config.num_labels} labels; a reward model needs exactly 1")
    config.num_labels = 1
    config.pad_token_id = tok.pad_token_id if config.pad_token_id is None else config.pad_token_id
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForSequenceClassification.from_pretrained(
                str(folder), config=config, dtype=torch.float32, trust_remote_code=False,
                use_safetensors=None if allow_pickle else True)
    except ValueError as exc:
        raise SeamError(f"{flag} {folder}: cannot load as a sequence classifier ({exc}); pass a decoder checkpoint") from exc
    if not hasattr(model, "score"):
        raise SeamError(f"{flag} {folder}: {type(model).__name__} has no `.score` head; TRL's PPO and SEAM need a "
                        "decoder classifier (Llama, Qwen, Mistral, GPT-2 ...)")
    return tok, model, not is_classifier


def same_tokenizer(a, b) -> bool:
    """True when two tokenizers map text to the same ids (same vocabulary and special ids)."""
    if len(a) != len(b) or a.eos_token_id != b.eos_token_id or a.pad_token_id != b.pad_token_id:
        return False
    return a.get_vocab() == b.get_vocab()
