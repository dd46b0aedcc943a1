"""Helpers every job kind shares: payload fields, registered model rows, loading a registered model."""

from __future__ import annotations

from typing import Any

from db.store import Store
from seam.errors import SeamError


def int_field(payload: dict, key: str, kind: str) -> int:
    """`payload[key]` as an int, or a one-line error naming the job kind and the field."""
    try:
        return int(payload[key])
    except (KeyError, TypeError, ValueError):
        raise SeamError(f"{kind} payload needs an integer {key}, got {payload.get(key)!r}") from None


def model_row(store: Store, model_id: int | None, role: str | None = None) -> dict[str, Any]:
    """The registered model `model_id` as a dict; checks its role when `role` is given."""
    if model_id is None:
        raise SeamError(f"no {(role or 'model').upper()} was given; register one on the Models page and pick it")
    models = store.models()
    row = models[models["id"] == int(model_id)]
    if row.empty:
        raise SeamError(f"no registered model {model_id} in {store.display}; register it on the Models page")
    out = row.iloc[0].to_dict()
    if role and out["role"] != role:
        raise SeamError(f"model {model_id} ({out['name']}) is registered as {out['role'].upper()}, not {role.upper()}")
    return out


def rm_label(row: dict[str, Any]) -> int | str | None:
    """Which logit of a registered multi-label RM is the reward (``meta["rm_label"]``; None: its single label)."""
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    return meta.get("rm_label")


def load_model(row: dict[str, Any], device: str, dtype: str | None = None):  # noqa: ANN201
    """Load a registered PM or RM row (path, adapter, dtype, meta["rm_label"]) on `device`."""
    from seam.models.loading import load_pm, load_rm  # lazy: pulls in torch and transformers

    args = (row["path"], row.get("adapter") or None, device, dtype or row.get("dtype") or "auto")
    if row["role"] == "pm":
        return load_pm(*args)
    return load_rm(*args, label=rm_label(row))
