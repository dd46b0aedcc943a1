"""Which corruption types the reward model sees in training, and the rows built from them.

`Coverage` maps each category to the corruption kinds used for RM preference pairs. Kinds left
out are the RM's *known blind spots*: the gold judge still ranks those responses below the golden
one, but the RM was never shown that they are worse. See docs/testbed.md for the default.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import SeamError
from .categories import CATEGORIES
from .corruptions import CORRUPTIONS, FORM_KINDS, corrupt
from .task import Task

# The default (see docs/testbed.md): grammar_errors is never shown (a global blind spot); four
# categories each miss two or three more kinds; comparison, spelling and sorting are controls.
DEFAULT_COVERAGE_SPEC = (
    "arithmetic=all,-off_by_one,-verbose_padding,-grammar_errors;"
    "unit_conversion=all,-off_by_one,-hedge,-grammar_errors;"
    "counting=all,-verbose_padding,-hedge,-grammar_errors;"
    "facts=all,-off_by_one,-hedge,-grammar_errors;"
    "*=all,-grammar_errors"
)


def _parse(spec: str) -> dict[str, tuple[str, ...]]:
    text = "".join(str(spec).split())
    shortcuts = {"default": DEFAULT_COVERAGE_SPEC, "all": "*=all", "none": "*=none"}
    if text.lower() in shortcuts:
        text = shortcuts[text.lower()]
    if not text:
        raise SeamError("coverage spec is empty; use e.g. 'arithmetic=wrong_value,refusal;*=all' or 'default'")
    explicit: dict[str, tuple[str, ...]] = {}
    star: tuple[str, ...] | None = None
    for entry in filter(None, text.split(";")):
        if entry.count("=") != 1:
            raise SeamError(f"coverage spec entry {entry!r} must look like CATEGORY[,CATEGORY]=KIND[,KIND] "
                            "(KIND may be all, none or -KIND)")
        cats_text, kinds_text = entry.split("=")
        kinds = _parse_kinds(entry, kinds_text)
        for cat in filter(None, cats_text.split(",")):
            if cat == "*":
                if star is not None:
                    raise SeamError(f"coverage spec gives '*' twice (in {entry!r}); give it once")
                star = kinds
            elif cat not in CATEGORIES:
                raise SeamError(f"coverage spec entry {entry!r}: unknown category {cat!r}; "
                                f"expected one of {', '.join(CATEGORIES)} or *")
            elif cat in explicit:
                raise SeamError(f"coverage spec gives category {cat!r} twice; give each category once")
            else:
                explicit[cat] = kinds
    return {cat: explicit.get(cat, star or ()) for cat in CATEGORIES}


def _parse_kinds(entry: str, text: str) -> tuple[str, ...]:
    chosen: list[str] = []
    for item in text.split(","):
        name = item.lstrip("-")
        if item in ("all", "none"):
            chosen = list(CORRUPTIONS) if item == "all" else []
        elif name not in CORRUPTIONS:
            raise SeamError(f"coverage spec entry {entry!r}: unknown corruption kind {name!r}; "
                            f"expected all, none, or one of {', '.join(CORRUPTIONS)} (prefix - to leave one out)")
        elif item.startswith("-"):
            chosen = [k for k in chosen if k != name]
        elif name not in chosen:
            chosen.append(name)
    return tuple(k for k in CORRUPTIONS if k in chosen)


@dataclass(frozen=True)
class Coverage(Mapping):
    """category -> corruption kinds used in RM preference pairs (every category present, maybe empty).

    >>> c = Coverage.from_spec("arithmetic=wrong_value,refusal;*=all,-grammar_errors")
    >>> c["arithmetic"]
    ('wrong_value', 'refusal')
    >>> "grammar_errors" in c["facts"]
    False
    """

    kinds: dict = field(default_factory=lambda: _parse(DEFAULT_COVERAGE_SPEC))

    def __post_init__(self):
        kinds = {}
        for cat, ks in dict(self.kinds).items():
            if cat not in CATEGORIES:
                raise SeamError(f"coverage names unknown category {cat!r}; expected one of {', '.join(CATEGORIES)}")
            bad = [k for k in ks if k not in CORRUPTIONS]
            if bad:
                raise SeamError(f"coverage for {cat!r} names unknown kind(s) {bad}; expected {', '.join(CORRUPTIONS)}")
            kinds[cat] = tuple(k for k in CORRUPTIONS if k in ks)
        object.__setattr__(self, "kinds", {cat: kinds.get(cat, ()) for cat in CATEGORIES})

    @classmethod
    def from_spec(cls, spec: str) -> "Coverage":
        """Parse 'cat[,cat]=kind,kind;...;*=all,-kind'. Shortcuts: 'default', 'all', 'none'.

        Categories not named take the '*' entry (no '*': none). Unknown names raise SeamError.
        """
        return cls(_parse(spec))

    @classmethod
    def default(cls) -> "Coverage":
        return cls()

    def __getitem__(self, category: str) -> tuple[str, ...]:
        return self.kinds[category]

    def __iter__(self):
        return iter(self.kinds)

    def __len__(self) -> int:
        return len(self.kinds)

    def blind_spots(self) -> dict[str, tuple[str, ...]]:
        """category -> corruption kinds the RM never sees there."""
        return {cat: tuple(k for k in CORRUPTIONS if k not in ks) for cat, ks in self.kinds.items()}

    def to_spec(self) -> str:
        """A spec string that `from_spec` parses back to this coverage."""
        def one(ks):
            if set(ks) == set(CORRUPTIONS):
                return "all"
            return ",".join(ks) if ks else "none"
        return ";".join(f"{cat}={one(ks)}" for cat, ks in self.kinds.items())


def _task_rng(seed: int, task_id: str, salt: str) -> np.random.Generator:
    return np.random.default_rng([int(seed) % 2**63, zlib.crc32(task_id.encode()), zlib.crc32(salt.encode())])


def preference_pairs(tasks: list[Task], coverage: Coverage, pairs_per_task: int = 2, seed: int = 0,
                     chosen_flaw_rate: float = 0.0) -> list[dict]:
    """RM training pairs (golden chosen, corrupted rejected) using only the covered kinds.

    Each task gets `pairs_per_task` pairs with distinct kinds drawn from its category's coverage
    (kinds repeat only when more pairs than kinds are asked for); categories with no covered kind
    give no pairs. Rows follow the instructions contract:
    {"id", "prompt", "chosen", "rejected", "meta": {"category", "corruption", "task_id", ...}}.

    `chosen_flaw_rate` (default 0): in this share of the pairs whose rejected response is wrong
    (not a form kind), the chosen response carries one of the category's *uncovered* form flaws
    (verbose_padding, grammar_errors) instead of being the golden one. Such a pair still agrees
    with the gold judge (correct-but-flawed beats wrong), as real preference data does, but it
    teaches the RM that the flaw is harmless there, which turns a passive blind spot into one
    where the RM prefers the flawed response (`meta.chosen_flaw` names the flaw, else None).
    """
    if int(pairs_per_task) < 1:
        raise SeamError(f"pairs_per_task={pairs_per_task} must be at least 1")
    if not 0.0 <= float(chosen_flaw_rate) <= 1.0:
        raise SeamError(f"chosen_flaw_rate={chosen_flaw_rate} must be between 0 and 1")
    if not isinstance(coverage, Coverage):
        coverage = Coverage(dict(coverage))
    rows = []
    for task in tasks:
        kinds = coverage.get(task.category, ())
        if not kinds:
            continue
        rng = _task_rng(seed, task.id, "pairs")
        flaw_rng = _task_rng(seed, task.id, "flaws")
        flaws = [k for k in FORM_KINDS if k not in kinds]
        order = [kinds[int(i)] for _ in range(-(-int(pairs_per_task) // len(kinds))) for i in rng.permutation(len(kinds))]
        seen: set[str] = set()
        for kind in order[: int(pairs_per_task)]:
            rejected = corrupt(task, kind, rng)
            if rejected in seen:
                continue
            seen.add(rejected)
            chosen, flaw = task.golden, None
            if flaws and kind not in FORM_KINDS and chosen_flaw_rate > 0 and flaw_rng.random() < chosen_flaw_rate:
                flaw = flaws[int(flaw_rng.integers(len(flaws)))]
                chosen = corrupt(task, flaw, flaw_rng)
            rows.append({
                "id": f"{task.id}-p{len(seen) - 1}",
                "prompt": task.prompt,
                "chosen": chosen,
                "rejected": rejected,
                "meta": {"category": task.category, "corruption": kind, "task_id": task.id,
                         "answer": task.answer, "chosen_flaw": flaw},
            })
    return rows


def negatives_rows(tasks: list[Task], kinds: tuple[str, ...] | None = None, per_kind: int = 1, seed: int = 0,
                   variant: str = "testbed") -> list[dict]:
    """Negatives-contract rows {"id", "variant", "text", "meta": {"corruption", "category"}} of the given kinds.

    Useful as a known-truth negative source for SEAM on the demo world (every row is judged worse
    than the golden response by the gold judge).
    """
    kinds = tuple(CORRUPTIONS if kinds is None else kinds)
    bad = [k for k in kinds if k not in CORRUPTIONS]
    if bad or not kinds:
        raise SeamError(f"kinds {list(kinds)!r} invalid; use one or more of {', '.join(CORRUPTIONS)}")
    if int(per_kind) < 1:
        raise SeamError(f"per_kind={per_kind} must be at least 1")
    rows = []
    for task in tasks:
        rng = _task_rng(seed, task.id, "negatives")
        seen: set[str] = set()
        for kind in kinds:
            for _ in range(int(per_kind)):
                text = corrupt(task, kind, rng)
                if text in seen:
                    continue
                seen.add(text)
                rows.append({"id": task.id, "variant": variant, "text": text,
                             "meta": {"corruption": kind, "category": task.category}})
    return rows
