"""Widgets generated from a settings dataclass (field types, defaults and each field's help text,
`seam.settings.setting`), and `checked`, which turns the widgets' values into a checked config
before a page enqueues a job."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Mapping

import streamlit as st

from seam.errors import SeamError

_CHOICES = re.compile(r"^([\w.-]+(?:\s*\|\s*[\w.-]+)+)\b")


def field_help(cls: type) -> dict[str, str]:
    """{field: help} from each field's ``metadata["help"]`` (`seam.settings.setting`)."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(cls) if "help" in f.metadata}


def checked(cls: type, values: Mapping[str, Any] | None, *, where: str | None = None) -> tuple[Any, str | None]:
    """``(cls.from_dict(values), None)``, or ``(None, the one-line error)`` to show at the button.

    For a `seam.settings.Settings` class: unknown keys, wrong types and values its `validate()`
    refuses are reported here, before anything is enqueued, not in a job's log."""
    try:
        return cls.from_dict(values or {}, where=where or f"{cls.__name__} settings"), None
    except SeamError as exc:
        return None, str(exc)


def _choices(help_text: str) -> list[str] | None:
    m = _CHOICES.match(help_text or "")
    if not m:
        return None
    names = [c.strip() for c in m.group(1).split("|")]
    return names if all(n and not n[0].isdigit() for n in names) else None


def _optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return tp, False


def dataclass_form(cls: type, *, key: str, skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None,
                   columns: int = 3, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """One widget per field of `cls` (all, `only` these, less `skip`); returns {field: value} of those not at their default."""
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    overrides = overrides or {}
    values: dict[str, Any] = {}
    fields = [f for f in dataclasses.fields(cls) if f.name not in skip and (only is None or f.name in only)]
    cols = st.columns(columns)
    for n, f in enumerate(fields):
        c = cols[n % columns]
        default = overrides.get(f.name, f.default if f.default is not dataclasses.MISSING else None)
        tp, optional = _optional(hints[f.name])
        h = helps.get(f.name, "")
        k = f"{key}-{f.name}"
        choices = _choices(h) if tp is str else None
        if tp is bool:
            v = c.checkbox(f.name, value=bool(default), help=h, key=k)
        elif choices and (default in choices or default is None):
            opts = ([""] if optional else []) + choices
            v = c.selectbox(f.name, opts, index=opts.index(default if default is not None else ""), help=h, key=k) or None
        elif tp is int and not optional:
            v = int(c.number_input(f.name, value=int(default), step=1, help=h, key=k))
        elif tp is float and not optional:
            v = float(c.number_input(f.name, value=float(default), help=h, key=k, format="%g"))
        elif typing.get_origin(tp) is tuple:
            text = c.text_input(f.name, value=" ".join(str(x) for x in default), help=h + " (space-separated)", key=k)
            try:
                item = typing.get_args(tp)[0]
                v = tuple(item(x) for x in text.split())
            except ValueError:
                c.error(f"{f.name}: expected numbers separated by spaces, got {text!r}")
                v = default
        else:
            text = c.text_input(f.name, value="" if default is None else str(default), help=h, key=k)
            if optional and not text.strip():
                v = None
            elif tp is int:
                try:
                    v = int(text)
                except ValueError:
                    c.error(f"{f.name}: expected a whole number, got {text!r}")
                    v = default
            else:
                v = text
        if v != f.default:
            values[f.name] = list(v) if isinstance(v, tuple) else v
    return values
