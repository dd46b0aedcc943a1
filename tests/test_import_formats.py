"""Importers on small hand-made fixtures: StackExchange (any post order), HH, SHP, TRL, SEAM JSON, HF folders."""

from __future__ import annotations

import json
from html import escape

import pytest

from seam.data import ImportConfig, iter_import, load_instructions, run_import
from seam.data.stackexchange import answer_score
from seam.errors import SeamError


def _post(id, type, **attrs):
    parts = [f'Id="{id}"', f'PostTypeId="{type}"'] + [f'{k}="{escape(str(v), quote=True).replace(chr(10), "&#xA;")}"' for k, v in attrs.items()]
    return f"  <row {' '.join(parts)} />"


# question 1: answers 11 (10 votes: score 3), 12 (1 vote, accepted: 2), 13 (-1 vote: -1) -> 3 pairs
# question 2: one answer -> skipped;  question 3: two tied answers -> skipped
# question 4: its answers come BEFORE it -> 1 pair;  answer 99 has no question; post 50 is a tag wiki
POSTS = [
    _post(41, 2, ParentId=4, Score=0, Body="<p>zero</p>"),
    _post(42, 2, ParentId=4, Score=5, Body="<p>five &amp; more</p>"),
    _post(1, 1, AcceptedAnswerId=12, AnswerCount=3, Score=3, Title='How do I "brew"?',  # titles are plain text
          Body="<p>I want to <b>brew</b> beer &amp; cider.</p><pre><code>x &lt; 1\n  y</code></pre>"),
    _post(11, 2, ParentId=1, Score=10, Body='<p>Use <a href="http://malt.example">malt</a>.</p><ul><li>one</li><li>two</li></ul>'),
    _post(12, 2, ParentId=1, Score=1, Body="<p>Use yeast.</p>"),
    _post(13, 2, ParentId=1, Score=-1, Body="<p>Use sand.</p>"),
    _post(2, 1, AnswerCount=1, Score=1, Title="Lonely", Body="<p>one answer only</p>"),
    _post(21, 2, ParentId=2, Score=4, Body="<p>the only answer</p>"),
    _post(3, 1, AnswerCount=2, Score=1, Title="Tied", Body="<p>tied answers</p>"),
    _post(31, 2, ParentId=3, Score=1, Body="<p>a</p>"),
    _post(32, 2, ParentId=3, Score=1, Body="<p>b</p>"),
    _post(4, 1, AnswerCount=2, Score=1, Title="Late question", Body="<p>asked after its answers</p>"),
    _post(99, 2, ParentId=777, Score=3, Body="<p>orphan</p>"),
    _post(50, 4, Body="tag wiki"),
]


def write_posts(path, rows):
    path.write_text('\ufeff<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "\n".join(rows) + "\n</posts>\n", encoding="utf-8")
    return path


def test_answer_score_recipe():
    assert [answer_score(v, False) for v in (0, 1, 2, 3, 10, 100)] == [0, 1, 2, 2, 3, 7]
    assert answer_score(3, True) == 3  # +1 when accepted
    assert answer_score(-5, False) == -1  # formula on 0, then -1
    assert answer_score(-5, True) == 0


def test_stackexchange_pairs_and_counts(tmp_path):
    src = write_posts(tmp_path / "brew.Posts.xml", POSTS)
    stats = run_import("stackexchange", src, tmp_path / "out.jsonl")
    df = load_instructions(tmp_path / "out.jsonl")
    assert sorted(df["id"]) == sorted(["brew-1-11-12", "brew-1-11-13", "brew-1-12-13", "brew-4-42-41"])
    assert stats["pairs_written"] == 4 and stats["rows_read"] == len(POSTS)
    assert stats["skipped"] == {
        "questions with fewer than 2 answers (with their answers)": 2,
        "questions whose answers all tie on score (with their answers)": 3,
        "answers whose question is not in the file": 1,
        "posts that are neither questions nor answers (wiki, tag excerpts, ...)": 1,
    }
    row = df.set_index("id").loc["brew-1-11-13"]
    assert row["prompt"] == 'How do I "brew"?\n\nI want to brew beer & cider.\n\n```\nx < 1\n  y\n```'
    assert row["chosen"] == "Use malt (http://malt.example).\n\n- one\n- two"
    assert row["rejected"] == "Use sand."
    assert row["meta"] == {"question_id": 1, "chosen_id": 11, "rejected_id": 13, "chosen_score": 3, "rejected_score": -1,
                           "chosen_votes": 10, "rejected_votes": -1, "source": "stackexchange:brew"}
    assert df.set_index("id").loc["brew-4-42-41", "chosen"] == "five & more"


def test_stackexchange_any_order_gives_the_same_pairs(tmp_path):
    forward = run_import("stackexchange", write_posts(tmp_path / "a.Posts.xml", POSTS), tmp_path / "a.jsonl", ImportConfig(site="s"))
    backward = run_import("stackexchange", write_posts(tmp_path / "b.Posts.xml", POSTS[::-1]), tmp_path / "b.jsonl", ImportConfig(site="s"))
    a, b = load_instructions(tmp_path / "a.jsonl"), load_instructions(tmp_path / "b.jsonl")
    assert sorted(a["id"]) == sorted(b["id"])
    assert forward["skipped"] == backward["skipped"]


def test_stackexchange_memory_stays_flat_for_an_ordered_dump(tmp_path):
    rows = []
    for q in range(1, 3001, 3):  # 1000 questions, each followed by its two answers
        rows += [_post(q, 1, AnswerCount=2, Title=f"Q{q}", Body="<p>body</p>"),
                 _post(q + 1, 2, ParentId=q, Score=5, Body="<p>good</p>"),
                 _post(q + 2, 2, ParentId=q, Score=0, Body="<p>bad</p>")]
    stats = run_import("stackexchange", write_posts(tmp_path / "big.Posts.xml", rows), tmp_path / "o.jsonl")
    assert stats["pairs_written"] == 1000
    assert stats["peak_posts_held"] == 3  # one question and its answers at a time, whatever the file size


def test_stackexchange_options(tmp_path):
    src = write_posts(tmp_path / "brew.Posts.xml", POSTS)
    capped = list(iter_import("stackexchange", src, ImportConfig(max_pairs_per_question=1)))
    assert sorted(r["id"] for r in capped) == ["brew-1-11-13", "brew-4-42-41"]  # largest score gap kept
    three = list(iter_import("stackexchange", src, ImportConfig(min_answers=3)))
    assert sorted(r["id"] for r in three) == ["brew-1-11-12", "brew-1-11-13", "brew-1-12-13"]
    assert len(list(iter_import("stackexchange", src, ImportConfig(limit=2)))) == 2


def test_stackexchange_bad_files(tmp_path):
    users = tmp_path / "Users.xml"
    users.write_text('<?xml version="1.0"?>\n<users>\n  <row Id="1" />\n</users>\n')
    with pytest.raises(SeamError, match=r"root element is <users>, not <posts>"):
        run_import("stackexchange", users, tmp_path / "o.jsonl")
    broken = tmp_path / "x.Posts.xml"
    broken.write_text('<?xml version="1.0"?>\n<posts>\n' + "\n".join(POSTS[:5]) + '\n  <row Id="7" PostTy')
    with pytest.raises(SeamError, match=r"x.Posts.xml line \d+, column \d+: malformed XML"):
        run_import("stackexchange", broken, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Users.xml", "x.Posts.xml"]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


HH = [
    {"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!\n\nHuman: Tell me a fact.\n\nAssistant: Water boils at 100 C at sea level.",
     "rejected": "\n\nHuman: Hi?\n\nAssistant: Hello!\n\nHuman: Tell me a fact.\n\nAssistant: No."},
    {"chosen": "\n\nHuman: A?\n\nAssistant: yes", "rejected": "\n\nHuman: B?\n\nAssistant: no"},  # prompts differ
    {"chosen": "\n\nHuman: C?\n\nAssistant:", "rejected": "\n\nHuman: C?\n\nAssistant: something"},  # empty chosen
    {"chosen": "\n\nHuman: D?\n\nAssistant: same", "rejected": "\n\nHuman: D?\n\nAssistant: same"},  # identical
]


def test_hh_transcripts(tmp_path):
    stats = run_import("hh", _jsonl(tmp_path / "hh.jsonl", HH), tmp_path / "out.parquet")
    df = load_instructions(tmp_path / "out.parquet")
    assert df.to_dict("records") == [{
        "id": "hh-1", "prompt": "Human: Hi?\n\nAssistant: Hello!\n\nHuman: Tell me a fact.",
        "chosen": "Water boils at 100 C at sea level.", "rejected": "No.", "meta": {"source": "hh-rlhf", "line": 1}}]
    assert stats["rows_read"] == 4 and stats["rows_skipped"] == 3
    assert stats["skipped"]["chosen and rejected transcripts have different prompts"] == 1


def test_hh_rejects_a_trl_file_with_a_hint(tmp_path):
    src = _jsonl(tmp_path / "p.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    with pytest.raises(SeamError, match=r"p.jsonl line 1: not the hh layout: .*keys found: prompt, chosen, rejected.*seam import trl"):
        run_import("hh", src, tmp_path / "o.jsonl")


SHP = [
    {"post_id": "abc", "domain": "askscience_train", "history": "Why is the sky blue?", "c_root_id_A": "x1", "c_root_id_B": "x2",
     "human_ref_A": "Rayleigh scattering.", "human_ref_B": "Because.", "labels": 1, "score_A": 50, "score_B": 3},
    {"post_id": "abc", "domain": "askscience_train", "history": "Why is the sky blue?", "c_root_id_A": "x3", "c_root_id_B": "x1",
     "human_ref_A": "Magic.", "human_ref_B": "Rayleigh scattering.", "labels": 0, "score_A": 2, "score_B": 50},
    {"post_id": "def", "history": "Q", "human_ref_A": "a", "human_ref_B": "b", "labels": 7},
]


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_shp(tmp_path, ext):
    import pandas as pd

    src = tmp_path / f"shp.{ext}"
    frame = pd.DataFrame(SHP)
    {"jsonl": lambda: _jsonl(src, SHP), "csv": lambda: frame.to_csv(src, index=False),
     "parquet": lambda: frame.to_parquet(src)}[ext]()
    stats = run_import("shp", src, tmp_path / "out.jsonl")
    df = load_instructions(tmp_path / "out.jsonl")
    assert df["id"].tolist() == ["shp-abc-x1-x2", "shp-abc-x3-x1"]
    assert df["chosen"].tolist() == ["Rayleigh scattering.", "Rayleigh scattering."]
    assert df["rejected"].tolist() == ["Because.", "Magic."]
    assert df["meta"][1]["chosen_score"] == 50 and df["meta"][1]["domain"] == "askscience_train"
    assert stats["skipped"] == {"labels is not 0 or 1": 1}


TRL = [
    {"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},
    {"prompt": [{"role": "user", "content": "What color is the sky?"}],
     "chosen": [{"role": "assistant", "content": "It is blue."}], "rejected": [{"role": "assistant", "content": "Green."}]},
    {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hi! How can I help?"},
                {"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "Apple."}],
     "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hi! How can I help?"},
                  {"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "Rock."}]},
    {"id": "sft-1", "prompt": "2+2=", "completion": "4"},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                  {"role": "assistant", "content": "Paris."}]},
    {"prompt": "p", "completion": "bad", "label": False},
    {"prompt": "   ", "chosen": "x", "rejected": "y"},
]


def test_trl_layouts(tmp_path):
    stats = run_import("trl", _jsonl(tmp_path / "trl.jsonl", TRL), tmp_path / "out.jsonl")
    rows = load_instructions(tmp_path / "out.jsonl").to_dict("records")
    got = [(r["id"], r["prompt"], r["chosen"], r["rejected"]) for r in rows]
    assert got == [
        ("trl-1", "The sky is", "blue.", "green."),
        ("trl-2", "What color is the sky?", "It is blue.", "Green."),
        ("trl-3", "User: Hi\n\nAssistant: Hi! How can I help?\n\nUser: Name a fruit.", "Apple.", "Rock."),
        ("sft-1", "2+2=", "4", None),
        ("trl-5", "System: Be brief.\n\nUser: Capital of France?", "Paris.", None),
    ]
    assert stats["skipped"] == {"unpaired rows labelled undesirable (label false)": 1, "empty prompt": 1}


SEAM_JSON = [
    {"qid": 10, "question": "How to sort a list?", "response_j": "Use sorted().", "response_k": "You can't.", "date": "2021"},
    {"qid": 10, "question": "How to sort a list?", "response_j": "list.sort() sorts in place.", "response_k": "Use a loop?"},
    {"instruction": "Translate to French", "input": "cat", "output": "chat"},
    {"id": "z", "prompt": "P", "chosen": "C", "rejected": "R"},
    {"title": "no usable keys"},
]


@pytest.mark.parametrize("as_array", [True, False])
def test_seam_json(tmp_path, as_array):
    src = tmp_path / "seam.json"
    src.write_text(json.dumps(SEAM_JSON, indent=1) if as_array else "".join(json.dumps(r) + "\n" for r in SEAM_JSON))
    stats = run_import("seam-json", src, tmp_path / "out.csv")
    df = load_instructions(tmp_path / "out.csv")
    assert df["id"].tolist() == ["10-1", "10-2", "seam-3", "z"]
    assert df["prompt"].tolist()[2] == "Translate to French\n\ncat"
    assert df["chosen"].tolist() == ["Use sorted().", "list.sort() sorts in place.", "chat", "C"]
    assert df["rejected"].tolist() == ["You can't.", "Use a loop?", None, "R"]
    assert df["meta"][0] == {"source": "seam-json", "qid": "10", "date": "2021"}
    assert stats["rows_skipped"] == 1


def test_hf_folder_detects_each_layout(tmp_path):
    datasets = pytest.importorskip("datasets")
    cases = {"hh": HH[:1], "shp": SHP[:2], "trl": TRL[:1], "seam-json": SEAM_JSON[:2]}
    for layout, rows in cases.items():
        folder = tmp_path / layout
        datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(folder))
        stats = run_import("hf", folder, tmp_path / f"{layout}.jsonl", ImportConfig(split="train"))
        assert stats["layout"] == layout
        assert len(load_instructions(tmp_path / f"{layout}.jsonl")) == len(rows) == stats["pairs_written"]


def test_hf_unknown_layout_and_missing_split(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([{"text": "x"}]).save_to_disk(str(tmp_path / "odd"))
    with pytest.raises(SeamError, match=r"cannot tell the layout from the columns \(text\)"):
        run_import("hf", tmp_path / "odd", tmp_path / "o.jsonl")
    d = datasets.Dataset.from_list(TRL[:1])
    datasets.DatasetDict({"train": d, "test": d}).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(SeamError, match="pass --split NAME"):
        run_import("hf", tmp_path / "two", tmp_path / "o.jsonl")
    assert run_import("hf", tmp_path / "two", tmp_path / "o.jsonl", ImportConfig(split="test"))["pairs_written"] == 1


def test_nothing_importable_is_an_error_and_writes_nothing(tmp_path):
    src = _jsonl(tmp_path / "hh.jsonl", HH[1:])  # every row is skipped
    with pytest.raises(SeamError, match=r"nothing to import \(3 rows read; skipped: "):
        run_import("hh", src, tmp_path / "out.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hh.jsonl"]


def test_bad_config_values():
    with pytest.raises(SeamError, match="--min-answers must be at least 2"):
        ImportConfig(min_answers=1)
    with pytest.raises(SeamError, match="--limit must be at least 1"):
        ImportConfig(limit=0)
