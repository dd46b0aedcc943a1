"""Importers on the real public data in ../shared/data (skipped when that folder is absent).

Pair counts are recomputed here independently (whole-tree ElementTree parse, plain loops) and must
match the streaming importer exactly.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

from seam.data import ImportConfig, load_instructions, run_import

SHARED = Path(os.environ.get("SEAM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
POSTS = sorted((SHARED / "stackexchange").glob("*.Posts.xml")) if SHARED.is_dir() else []
HH_FILE = SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz"

TAG = re.compile(r"</?(p|a|div|span|code|pre|li|ul|ol|em|strong|b|i|br|hr|img|blockquote|h[1-6]|table|tr|td|sup|sub)\b[^>]*>", re.I)
ENTITY = re.compile(r"&(amp|lt|gt|quot|apos|nbsp|#\d+|#x[0-9a-f]+);", re.I)


def _prose(text: str) -> str:
    """Text outside code blocks and inline code (code may legitimately show tags and entities)."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    return re.sub(r"`[^`\n]*`", " ", text)


def expected_pairs(path: Path, min_answers: int = 2) -> tuple[int, int, int]:
    """(rows, pairs, posts used in pairs) of the stack-exchange-paired recipe, computed the plain way."""
    root = ET.parse(path).getroot()
    rows = list(root)
    questions = {r.get("Id"): r.get("AcceptedAnswerId") for r in rows if r.get("PostTypeId") == "1"}
    scores = defaultdict(list)
    for r in rows:
        if r.get("PostTypeId") == "2" and r.get("ParentId") in questions and (r.get("Body") or "").strip():
            votes = int(r.get("Score"))
            s = round(math.log2(1 + max(votes, 0)))
            s += (r.get("Id") == questions[r.get("ParentId")]) - (votes < 0)
            scores[r.get("ParentId")].append(s)
    pairs = used = 0
    for values in scores.values():
        if len(values) >= min_answers:
            n = sum(1 for i in range(len(values)) for j in range(i + 1, len(values)) if values[i] != values[j])
            pairs += n
            used += (1 + len(values)) if n else 0  # the question and all its answers
    return len(rows), pairs, used


@pytest.mark.skipif(not POSTS, reason="no ../shared/data/stackexchange/*.Posts.xml")
@pytest.mark.parametrize("posts", POSTS, ids=[p.name for p in POSTS])
def test_stackexchange_dump(tmp_path, posts):
    out = tmp_path / "pairs.parquet"
    stats = run_import("stackexchange", posts, out)
    rows, pairs, used = expected_pairs(posts)
    assert stats["rows_read"] == rows
    assert stats["pairs_written"] == pairs > 50
    assert stats["rows_skipped"] + used == rows  # every post is either used or counted as skipped
    df = load_instructions(out)  # the output passes contract validation (unique ids, non-empty text)
    assert len(df) == pairs
    site = posts.name.split(".")[0]
    assert df["id"].str.startswith(f"{site}-").all()
    meta = df["meta"].tolist()
    assert all(m["chosen_score"] > m["rejected_score"] for m in meta)
    assert {m["question_id"] for m in meta} == {int(i.split("-")[1]) for i in df["id"]}
    for column in ("prompt", "chosen", "rejected"):
        for text in df[column]:
            prose = _prose(text)
            assert not TAG.search(prose), text[:300]
            assert not ENTITY.search(prose), text[:300]
    # spot check: a question's title (plain text in the dump) opens its prompt
    first = ET.parse(posts).getroot()
    titles = {r.get("Id"): r.get("Title") for r in first if r.get("PostTypeId") == "1"}
    for m, prompt in zip(meta[:20], df["prompt"][:20]):
        assert prompt.startswith(" ".join(titles[str(m["question_id"])].split()))


@pytest.mark.skipif(not POSTS, reason="no ../shared/data/stackexchange/*.Posts.xml")
def test_stackexchange_cap_and_min_answers(tmp_path):
    posts = POSTS[0]
    full = run_import("stackexchange", posts, tmp_path / "a.jsonl")
    capped = run_import("stackexchange", posts, tmp_path / "b.jsonl", ImportConfig(max_pairs_per_question=1))
    assert capped["pairs_written"] == full["questions_paired"]
    assert capped["pairs_written"] + capped["pairs_over_cap"] == full["pairs_written"]
    three = run_import("stackexchange", posts, tmp_path / "c.jsonl", ImportConfig(min_answers=3))
    assert three["pairs_written"] == expected_pairs(posts, min_answers=3)[1] < full["pairs_written"]


def _hh_expected(path: Path) -> int:
    n = 0
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            c = rec["chosen"].split("\n\nAssistant:")
            r = rec["rejected"].split("\n\nAssistant:")
            if len(c) < 2 or len(r) < 2:
                continue
            same_prompt = "\n\nAssistant:".join(c[:-1]).strip() == "\n\nAssistant:".join(r[:-1]).strip()
            if same_prompt and c[-1].strip() and r[-1].strip() and c[-1].strip() != r[-1].strip():
                n += 1
    return n


@pytest.mark.skipif(not HH_FILE.is_file(), reason="no ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz")
def test_hh_rlhf_file(tmp_path):
    stats = run_import("hh", HH_FILE, tmp_path / "hh.jsonl")
    assert stats["rows_read"] == 2312
    assert stats["pairs_written"] == _hh_expected(HH_FILE) > 2200
    assert stats["pairs_written"] + stats["rows_skipped"] == stats["rows_read"]
    df = load_instructions(tmp_path / "hh.jsonl")
    assert df["prompt"].str.startswith("Human: ").all()
    assert not df["prompt"].str.endswith("Assistant:").any()
    assert not df["chosen"].str.contains("\n\nHuman:").any()
    assert (df["chosen"] != df["rejected"]).all()
    limited = run_import("hh", HH_FILE, tmp_path / "hh100.csv", ImportConfig(limit=100))
    assert limited["pairs_written"] == 100 == len(load_instructions(tmp_path / "hh100.csv"))
    assert load_instructions(tmp_path / "hh100.csv").to_dict("records") == df.head(100).to_dict("records")
