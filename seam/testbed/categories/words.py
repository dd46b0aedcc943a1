"""Categories over words and lists: counting, spelling, sorting."""

from __future__ import annotations

import itertools

import numpy as np

from ..tables import ITEM_KINDS, WORDS
from ..text import extract_numbers, fmt_num, tokens
from .base import Category, Reading, _numeric_alternative, _off_by_one, pick, _q, read_numeric


# ---------------------------------------------------------------- counting

_VOWELS = set("aeiou")
_ALL_ITEMS = tuple(itertools.chain.from_iterable(ITEM_KINDS.values()))


class Counting(Category):
    name = "counting"

    def stream(self, rng, cfg):
        while True:
            mode = pick(rng, ("letter", "letter", "vowels", "items", "kind"))
            q = int(rng.integers(2))
            if mode == "letter":
                word = pick(rng, WORDS)
                letters = sorted(set(word))
                repeated = [c for c in letters if word.count(c) > 1]
                letter = pick(rng, repeated) if repeated and rng.random() < 0.6 else pick(rng, letters)
                yield {"mode": mode, "word": word, "letter": letter, "q": q}
            elif mode == "vowels":
                yield {"mode": mode, "word": pick(rng, WORDS), "q": q}
            elif mode == "items":
                n = int(rng.integers(3, 9))
                items = [str(x) for x in rng.choice(_ALL_ITEMS, size=n, replace=False)]
                yield {"mode": mode, "items": items, "q": q}
            else:
                kind = pick(rng, sorted(ITEM_KINDS))
                n = int(rng.integers(4, 9))
                k = int(rng.integers(1, n))
                others = [x for x in _ALL_ITEMS if x not in ITEM_KINDS[kind]]
                items = list(rng.choice(ITEM_KINDS[kind], size=k, replace=False)) + list(
                    rng.choice(others, size=n - k, replace=False))
                items = [str(x) for x in rng.permutation(items)]
                yield {"mode": mode, "kind": kind, "items": items, "q": q}

    def key(self, p):
        if p["mode"] in ("items", "kind"):
            return f"{p['mode']}:{p.get('kind', '')}:" + ",".join(sorted(p["items"]))
        return f"{p['mode']}:{p['word']}:{p.get('letter', '')}"

    def _answer(self, p) -> int:
        if p["mode"] == "letter":
            return p["word"].count(p["letter"])
        if p["mode"] == "vowels":
            return sum(c in _VOWELS for c in p["word"])
        if p["mode"] == "items":
            return len(p["items"])
        return sum(x in ITEM_KINDS[p["kind"]] for x in p["items"])

    def build(self, p):
        items = ", ".join(p.get("items", ()))
        q = {
            "letter": ("How many times does the letter '{letter}' appear in the word '{word}'?",
                       "Count how often the letter '{letter}' occurs in the word '{word}'."),
            "vowels": ("How many vowels are there in the word '{word}'?",
                       "Count the vowels (a, e, i, o, u) in the word '{word}'."),
            "items": ("How many items are in this list: {items}?", "Count the words in this list: {items}."),
            "kind": ("How many of these words are {kind}: {items}?",
                     "In the list {items}, how many of the words are {kind}?"),
        }[p["mode"]]
        ans = str(self._answer(p))
        return _q(p, q).format(items=items, **{k: v for k, v in p.items() if k != "items"}), ans, self.render(p, ans)

    def render(self, p, answer_text):
        plural = "" if answer_text == "1" else "s"
        if p["mode"] == "letter":
            return f"The letter '{p['letter']}' appears {answer_text} time{plural} in '{p['word']}'."
        if p["mode"] == "vowels":
            return f"The word '{p['word']}' contains {answer_text} vowel{plural}."
        if p["mode"] == "items":
            return f"The list contains {answer_text} items."
        return f"The number of {p['kind']} in the list is {answer_text}."

    def read(self, task, response):
        return read_numeric(task, response, float(task.answer))

    def near_miss(self, task, rng):
        return str(_off_by_one(int(task.answer), rng, set()))

    def wrong_value(self, task, rng):
        ans = int(task.answer)
        return str(_numeric_alternative(ans, rng, {ans - 1, ans + 1}, spread=(2, 4)))


# ---------------------------------------------------------------- spelling

class Spelling(Category):
    name = "spelling"

    def stream(self, rng, cfg):
        combos = [(w, m) for w in WORDS for m in ("backwards", "hyphens")]
        for i in rng.permutation(len(combos)):
            w, m = combos[int(i)]
            yield {"word": w, "mode": m, "q": int(rng.integers(2))}

    def key(self, p):
        return f"{p['mode']}:{p['word']}"

    @staticmethod
    def _spell(letters: str, mode: str) -> str:
        return letters if mode == "backwards" else "-".join(letters)

    def build(self, p):
        w = p["word"]
        q = {
            "backwards": ("Spell the word '{w}' backwards, from the last letter to the first.",
                          "Write the word '{w}' with its letters in reverse order."),
            "hyphens": ("Spell out the word '{w}' letter by letter, with hyphens between the letters.",
                        "Write the letters of the word '{w}' separated by hyphens."),
        }[p["mode"]]
        ans = self._spell(w[::-1] if p["mode"] == "backwards" else w, p["mode"])
        return _q(p, q).format(w=w), ans, self.render(p, ans)

    def render(self, p, answer_text):
        if p["mode"] == "backwards":
            return f"The word '{p['word']}' spelled backwards is '{answer_text}'."
        return f"Letter by letter, the word '{p['word']}' is spelled '{answer_text}'."

    def _answer_like(self, tok: str, answer: str, mode: str) -> bool:
        if mode == "hyphens":
            parts = tok.split("-")
            return len(parts) >= 2 and all(len(x) == 1 for x in parts)
        if len(tok) != len(answer):
            return False
        limit = 1 if len(answer) <= 6 else 2
        return sorted(tok) == sorted(answer) or sum(a != b for a, b in zip(tok, answer)) <= limit

    def read(self, task, response):
        answer, mode = task.answer.lower(), task.params["mode"]
        prompt_toks = set(tokens(task.prompt))
        toks = tokens(response)
        others = [t for t in toks if t != answer and t not in prompt_toks and self._answer_like(t, answer, mode)]
        if answer not in toks:
            return Reading("wrong", tuple(dict.fromkeys(others))) if others else Reading("none")
        stated = tuple(dict.fromkeys([answer] + others))
        return Reading("wrong" if others else "correct", stated)

    def _letters(self, task) -> str:
        return task.answer.replace("-", "")

    def near_miss(self, task, rng):
        letters = self._letters(task)
        spots = [i for i in range(len(letters) - 1) if letters[i] != letters[i + 1]]
        for i in rng.permutation(spots):
            i = int(i)
            cand = letters[:i] + letters[i + 1] + letters[i] + letters[i + 2:]
            if cand != task.params["word"]:
                return self._spell(cand, task.params["mode"])
        raise AssertionError(f"no near miss for {task.id}")

    def wrong_value(self, task, rng):
        letters = self._letters(task)
        for _ in range(100):
            cand = "".join(rng.permutation(list(letters)))
            diff = sum(a != b for a, b in zip(cand, letters))
            if cand != task.params["word"] and diff >= 3:
                return self._spell(cand, task.params["mode"])
        raise AssertionError(f"no wrong spelling for {task.id}")


# ---------------------------------------------------------------- sorting

class Sorting(Category):
    name = "sorting"
    _Q = {
        "ascending": ("Sort these numbers from smallest to largest: {items}.",
                      "Arrange the following numbers in increasing order: {items}."),
        "descending": ("Sort these numbers from largest to smallest: {items}.",
                       "Arrange the following numbers in decreasing order: {items}."),
        "alphabetical": ("Put these words in alphabetical order: {items}.",
                         "Sort the following words alphabetically: {items}."),
    }
    _G = {"ascending": "From smallest to largest, the numbers are {ans}.",
          "descending": "From largest to smallest, the numbers are {ans}.",
          "alphabetical": "In alphabetical order, the words are {ans}."}

    def stream(self, rng, cfg):
        lo, hi = cfg.sort_len
        while True:
            order = pick(rng, ("ascending", "descending", "alphabetical"))
            n = int(rng.integers(lo, hi + 1))
            if order == "alphabetical":
                items = [str(x) for x in rng.choice(_ALL_ITEMS, size=n, replace=False)]
            else:
                items = [str(int(x)) for x in rng.choice(np.arange(1, cfg.number_max + 1), size=n, replace=False)]
            if items == self._sorted(items, order):
                continue
            yield {"order": order, "items": items, "q": int(rng.integers(2))}

    def key(self, p):
        return f"{p['order']}:" + ",".join(p["items"])

    @staticmethod
    def _sorted(items, order):
        if order == "alphabetical":
            return sorted(items)
        return sorted(items, key=int, reverse=order == "descending")

    def build(self, p):
        ans = ", ".join(self._sorted(p["items"], p["order"]))
        return _q(p, self._Q[p["order"]]).format(items=", ".join(p["items"])), ans, self.render(p, ans)

    def render(self, p, answer_text):
        return self._G[p["order"]].format(ans=answer_text)

    def _sequence(self, task, text) -> list[str]:
        if task.params["order"] == "alphabetical":
            items = set(task.params["items"])
            return [t for t in tokens(text) if t in items]
        return [fmt_num(x) for x in extract_numbers(text)]

    def read(self, task, response):
        answer = task.answer.split(", ")
        original = list(task.params["items"])
        seq = self._sequence(task, response)
        if not seq:
            return Reading("none")
        stated = (", ".join(seq),)
        n = len(answer)
        if seq == answer or (len(seq) == 2 * n and seq[:n] == original and seq[n:] == answer):
            return Reading("correct", stated)
        return Reading("wrong", stated)

    def near_miss(self, task, rng):
        answer = task.answer.split(", ")
        for i in rng.permutation(len(answer) - 1):
            i = int(i)
            cand = answer[:i] + [answer[i + 1], answer[i]] + answer[i + 2:]
            if cand != task.params["items"]:
                return ", ".join(cand)
        raise AssertionError(f"no near miss for {task.id}")

    def wrong_value(self, task, rng):
        answer = task.answer.split(", ")
        reverse = answer[::-1]
        if reverse != task.params["items"] and rng.random() < 0.5:
            return ", ".join(reverse)
        for _ in range(100):
            cand = [str(x) for x in rng.permutation(answer)]
            if sum(a != b for a, b in zip(cand, answer)) >= 3 and cand != task.params["items"]:
                return ", ".join(cand)
        return ", ".join(reverse)
