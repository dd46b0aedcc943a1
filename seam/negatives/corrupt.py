"""Deterministic corruptions of a golden answer: the `rules` LLM backend and the adv start point.

Each corruption maps (text, rng) to a worse text of a named kind, mirroring the paper's four
error families: factual inaccuracies (`wrong_number`, `negate`), misunderstanding the core
question (`misunderstand`, `truncate`, `drop_sentence`), irrelevant information (`irrelevant`),
and grammatical errors (`grammar`, `shuffle_sentences`). Given the same seed and text the
output is always the same.
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable

import numpy as np

_Corruption = Callable[[str, str, np.random.Generator], str]  # (text, prompt, rng) -> worse text

_SENT = re.compile(r"(?<=[.!?])\s+")
_NUM = re.compile(r"\d+(?:\.\d+)?")
_NEGATABLE = [(r"\bis\b", "is not"), (r"\bare\b", "are not"), (r"\bcan\b", "cannot"), (r"\bwill\b", "will not"),
              (r"\bdoes\b", "does not"), (r"\bdo\b", "do not"), (r"\bshould\b", "should not"),
              (r"\bwas\b", "was not"), (r"\bhas\b", "has not"), (r"\bhave\b", "have not")]
_IRRELEVANT = (
    "By the way, the weather has been quite pleasant lately.",
    "Many people also enjoy gardening as a relaxing hobby.",
    "The history of the printing press is a fascinating topic in its own right.",
    "Some say the best time to visit the mountains is early autumn.",
    "Interestingly, octopuses have three hearts.",
    "I once read a long article about the migration of birds.",
)
_MISREAD = (
    "I think you are asking about something else entirely, so here is a general overview instead.",
    "It depends on what you mean; in general there is no single answer to this.",
    "That is a common question, but the real issue is usually elsewhere.",
)
_SWAP_WORDS = {"their": "there", "there": "their", "its": "it's", "it's": "its", "your": "you're", "then": "than",
               "than": "then", "affect": "effect", "effect": "affect", "to": "too", "a": "an", "an": "a"}


def _sentences(text: str) -> list[str]:
    return [s for s in _SENT.split(text.strip()) if s]


def wrong_number(text: str, prompt: str, rng) -> str:
    nums = list(_NUM.finditer(text))
    if not nums:
        return text  # nothing to change: callers skip unchanged results
    m = nums[int(rng.integers(len(nums)))]
    value = float(m.group())
    delta = int(rng.integers(1, 10)) * (1 if rng.random() < 0.5 else -1)
    new = value + delta if value + delta >= 0 else value + abs(delta)
    new_s = str(int(new)) if "." not in m.group() else f"{new:.{len(m.group().split('.')[1])}f}"
    return text[:m.start()] + new_s + text[m.end():]


def negate(text: str, prompt: str, rng) -> str:
    order = rng.permutation(len(_NEGATABLE))
    for j in order:
        pat, rep = _NEGATABLE[int(j)]
        hits = list(re.finditer(pat, text))
        if hits:
            m = hits[int(rng.integers(len(hits)))]
            return text[:m.start()] + rep + text[m.end():]
    return "It is not true that " + text[:1].lower() + text[1:]


def truncate(text: str, prompt: str, rng) -> str:
    words = text.split()
    if len(words) < 4:
        return " ".join(words[:max(1, len(words) - 1)]) + " ..."
    keep = int(rng.integers(max(2, len(words) // 4), max(3, (2 * len(words)) // 3)))
    return " ".join(words[:keep])


def drop_sentence(text: str, prompt: str, rng) -> str:
    sents = _sentences(text)
    if len(sents) < 2:
        return truncate(text, prompt, rng)
    drop = int(rng.integers(len(sents)))
    return " ".join(s for i, s in enumerate(sents) if i != drop)


def irrelevant(text: str, prompt: str, rng) -> str:
    extra = _IRRELEVANT[int(rng.integers(len(_IRRELEVANT)))]
    sents = _sentences(text)
    if len(sents) >= 2 and rng.random() < 0.5:
        sents[int(rng.integers(len(sents)))] = extra  # replace a sentence by an irrelevant one
        return " ".join(sents)
    return (extra + " " + text) if rng.random() < 0.5 else (text + " " + extra)


def misunderstand(text: str, prompt: str, rng) -> str:
    lead = _MISREAD[int(rng.integers(len(_MISREAD)))]
    sents = _sentences(text)
    tail = sents[-1] if len(sents) > 1 else ""
    return (lead + " " + tail).strip()


def grammar(text: str, prompt: str, rng) -> str:
    words = text.split()
    if len(words) < 2:
        return text.lower() + " is"
    n_edits = max(1, len(words) // 8)
    for _ in range(n_edits):
        i = int(rng.integers(len(words)))
        w = words[i]
        roll = rng.random()
        low = w.lower()
        if low in _SWAP_WORDS:
            words[i] = _SWAP_WORDS[low]
        elif roll < 0.4 and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        elif roll < 0.7 and len(w) > 3 and w.isalpha():
            j = int(rng.integers(1, len(w) - 2))
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        elif len(words) > 3:
            del words[i]
    out = " ".join(words)
    return out[:1].lower() + out[1:] if out[:1].isupper() else out


def shuffle_sentences(text: str, prompt: str, rng) -> str:
    sents = _sentences(text)
    if len(sents) < 2:
        return grammar(text, prompt, rng)
    perm = rng.permutation(len(sents))
    if (perm == np.arange(len(sents))).all():
        perm = np.roll(perm, 1)
    return " ".join(sents[int(j)] for j in perm)


CORRUPTIONS: dict[str, _Corruption] = {
    "wrong_number": wrong_number,
    "negate": negate,
    "truncate": truncate,
    "drop_sentence": drop_sentence,
    "irrelevant": irrelevant,
    "misunderstand": misunderstand,
    "grammar": grammar,
    "shuffle_sentences": shuffle_sentences,
}
# the four error families of the paper's prompt, for the meta field
FAMILY = {"wrong_number": "factual", "negate": "factual", "truncate": "misunderstanding",
          "drop_sentence": "misunderstanding", "misunderstand": "misunderstanding", "irrelevant": "irrelevant",
          "grammar": "grammar", "shuffle_sentences": "grammar"}


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def text_rng(seed: int, *parts: str) -> np.random.Generator:
    """A generator seeded by `seed` and the given strings (stable across runs and machines)."""
    h = hashlib.sha256(("\x1f".join(parts)).encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(h[:8], "little")])


def corrupt(text: str, kind: str, rng: np.random.Generator, prompt: str = "") -> str:
    """One corruption of `text` of the given kind."""
    return CORRUPTIONS[kind](text, prompt, rng)


def corruptions(text: str, k: int, seed: int = 0, key: str = "", prompt: str = "", max_tries: int | None = None
                ) -> list[tuple[str, list[str]]]:
    """Up to `k` distinct worse texts (text, kinds used), cycling through the kinds, sometimes two at once.

    Never returns `text` itself; may return fewer than `k` for very short texts.
    """
    rng = text_rng(seed, key, text)
    kinds = list(CORRUPTIONS)
    seen = {_norm(text)}
    out: list[tuple[str, list[str]]] = []
    tries = max_tries if max_tries is not None else 6 * k + 10
    for t in range(tries):
        if len(out) >= k:
            break
        first = kinds[t % len(kinds)] if t < len(kinds) else kinds[int(rng.integers(len(kinds)))]
        used = [first]
        new = corrupt(text, first, rng, prompt)
        if t >= len(kinds) and rng.random() < 0.5:
            second = kinds[int(rng.integers(len(kinds)))]
            new = corrupt(new, second, rng, prompt)
            used.append(second)
        new = new.strip()
        if new and _norm(new) not in seen:
            seen.add(_norm(new))
            out.append((new, used))
    return out


def first_corruption(text: str, seed: int = 0, key: str = "", prompt: str = "",
                     order=("wrong_number", "negate", "drop_sentence", "truncate")) -> tuple[str, str]:
    """A single deterministic worse version of `text` (for the adv start point): (text, kind)."""
    rng = text_rng(seed, key, text)
    for kind in order:
        new = corrupt(text, kind, rng, prompt).strip()
        if new and _norm(new) != _norm(text):
            return new, kind
    return text + " ...", "truncate"
