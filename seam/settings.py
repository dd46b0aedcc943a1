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

A class may rename a field and keep the old name working: ``ALIASES = {"old_name": "new_name"}``
(or an `Alias` when the old value needs converting). `from_dict`, `load_config`, the constructor
and `add_config_flags` (a hidden ``--old-name`` flag) accept the old name, log ONE deprecation line
(``logging`` warning of ``seam.settings``: on stderr for CLI users) naming the new one, and refuse
a key given under both names. ``HINTS = {"unknown_key": "what to use instead"}`` adds a pointer to
the unknown-key error. Classes without them behave as before.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import os
import types
import typing
from dataclasses import MISSING, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import SeamError

log = logging.getLogger(__name__)
DEPRECATED_DEST = "deprecated__"  # argparse dest prefix of the hidden flags of old names


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
    return _coerce_scalar(tp, optional, name, value, source)


def _coerce_scalar(tp: Any, optional: bool, name: str, value: Any, source: str) -> Any:
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


# ---------------------------------------------------------------------------------- renamed fields


@dataclasses.dataclass(frozen=True)
class Alias:
    """An old name of a settings field whose value needs converting: ``ALIASES = {"stop_at_eos":
    Alias("stop_token", convert=lambda on: "eos" if on else None, old_type=bool)}``. A plain string
    in ``ALIASES`` is an `Alias` without conversion (the old value is checked as the new field's type)."""

    new: str
    convert: Callable[[Any], Any] | None = None  # old value (already of old_type) -> new field's value
    old_type: Any = None  # the old field's type (its check, and its CLI flag's shape); None: the new field's


def aliases_of(cls: type) -> dict[str, Alias]:
    """``{old name: Alias}`` of a settings class (empty for classes without ``ALIASES``)."""
    return {old: a if isinstance(a, Alias) else Alias(a) for old, a in (getattr(cls, "ALIASES", None) or {}).items()}


def _key(name: str, flags: bool) -> str:
    return "--" + name.replace("_", "-") if flags else name


def resolve_aliases(cls: type, data: Mapping[str, Any] | None, source: str = "config",
                    flags: bool = False) -> tuple[dict[str, Any], list[str]]:
    """(`data` with old names renamed to their fields and old values converted, the renames as
    ``"old -> new"`` for `warn_renamed`). A setting given under both names is a one-line SeamError.
    `flags`: name the keys as CLI flags (``--batch-size``) in the messages."""
    aliases = aliases_of(cls)
    data = dict(data or {})
    if not aliases or not data.keys() & aliases.keys():
        return data, []
    out = {k: v for k, v in data.items() if k not in aliases}
    renamed = []
    for old, value in data.items():
        a = aliases.get(old)
        if a is None:
            continue
        new = _key(a.new, flags)
        if a.new in out:
            raise SeamError(f"{source}: {_key(old, flags)} is the old name of {new}; give only {new}")
        if a.old_type is not None:
            value = _coerce_scalar(a.old_type, False, old, value, source)
        out[a.new] = a.convert(value) if a.convert is not None else value
        renamed.append(f"{_key(old, flags)} -> {new}")
    return out, renamed


def warn_renamed(where: str, renamed: list[str]) -> None:
    """The ONE deprecation line for the old names used in one load (nothing when none was)."""
    if renamed:
        many = len(renamed) > 1
        log.warning("%s: deprecated name%s %s; use the new name%s (the old one%s still work%s for now)", where,
                    "s" if many else "", ", ".join(renamed), "s" if many else "", "s" if many else "", "" if many else "s")


def _unknown(cls: type, where: str, unknown: list[str], names: list[str]) -> SeamError:
    """The one-line error for unknown keys, with the class's ``HINTS`` for the keys that have one."""
    hints = getattr(cls, "HINTS", None) or {}
    tips = "; ".join(f"{k}: {hints[k]}" for k in unknown if k in hints)
    return SeamError(f"{where}: unknown key(s) {', '.join(unknown)}" + (f" ({tips})" if tips else "")
                     + f"; valid keys: {', '.join(names)}")


class _SettingsType(type):
    """Lets a settings class's constructor take the old names of its ``ALIASES`` (one deprecation line)."""

    def __call__(cls, *args, **kwargs):
        if kwargs and getattr(cls, "ALIASES", None):
            kwargs, renamed = resolve_aliases(cls, kwargs, cls.__name__)
            warn_renamed(cls.__name__, renamed)
        return super().__call__(*args, **kwargs)


class Settings(metaclass=_SettingsType):
    """Mixin for settings dataclasses: `to_dict` / `from_dict` (checked), `field_help`, `validate`."""

    def validate(self) -> None:
        """Raise SeamError on a bad value; subclasses override."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists, nested settings dicts); copies, never views."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, where: str | None = None, validate: bool = True):
        """Build from plain values; unknown keys and wrong types raise one SeamError line; old names
        (``ALIASES``) are renamed with one deprecation line."""
        where = where or f"{cls.__name__} settings"
        names = [f.name for f in fields(cls)]
        data, renamed = resolve_aliases(cls, data, where)
        unknown = sorted(set(map(str, data)) - set(names))
        if unknown:
            raise _unknown(cls, where, unknown, names)
        warn_renamed(where, renamed)
        cfg = cls(**{k: coerce(cls, k, v, where) for k, v in data.items()})
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

    Unknown keys, wrong types and invalid values raise SeamError naming the key. Old names
    (``ALIASES``) in the file or the overrides work, with ONE deprecation line for the whole load."""
    names = [f.name for f in fields(cls)]
    values: dict[str, Any] = {}
    renamed: list[str] = []
    if path is not None:
        raw, renamed = resolve_aliases(cls, load_yaml(path), f"--config {path}")
        unknown = sorted(set(map(str, raw)) - set(names))
        if unknown:
            raise _unknown(cls, f"--config {path}", unknown, names)
        values.update({k: coerce(cls, k, v, f"--config {path}") for k, v in raw.items()})
    kind = getattr(cls, "kind", cls.__name__)
    for k in overrides or {}:
        if k not in names and k not in aliases_of(cls):
            hint = (getattr(cls, "HINTS", None) or {}).get(k)
            raise SeamError(f"unknown {kind} config key {k!r}" + (f" ({hint})" if hint else "")
                            + f"; valid keys: {', '.join(names)}")
    given, flagged = resolve_aliases(cls, {k: v for k, v in (overrides or {}).items() if v is not None},
                                     f"{kind} settings", flags=True)
    for k, v in given.items():
        values[k] = coerce(cls, k, v, "--" + k.replace("_", "-"))
    warn_renamed(f"{kind} settings", renamed + flagged)
    cfg = cls(**values)
    if validate:
        cfg.validate()
    return cfg


def add_config_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
                     aliases: dict[str, tuple[str, ...]] | None = None, title: str | None = None) -> None:
    """One flag per field (``--learning-rate``; bools as ``--lora/--no-lora``), all default None, so
    only flags the user typed override a YAML file or the class defaults.

    `aliases` adds extra option strings for a field (``{"output_dir": ("--out",)}``). The old names of
    the class's ``ALIASES`` get hidden flags (dest ``deprecated__<old>``, read by `config_from_args`),
    unless `aliases` already gives that option string as a current spelling."""
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
    taken = {opt for opts in aliases.values() for opt in opts}
    for old, a in aliases_of(cls).items():
        flag = "--" + old.replace("_", "-")
        if a.new in skip or flag in taken:
            continue
        tp = a.old_type or base_type(hints[a.new])[0]
        hidden = dict(dest=DEPRECATED_DEST + old, default=None, help=argparse.SUPPRESS)
        if tp is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **hidden)
        elif typing.get_origin(tp) is tuple:
            group.add_argument(flag, nargs="+", **hidden)
        else:
            group.add_argument(flag, **hidden)


def config_from_args(cls: type, args: argparse.Namespace, extra: Mapping[str, Any] | None = None):
    """`load_config(cls, args.config, {field: args.<field>} + old-name flags + extra)`."""
    overrides = {f.name: getattr(args, f.name, None) for f in fields(cls)}
    overrides.update({old: v for old in aliases_of(cls) if (v := getattr(args, DEPRECATED_DEST + old, None)) is not None})
    overrides.update({k: v for k, v in (extra or {}).items() if v is not None})
    return load_config(cls, getattr(args, "config", None), overrides)
