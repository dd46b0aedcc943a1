"""Generating the world's tasks, splitting them, and turning them into instruction rows."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import SeamError
from .categories import CATEGORIES, REGISTRY
from .tables import FRAMINGS
from .task import Task

SPLITS: tuple[str, ...] = ("rm_train", "rm_test", "sft", "rl")
SOURCE = "seam.testbed"


@dataclass
class WorldConfig:
    """How many tasks of which categories to generate; the same config always gives the same tasks."""

    seed: int = field(default=0, metadata={"help": "random seed; the same seed gives the same world"})
    n_tasks: int = field(default=600, metadata={"help": "total number of tasks, shared out over the categories"})
    categories: tuple[str, ...] = field(default=CATEGORIES, metadata={"help": "categories to include"})
    weights: tuple[float, ...] | None = field(
        default=None, metadata={"help": "relative share of each category (same order); None = equal shares"})
    number_max: int = field(default=99, metadata={"help": "largest operand in arithmetic and sorting"})
    sort_len: tuple[int, int] = field(default=(3, 6), metadata={"help": "min and max list length for sorting"})

    def __post_init__(self):
        self.categories = tuple(self.categories)
        unknown = [c for c in self.categories if c not in REGISTRY]
        if unknown or not self.categories:
            raise SeamError(f"categories {list(self.categories)!r} invalid: use one or more of {', '.join(CATEGORIES)}")
        if len(set(self.categories)) != len(self.categories):
            raise SeamError(f"categories {list(self.categories)!r} repeat a name; list each category once")
        if int(self.n_tasks) < 1:
            raise SeamError(f"n_tasks={self.n_tasks} must be at least 1")
        if self.weights is not None:
            self.weights = tuple(float(w) for w in self.weights)
            if len(self.weights) != len(self.categories) or min(self.weights) < 0 or sum(self.weights) <= 0:
                raise SeamError(
                    f"weights {list(self.weights)!r} invalid: give one non-negative weight per category "
                    f"({len(self.categories)}), not all zero")
        if int(self.number_max) < 10:
            raise SeamError(f"number_max={self.number_max} is too small; use 10 or more")
        if len(tuple(self.sort_len)) != 2:
            raise SeamError(f"sort_len={self.sort_len!r} invalid; give two numbers (min, max)")
        self.sort_len = lo, hi = tuple(int(x) for x in self.sort_len)
        if not 3 <= lo <= hi <= 10:
            raise SeamError(f"sort_len={tuple(self.sort_len)!r} invalid; use (min, max) with 3 <= min <= max <= 10")


def _shares(total: int, weights: list[float]) -> list[int]:
    """Integer shares of `total` proportional to `weights` (largest remainder)."""
    w = np.asarray(weights, dtype=float)
    raw = total * w / w.sum()
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: total - out.sum()]:
        out[i] += 1
    return [int(x) for x in out]


def _stable_seed(*parts) -> list[int]:
    return [int(p) % 2**63 if isinstance(p, (int, np.integer)) else zlib.crc32(str(p).encode()) for p in parts]


class _Source:
    """Unique tasks of one category, in a fixed order for a given seed."""

    def __init__(self, name: str, cfg: WorldConfig):
        self.cat = REGISTRY[name]
        self.rng = np.random.default_rng(_stable_seed(cfg.seed, name))
        self.stream = self.cat.stream(self.rng, cfg)
        self.seen: set[str] = set()
        self.tasks: list[Task] = []
        self.exhausted = False

    def pull(self, max_misses: int = 5000) -> bool:
        misses = 0
        for params in self.stream:
            key = self.cat.key(params)
            if key in self.seen:
                misses += 1
                if misses >= max_misses:
                    break
                continue
            self.seen.add(key)
            params = dict(params, frame=int(self.rng.integers(len(FRAMINGS))))
            question, answer, golden = self.cat.build(params)
            prompt = f"{question} {FRAMINGS[params['frame']]}"
            self.tasks.append(Task(f"{self.cat.name}-{len(self.tasks):04d}", self.cat.name, prompt, answer, golden, params))
            return True
        self.exhausted = True
        return False


def generate_tasks(cfg: WorldConfig) -> list[Task]:
    """`cfg.n_tasks` tasks with unique ids and prompts, shared out over `cfg.categories`.

    Each category draws from its own seeded stream, so a category's first k tasks do not depend
    on `n_tasks` or on the other categories. A category that runs out of distinct tasks (facts,
    spelling) hands its remaining share to the others.
    """
    weights = list(cfg.weights) if cfg.weights is not None else [1.0] * len(cfg.categories)
    sources = [_Source(name, cfg) for name in cfg.categories]
    for src, share in zip(sources, _shares(int(cfg.n_tasks), weights)):
        while len(src.tasks) < share and src.pull():
            pass
    missing = int(cfg.n_tasks) - sum(len(s.tasks) for s in sources)
    while missing > 0:
        open_ = [s for s, w in zip(sources, weights) if not s.exhausted and w > 0]
        if not open_:
            have = sum(len(s.tasks) for s in sources)
            raise SeamError(f"n_tasks={cfg.n_tasks} is more than these categories can make ({have} distinct tasks); "
                            "lower n_tasks or add categories")
        for src in open_:
            if missing and src.pull():
                missing -= 1
    tasks = [t for s in sources for t in s.tasks]
    order = np.random.default_rng(_stable_seed(cfg.seed, "order", len(tasks))).permutation(len(tasks))
    return [tasks[int(i)] for i in order]


def split(tasks: list[Task], fractions: tuple[float, ...] = (0.4, 0.1, 0.2, 0.3), seed: int = 0) -> dict[str, list[Task]]:
    """Disjoint splits `rm_train`, `rm_test`, `sft`, `rl` in the given fractions, stratified by category."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != len(SPLITS) or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise SeamError(f"fractions {list(fractions)!r} invalid: give {len(SPLITS)} non-negative numbers "
                        f"for {', '.join(SPLITS)} that add up to 1")
    out: dict[str, list[Task]] = {name: [] for name in SPLITS}
    by_cat: dict[str, list[Task]] = {}
    for t in sorted(tasks, key=lambda t: t.id):
        by_cat.setdefault(t.category, []).append(t)
    for cat, group in sorted(by_cat.items()):
        perm = np.random.default_rng(_stable_seed(seed, "split", cat)).permutation(len(group))
        start = 0
        for name, n in zip(SPLITS, _shares(len(group), list(fractions))):
            out[name].extend(group[int(i)] for i in perm[start:start + n])
            start += n
    return out


def task_index(tasks: list[Task]) -> dict[str, Task]:
    """Tasks by id (raises SeamError on a repeated id)."""
    index: dict[str, Task] = {}
    for t in tasks:
        if t.id in index:
            raise SeamError(f"task id {t.id!r} appears twice; ids must be unique")
        index[t.id] = t
    return index


def _meta(t: Task) -> dict:
    return {"category": t.category, "answer": t.answer, "params": t.params, "source": SOURCE}


def instructions_rows(tasks: list[Task]) -> list[dict]:
    """The RL set in the instructions contract: {"id", "prompt", "chosen" (golden), "meta"}."""
    return [{"id": t.id, "prompt": t.prompt, "chosen": t.golden, "meta": _meta(t)} for t in tasks]


def sft_rows(tasks: list[Task]) -> list[dict]:
    """Prompt/golden rows for supervised fine-tuning of the policy model."""
    return [{"id": t.id, "prompt": t.prompt, "chosen": t.golden, "meta": _meta(t)} for t in tasks]


def task_from_row(row: dict) -> Task:
    """Rebuild a Task from an instructions row written by `instructions_rows` (e.g. read back from JSONL)."""
    meta = row.get("meta") if isinstance(row, dict) else None
    rid = row.get("id") if isinstance(row, dict) else None
    if not isinstance(meta, dict) or not {"category", "answer", "params"} <= set(meta):
        raise SeamError(f"row {rid!r} has no testbed meta (needs meta.category, meta.answer, meta.params); "
                        "use rows written by seam.testbed.instructions_rows")
    if meta["category"] not in REGISTRY:
        raise SeamError(f"row {rid!r}: unknown category {meta['category']!r}; expected one of {', '.join(CATEGORIES)}")
    missing = [k for k in ("id", "prompt", "chosen") if not isinstance(row.get(k), str)]
    if missing:
        raise SeamError(f"row {rid!r} lacks text field(s) {', '.join(missing)}")
    return Task(row["id"], meta["category"], row["prompt"], str(meta["answer"]), row["chosen"], dict(meta["params"]))
