"""Text helpers shared by the categories, the corruptions and the gold judge.

Reading numbers (digits, decimals, thousands separators, number words up to ninety-nine),
word tokens, and the *form* checks of the gold judge: complete sentence, grammar heuristics
and padding. The checks are heuristics tuned so that every golden response passes all of them.
"""

from __future__ import annotations

import re
from collections import Counter

from .tables import NUMBER_WORDS, PADDING, PADDING_GENERIC

_UNITS = [w for w, v in NUMBER_WORDS.items() if 1 <= v <= 9 and w not in ("once",)]
_TENS = [w for w, v in NUMBER_WORDS.items() if v in (20, 30, 40, 50, 60, 70, 80, 90)]
_WORDS_ALT = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
_NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<digits>\d+(?:\.\d+)?)(?!\w)"
    rf"|\b(?P<tens>{'|'.join(_TENS)})[- ](?P<unit>{'|'.join(_UNITS)})\b"
    rf"|\b(?P<word>{_WORDS_ALT})\b",
    re.IGNORECASE,
)
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TOKEN_RE = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")


def extract_numbers(text: str) -> list[float]:
    """Numbers stated in `text`, in order: digits ("42", "3.5", "1,000") and words ("forty-two").

    >>> extract_numbers("The sum of 17 and 25 is forty-two.")
    [17.0, 25.0, 42.0]
    """
    out: list[float] = []
    for m in _NUMBER_RE.finditer(_THOUSANDS_RE.sub("", text)):
        if m.group("digits"):
            out.append(float(m.group("digits")))
        elif m.group("tens"):
            out.append(float(NUMBER_WORDS[m.group("tens").lower()] + NUMBER_WORDS[m.group("unit").lower()]))
        else:
            out.append(float(NUMBER_WORDS[m.group("word").lower()]))
    return out


def same_number(a: float, b: float) -> bool:
    return abs(a - b) < 1e-9


def fmt_num(x: float) -> str:
    """42.0 -> "42", 3.5 -> "3.5"."""
    return str(int(round(x))) if same_number(x, round(x)) else f"{x:.10g}"


def multiset_minus(values: list[float], remove: list[float]) -> list[float]:
    """`values` without one occurrence per element of `remove` (numbers restated from the prompt)."""
    left = Counter(round(v, 9) for v in remove)
    out = []
    for v in values:
        k = round(v, 9)
        if left[k] > 0:
            left[k] -= 1
        else:
            out.append(v)
    return out


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens; hyphenated spellings ("g-a-r-d-e-n") stay one token."""
    return [t.lower() for t in _TOKEN_RE.findall(text)]


def find_last(haystack: str, needle: str) -> int:
    """Start of the last occurrence of `needle` not glued to other word characters, or -1."""
    pos = -1
    for m in re.finditer(rf"(?<![\w.]){re.escape(needle)}(?!\w)", haystack):
        pos = m.start()
    return pos


def contains_phrase(text: str, phrase: str, case_sensitive: bool) -> bool:
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, flags) is not None


# ---------------------------------------------------------------- form checks

_PADDING_PHRASES = tuple(
    s.lower() for pool in (PADDING_GENERIC, *PADDING.values()) for group in pool for s in group
) + ("great question", "i hope this helps", "let me know if", "happy to help", "glad to help",
     "as you may know", "it is worth noting", "let us think", "let's think", "step by step")

_SINGULAR_HEADS = ("sum", "difference", "product", "result", "answer", "number", "word", "letter", "list",
                   "element", "planet", "month", "day", "capital", "symbol", "opposite")
_PLURAL_HEADS = ("numbers", "words", "letters", "items", "vowels")
_PLURAL_NUMBER = r"(?:\d+|two|three|four|five|six|seven|eight|nine|ten|many|several)"

GRAMMAR_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("repeated word", re.compile(r"\b([A-Za-z]+)\s+\1\b", re.IGNORECASE)),
    ("'an' before a consonant sound", re.compile(r"\ban\s+(?!hour|honest|heir|honou?r)[b-df-hj-np-tv-z]", re.IGNORECASE)),
    ("'a' before a vowel sound", re.compile(r"\ba\s+(?!one\b|once\b|uni|use|usu|eu|ur[aeiou])[aeiou]", re.IGNORECASE)),
    ("'there is' with a plural", re.compile(rf"\bthere\s+is\s+{_PLURAL_NUMBER}\b", re.IGNORECASE)),
    ("singular subject with 'are'", re.compile(
        rf"\b(?:{'|'.join(_SINGULAR_HEADS)})\b(?:\s+(?:of|with|between|right)\b[^.!?,]*?)?\s+are\b", re.IGNORECASE)),
    ("plural subject with a singular verb", re.compile(
        rf"\b(?:{'|'.join(_PLURAL_HEADS)})\s+(?:is|was|equals|appears|has|contains)\b", re.IGNORECASE)),
    ("verb agreement", re.compile(r"\bletter\s+'\w'\s+appear\b|\b(?:list|word)\s+contain\b", re.IGNORECASE)),
)


def form_report(response: str, golden: str) -> tuple[float, list[str]]:
    """Form score in [0, 1] and the reasons for every deduction.

    Deductions: bare answer (< 3 words) 0.3; no final punctuation 0.25; each grammar issue
    0.15 (at most 0.45); padding (filler phrases, or over twice the golden's length + 4 words) 0.5.
    """
    text = response.strip()
    reasons: list[str] = []
    penalty = 0.0
    n_words = len(text.split())
    if n_words < 3:
        penalty += 0.3
        reasons.append("bare answer, not a sentence")
    if not re.search(r"[.!?]['\"]?$", text):
        penalty += 0.25
        reasons.append("incomplete sentence: no final punctuation")
    grammar = []
    if n_words >= 3 and text[:1].isalpha() and text[:1].islower():
        grammar.append("starts with a lowercase letter")
    for name, pattern in GRAMMAR_PATTERNS:
        grammar.extend(name for _ in pattern.finditer(text))
    if grammar:
        penalty += min(0.45, 0.15 * len(grammar))
        reasons.extend(f"grammar: {g}" for g in grammar)
    lower = text.lower()
    filler = [p for p in _PADDING_PHRASES if p in lower]
    if filler or n_words > 2 * len(golden.split()) + 4:
        penalty += 0.5
        reasons.append("padding: " + (f"filler ({filler[0]!r})" if filler else f"{n_words} words"))
    return max(0.0, 1.0 - penalty), reasons
