"""Typed settings objects: one definition serves the CLI flags, the dashboard's forms and the job payloads.

A settings class is a dataclass whose fields are declared with `setting(default, help)`, subclassing
`Settings`. It then travels as plain data and comes back checked:

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Demo(Settings):
    ...     k: int = setting(30, "negatives per instruction")
    ...     band: tuple[float, ...] = setting((0.8, 0.9), "cosine band")
    >>> Demo.from_dict({"k": "12"}).to_dict()
    {'k': 12, 'band': [0.8, 0.9]}
    >>> Demo.field_help()["k"]
    'negatives per instruction'

`from_dict` refuses unknown keys and values of the wrong type with one line naming the key, then
calls the class's `validate()`, so a bad value is an error where it is typed (a flag, a form
button), not in a job log.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import types
import typing
from dataclasses import MISSING, field, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import SeamError


def setting(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field with its help text (extra metadata, e.g. ``metavar="FILE"``); mutable
    defaults (lists, dicts, sets, nested settings objects) are copied per instance."""
    meta = {"help": help, **metadata}
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata=meta)
    return field(default=default, metadata=meta)


def base_type(tp: Any) -> tuple[Any, bool]:
    """(scalar type, optional?) of an annotation like ``int | None``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 else str), True
    return tp, False


def coerce(cls: type, name: str, value: Any, source: str = "config") -> Any:
    """Convert a YAML / CLI / form value to the field's type; SeamError naming the key when it cannot.

    A field typed as another `Settings` class takes a mapping (checked by that class's `from_dict`)."""
    tp, optional = base_type(typing.get_type_hints(cls)[name])
    if isinstance(tp, type) and issubclass(tp, Settings):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return tp.from_dict(value, where=f"{source}: {name}", validate=False)
        raise SeamError(f"{source}: {name} must be a mapping of {tp.__name__} fields, got {value!r}")
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        if optional:
            return None
        raise SeamError(f"{source}: {name} cannot be empty; give a {getattr(tp, '__name__', tp)}")
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off"):
                return False
            raise ValueError(value)
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError(value)
            return str(value)
        if typing.get_origin(tp) is tuple:
            items = value.split() if isinstance(value, str) else list(value)
            item_type = (typing.get_args(tp) or (str,))[0]
            return tuple(item_type(x) for x in items)
        if (typing.get_origin(tp) or tp) is dict and not isinstance(value, Mapping):
            raise ValueError(value)
    except (TypeError, ValueError):
        raise SeamError(f"{source}: {name} must be a {getattr(tp, '__name__', tp)}, got {value!r}") from None
    return value


class Settings:
    """Mixin for settings dataclasses: `to_dict` / `from_dict` (checked), `field_help`, `validate`."""

    def validate(self) -> None:
        """Raise SeamError on a bad value; subclasses override."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists, nested settings dicts); copies, never views."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, where: str | None = None, validate: bool = True):
        """Build from plain values; unknown keys and wrong types raise one SeamError line."""
        where = where or f"{cls.__name__} settings"
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(map(str, data or {})) - set(names))
        if unknown:
            raise SeamError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(names)}")
        cfg = cls(**{k: coerce(cls, k, v, where) for k, v in (data or {}).items()})
        if validate:
            cfg.validate()
        return cfg

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        out = {}
        for f in fields(cls):
            v = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            out[f.name] = _plain(v)
        return out


def _plain(v: Any) -> Any:
    """A field value as plain data: nested settings -> dict, tuples -> lists, containers copied."""
    if isinstance(v, Settings):
        return v.to_dict()
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


# ---------------------------------------------------------------------------------- YAML and flags


def load_yaml(path: str | os.PathLike) -> dict:
    """A YAML mapping (one key per field) or a one-line SeamError."""
    import yaml  # lazy: only configs from files need it

    p = Path(path)
    if not p.is_file():
        raise SeamError(f"--config {p}: file not found; pass a YAML file with one key per config field")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = " ".join(str(exc).split())[:160]
        raise SeamError(f"--config {p}: not valid YAML ({first}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SeamError(f"--config {p}: the YAML must be a mapping of field: value, got {type(data).__name__}")
    return data


def load_config(cls: type, path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
                validate: bool = True):
    """Build `cls` from an optional YAML file, then `overrides` (values that are None are ignored).

    Unknown keys, wrong types and invalid values raise SeamError naming the key."""
    names = [f.name for f in fields(cls)]
    values: dict[str, Any] = {}
    if path is not None:
        raw = load_yaml(path)
        unknown = sorted(set(map(str, raw)) - set(names))
        if unknown:
            raise SeamError(f"--config {path}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(names)}")
        values.update({k: coerce(cls, k, v, f"--config {path}") for k, v in raw.items()})
    kind = getattr(cls, "kind", cls.__name__)
    for k, v in (overrides or {}).items():
        if k not in names:
            raise SeamError(f"unknown {kind} config key {k!r}; valid keys: {', '.join(names)}")
        if v is not None:
            values[k] = coerce(cls, k, v, "--" + k.replace("_", "-"))
    cfg = cls(**values)
    if validate:
        cfg.validate()
    return cfg


def add_config_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
                     aliases: dict[str, tuple[str, ...]] | None = None, title: str | None = None) -> None:
    """One flag per field (``--learning-rate``; bools as ``--lora/--no-lora``), all default None, so
    only flags the user typed override a YAML file or the class defaults.

    `aliases` adds extra option strings for a field (``{"output_dir": ("--out",)}``)."""
    aliases = aliases or {}
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title or f"{getattr(cls, 'kind', cls.__name__)} settings (override --config)")
    own = set(cls.__dict__.get("__annotations__", {}))  # the class's own fields first
    for f in sorted(fields(cls), key=lambda f: f.name not in own):
        if f.name in skip:
            continue
        tp, _ = base_type(hints[f.name])
        flags = ("--" + f.name.replace("_", "-"),) + tuple(aliases.get(f.name, ()))
        default = f.default
        if default is MISSING and f.default_factory is not MISSING:  # pragma: no cover
            default = f.default_factory()
        shown = "" if default in ("", None) else f" (default {default})"
        help_ = (f.metadata.get("help", "") + shown).replace("%", "%%")
        if tp is bool:
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif typing.get_origin(tp) is tuple:
            group.add_argument(*flags, dest=f.name, default=None, nargs="+", metavar=f.metadata.get("metavar", "X"),
                               help=help_)
        else:
            group.add_argument(*flags, dest=f.name, default=None, help=help_,
                               metavar=f.metadata.get("metavar") or {int: "N", float: "X"}.get(tp, "VALUE"))


def config_from_args(cls: type, args: argparse.Namespace, extra: Mapping[str, Any] | None = None):
    """`load_config(cls, args.config, {field: args.<field>} + extra)`."""
    overrides = {f.name: getattr(args, f.name, None) for f in fields(cls)}
    overrides.update({k: v for k, v in (extra or {}).items() if v is not None})
    return load_config(cls, getattr(args, "config", None), overrides)
