"""Flaw kinds of world v2, grouped by what it takes to see them, each checked by the gold judge.

* ``surface`` (the plantable blind kinds): visible without computing anything: a hedge, padding in
  the category's words, grammar errors (from `seam.testbed.corruptions`), and two kinds added here:
  ``flattery`` (generic assistant filler around the golden answer) and ``terse`` (the bare answer,
  where the instruction asks for a sentence).
* ``copy``: ``operand_miscopy`` (added here: an operand or the word restated from the prompt, copied
  wrong). Meant as a surface kind, but the small RM could not see it at all (fooled 0.54 on covered
  and on blind skills alike after 3 epochs, docs/world-v2.md), so it is not planted: it is rejected
  everywhere, like the computation kinds, and reported apart.
* ``computation``: a wrong number or item that needs the task to be solved to be seen
  (``wrong_value``, ``off_by_one``); never planted, reported separately.
* ``content``: no answer at all (``refusal``, ``irrelevant``, ``truncated``); never planted.

`flaw(task, kind, rng)` returns a response of that kind judged worse than the golden one; the
existing kinds go through `seam.testbed.corrupt`, the new ones through the same judge check here.
A kind that cannot be built for a task raises `FlawNotApplicable`.
"""

from __future__ import annotations

import numpy as np

from ...errors import SeamError
from ..categories import REGISTRY, pick
from ..corruptions import CORRUPTIONS, corrupt
from ..gold_judge import judge_explain
from ..tables import PADDING_GENERIC
from ..task import Task

NEW_KINDS: tuple[str, ...] = ("operand_miscopy", "flattery", "terse")
GROUPS: dict[str, tuple[str, ...]] = {
    "surface": ("hedge", "verbose_padding", "grammar_errors", "flattery", "terse"),
    "copy": ("operand_miscopy",),
    "computation": ("wrong_value", "off_by_one"),
    "content": ("refusal", "irrelevant", "truncated"),
}
KINDS: tuple[str, ...] = tuple(k for ks in GROUPS.values() for k in ks)
GROUP_OF: dict[str, str] = {k: g for g, ks in GROUPS.items() for k in ks}
assert set(KINDS) == set(CORRUPTIONS) | set(NEW_KINDS), "every v1 corruption kind has a v2 group"

# Where a kind can be judged worse than the golden answer (checked on every task by the tests):
# the judge reads a miscopied operand as a second, wrong number, and a miscopied word as a wrong
# spelling only when the answer is a bare word (backwards); a miscopied subject of a fact, a letter,
# a unit or a hyphenated spelling goes unseen by the judge, so the kind is not used there. A bare
# sorted list is three words or more, which the judge does not count as a bare answer.
_ONLY_IN = {
    "operand_miscopy": ("arithmetic/", "unit_conversion/", "spelling/backwards"),
}
_NOT_IN = {"terse": ("sorting/",)}
_OPERANDS = {"arithmetic": ("a", "b"), "unit_conversion": ("value",), "spelling": ("word",)}


class FlawNotApplicable(SeamError):
    """No response of this kind is judged worse than the golden one for this task."""


def applicable_kinds(skill: str, group: str | None = None) -> tuple[str, ...]:
    """The flaw kinds used for `skill` (all groups, or one of surface / computation / content)."""
    if group is not None and group not in GROUPS:
        raise SeamError(f"unknown flaw group {group!r}; expected one of {', '.join(GROUPS)}")
    kinds = GROUPS[group] if group else KINDS
    out = []
    for k in kinds:
        if k in _ONLY_IN and not skill.startswith(_ONLY_IN[k]):
            continue
        if k in _NOT_IN and skill.startswith(_NOT_IN[k]):
            continue
        out.append(k)
    return tuple(out)


# ---------------------------------------------------------------- the new kinds

def _typo_number(x: int, rng) -> int:
    """A copying slip: two neighbouring digits swapped, or one digit one off."""
    s = str(int(x))
    options = []
    for i in range(len(s) - 1):
        if s[i] != s[i + 1]:
            options.append(s[:i] + s[i + 1] + s[i] + s[i + 2:])
    for i, ch in enumerate(s):
        for d in (int(ch) - 1, int(ch) + 1):
            if 0 <= d <= 9:
                options.append(s[:i] + str(d) + s[i + 1:])
    options = [o for o in options if not (len(o) > 1 and o[0] == "0") and o != "0" and o != s]
    return int(pick(rng, options))


def _typo_word(word: str, rng) -> str:
    spots = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
    i = int(pick(rng, spots))
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def _operand_miscopy(task: Task, rng) -> str:
    cat = REGISTRY[task.category]
    names = _OPERANDS.get(task.category)
    if not names:
        raise FlawNotApplicable(f"operand_miscopy: category {task.category!r} restates no operand")
    name = str(pick(rng, names))
    value = task.params[name]
    wrong = _typo_word(value, rng) if isinstance(value, str) else _typo_number(value, rng)
    return cat.render(dict(task.params, **{name: wrong}), task.answer)


def _flattery(task: Task, rng) -> str:
    openers, closers = PADDING_GENERIC
    shape = int(rng.integers(3))
    before = [pick(rng, openers)] if shape in (0, 2) else []
    after = [pick(rng, closers)] if shape in (1, 2) else []
    return " ".join(before + [task.golden] + after)


def _terse(task: Task, rng) -> str:
    return f"{task.answer}."


# kind -> (builder, the judge's reading the result must have)
_BUILDERS = {
    "operand_miscopy": (_operand_miscopy, "wrong"),
    "flattery": (_flattery, "correct"),
    "terse": (_terse, "correct"),
}


def flaw(task: Task, kind: str, rng: np.random.Generator, tries: int = 20) -> str:
    """A response to `task` with flaw `kind`, judged below the golden response by the gold judge.

    >>> from seam.testbed import Task
    >>> t = Task("t1", "arithmetic", "What is 17 plus 25?", "42", "The sum of 17 and 25 is 42.",
    ...          {"op": "add", "a": 17, "b": 25, "q": 0})
    >>> flaw(t, "terse", np.random.default_rng(0))
    '42.'
    """
    if kind not in GROUP_OF:
        raise SeamError(f"unknown flaw kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind not in _BUILDERS:
        try:
            return corrupt(task, kind, rng, tries=tries)
        except (RuntimeError, AssertionError) as exc:  # the v1 corruption found no judged-worse variant
            raise FlawNotApplicable(f"{kind} of task {task.id!r}: {exc}") from None
    build, status = _BUILDERS[kind]
    gold = judge_explain(task, task.golden)["score"]
    text = ""
    for _ in range(tries):
        try:
            text = build(task, rng)
        except (IndexError, ValueError):  # nothing to miscopy (e.g. a one-digit operand with no typo)
            continue
        got = judge_explain(task, text)
        if text != task.golden and got["score"] < gold and got["status"] == status:
            return text
    raise FlawNotApplicable(f"{kind} of task {task.id!r} is not judged worse than the golden answer (last: {text!r})")
