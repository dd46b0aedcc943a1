"""The programmatic gold judge: correctness first, then form.

    correct answer (stated, and no other answer stated)   0.6 + 0.4 * form   in [0.6, 1.0]
    wrong answer (a wrong value, or a hedge of several)          0.3 * form   in [0.0, 0.3]
    no answer at all (refusal, off-topic, cut off)               0.0

`form` in [0, 1] deducts for a bare answer, a missing final punctuation mark, grammar issues and
padding (see `text.form_report`). Every golden response scores exactly 1.0.
"""

from __future__ import annotations

import re

from ..errors import SeamError
from .categories import REGISTRY
from .tables import REFUSAL_MARKERS
from .task import Task
from .text import form_report, tokens

CORRECT_FLOOR = 0.6
WRONG_CEILING = 0.3


def _category(task: Task):
    try:
        return REGISTRY[task.category]
    except KeyError:
        raise SeamError(
            f"task {task.id!r} has unknown category {task.category!r}; expected one of {', '.join(REGISTRY)}"
        ) from None


def judge_explain(task: Task, response: str) -> dict:
    """Score `response` to `task` and say why: {"score", "correct", "form", "status", "stated", "reasons"}.

    >>> from seam.testbed import Task
    >>> t = Task("t1", "arithmetic", "What is 17 plus 25?", "42", "The sum of 17 and 25 is 42.",
    ...          {"op": "add", "a": 17, "b": 25, "q": 0})
    >>> judge_explain(t, "The answer is 42.")["correct"], judge_explain(t, "43")["correct"]
    (True, False)
    """
    category = _category(task)
    text = (response or "").strip()
    if not text:
        return {"score": 0.0, "correct": False, "form": 0.0, "status": "none", "stated": [],
                "reasons": ["empty response"]}
    reading = category.read(task, text)
    form, form_reasons = form_report(text, task.golden)
    reasons: list[str] = []
    if reading.status == "correct":
        score = CORRECT_FLOOR + (1.0 - CORRECT_FLOOR) * form
        reasons.append(f"states the correct answer {task.answer!r}")
    elif reading.status == "wrong":
        score = WRONG_CEILING * form
        wrong = [s for s in reading.stated if s != task.answer]
        reasons.append(f"states a wrong answer {', '.join(wrong) or '?'} (expected {task.answer!r})")
    else:
        score = 0.0
        lower = text.lower()
        if any(m in lower for m in REFUSAL_MARKERS):
            reasons.append("no answer: looks like a refusal")
        elif not re.search(r"[.!?]['\"]?$", text):
            reasons.append("no answer: stops before giving one")
        elif not (set(tokens(text)) & set(tokens(task.prompt)) - _STOP):
            reasons.append("no answer: off-topic")
        else:
            reasons.append("no answer stated")
    reasons.extend(form_reasons)
    return {"score": round(score, 6), "correct": reading.status == "correct", "form": round(form, 6),
            "status": reading.status, "stated": list(reading.stated), "reasons": reasons}


def judge(task: Task, response: str) -> float:
    """Gold score of `response` for `task` in [0, 1] (see the module docstring for the scale)."""
    return judge_explain(task, response)["score"]


_STOP = frozenset(
    "a an the is are of in on to and or with what which how many much this that these those for from "
    "by be it its as at your you please answer reply give sentence complete full brief single clear "
    "respond using briefly when do does get there if out into can".split())
