"""Every typed settings class of the project (`seam.settings.Settings`): plain data round trip, one-line
errors naming the key, and help text on every field.

The classes are discovered, not listed: every module under seam/, db/, jobs/ and app/ that imports
`Settings` (found with `ast`) is imported, then `Settings`' subclasses are walked.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import typing
from pathlib import Path

import pytest

from seam.errors import SeamError
from seam.settings import Settings, base_type

ROOT = Path(__file__).resolve().parents[1]


def _declaring_modules() -> list[str]:
    """Modules that import `Settings` from seam.settings (so may declare settings classes)."""
    out = []
    for pkg in ("seam", "db", "jobs", "app"):
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if any(isinstance(node, ast.ImportFrom) and (node.module or "").endswith("settings")
                   and any(a.name == "Settings" for a in node.names) for node in ast.walk(tree)):
                parts = list(path.relative_to(ROOT).with_suffix("").parts)
                out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(out)


def _settings_classes() -> list[type]:
    for module in _declaring_modules():
        importlib.import_module(module)
    found, todo = {}, list(Settings.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        # the project's own classes, not the doctest's or a test's
        if cls.__module__.split(".")[0] in ("seam", "db", "jobs", "app") and cls.__module__ != "seam.settings":
            found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[k] for k in sorted(found)]


CLASSES = _settings_classes()
IDS = [c.__name__ for c in CLASSES]


def test_the_known_settings_classes_are_discovered():
    names = set(IDS)
    expected = {"ScoreConfig", "TrainCommon", "SFTConfig", "RMConfig", "PPOConfig", "ContrastConfig", "LLMConfig",
                "AdvConfig", "SelectConfig", "AugmentConfig", "EvalSettings", "ExperimentConfig",
                "FilterExperimentConfig", "AugmentExperimentConfig", "SweepConfig"}
    assert expected <= names, expected - names


def _other_value(cls: type, f: dataclasses.Field, current):
    """A value of the field's type that differs from `current` (for a round trip off the defaults)."""
    tp, optional = base_type(typing.get_type_hints(cls)[f.name])
    if isinstance(tp, type) and issubclass(tp, Settings):
        return _perturbed(tp)
    if typing.get_origin(tp) is tuple:
        item = (typing.get_args(tp) or (str,))[0]
        return {int: (3, 4), float: (0.25, 0.75)}.get(item, ("a", "b"))
    if tp is bool:
        return not current
    if tp is int:
        return (current or 0) + 3
    if tp is float:
        return (current or 0.0) + 0.125
    if tp is str:
        return f"{current or ''}x"
    if (typing.get_origin(tp) or tp) is dict:
        return {"steps": 3}
    return None if optional else current


def _perturbed(cls: type):
    base = cls()
    return dataclasses.replace(base, **{f.name: _other_value(cls, f, getattr(base, f.name))
                                        for f in dataclasses.fields(cls)})


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_round_trip_of_plain_data(cls):
    for cfg in (cls(), _perturbed(cls)):
        data = cfg.to_dict()
        assert cls.from_dict(data, validate=False) == cfg
        assert cls.from_dict(data, validate=False).to_dict() == data
    assert cls.defaults() == {k: v for k, v in cls().to_dict().items() if k in cls.defaults()}


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_an_unknown_key_is_one_line_naming_it(cls):
    with pytest.raises(SeamError) as err:
        cls.from_dict({"no_such_setting": 1})
    msg = str(err.value)
    assert "no_such_setting" in msg and "\n" not in msg


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_a_wrong_type_is_one_line_naming_the_key(cls):
    hints = typing.get_type_hints(cls)
    numeric = [f.name for f in dataclasses.fields(cls) if base_type(hints[f.name])[0] in (int, float, bool)]
    assert numeric, f"{cls.__name__} has no typed scalar field to check"
    for name in numeric:
        with pytest.raises(SeamError) as err:
            cls.from_dict({name: "not-a-number"})
        msg = str(err.value)
        assert name in msg and "not-a-number" in msg and "\n" not in msg


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_every_field_has_help_text(cls):
    helps = cls.field_help()
    assert set(helps) == {f.name for f in dataclasses.fields(cls)}
    empty = [k for k, v in helps.items() if not str(v).strip()]
    assert not empty, f"{cls.__name__}: no help for {', '.join(empty)}"


def test_nested_settings_are_checked_by_their_own_class():
    from seam.experiment import EvalSettings, FilterExperimentConfig

    cfg = FilterExperimentConfig.from_dict({"seeds": ["1", 2], "eval": {"n_prompts": "5"}})
    assert isinstance(cfg.eval, EvalSettings) and cfg.eval.n_prompts == 5 and cfg.seeds == (1, 2)
    assert cfg.to_dict()["eval"]["n_prompts"] == 5 and cfg.to_dict()["kind"] == "filter"
    with pytest.raises(SeamError, match=r"eval: unknown key\(s\) bogus"):
        FilterExperimentConfig.from_dict({"eval": {"bogus": 1}})
    with pytest.raises(SeamError, match="eval: max_new_tokens must be a int"):
        FilterExperimentConfig.from_dict({"eval": {"max_new_tokens": "many"}})
    with pytest.raises(SeamError, match="kind 'sweep' does not match"):
        FilterExperimentConfig.from_dict({"kind": "sweep"})
    with pytest.raises(SeamError, match="ppo must be a dict"):
        FilterExperimentConfig.from_dict({"ppo": [1, 2]})


def test_values_are_checked_after_types():
    from seam.negatives import ContrastConfig, LLMConfig

    assert ContrastConfig.from_dict({"band": [0.7, 0.95]}).band == (0.7, 0.95)
    with pytest.raises(SeamError, match="--band 0.9 0.8"):
        ContrastConfig.from_dict({"band": [0.9, 0.8]})
    with pytest.raises(SeamError, match="--backend 'gpt9'"):
        LLMConfig.from_dict({"backend": "gpt9"})


def test_mutable_defaults_are_not_shared():
    from seam.experiment import FilterExperimentConfig

    a, b = FilterExperimentConfig(), FilterExperimentConfig()
    a.ppo["steps"] = 3
    a.eval.n_prompts = 1
    assert b.ppo == {} and b.eval.n_prompts == 40
    d = a.to_dict()
    d["ppo"]["steps"] = 4
    assert a.ppo == {"steps": 3}


def test_the_train_configs_use_the_generic_loader():
    import seam.train.config as train_config

    for name in ("_f", "_field_types", "_base_type", "coerce", "load_yaml", "load_config", "add_config_flags",
                 "config_from_args"):
        assert not hasattr(train_config, name), name


def test_forms_checked_reports_at_the_button():
    from app import forms
    from seam.negatives import LLMConfig

    cfg, error = forms.checked(LLMConfig, {"k": 2, "backend": "rules"})
    assert error is None and cfg == LLMConfig(k=2, backend="rules")
    cfg, error = forms.checked(LLMConfig, {"k": "two"}, where="llm settings")
    assert cfg is None and error.startswith("llm settings: k must be a int")
    assert forms.field_help(LLMConfig) == LLMConfig.field_help()
