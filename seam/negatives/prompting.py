"""The paper's prompt for worse answers (appendix D.1, Prompt 2) and robust parsing of the reply.

Deviations from the paper's text, on purpose: the correct answer is shown once (the paper's
template repeats it), the number of answers is ``k`` instead of a fixed 30, and the model is asked
to number its answers, which makes splitting reliable; the splitter still accepts plain
blank-line-separated paragraphs, bullets, "Answer 3:" headings and Markdown bold numbers.
"""

from __future__ import annotations

import re

SYSTEM = (
    "Using the question and its correct answer provided below, generate {k} distinct answers that are of lower "
    "quality. Each response should include one or more of the following characteristics: factual inaccuracies, "
    "misunderstandings of the core question, irrelevant information, or grammatical errors. The answers should vary "
    "in their mistakes to cover a range of common errors seen in similar topics. Format the responses as separate "
    "paragraphs for each answer, numbered 1. to {k}., and write nothing else."
)
USER = "[Question]\n{question}\n\n[Answer]\n{answer}"

# One lower-quality answer at a time (small local models cannot follow "give 30 answers").
FLAWS = ("factual inaccuracies", "a misunderstanding of the core question", "irrelevant information",
         "grammatical errors")
SINGLE = (
    "Question: {question}\n\nCorrect answer: {answer}\n\n"
    "Write one answer to the question that is of lower quality than the correct answer because it contains "
    "{flaw}. Reply with that answer only."
)


def paper_messages(question: str, answer: str, k: int) -> list[dict]:
    """Chat messages asking for k worse answers (system: the paper's instruction; user: Q and A)."""
    return [{"role": "system", "content": SYSTEM.format(k=k)},
            {"role": "user", "content": USER.format(question=question, answer=answer)}]


def single_messages(question: str, answer: str, flaw: str) -> list[dict]:
    return [{"role": "user", "content": SINGLE.format(question=question, answer=answer, flaw=flaw)}]


# "1.", "1)", "(1)", "#1", "**1.**", "Answer 1:", "Response 1 -", "1:" at the start of a line
_NUMBERED = re.compile(
    r"^[ \t]*(?:[*_#>]+[ \t]*)?(?:(?:answer|response|option)[ \t]*)?\(?#?(\d{1,3})[ \t]*(?:[.):\]]|[ \t]-)(?:[*_]+)?[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_BULLET = re.compile(r"^[ \t]*[-*\u2022][ \t]+", re.MULTILINE)
_PREAMBLE = re.compile(r"^(?:here|sure|certainly|below|okay|ok)\b.*:\s*$", re.IGNORECASE | re.DOTALL)
_LABEL = re.compile(r"^(?:\*\*)?(?:answer|response)(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)


def _clean(piece: str) -> str:
    s = piece.strip()
    s = _LABEL.sub("", s)
    s = re.sub(r"^\*\*(.*?)\*\*$", r"\1", s, flags=re.DOTALL).strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        s = s[1:-1].strip()
    return s


def split_answers(reply: str) -> list[str]:
    """Split an LLM reply into its individual answers (cleaned, in order, empties dropped)."""
    text = (reply or "").replace("\r\n", "\n").strip()
    if not text:
        return []
    marks = list(_NUMBERED.finditer(text))
    # numbered: the longest run of markers counting up by one from 1 (or 2, when the model skipped "1.");
    # a marker that does not continue the run (a list nested inside an answer) stays inside its answer
    if len(marks) >= 2:
        nums = [int(m.group(1)) for m in marks]
        if nums[0] <= 2:
            keep, expect = [], nums[0]
            for m, n in zip(marks, nums):
                if n == expect:
                    keep.append(m)
                    expect += 1
            if len(keep) >= 2:
                head = text[:keep[0].start()].strip()
                pieces = [text[a.end():(b.start() if b is not None else len(text))]
                          for a, b in zip(keep, keep[1:] + [None])]
                if head and not _PREAMBLE.match(head) and keep[0].group(1) == "2":
                    pieces.insert(0, head)
                return [p for p in (_clean(x) for x in pieces) if p]
    bullets = list(_BULLET.finditer(text))
    if len(bullets) >= 2:
        pieces = [text[a.end():(b.start() if b is not None else len(text))] for a, b in zip(bullets, bullets[1:] + [None])]
        return [p for p in (_clean(x) for x in pieces) if p]
    paras = [p for p in re.split(r"\n\s*\n|\n-{3,}\n", text) if p.strip()]
    if len(paras) > 1 and _PREAMBLE.match(paras[0].strip()):
        paras = paras[1:]
    return [p for p in (_clean(x) for x in paras) if p]


def normalise(text: str) -> str:
    """Key for de-duplication: case-folded, punctuation-free, single-spaced."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def dedupe(answers, gold: str, seen: set[str] | None = None) -> list[str]:
    """Drop answers equal (after `normalise`) to the gold answer, to each other, or to `seen` (updated)."""
    seen = set() if seen is None else seen
    seen.add(normalise(gold))
    out = []
    for a in answers:
        key = normalise(a)
        if key and key not in seen:
            seen.add(key)
            out.append(a)
    return out
