"""Typed corruptions: worse responses of a known kind, built from a task's golden response.

Value kinds change what is stated (wrong_value, off_by_one, hedge); content kinds replace or cut
the answer (refusal, irrelevant, truncated); form kinds keep the right answer but spoil the form
(verbose_padding, grammar_errors). `corrupt` checks every result with the gold judge and redraws
until it is judged worse than the golden response in the way its kind promises.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from ..errors import SeamError
from .categories import REGISTRY, Category, pick
from .gold_judge import judge_explain
from .tables import IRRELEVANT, PADDING, REFUSALS
from .task import Task
from .text import find_last

_Kind = Callable[[Category, Task, np.random.Generator], str]
_HEDGES = ("{a} or possibly {b}", "either {a} or {b}", "{a}, or maybe {b}")


def _wrong_value(cat: Category, task: Task, rng) -> str:
    return cat.render(task.params, cat.wrong_value(task, rng))


def _off_by_one(cat: Category, task: Task, rng) -> str:
    return cat.render(task.params, cat.near_miss(task, rng))


def _hedge(cat: Category, task: Task, rng) -> str:
    other = cat.near_miss(task, rng) if rng.random() < 0.6 else cat.wrong_value(task, rng)
    a, b = (task.answer, other) if rng.random() < 0.5 else (other, task.answer)
    return cat.render(task.params, pick(rng, _HEDGES).format(a=a, b=b))


def _refusal(cat, task, rng) -> str:
    return pick(rng, REFUSALS)


def _irrelevant(cat, task, rng) -> str:
    return pick(rng, IRRELEVANT)


def _truncated(cat, task, rng) -> str:
    """The golden response cut off before it states the answer."""
    pos = find_last(task.golden, task.answer)
    words = task.golden[: pos if pos > 0 else len(task.golden)].split()
    if pos <= 0 or len(words) < 2:
        words = task.golden.split()[: max(2, len(task.golden.split()) // 2)]
    lo = max(2, (len(words) + 1) // 2)
    keep = int(rng.integers(lo, len(words) + 1)) if len(words) >= lo else len(words)
    return " ".join(words[:keep]).rstrip(" ,'\"")


def _verbose_padding(cat, task, rng) -> str:
    """The golden response wrapped in filler written in the category's own style.

    Each category has its own filler, so an RM that learned to penalise padding in one category
    is not handed the same sentences in another (it can still transfer "longer is worse").
    """
    prefixes, suffixes = PADDING[task.category]
    before = [str(s) for s in rng.choice(prefixes, size=int(rng.integers(1, 3)), replace=False)]
    after = [str(s) for s in rng.choice(suffixes, size=int(rng.integers(1, 3)), replace=False)]
    return " ".join(before + [task.golden] + after)


# ---------------------------------------------------------------- grammar errors

_AGREEMENT = {"is": "are", "are": "is", "appears": "appear", "contains": "contain", "equals": "equal"}
_ANSWER_SAFE = re.compile(r"^[A-Za-z]+$")


def _double_word(text: str, rng, answer: str) -> str | None:
    words = text.split(" ")
    banned = set(answer.lower().split())
    spots = [i for i, w in enumerate(words) if _ANSWER_SAFE.match(w) and w.lower() not in banned]
    if not spots:
        return None
    i = int(pick(rng, spots))
    return " ".join(words[: i + 1] + [words[i].lower()] + words[i + 1:])


def _agreement(text: str, rng, answer: str) -> str | None:
    words = text.split(" ")
    spots = [i for i, w in enumerate(words) if w in _AGREEMENT]
    if not spots:
        return None
    i = int(pick(rng, spots))
    words[i] = _AGREEMENT[words[i]]
    return " ".join(words)


def _article(text: str, rng, answer: str) -> str | None:
    m = re.search(r"\b(an|a|A|An)\b(?= )", text)
    if not m:
        return None
    swap = {"a": "an", "an": "a", "A": "An", "An": "A"}[m.group(1)]
    return text[: m.start()] + swap + text[m.end():]


def _grammar_errors(cat, task, rng) -> str:
    """Word-level grammar errors: an agreement or article error (where the sentence allows one)
    plus a doubled word, which the judge always detects. Punctuation and capitals are left alone,
    so these responses share no surface cue with truncated ones."""
    text = task.golden
    first = [f for f in (_agreement, _article) if f(text, rng, task.answer) is not None]
    if first:
        text = pick(rng, first)(text, rng, task.answer)
    return _double_word(text, rng, task.answer)


# kind -> (builder, promise about the judge's reading of the result)
_KINDS: dict[str, tuple[_Kind, str]] = {
    "wrong_value": (_wrong_value, "wrong"),
    "off_by_one": (_off_by_one, "wrong"),
    "irrelevant": (_irrelevant, "none"),
    "refusal": (_refusal, "none"),
    "truncated": (_truncated, "not_correct"),
    "verbose_padding": (_verbose_padding, "correct"),
    "grammar_errors": (_grammar_errors, "correct"),
    "hedge": (_hedge, "wrong"),
}
CORRUPTIONS: tuple[str, ...] = tuple(_KINDS)
# Kinds that keep the right answer and only spoil the form.
FORM_KINDS: tuple[str, ...] = tuple(k for k, (_, promise) in _KINDS.items() if promise == "correct")


def _kept_promise(result: dict, promise: str) -> bool:
    if promise == "not_correct":
        return not result["correct"]
    return result["status"] == promise


def corrupt(task: Task, kind: str, rng: np.random.Generator, tries: int = 30) -> str:
    """A worse response to `task` of corruption type `kind`, always judged below the golden one.

    >>> import numpy as np
    >>> from seam.testbed import WorldConfig, generate_tasks
    >>> t = generate_tasks(WorldConfig(n_tasks=7))[0]
    >>> corrupt(t, "refusal", np.random.default_rng(0)) != t.golden
    True
    """
    if kind not in _KINDS:
        raise SeamError(f"unknown corruption kind {kind!r}; expected one of {', '.join(CORRUPTIONS)}")
    if task.category not in REGISTRY:
        raise SeamError(f"task {task.id!r} has unknown category {task.category!r}; expected one of {', '.join(REGISTRY)}")
    build, promise = _KINDS[kind]
    cat = REGISTRY[task.category]
    gold = judge_explain(task, task.golden)["score"]
    for _ in range(tries):
        text = build(cat, task, rng)
        result = judge_explain(task, text)
        if text != task.golden and result["score"] < gold and _kept_promise(result, promise):
            return text
    raise RuntimeError(f"corruption {kind!r} of task {task.id!r} kept failing the judge check (last: {text!r})")
