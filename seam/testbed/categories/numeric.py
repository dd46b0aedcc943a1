"""Numeric categories: arithmetic, comparison, unit conversion."""

from __future__ import annotations

import re

from ..tables import UNITS
from ..text import extract_numbers, fmt_num, same_number
from .base import Category, Reading, _numeric_alternative, _off_by_one, pick, _q, read_numeric


# ---------------------------------------------------------------- arithmetic

class Arithmetic(Category):
    name = "arithmetic"
    _Q = {
        "add": ("What is {a} plus {b}?", "What do you get when you add {a} and {b} together?",
                "Calculate the sum of {a} and {b}."),
        "sub": ("What is {a} minus {b}?", "What do you get when you subtract {b} from {a}?",
                "Calculate the difference between {a} and {b}."),
        "mul": ("What is {a} times {b}?", "What do you get when you multiply {a} by {b}?",
                "Calculate the product of {a} and {b}."),
    }
    _G = {"add": "The sum of {a} and {b} is {ans}.", "sub": "The difference between {a} and {b} is {ans}.",
          "mul": "The product of {a} and {b} is {ans}."}

    def stream(self, rng, cfg):
        hi = cfg.number_max
        while True:
            op = pick(rng, ("add", "sub", "mul"))
            if op == "add":
                a, b = (int(x) for x in rng.integers(2, hi + 1, size=2))
            elif op == "sub":
                a = int(rng.integers(5, hi + 1))
                b = int(rng.integers(2, a - 1))
            else:
                a, b = int(rng.integers(2, 13)), int(rng.integers(2, min(30, hi) + 1))
            if self._value(op, a, b) in (a, b):
                continue
            yield {"op": op, "a": a, "b": b, "q": int(rng.integers(3))}

    @staticmethod
    def _value(op, a, b):
        return {"add": a + b, "sub": a - b, "mul": a * b}[op]

    def key(self, p):
        a, b = (sorted((p["a"], p["b"])) if p["op"] != "sub" else (p["a"], p["b"]))
        return f"{p['op']}:{a}:{b}"

    def build(self, p):
        ans = str(self._value(p["op"], p["a"], p["b"]))
        return _q(p, self._Q[p["op"]]).format(**p), ans, self.render(p, ans)

    def render(self, p, answer_text):
        return self._G[p["op"]].format(a=p["a"], b=p["b"], ans=answer_text)

    def read(self, task, response):
        return read_numeric(task, response, float(task.answer))

    def near_miss(self, task, rng):
        p = task.params
        return str(_off_by_one(int(task.answer), rng, {p["a"], p["b"]}))

    def wrong_value(self, task, rng):
        p, ans = task.params, int(task.answer)
        avoid = {p["a"], p["b"], ans - 1, ans, ans + 1}
        other_ops = [self._value(op, p["a"], p["b"]) for op in ("add", "sub", "mul") if op != p["op"]]
        other_ops = [x for x in other_ops if x > 0 and x not in avoid]
        if other_ops and rng.random() < 0.5:
            return str(int(pick(rng, other_ops)))
        return str(_numeric_alternative(ans, rng, avoid))


# ---------------------------------------------------------------- comparison

class Comparison(Category):
    name = "comparison"
    _Q = ("Which number is {d}, {x} or {y}?", "Between {x} and {y}, which number is {d}?",
          "Look at the numbers {x} and {y}. Which of them is {d}?")

    def stream(self, rng, cfg):
        hi = max(cfg.number_max * 10, 100)
        while True:
            if rng.random() < 0.6:
                x, y = (str(int(v)) for v in rng.integers(2, hi, size=2))
            else:  # decimals, often with the same whole part ("3.9 or 3.11")
                whole = int(rng.integers(0, 21))
                other = whole if rng.random() < 0.7 else int(rng.integers(0, 21))
                d1 = str(int(rng.integers(1, 10)))
                d2 = str(int(rng.integers(11, 100)))
                if d2.endswith("0"):
                    continue
                x, y = f"{whole}.{d1}", f"{other}.{d2}"
                if rng.random() < 0.5:
                    x, y = y, x
            if same_number(float(x), float(y)):
                continue
            yield {"options": [x, y], "direction": pick(rng, ("larger", "smaller")), "q": int(rng.integers(3))}

    def key(self, p):
        return f"{p['direction']}:" + ":".join(sorted(p["options"]))

    def _answer(self, p):
        pick = max if p["direction"] == "larger" else min
        return pick(p["options"], key=float)

    def build(self, p):
        x, y = p["options"]
        q = _q(p, self._Q).format(x=x, y=y, d=p["direction"])
        ans = self._answer(p)
        return q, ans, self.render(p, ans)

    def render(self, p, answer_text):
        return f"The {p['direction']} number is {answer_text}."

    _BIG = ("larger", "greater", "bigger", "higher")
    _SMALL = ("smaller", "lower", "less")
    _NUM = r"(\d+(?:\.\d+)?)"
    _ADJ = rf"({'|'.join(_BIG + _SMALL)})"
    # "A is larger than B"; "the larger number is A"; "A is the larger number"; "the answer is A".
    _THAN = re.compile(rf"(?<![\w.]){_NUM}\s+is\s+{_ADJ}\s+than\s+{_NUM}", re.IGNORECASE)
    _ADJ_IS = re.compile(rf"\b{_ADJ}(?:\s+(?:number|value|one|of\s+the\s+two))?\s+is\s+{_NUM}", re.IGNORECASE)
    _IS_ADJ = re.compile(rf"(?<![\w.]){_NUM}\s+is\s+the\s+{_ADJ}\b(?!\s+than)", re.IGNORECASE)
    _ANSWER_IS = re.compile(rf"\banswer\s+is\s+{_NUM}", re.IGNORECASE)
    _HEDGE = re.compile(r"\d\s*,?\s*or\b(?:\s+(?:possibly|maybe|perhaps))?\s+\d", re.IGNORECASE)

    def _claims(self, task, response) -> set[float]:
        """The option each explicit statement in `response` names as the answer."""
        options = [float(o) for o in task.params["options"]]
        want_big = task.params["direction"] == "larger"

        def resolve(value: float, adjective: str) -> float:
            is_big = adjective.lower() in self._BIG
            if is_big == want_big:
                return value
            others = [o for o in options if not same_number(o, value)]
            return others[0] if len(others) == 1 else value

        claims = set()
        for m in self._THAN.finditer(response):
            left, adj, right = float(m.group(1)), m.group(2), float(m.group(3))
            bigger, smaller = (left, right) if adj.lower() in self._BIG else (right, left)
            claims.add(bigger if want_big else smaller)
        for m in self._ADJ_IS.finditer(response):
            claims.add(resolve(float(m.group(2)), m.group(1)))
        for m in self._IS_ADJ.finditer(response):
            claims.add(resolve(float(m.group(1)), m.group(2)))
        for m in self._ANSWER_IS.finditer(response):
            claims.add(float(m.group(1)))
        return {round(c, 9) for c in claims}

    def read(self, task, response):
        options = [float(o) for o in task.params["options"]]
        answer = float(task.answer)
        nums = extract_numbers(response)
        if not nums:
            return Reading("none")
        stated = tuple(dict.fromkeys(fmt_num(x) for x in nums))
        if any(not any(same_number(x, o) for o in options) for x in nums):
            return Reading("wrong", stated)
        named = {o for o in options if any(same_number(x, o) for x in nums)}
        if len(named) == 1:
            return Reading("correct" if same_number(named.pop(), answer) else "wrong", stated)
        # Both options named: it must say which one, consistently ("52 is larger than 37").
        if self._HEDGE.search(response):
            return Reading("wrong", stated)
        claims = self._claims(task, response)
        if len(claims) == 1:
            return Reading("correct" if same_number(claims.pop(), answer) else "wrong", stated)
        return Reading("wrong", stated)

    def _step(self, ans: str) -> float:
        return 10.0 ** -len(ans.split(".")[1]) if "." in ans else 1.0

    def near_miss(self, task, rng):
        ans = task.answer
        step = self._step(ans)
        decimals = len(ans.split(".")[1]) if "." in ans else 0
        opts = [float(o) for o in task.params["options"]]
        for delta in (pick(rng, (-1, 1)), 1, -1, 2, 2):
            v = round(float(ans) + delta * step, decimals)
            if v >= 0 and not any(same_number(v, o) for o in opts):
                return f"{v:.{decimals}f}"
        raise AssertionError(f"no near miss for {task.id}")

    def wrong_value(self, task, rng):
        return next(o for o in task.params["options"] if o != task.answer)


# ---------------------------------------------------------------- unit conversion

class UnitConversion(Category):
    name = "unit_conversion"
    _Q = ("How many {out} are there in {v} {inp}?", "Convert {v} {inp} into {out}.",
          "If you have {v} {inp}, how many {out} is that?")
    _WRONG_FACTORS = (3, 4, 7, 10, 12, 24, 60, 100, 1000)

    def stream(self, rng, cfg):
        while True:
            inp, out, factor = UNITS[int(rng.integers(len(UNITS)))]
            k = int(rng.integers(2, 31))
            if rng.random() < 0.7:
                p = {"value": k, "unit_in": inp, "unit_out": out, "factor": factor, "multiply": True}
            else:
                p = {"value": k * factor, "unit_in": out, "unit_out": inp, "factor": factor, "multiply": False}
            p["q"] = int(rng.integers(3))
            yield p

    def key(self, p):
        return f"{p['value']}:{p['unit_in']}:{p['unit_out']}"

    def _answer(self, p) -> int:
        return p["value"] * p["factor"] if p["multiply"] else p["value"] // p["factor"]

    def build(self, p):
        ans = str(self._answer(p))
        q = _q(p, self._Q).format(v=p["value"], inp=p["unit_in"], out=p["unit_out"])
        return q, ans, self.render(p, ans)

    def render(self, p, answer_text):
        return f"{p['value']} {p['unit_in']} is equal to {answer_text} {p['unit_out']}."

    def read(self, task, response):
        return read_numeric(task, response, float(task.answer))

    def near_miss(self, task, rng):
        # Off by one unit of the larger measure: (k +- 1) * factor, or k +- 1 when dividing.
        p, ans = task.params, int(task.answer)
        step = p["factor"] if p["multiply"] else 1
        opts = [x for x in (ans - step, ans + step) if x > 0 and x != p["value"]]
        return str(int(pick(rng, opts)))

    def wrong_value(self, task, rng):
        p, ans = task.params, int(task.answer)
        step = p["factor"] if p["multiply"] else 1
        avoid = {ans, ans - step, ans + step, p["value"]}
        if p["multiply"]:
            cands = [p["value"] * f for f in self._WRONG_FACTORS]
        else:
            cands = [p["value"] // f for f in self._WRONG_FACTORS if p["value"] % f == 0] + [p["value"] * p["factor"]]
        cands = [c for c in cands if c > 0 and c not in avoid]
        return str(int(pick(rng, cands))) if cands else str(_numeric_alternative(ans, rng, avoid, lo=1))
