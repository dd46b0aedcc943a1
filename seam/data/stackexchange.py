"""StackExchange ``Posts.xml`` -> preference pairs, the stack-exchange-paired recipe.

Each answer gets a preference score (Askell et al. 2021, used by H4's stack-exchange-preferences
and the StackLLaMA / SEAM pairs)::

    score = round(log2(1 + max(votes, 0))) + (1 if accepted) - (1 if votes < 0)

and every two answers to one question with different scores make a (better, worse) pair.

Streaming and memory: posts are read with ``iterparse`` and each element is cleared after use.
A question's pairs are emitted as soon as the question and all ``AnswerCount`` of its answers have
been seen, and a question whose ``AnswerCount`` is below ``min_answers`` is dropped at once (a
bitmap over question ids remembers it, so its answers are ignored). So the memory held at any
moment is the converted text of *open* questions (seen, still waiting for answers) plus answers
whose question has not been seen yet; for a dump in Id order (the usual case) that is the
questions still receiving answers, not the dump. In the worst order (all answers first) it is the
text of all answers. Questions still open at the end of the file (a partial dump) are paired with
the answers that were found.
"""

from __future__ import annotations

import gzip
import math
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import SeamError
from .html_text import html_to_text


def answer_score(votes: int, accepted: bool) -> int:
    """Preference score of an answer: round(log2(1 + votes)) (+1 accepted, -1 if votes < 0)."""
    score = math.floor(math.log2(1 + max(votes, 0)) + 0.5)
    return score + (1 if accepted else 0) - (1 if votes < 0 else 0)


@dataclass
class _Question:
    id: int
    prompt: str
    accepted: int | None
    answer_count: int | None


@dataclass
class _Answer:
    id: int
    votes: int
    text: str


class _Bits:
    """A growable bitmap over non-negative ints (closed question ids): 1 bit per id."""

    def __init__(self):
        self.data = bytearray()

    def add(self, n: int) -> None:
        if n >= 8 * len(self.data):
            self.data.extend(bytes(n // 8 + 1 - len(self.data) + 1024))
        self.data[n // 8] |= 1 << (n % 8)

    def __contains__(self, n: int) -> bool:
        return n < 8 * len(self.data) and bool(self.data[n // 8] & (1 << (n % 8)))


def site_name(path: Path) -> str:
    """Id prefix from the file name: ``beer.Posts.xml`` -> ``beer``;
    ``beer.stackexchange.com/Posts.xml`` -> ``beer``."""
    name = path.name.split(".")[0]
    if name.lower() == "posts":
        name = path.resolve().parent.name.split(".")[0]
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
    return name or "se"


def _title_and_body(title: str, body_html: str) -> str:
    body = html_to_text(body_html)
    title = " ".join(title.split())
    return f"{title}\n\n{body}".strip() if body else title


def _iter_rows(path: Path) -> Iterator[dict]:
    """Stream the attributes of each ``<row>`` of a Posts.xml (optionally .gz)."""
    if path.suffix.lower() in (".7z", ".zip", ".bz2"):
        raise SeamError(f"{path}: compressed as {path.suffix}; extract Posts.xml first (e.g. `7z x {path.name}`)")
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            root = None
            for event, elem in ET.iterparse(fh, events=("start", "end")):
                if root is None:
                    root = elem
                    if root.tag != "posts":
                        raise SeamError(
                            f"{path}: root element is <{root.tag}>, not <posts>; pass the Posts.xml of a "
                            "StackExchange data dump (not Users.xml, Comments.xml, ...)"
                        )
                    continue
                if event == "end" and elem.tag == "row":
                    yield dict(elem.attrib)
                    root.clear()  # drop finished rows: memory stays flat
    except ET.ParseError as exc:
        line, col = exc.position
        if line == 1 and col == 0:
            raise SeamError(
                f"{path}: not an XML file ({exc}); pass the Posts.xml of a StackExchange data dump"
            ) from None
        raise SeamError(
            f"{path} line {line}, column {col}: malformed XML ({str(exc).split(':')[0]}); "
            "the dump may be truncated or damaged: extract it again"
        ) from None
    except (gzip.BadGzipFile, EOFError, OSError) as exc:
        raise SeamError(f"{path}: cannot read the file ({exc}); check it is a Posts.xml (or .xml.gz)") from None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def iter_stackexchange_pairs(
    path: Path,
    stats,
    *,
    site: str | None = None,
    min_answers: int = 2,
    max_pairs_per_question: int | None = None,
) -> Iterator[dict]:
    """Yield instruction rows (one per answer pair) from a Posts.xml, counting into `stats`
    (an `ImportStats`: skipped counts are posts)."""
    site = site or site_name(path)
    need = max(2, min_answers)
    open_questions: dict[int, _Question] = {}
    answers: dict[int, list[_Answer]] = defaultdict(list)
    closed = _Bits()  # questions done (paired or dropped): later answers are not kept
    too_few = _Bits()  # questions dropped for an AnswerCount below `need`
    few_reason = f"questions with fewer than {need} answers (with their answers)"
    stats.extra.update(questions=0, answers=0, questions_paired=0, pairs_over_cap=0, peak_posts_held=0)
    held_answers = 0

    def note_held() -> None:
        held = held_answers + len(open_questions)
        if held > stats.extra["peak_posts_held"]:
            stats.extra["peak_posts_held"] = held

    def take_answers(qid: int) -> list[_Answer]:
        nonlocal held_answers
        found = answers.pop(qid, [])
        held_answers -= len(found)
        return found

    def finish(qid: int) -> Iterator[dict]:
        question = open_questions.pop(qid)
        found = take_answers(qid)
        closed.add(qid)
        yield from _pairs(question, found)

    def _pairs(question: _Question, found: list[_Answer]) -> Iterator[dict]:
        usable = [a for a in found if a.text]
        stats.skip("answers with no text", len(found) - len(usable))
        if len(usable) < need:
            stats.skip(few_reason, 1 + len(usable))
            return
        scored = [(answer_score(a.votes, a.id == question.accepted), a) for a in usable]
        pairs = [(sa, a, sb, b) for sa, a in scored for sb, b in scored if sa > sb]
        if not pairs:
            stats.skip("questions whose answers all tie on score (with their answers)", 1 + len(usable))
            return
        # clearest preferences first, so a --max-pairs-per-question cap keeps them
        pairs.sort(key=lambda p: (p[2] - p[0], -p[0], p[1].id, p[3].id))
        if max_pairs_per_question is not None and len(pairs) > max_pairs_per_question:
            stats.extra["pairs_over_cap"] += len(pairs) - max_pairs_per_question
            pairs = pairs[:max_pairs_per_question]
        stats.extra["questions_paired"] += 1
        for sa, a, sb, b in pairs:
            yield {
                "id": f"{site}-{question.id}-{a.id}-{b.id}",
                "prompt": question.prompt,
                "chosen": a.text,
                "rejected": b.text,
                "meta": {
                    "question_id": question.id, "chosen_id": a.id, "rejected_id": b.id,
                    "chosen_score": sa, "rejected_score": sb, "chosen_votes": a.votes, "rejected_votes": b.votes,
                    "source": f"stackexchange:{site}",
                },
            }

    for attrs in _iter_rows(path):
        stats.rows_read += 1
        kind = attrs.get("PostTypeId")
        post_id = _int(attrs.get("Id"))
        if kind not in ("1", "2"):
            stats.skip("posts that are neither questions nor answers (wiki, tag excerpts, ...)")
            continue
        if post_id is None or post_id < 0:
            stats.skip("posts with a missing or bad Id")
            continue
        if kind == "1":
            stats.extra["questions"] += 1
            count = _int(attrs.get("AnswerCount"))
            if count is not None and count < need:
                closed.add(post_id)
                too_few.add(post_id)
                stats.skip(few_reason, 1 + len(take_answers(post_id)))
                continue
            prompt = _title_and_body(attrs.get("Title", ""), attrs.get("Body", ""))
            if not prompt:
                closed.add(post_id)
                stats.skip("questions with no title or body (with their answers)", 1 + len(take_answers(post_id)))
                continue
            open_questions[post_id] = _Question(post_id, prompt, _int(attrs.get("AcceptedAnswerId")), count)
            note_held()
            if count is not None and len(answers.get(post_id, ())) >= count:
                yield from finish(post_id)
        else:
            stats.extra["answers"] += 1
            parent, votes = _int(attrs.get("ParentId")), _int(attrs.get("Score"))
            if parent is None or parent < 0 or votes is None:
                stats.skip("answers with a missing ParentId or Score")
                continue
            if parent in too_few:
                stats.skip(few_reason)
                continue
            if parent in closed:
                stats.skip("answers arriving after their question was paired (AnswerCount too low)")
                continue
            answers[parent].append(_Answer(post_id, votes, html_to_text(attrs.get("Body", ""))))
            held_answers += 1
            note_held()
            question = open_questions.get(parent)
            expected = question.answer_count if question is not None else None
            if expected is not None and len(answers[parent]) >= expected:
                yield from finish(parent)
    for qid in list(open_questions):  # partial dumps: pair what was found
        yield from finish(qid)
    orphans = sum(len(v) for v in answers.values())
    stats.skip("answers whose question is not in the file", orphans)
