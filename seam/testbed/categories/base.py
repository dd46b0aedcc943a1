"""The category interface, the judge's reading of a response, and shared numeric helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..task import Task
from ..text import extract_numbers, fmt_num, multiset_minus, same_number


@dataclass(frozen=True)
class Reading:
    """What a response claims: `status` is "correct", "wrong" (states a wrong or a second answer)
    or "none" (no answer at all); `stated` lists the answer-like values found."""

    status: str
    stated: tuple[str, ...] = ()


class Category:
    name = ""

    def stream(self, rng: np.random.Generator, cfg) -> Iterator[dict]:
        raise NotImplementedError

    def key(self, params: dict) -> str:
        raise NotImplementedError

    def build(self, params: dict) -> tuple[str, str, str]:
        raise NotImplementedError

    def render(self, params: dict, answer_text: str) -> str:
        raise NotImplementedError

    def read(self, task: Task, response: str) -> Reading:
        raise NotImplementedError

    def near_miss(self, task: Task, rng: np.random.Generator) -> str:
        raise NotImplementedError

    def wrong_value(self, task: Task, rng: np.random.Generator) -> str:
        raise NotImplementedError


def pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _q(params: dict, options: tuple[str, ...]) -> str:
    return options[params["q"] % len(options)]


def read_numeric(task: Task, response: str, answer: float) -> Reading:
    """Correct iff the answer is stated and no other number is, beyond those restated from the prompt."""
    nums = extract_numbers(response)
    rest = multiset_minus(nums, extract_numbers(task.prompt))
    if not rest:
        found = any(same_number(x, answer) for x in nums)
        return Reading("correct", (fmt_num(answer),)) if found else Reading("none")
    stated = tuple(dict.fromkeys(fmt_num(x) for x in rest))
    ok = all(same_number(x, answer) for x in rest)
    return Reading("correct" if ok else "wrong", stated)


def _numeric_alternative(answer: int, rng, avoid: set[int], lo: int = 0, spread=(2, 10)) -> int:
    for _ in range(100):
        delta = int(rng.integers(spread[0], spread[1] + 1)) * (1 if rng.random() < 0.5 else -1)
        x = answer + delta
        if x >= lo and x not in avoid and x != answer:
            return x
    return answer + spread[1] + 1


def _off_by_one(answer: int, rng, avoid: set[int], lo: int = 0) -> int:
    options = [x for x in (answer - 1, answer + 1) if x >= lo and x not in avoid]
    options = options or [answer + 2]
    return int(pick(rng, options))
