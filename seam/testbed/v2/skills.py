"""World v2: skills (category x sub-type), their tasks, and the two hidden assignments.

A *skill* is one kind of instruction, e.g. ``arithmetic/addition`` or ``unit_conversion/time_to_larger``.
Its tasks are built by the existing categories (so the gold judge, the renderers and the
corruptions of `seam.testbed` apply unchanged); each task carries its skill in ``params["skill"]``.

Two hidden assignments are drawn from the world seed before anything is trained or scored:

* ``blind``: the skills where the reward model (RM) is planted blind to surface flaws (half of them,
  half of each category's skills);
* ``prone``: the skills where the policy model (PM) is prone to a flaw (half of them), drawn from its
  own random stream as half of the blind skills plus half of the covered ones (a balanced 2 x 2
  design: the two assignments are uncorrelated by construction and exactly a quarter of the skills,
  rounded, are both blind and prone: the truly harmful ones for RL);
* ``flaw_kind``: for every skill, the surface flaw the PM is prone to there (used only if prone).

    >>> w = build_world(WorldV2Config(seed=0, tasks_per_skill=4))
    >>> len(w.skills) >= 30, len(w.blind) == len(w.skills) // 2
    (True, True)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ...errors import SeamError
from ..categories import REGISTRY
from ..tables import FRAMINGS, UNITS
from ..task import Task
from ..world import WorldConfig
from .flaws import applicable_kinds

SOURCE = "seam.testbed.v2"
SPLITS: tuple[str, ...] = ("rm_train", "rm_test", "sft", "rl")

_Params = Iterator[dict]
_Maker = Callable[[np.random.Generator], _Params]


def stable_rng(*parts) -> np.random.Generator:
    """A generator seeded by ints and strings (strings through crc32), stable across runs and machines."""
    return np.random.default_rng(
        [int(p) % 2**63 if isinstance(p, (int, np.integer)) else zlib.crc32(str(p).encode()) for p in parts])


# ---------------------------------------------------------------- parameter streams

def _stream(category: str, keep: Callable[[dict], bool], **cfg) -> _Maker:
    """The category's own seeded stream, filtered to one sub-type."""
    world_cfg = WorldConfig(**cfg)

    def make(rng):
        return (p for p in REGISTRY[category].stream(rng, world_cfg) if keep(p))
    return make


def _multiplication_large(rng) -> _Params:
    while True:  # a two-digit number times a one-digit number (a sub-type the v1 stream does not make)
        yield {"op": "mul", "a": int(rng.integers(13, 100)), "b": int(rng.integers(3, 10)), "q": int(rng.integers(3))}


_FAMILIES = {
    "length": {"meters", "centimeters", "kilometers", "millimeters", "feet", "inches", "yards"},
    "time": {"hours", "minutes", "seconds", "days", "weeks", "years", "months", "decades", "centuries"},
    "measure": {"kilograms", "grams", "liters", "milliliters", "dollars", "cents", "gallons", "quarts"},
}
assert all(any(a in f and b in f for f in _FAMILIES.values()) for a, b, _ in UNITS), "a unit pair has no family"


def _units(family: str, to_smaller: bool) -> _Maker:
    units = _FAMILIES[family]
    return _stream("unit_conversion", lambda p: p["unit_in"] in units and p["multiply"] == to_smaller)


_CALENDAR = ("month_after", "month_before", "month_position", "day_after", "day_before")
_NATURE = ("planet_position", "planet_after", "young_animal")


def _facts(*relations: str) -> _Maker:
    return _stream("facts", lambda p: p["relation"] in relations)


def _is_decimal(p: dict) -> bool:
    return "." in p["options"][0]


# skill -> (category, parameter stream). Sub-types come from the categories' own parameters
# (operation, direction, unit family, mode, order, relation); the `_large` arithmetic skills use
# three-digit operands (or a two-digit factor) to add sub-types the v1 stream does not make.
SKILL_TABLE: dict[str, tuple[str, _Maker]] = {
    "arithmetic/addition": ("arithmetic", _stream("arithmetic", lambda p: p["op"] == "add")),
    "arithmetic/subtraction": ("arithmetic", _stream("arithmetic", lambda p: p["op"] == "sub")),
    "arithmetic/multiplication": ("arithmetic", _stream("arithmetic", lambda p: p["op"] == "mul")),
    "arithmetic/addition_large": ("arithmetic", _stream(
        "arithmetic", lambda p: p["op"] == "add" and min(p["a"], p["b"]) >= 100, number_max=999)),
    "arithmetic/subtraction_large": ("arithmetic", _stream(
        "arithmetic", lambda p: p["op"] == "sub" and p["b"] >= 100, number_max=999)),
    "arithmetic/multiplication_large": ("arithmetic", _multiplication_large),
    "comparison/larger_integer": ("comparison", _stream(
        "comparison", lambda p: p["direction"] == "larger" and not _is_decimal(p))),
    "comparison/smaller_integer": ("comparison", _stream(
        "comparison", lambda p: p["direction"] == "smaller" and not _is_decimal(p))),
    "comparison/larger_decimal": ("comparison", _stream(
        "comparison", lambda p: p["direction"] == "larger" and _is_decimal(p))),
    "comparison/smaller_decimal": ("comparison", _stream(
        "comparison", lambda p: p["direction"] == "smaller" and _is_decimal(p))),
    "unit_conversion/length_to_smaller": ("unit_conversion", _units("length", True)),
    "unit_conversion/length_to_larger": ("unit_conversion", _units("length", False)),
    "unit_conversion/time_to_smaller": ("unit_conversion", _units("time", True)),
    "unit_conversion/time_to_larger": ("unit_conversion", _units("time", False)),
    "unit_conversion/measure_to_smaller": ("unit_conversion", _units("measure", True)),
    "unit_conversion/measure_to_larger": ("unit_conversion", _units("measure", False)),
    "counting/letter": ("counting", _stream("counting", lambda p: p["mode"] == "letter")),
    "counting/vowels": ("counting", _stream("counting", lambda p: p["mode"] == "vowels")),
    "counting/list_length": ("counting", _stream("counting", lambda p: p["mode"] == "items")),
    "counting/of_a_kind": ("counting", _stream("counting", lambda p: p["mode"] == "kind")),
    "spelling/backwards": ("spelling", _stream("spelling", lambda p: p["mode"] == "backwards")),
    "spelling/hyphens": ("spelling", _stream("spelling", lambda p: p["mode"] == "hyphens")),
    "sorting/ascending": ("sorting", _stream("sorting", lambda p: p["order"] == "ascending")),
    "sorting/descending": ("sorting", _stream("sorting", lambda p: p["order"] == "descending")),
    "sorting/alphabetical": ("sorting", _stream("sorting", lambda p: p["order"] == "alphabetical")),
    "facts/capital": ("facts", _facts("capital")),
    "facts/country_of_capital": ("facts", _facts("country_of_capital")),
    "facts/element_symbol": ("facts", _facts("element_symbol")),
    "facts/symbol_element": ("facts", _facts("symbol_element")),
    "facts/calendar": ("facts", _facts(*_CALENDAR)),
    "facts/opposite": ("facts", _facts("opposite")),
    "facts/nature": ("facts", _facts(*_NATURE)),
}
SKILLS: tuple[str, ...] = tuple(SKILL_TABLE)


def skill_category(skill: str) -> str:
    try:
        return SKILL_TABLE[skill][0]
    except KeyError:
        raise SeamError(f"unknown skill {skill!r}; expected one of {', '.join(SKILLS)}") from None


def skill_tasks(skill: str, n: int, seed: int, max_misses: int = 3000) -> list[Task]:
    """Up to `n` distinct tasks of `skill` (fewer when the skill runs out: the facts skills are finite).

    Each skill draws from its own stream seeded by (seed, skill), so its first k tasks do not depend
    on `n` or on the other skills."""
    category, make = SKILL_TABLE[skill]
    cat = REGISTRY[category]
    rng = stable_rng(seed, "v2-skill", skill)
    seen: set[str] = set()
    out: list[Task] = []
    misses = 0
    slug = skill.replace("/", "-")
    for params in make(rng):
        if len(out) >= n:
            break
        key = cat.key(params)
        if key in seen:
            misses += 1
            if misses >= max_misses:
                break
            continue
        seen.add(key)
        params = dict(params, frame=int(rng.integers(len(FRAMINGS))), skill=skill)
        question, answer, golden = cat.build(params)
        out.append(Task(f"{slug}-{len(out):04d}", category, f"{question} {FRAMINGS[params['frame']]}",
                        answer, golden, params))
    return out


def task_skill(task: Task) -> str:
    skill = task.params.get("skill")
    if skill not in SKILL_TABLE:
        raise SeamError(f"task {task.id!r} has no world-v2 skill (params.skill={skill!r}); build it with build_world")
    return skill


# ---------------------------------------------------------------- the world


@dataclass
class WorldV2Config:
    """The same config always gives the same world (tasks, splits and hidden assignments)."""

    seed: int = 0
    tasks_per_skill: int = 100  # finite skills (facts) give fewer: 28 to 50
    fractions: tuple[float, ...] = (0.4, 0.1, 0.2, 0.3)  # rm_train, rm_test, sft, rl (per skill)
    skills: tuple[str, ...] = SKILLS

    def __post_init__(self):
        self.skills = tuple(self.skills)
        self.fractions = tuple(float(f) for f in self.fractions)
        bad = [s for s in self.skills if s not in SKILL_TABLE]
        if bad or len(set(self.skills)) != len(self.skills) or len(self.skills) < 4:
            raise SeamError(f"skills {list(self.skills)!r} invalid: give 4 or more distinct names of {', '.join(SKILLS)}")
        if int(self.tasks_per_skill) < 1:
            raise SeamError(f"tasks_per_skill={self.tasks_per_skill} must be at least 1")
        if len(self.fractions) != len(SPLITS) or min(self.fractions) < 0 or abs(sum(self.fractions) - 1) > 1e-6:
            raise SeamError(f"fractions {list(self.fractions)!r} invalid: give {len(SPLITS)} non-negative numbers "
                            f"for {', '.join(SPLITS)} that add up to 1")


@dataclass
class World:
    config: WorldV2Config
    skills: tuple[str, ...]
    blind: frozenset  # skills where the RM is planted blind to surface flaws
    prone: frozenset  # skills where the PM is prone to its skill's flaw kind
    flaw_kind: dict  # skill -> the surface flaw kind the PM is prone to there
    tasks: list = field(default_factory=list)
    splits: dict = field(default_factory=dict)  # split name -> list[Task]

    @property
    def seed(self) -> int:
        return int(self.config.seed)

    @property
    def harmful(self) -> frozenset:
        """Skills both blind and prone: RL on them rewards the PM's own flaw."""
        return self.blind & self.prone

    def truth(self) -> dict:
        """The hidden assignments as plain data (for reports; never hand this to a negatives generator)."""
        return {"seed": self.seed, "blind": sorted(self.blind), "prone": sorted(self.prone),
                "harmful": sorted(self.harmful), "flaw_kind": dict(self.flaw_kind)}


# Skills whose prompts use the same words (a size variant, a direction, or an inverse relation over the
# same entities). Measured in iterations 1-5 (docs/world-v2.md): a small RM cannot tell such twins
# apart, so a covered skill with a blind twin leaked the blindness (fooled 0.23 vs 0.05). The hidden
# assignments are therefore drawn per twin group: twins are blind (and prone) together.
TWINS: tuple[tuple[str, ...], ...] = (
    ("arithmetic/addition", "arithmetic/addition_large"),
    ("arithmetic/subtraction", "arithmetic/subtraction_large"),
    ("arithmetic/multiplication", "arithmetic/multiplication_large"),
    ("comparison/larger_integer", "comparison/smaller_integer"),
    ("comparison/larger_decimal", "comparison/smaller_decimal"),
    ("unit_conversion/length_to_smaller", "unit_conversion/length_to_larger"),
    ("unit_conversion/time_to_smaller", "unit_conversion/time_to_larger"),
    ("unit_conversion/measure_to_smaller", "unit_conversion/measure_to_larger"),
    ("sorting/ascending", "sorting/descending"),
    ("facts/capital", "facts/country_of_capital"),
    ("facts/element_symbol", "facts/symbol_element"),
)


def skill_groups(skills: tuple[str, ...]) -> list[tuple[str, ...]]:
    """`skills` as twin groups (TWINS restricted to `skills`; every other skill alone), in skill order."""
    twin_of = {s: g for g in TWINS for s in g}
    out: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for s in skills:
        if s in seen:
            continue
        group = tuple(x for x in twin_of.get(s, (s,)) if x in skills)
        seen.update(group)
        out.append(group)
    return out


def _half_of(groups: list[tuple[str, ...]], rng: np.random.Generator, stratify: bool) -> set[str]:
    """About half of the skills of `groups`, whole groups at a time, in random order; with `stratify`,
    each category with two or more groups gets at least one group in and one out."""
    groups = [groups[int(i)] for i in rng.permutation(len(groups))]
    total = sum(len(g) for g in groups)
    chosen: set[str] = set()
    if stratify:
        by_cat: dict[str, list[tuple[str, ...]]] = {}
        for g in groups:
            by_cat.setdefault(g[0].split("/")[0], []).append(g)
        rest = []
        for cat_groups in by_cat.values():
            if len(cat_groups) >= 2:  # one group in, one out, the rest decided below
                chosen.update(cat_groups[0])
                rest.extend(cat_groups[2:])
            else:
                rest.extend(cat_groups)
        groups = rest
    for g in groups:  # fill up to half (whole groups; stop at the group that comes closest)
        if abs(len(chosen) + len(g) - total / 2) < abs(len(chosen) - total / 2):
            chosen.update(g)
    return chosen


def assign(skills: tuple[str, ...], seed: int) -> tuple[frozenset, frozenset, dict]:
    """(blind, prone, flaw_kind) for `skills`, each from its own stream seeded by `seed`.

    Drawn per twin group (`TWINS`). blind: about half of the skills, stratified by category: every
    category with two or more groups has blind and covered ones, so the category alone does not tell
    where the RM is blind. prone: about half of the blind skills plus about half of the covered ones
    (so prone status carries no information about blind status and about a quarter of the skills are
    both)."""
    skills = tuple(skills)
    groups = skill_groups(skills)
    blind = frozenset(_half_of(groups, stable_rng(seed, "v2-blind"), stratify=True))
    rng = stable_rng(seed, "v2-prone")
    prone: set[str] = set()
    for side in ([g for g in groups if g[0] in blind], [g for g in groups if g[0] not in blind]):
        prone |= _half_of(side, rng, stratify=False)
    frng = stable_rng(seed, "v2-flaw-kind")
    flaw_kind = {}
    for s in skills:
        kinds = applicable_kinds(s, "surface")
        flaw_kind[s] = kinds[int(frng.integers(len(kinds)))]
    return blind, frozenset(prone), flaw_kind


def _shares(total: int, fractions: tuple[float, ...]) -> list[int]:
    raw = np.asarray(fractions) * total
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: total - out.sum()]:
        out[i] += 1
    return [int(x) for x in out]


def build_world(cfg: WorldV2Config | None = None) -> World:
    """Tasks of every skill, split per skill into rm_train / rm_test / sft / rl, plus the hidden assignments."""
    cfg = cfg or WorldV2Config()
    blind, prone, flaw_kind = assign(cfg.skills, cfg.seed)
    splits: dict[str, list[Task]] = {name: [] for name in SPLITS}
    tasks: list[Task] = []
    for skill in cfg.skills:
        group = skill_tasks(skill, int(cfg.tasks_per_skill), cfg.seed)
        if len(group) < len(SPLITS):
            raise SeamError(f"skill {skill!r} made only {len(group)} tasks; raise tasks_per_skill to {len(SPLITS)} or more")
        tasks.extend(group)
        perm = stable_rng(cfg.seed, "v2-split", skill).permutation(len(group))
        start = 0
        for name, n in zip(SPLITS, _shares(len(group), cfg.fractions)):
            splits[name].extend(group[int(i)] for i in perm[start:start + n])
            start += n
    return World(cfg, cfg.skills, blind, prone, flaw_kind, tasks, splits)


def task_meta(task: Task) -> dict:
    return {"category": task.category, "skill": task_skill(task), "answer": task.answer, "params": task.params,
            "source": SOURCE}


def instructions_rows(tasks: list[Task]) -> list[dict]:
    """Instructions-contract rows {"id", "prompt", "chosen" (golden), "meta": {category, skill, answer, params}}.

    No hidden assignment is in them; `seam.testbed.task_from_row` rebuilds the task for the judge."""
    return [{"id": t.id, "prompt": t.prompt, "chosen": t.golden, "meta": task_meta(t)} for t in tasks]
