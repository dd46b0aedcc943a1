"""Model references: a local folder, or a hub id (``org/name``, ``org/name@revision``) found in the
local Hugging Face cache.

A reference that names an existing path is that path. Otherwise, when it has the shape of a hub
id, it is looked up in the Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
``~/.cache/huggingface/hub``) with ``snapshot_download(..., local_files_only=True)``: always
offline, whatever ``HF_HUB_OFFLINE`` says, so nothing is ever downloaded. A hub id that is not
cached is one `SeamError` line naming the id and the cache folder. PEFT adapter folders name their
base model (``base_model_name_or_path``, usually a hub id); it resolves the same way.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import SeamError

# what the hub accepts as a model id: [org/]name, letters, digits, '-', '_', '.', at most 96 each;
# an optional @revision (branch, tag or commit) after it
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
HUB_ID = re.compile(rf"^(?P<repo>(?:{_PART}/)?{_PART})(?:@(?P<revision>[A-Za-z0-9._/-]+))?$")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment on every call (as huggingface_hub
    would at import: HF_HUB_CACHE, then HUGGINGFACE_HUB_CACHE, then HF_HOME/hub, then the XDG default)."""
    env = os.environ
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return Path(env[key]).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def hub_id(ref: str | os.PathLike) -> tuple[str, str | None] | None:
    """(repo id, revision or None) when `ref` is not an existing path and has the shape of a hub id."""
    text = str(ref)
    if not text or Path(text).expanduser().exists() or text.startswith((".", "/", "~")) or "--" in text or ".." in text:
        return None
    m = HUB_ID.match(text)
    if m is None:
        return None
    return m.group("repo"), m.group("revision")


def is_hub_ref(ref: str | os.PathLike | None) -> bool:
    """True for a reference that would be looked up in the hub cache (no local path of that name)."""
    return ref is not None and hub_id(ref) is not None


def resolve_model_ref(ref: str | os.PathLike, flag: str) -> Path:
    """The local folder `ref` names: the path itself, or a hub id's snapshot in the local HF cache.

    A reference that is neither an existing path nor hub-id shaped comes back as a Path unchanged,
    so the caller's folder checks say what is wrong with it."""
    parsed = hub_id(ref)
    if parsed is None:
        return Path(ref).expanduser()
    repo, revision = parsed
    cache = hub_cache_dir()
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo, revision=revision, cache_dir=str(cache), local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, OSError, ValueError):
        at = f" at revision {revision}" if revision else ""
        raise SeamError(
            f"{flag} {ref}: not a local folder, and the hub id {repo}{at} is not in the Hugging Face cache {cache} "
            f"(nothing is downloaded: fetch it once with `hf download {repo}`, or set HF_HUB_CACHE / HF_HOME to the "
            "cache that holds it)") from None
    return Path(folder)


# ----------------------------------------------------------------------------- PEFT adapters


def is_adapter_folder(folder: Path) -> bool:
    """A PEFT adapter folder: adapter_config.json and no config.json of a full model."""
    return folder.is_dir() and (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file()


def adapter_base_ref(folder: Path) -> str | None:
    """The base model an adapter folder names (``base_model_name_or_path``), or None."""
    try:
        value = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def split_model_ref(path: str | os.PathLike, adapter: str | os.PathLike | None, flag: str) -> tuple[Path, Path | None]:
    """(base model folder, adapter folder or None) for a ``--pm/--rm`` value and its ``--*-adapter``.

    Both may be hub ids. A ``--pm`` that is itself an adapter folder loads on the base model its
    adapter_config.json names (a local folder or a hub id from the cache)."""
    folder = resolve_model_ref(path, flag)
    adapter_folder = resolve_model_ref(adapter, f"{flag}-adapter") if adapter else None
    if is_adapter_folder(folder):
        if adapter_folder is not None:
            raise SeamError(f"{flag} {path}: is a PEFT adapter, and {flag}-adapter {adapter} is another one; "
                            f"pass the base model as {flag} (or merge one adapter first with `seam train merge`)")
        base = adapter_base_ref(folder)
        if not base:
            raise SeamError(f"{flag} {path}: a PEFT adapter folder whose adapter_config.json names no base model "
                            f"(base_model_name_or_path); pass the base model as {flag} and this folder as {flag}-adapter")
        return resolve_model_ref(base, f"{flag} {path}: its base model"), folder
    return folder, adapter_folder
