"""Load the policy model (causal LM) and the reward model (one-label sequence classifier).

A checkpoint is a local folder in the HF ``save_pretrained`` layout, or a folder holding exactly one
``.gguf`` file (converted once to an HF folder in the cache). A PEFT adapter folder may be laid on
top. ``trust_remote_code`` is never set; pickle weights (``.bin``/``.pt``) load only with
``allow_pickle=True``. Every problem a user can fix becomes one `SeamError` line.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cache import cache_dir
from ..errors import SeamError
from ..io import atomic_output

SAFE_WEIGHTS = (".safetensors",)
PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")


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
        return next(self.model.parameters()).device

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype


# ----------------------------------------------------------------------------- devices and dtypes


def resolve_device(device: str = "auto") -> str:
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise SeamError(f"--device {device!r} is not one of {', '.join(DEVICES)}; pick one of them")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SeamError(f"--device {device} was asked for but no CUDA GPU is visible; use --device cpu")
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


def _hash_file_sample(path: Path, h, sample: int = 4 << 20) -> None:
    """Hash name, size and the first and last `sample` bytes: fast on GB files, changes when weights do."""
    size = path.stat().st_size
    h.update(f"{path.name}:{size}:".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(sample))
        if size > 2 * sample:
            fh.seek(size - sample)
            h.update(fh.read(sample))


def fingerprint(folder: str | Path, adapter: str | Path | None = None) -> str:
    """A short content hash of a checkpoint (config + weight files [+ adapter]) for caching."""
    h = hashlib.sha256()
    for base in [Path(folder)] + ([Path(adapter)] if adapter else []):
        for name in ("config.json", "adapter_config.json", "tokenizer.json", "tokenizer_config.json"):
            p = base / name
            if p.is_file():
                h.update(name.encode())
                h.update(p.read_bytes())
        for p in _weight_files(base) + sorted(base.glob("*.gguf")):
            _hash_file_sample(p, h)
    return h.hexdigest()[:16]


def check_model_folder(path: str | Path, flag: str, allow_pickle: bool = False) -> Path:
    """Validate a checkpoint folder; return it (a GGUF folder is returned as is)."""
    folder = Path(path)
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
    apath = Path(adapter)
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


def _load(role: str, auto_cls, path, adapter, device, dtype, allow_pickle, flag, prepare_config, not_loadable: str
          ) -> LoadedModel:
    """The loading steps PM and RM share; `prepare_config(config, tok, folder)` checks and adapts the
    config and may return facts for ``LoadedModel.info``."""
    from transformers import AutoConfig

    folder = resolve_checkpoint(path, flag, allow_pickle)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    tok = load_tokenizer(folder, flag)
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    extra = prepare_config(config, tok, folder) or {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = auto_cls.from_pretrained(str(folder), config=config, dtype=torch_dtype, trust_remote_code=False,
                                             use_safetensors=None if allow_pickle else True)
    except ValueError as exc:
        raise SeamError(f"{flag} {folder}: {not_loadable.format(exc=exc)}") from exc
    model = apply_adapter(model, adapter, f"{flag}-adapter", allow_pickle)
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    model.to(dev).eval()
    info = {"device": dev, "dtype": str(torch_dtype).replace("torch.", ""), **extra}
    return LoadedModel(model, tok, role, Path(path), fingerprint(folder, adapter), Path(adapter) if adapter else None, info)


def load_pm(path, adapter=None, device="auto", dtype="auto", allow_pickle=False, flag="--pm") -> LoadedModel:
    """Policy model as a causal LM."""
    from transformers import AutoModelForCausalLM

    def prepare(config, tok, folder) -> None:
        if config.pad_token_id is None:
            config.pad_token_id = tok.pad_token_id

    return _load("pm", AutoModelForCausalLM, path, adapter, device, dtype, allow_pickle, flag, prepare,
                 "not a causal language model ({exc}); pass a decoder checkpoint")


def load_rm(path, adapter=None, device="auto", dtype="auto", allow_pickle=False, flag="--rm",
            warn_fresh_head: bool = True) -> LoadedModel:
    """Reward model as a sequence classifier with exactly one label (its logit is the reward).

    A causal-LM checkpoint gets a fresh, random score head (``info["fresh_head"]``): a warning for
    scoring, the normal start for RM training (``warn_fresh_head=False``)."""
    from transformers import AutoModelForSequenceClassification

    def prepare(config, tok, folder) -> None:
        is_classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
        if is_classifier and config.num_labels != 1:
            raise SeamError(f"{flag} {folder}: the classifier has {config.num_labels} labels; "
                            "a reward model needs exactly 1 (a scalar score)")
        if not is_classifier and warn_fresh_head:
            # A causal LM backbone as RM: a fresh, random score head (useful for timing, not for judging).
            warnings.warn(f"{folder} is not a sequence classifier; its reward head is randomly initialised", stacklevel=3)
        config.num_labels = 1
        if config.pad_token_id is None:
            config.pad_token_id = tok.pad_token_id
        return {"fresh_head": not is_classifier}

    return _load("rm", AutoModelForSequenceClassification, path, adapter, device, dtype, allow_pickle, flag, prepare,
                 "cannot load as a sequence classifier ({exc}); pass a reward-model checkpoint")
