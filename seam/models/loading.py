"""Load the policy model (causal LM) and the reward model (a sequence classifier: its one logit, or
the logit ``label`` picks, is the reward).

A checkpoint is a local folder in the HF ``save_pretrained`` layout, a folder holding exactly one
``.gguf`` file (converted once to an HF folder in the cache), or a hub id (``org/name``) found in
the local Hugging Face cache (`seam.models.refs`; never downloaded). A PEFT adapter (a folder or a
hub id) may be laid on top; an adapter folder passed as the model loads on the base it names.
``device_map="auto"`` spreads a model that does not fit one device over the GPUs (and the CPU)
with accelerate. ``trust_remote_code`` is never set; pickle weights (``.bin``/``.pt``) load only
with ``allow_pickle=True``. Every problem a user can fix becomes one `SeamError` line.

Fingerprints hash every byte of the config, tokenizer and weight files (XXH3, each file's hash
cached by path, size and times in `seam.cache.file_hash`, so a second call reads nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assets import smollm2_gguf
from ..cache import cache_dir, file_hash
from ..errors import SeamError
from ..io import atomic_output
from .refs import resolve_model_ref, split_model_ref

SAFE_WEIGHTS = (".safetensors",)
PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's strategies
# Version of the fingerprint: part of every fingerprint, so a change of what is hashed changes every
# key derived from one (embedding caches, converted GGUF folders, the store's de-duplication).
FINGERPRINT_VERSION = "fp2-xxh3-whole"
# small files that change what a checkpoint computes or how text is tokenized
META_FILES = ("config.json", "adapter_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "chat_template.jinja")


@dataclass
class LoadedModel:
    """A model ready for scoring: eval mode, on its device, with a tokenizer that has EOS and pad."""

    model: Any
    tokenizer: Any
    role: str  # "pm" or "rm"
    path: Path
    fingerprint: str
    adapter: Path | None = None
    info: dict = field(default_factory=dict)

    @property
    def device(self):
        """Where inputs go: the device of the first parameter, or for a model spread by a device map,
        the device its input embeddings run on."""
        return input_device(self.model)

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    @property
    def reward_label(self) -> int:
        """Which output logit is the reward (RMs; 0 for a one-label classifier)."""
        return int(self.info.get("reward_label", 0))


def input_device(model):
    """The device a model's inputs belong on (see `LoadedModel.device`)."""
    import torch

    if getattr(model, "hf_device_map", None):
        emb = model.get_input_embeddings()
        hook = getattr(emb, "_hf_hook", None)
        dev = getattr(hook, "execution_device", None)
        if dev is not None:
            return torch.device(f"cuda:{dev}" if isinstance(dev, int) else dev)
        if emb.weight.device.type != "meta":
            return emb.weight.device
    return next(model.parameters()).device


# ----------------------------------------------------------------------------- devices and dtypes


def resolve_device(device: str = "auto", flag: str = "--device") -> str:
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise SeamError(f"{flag} {device!r} is not one of {', '.join(DEVICES)}, cuda:N; pick one of them")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SeamError(f"{flag} {device} was asked for but no CUDA GPU is visible; use {flag} cpu")
    return device


def resolve_dtype(dtype: str, device: str):
    """`auto` is float32 on CPU and bfloat16 on a GPU that supports it (else float16)."""
    import torch

    if dtype not in DTYPES:
        raise SeamError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}; pick one of them")
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


# ----------------------------------------------------------------------------- folders and fingerprints


def _weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SAFE_WEIGHTS + PICKLE_WEIGHTS)


def fingerprint(folder: str | Path, adapter: str | Path | None = None) -> str:
    """A short content hash of a checkpoint: every byte of its config, tokenizer and weight files
    (+ the adapter's), with the fingerprint version. 16 hex characters.

    Each file's own hash is cached by (resolved path, size, mtime, ctime, inode), so fingerprinting
    an unchanged checkpoint again reads no weights. A hub id is fingerprinted as its cached snapshot
    (the same bytes as a folder holding those files give the same fingerprint)."""
    h = hashlib.sha256(FINGERPRINT_VERSION.encode())
    for role, base in [("model", resolve_model_ref(folder, "fingerprint"))] + (
            [("adapter", resolve_model_ref(adapter, "fingerprint"))] if adapter else []):
        files = [base / n for n in META_FILES if (base / n).is_file()]
        files += _weight_files(base) + sorted(base.glob("*.gguf"))
        for p in files:
            h.update(f"{role}/{p.name}\0{p.stat().st_size}\0{file_hash(p)}\n".encode())
    return h.hexdigest()[:16]


def check_model_folder(path: str | Path, flag: str, allow_pickle: bool = False) -> Path:
    """Validate a checkpoint folder (or a hub id from the local HF cache); return the folder (a GGUF
    folder is returned as is)."""
    folder = resolve_model_ref(path, flag)
    if not folder.exists():
        raise SeamError(f"{flag} {folder}: folder does not exist; pass a local model folder (HF save_pretrained layout or one .gguf file)")
    if not folder.is_dir():
        if folder.suffix == ".gguf":
            raise SeamError(f"{flag} {folder}: pass the folder that holds the .gguf file, not the file itself")
        raise SeamError(f"{flag} {folder}: not a folder; pass a local model folder")
    ggufs = sorted(folder.glob("*.gguf"))
    if not (folder / "config.json").is_file():
        if len(ggufs) == 1:
            return folder
        if len(ggufs) > 1:
            raise SeamError(f"{flag} {folder}: holds {len(ggufs)} .gguf files ({', '.join(g.name for g in ggufs)}); keep exactly one per folder")
        raise SeamError(f"{flag} {folder}: not a model folder (no config.json and no .gguf file); pass the folder written by save_pretrained")
    weights = _weight_files(folder)
    if not weights and not any(folder.glob("*.safetensors.index.json")):
        raise SeamError(f"{flag} {folder}: has config.json but no weight files (*.safetensors); the checkpoint is incomplete")
    if not any(w.suffix in SAFE_WEIGHTS for w in weights) and not allow_pickle:
        raise SeamError(
            f"{flag} {folder}: only pickle weights ({', '.join(w.name for w in weights)}), which can run code when loaded; "
            "convert them to safetensors, or pass --allow-pickle if you trust this checkpoint"
        )
    try:
        json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SeamError(f"{flag} {folder}/config.json is not valid JSON ({exc}); the checkpoint is corrupt") from exc
    return folder


# ----------------------------------------------------------------------------- GGUF conversion


def fix_gguf_tokenizer(tokenizer, gguf_path: Path) -> None:
    """Repair what transformers' GGUF tokenizer conversion gets wrong, using the GGUF metadata.

    For SmolLM2 it reports ``<|im_start|>`` as EOS and prepends it as BOS, while the file says
    EOS = ``<|im_end|>``, pad = ``<|im_end|>``, add_bos = False.
    """
    meta = _gguf_tokenizer_meta(gguf_path)
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    if meta.get("eos") is not None:
        tokenizer.eos_token = vocab[meta["eos"]]
    if meta.get("pad") is not None:
        tokenizer.pad_token = vocab[meta["pad"]]
    if meta.get("bos") is not None:
        tokenizer.bos_token = vocab[meta["bos"]]
    if meta.get("add_bos") is not None and hasattr(tokenizer, "add_bos_token"):
        tokenizer.add_bos_token = bool(meta["add_bos"])
        if hasattr(tokenizer, "update_post_processor"):
            tokenizer.update_post_processor()


def _gguf_tokenizer_meta(path: Path) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    out = {}
    keys = {
        "tokenizer.ggml.eos_token_id": "eos",
        "tokenizer.ggml.bos_token_id": "bos",
        "tokenizer.ggml.padding_token_id": "pad",
        "tokenizer.ggml.add_bos_token": "add_bos",
    }
    for key, name in keys.items():
        f = reader.fields.get(key)
        if f is not None and f.data:
            out[name] = f.parts[f.data[0]].tolist()[0]
    return out


def smollm2_hf() -> Path:
    """SmolLM2-135M-Instruct as an HF folder: the packaged GGUF (`seam.assets.smollm2_gguf`) converted once
    and cached by content (`gguf_to_hf`). Read-only: copy it before changing anything in it."""
    gguf = smollm2_gguf()
    folder = cache_dir("gguf-links", gguf.stem)
    link = folder / gguf.name
    if not link.exists():  # missing, or left dangling by an environment that moved
        link.unlink(missing_ok=True)
        os.symlink(gguf, link)
    return gguf_to_hf(folder)


def gguf_to_hf(folder: Path, out: Path | None = None) -> Path:
    """Convert a folder with one .gguf file to an HF folder (float32 safetensors), cached by content."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = next(iter(sorted(folder.glob("*.gguf"))))
    if out is None:
        out = cache_dir("hf-from-gguf") / f"{gguf.stem}-{fingerprint(folder)}"
    if (out / "config.json").is_file() and (out / ".complete").is_file():
        return out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # corrupt or unsupported file
        raise SeamError(f"{gguf}: cannot read this GGUF file ({type(exc).__name__}: {exc}); check that it is complete and of a supported architecture") from exc
    fix_gguf_tokenizer(tok, gguf)
    model.config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    if model.generation_config is not None:
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_output(out) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            (tmp / ".complete").write_text(str(gguf))
            shutil.rmtree(out, ignore_errors=True)  # an incomplete earlier conversion
    except OSError:
        if not (out / ".complete").is_file():  # not just another process finishing first
            raise
    return out


def resolve_checkpoint(path: str | Path, flag: str, allow_pickle: bool = False) -> Path:
    """An HF folder to load: the folder itself, or its cached conversion when it holds a .gguf file."""
    folder = check_model_folder(path, flag, allow_pickle)
    if not (folder / "config.json").is_file():
        return gguf_to_hf(folder)
    return folder


# ----------------------------------------------------------------------------- loaders


def load_tokenizer(folder: Path, flag: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except Exception as exc:
        raise SeamError(f"{flag} {folder}: cannot load its tokenizer ({type(exc).__name__}: {exc}); save the tokenizer into the model folder") from exc
    if not getattr(tok, "is_fast", False):
        raise SeamError(f"{flag} {folder}: the tokenizer is a slow (Python) tokenizer; SEAM needs a fast tokenizer (tokenizer.json) for character offsets")
    if tok.eos_token_id is None:
        raise SeamError(f"{flag} {folder}: the tokenizer has no EOS token; set eos_token in tokenizer_config.json")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def apply_adapter(model, adapter: str | Path | None, flag: str, allow_pickle: bool, trainable: bool = False):
    """`model` with the PEFT adapter at `adapter` merged in (unchanged when `adapter` is None).

    An SFT (causal-LM) adapter may be laid on the same backbone inside a classifier (an RM or value
    model started from the SFT run). With `trainable`, the merged weights are left trainable
    (loading an adapter freezes its base)."""
    if adapter is None:
        return model
    apath = resolve_model_ref(adapter, flag)
    if not (apath / "adapter_config.json").is_file():
        raise SeamError(f"{flag} {apath}: not a PEFT adapter folder (no adapter_config.json)")
    if not (apath / "adapter_model.safetensors").is_file() and not allow_pickle:
        raise SeamError(f"{flag} {apath}: adapter weights are not safetensors; convert them or pass --allow-pickle")
    from peft import PeftConfig, PeftModel

    try:
        config = PeftConfig.from_pretrained(str(apath))
        if config.task_type == "CAUSAL_LM" and not hasattr(model, "prepare_inputs_for_generation"):
            config.task_type = None
        merged = PeftModel.from_pretrained(model, str(apath), config=config, is_trainable=False).merge_and_unload()
    except Exception as exc:
        raise SeamError(f"{flag} {apath}: cannot apply this adapter ({type(exc).__name__}: {exc}); "
                        "check it was trained for this base model") from exc
    if trainable:
        for param in merged.parameters():
            param.requires_grad_(True)
    return merged


def resolve_device_map(device_map: str | None) -> str | None:
    if device_map in (None, "", "none"):
        return None
    if device_map not in DEVICE_MAPS:
        raise SeamError(f"--device-map {device_map!r} is not one of {', '.join(DEVICE_MAPS)}; "
                        "use auto to spread a model that does not fit one device over the GPUs (and the CPU)")
    return device_map


def _load(role: str, auto_cls, path, adapter, device, dtype, allow_pickle, flag, prepare_config, not_loadable: str,
          device_map: str | None = None) -> LoadedModel:
    """The loading steps PM and RM share; `prepare_config(config, tok, folder)` checks and adapts the
    config and may return facts for ``LoadedModel.info``.

    With `device_map` (accelerate's ``auto`` & co.), transformers places the layers over the visible
    GPUs, then the CPU; `device` is then ignored and ``dtype="auto"`` follows whether a GPU exists."""
    import torch
    from transformers import AutoConfig

    device_map = resolve_device_map(device_map)
    base, adapter_folder = split_model_ref(path, adapter, flag)
    folder = resolve_checkpoint(base, flag, allow_pickle)
    if device_map:
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    tok = load_tokenizer(folder, flag)
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    extra = prepare_config(config, tok, folder) or {}
    placement = {"device_map": device_map} if device_map else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = auto_cls.from_pretrained(str(folder), config=config, dtype=torch_dtype, trust_remote_code=False,
                                             use_safetensors=None if allow_pickle else True, **placement)
    except ValueError as exc:
        if device_map and "offload" in str(exc):
            raise SeamError(f"{flag} {folder}: does not fit the GPUs and the CPU memory together with --device-map "
                            f"{device_map} ({exc}); use a smaller dtype or a machine with more memory") from exc
        raise SeamError(f"{flag} {folder}: {not_loadable.format(exc=exc)}") from exc
    model = apply_adapter(model, adapter_folder, f"{flag}-adapter", allow_pickle)
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if not device_map:
        model.to(dev)
    model.eval()
    info = {"device": dev, "dtype": str(torch_dtype).replace("torch.", ""), **extra}
    hf_map = getattr(model, "hf_device_map", None)
    if device_map and hf_map:
        info["device_map"] = {k: str(v) for k, v in hf_map.items()}
        info["device"] = "+".join(dict.fromkeys(_device_name(v) for v in hf_map.values()))
    if str(folder) != str(path):
        info["resolved"] = str(folder)
    return LoadedModel(model, tok, role, Path(path), fingerprint(folder, adapter_folder), adapter_folder, info)


def _device_name(v) -> str:
    return f"cuda:{v}" if isinstance(v, int) else str(v)


def load_pm(path, adapter=None, device="auto", dtype="auto", allow_pickle=False, flag="--pm",
            device_map: str | None = None) -> LoadedModel:
    """Policy model as a causal LM."""
    from transformers import AutoModelForCausalLM

    def prepare(config, tok, folder) -> None:
        if config.pad_token_id is None:
            config.pad_token_id = tok.pad_token_id

    return _load("pm", AutoModelForCausalLM, path, adapter, device, dtype, allow_pickle, flag, prepare,
                 "not a causal language model ({exc}); pass a decoder checkpoint", device_map)


def reward_label_index(config, label: int | str | None, flag: str, folder) -> int:
    """The index of the logit that is the reward: `label` (an index, or a name from id2label), or the
    only one. A classifier with several labels and no `label` is an error naming --rm-label."""
    n = int(config.num_labels)
    names = {str(v): int(k) for k, v in (getattr(config, "id2label", None) or {}).items()}
    if label is None or label == "":
        if n != 1:
            listed = ", ".join(f"{i}={config.id2label.get(i, i)}" for i in range(min(n, 8))) + (", ..." if n > 8 else "")
            raise SeamError(f"{flag} {folder}: the classifier has {n} labels ({listed}); a reward model needs exactly 1 "
                            "(a scalar score), or pass --rm-label N to say which logit is the reward")
        return 0
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        if label not in names:
            raise SeamError(f"--rm-label {label!r}: {folder} has no label of that name (its labels: "
                            f"{', '.join(sorted(names, key=names.get))}); pass an index 0..{n - 1} or one of the names")
        return names[label]
    index = int(label)
    if not 0 <= index < n:
        raise SeamError(f"--rm-label {index}: {folder} has {n} label{'s' if n != 1 else ''}; pick 0..{n - 1}")
    return index


def load_rm(path, adapter=None, device="auto", dtype="auto", allow_pickle=False, flag="--rm",
            warn_fresh_head: bool = True, label: int | str | None = None, device_map: str | None = None) -> LoadedModel:
    """Reward model as a sequence classifier; the reward is its one logit, or logit `label` (an index
    or an id2label name) of a multi-label classifier (``info["reward_label"]``).

    A causal-LM checkpoint gets a fresh, random score head (``info["fresh_head"]``): a warning for
    scoring, the normal start for RM training (``warn_fresh_head=False``)."""
    from transformers import AutoModelForSequenceClassification

    def prepare(config, tok, folder) -> dict:
        is_classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
        if not is_classifier:
            config.num_labels = 1
        index = reward_label_index(config, label, flag, folder)
        if not is_classifier and warn_fresh_head:
            # A causal LM backbone as RM: a fresh, random score head (useful for timing, not for judging).
            warnings.warn(f"{folder} is not a sequence classifier; its reward head is randomly initialised", stacklevel=3)
        if config.pad_token_id is None:
            config.pad_token_id = tok.pad_token_id
        return {"fresh_head": not is_classifier, "reward_label": index, "num_labels": int(config.num_labels)}

    return _load("rm", AutoModelForSequenceClassification, path, adapter, device, dtype, allow_pickle, flag, prepare,
                 "cannot load as a sequence classifier ({exc}); pass a reward-model checkpoint", device_map)
