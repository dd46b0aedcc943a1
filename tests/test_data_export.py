"""Exporters to TRL, OpenRLHF and SEAM JSON, and the HTML -> text converter."""

from __future__ import annotations

import json

import pytest

from seam.data import (
    export_openrlhf,
    export_seam_json,
    export_trl_preference,
    export_trl_prompts,
    load_instructions,
    read_table,
    run_import,
    write_table,
)
from seam.data.html_text import html_to_text
from seam.errors import SeamError

ROWS = [
    {"id": "a", "prompt": "Why?", "chosen": "Because.", "rejected": "No idea.", "meta": {"s": 1}},
    {"id": "b", "prompt": "How?", "chosen": "Like this.", "rejected": "Dunno.", "meta": {}},
]


@pytest.fixture
def df(tmp_path):
    return load_instructions(write_table(ROWS, tmp_path / "in.jsonl"))


@pytest.mark.parametrize("ext", ["jsonl", "parquet", "csv"])
def test_trl_exports(tmp_path, df, ext):
    pref = read_table(export_trl_preference(df, tmp_path / f"pref.{ext}"))
    assert list(pref.columns) == ["prompt", "chosen", "rejected"]
    assert pref.to_dict("records") == [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in ROWS]
    prompts = read_table(export_trl_prompts(df, tmp_path / f"prompts.{ext}"))
    assert list(prompts.columns) == ["prompt"] and prompts["prompt"].tolist() == ["Why?", "How?"]


def test_openrlhf_keys(tmp_path, df):
    path = export_openrlhf(df, tmp_path / "p.jsonl")  # train_ppo --input_key prompt
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"prompt": "Why?"}, {"prompt": "How?"}]
    export_openrlhf(df, tmp_path / "r.jsonl", kind="preference")
    assert json.loads((tmp_path / "r.jsonl").read_text().splitlines()[1]) == {"prompt": "How?", "chosen": "Like this.", "rejected": "Dunno."}
    with pytest.raises(SeamError, match="kind must be one of prompts, preference"):
        export_openrlhf(df, tmp_path / "x.jsonl", kind="sft")


def test_preference_export_needs_rejected(tmp_path, df):
    df.loc[1, "rejected"] = None
    with pytest.raises(SeamError, match=r"1 of 2 rows have no rejected response \(first: id 'b'\)"):
        export_trl_preference(df, tmp_path / "pref.jsonl")
    assert not (tmp_path / "pref.jsonl").exists()


def test_seam_json_round_trip(tmp_path, df):
    path = export_seam_json(df, tmp_path / "seam.json")
    assert json.loads(path.read_text())[0] == {"id": "a", "question": "Why?", "response_j": "Because.", "response_k": "No idea.", "meta": {"s": 1}}
    run_import("seam-json", path, tmp_path / "back.jsonl")
    back = load_instructions(tmp_path / "back.jsonl")
    assert back[["id", "prompt", "chosen", "rejected"]].to_dict("records") == df[["id", "prompt", "chosen", "rejected"]].to_dict("records")


@pytest.mark.parametrize("html, text", [
    ("<p>a &amp; b &lt;c&gt; &quot;d&quot; &#39;e&#39;</p>", "a & b <c> \"d\" 'e'"),
    ("<p>one</p>\n\n<p>two\nlines</p>", "one\n\ntwo lines"),
    ("<pre><code>def f():\n    return 1 &lt; 2\n</code></pre>", "```\ndef f():\n    return 1 < 2\n```"),
    ("<p>call <code>f(x)</code> now</p>", "call `f(x)` now"),
    ('<a href="https://x.org/a">docs</a> and <a href="https://y.org">https://y.org</a>', "docs (https://x.org/a) and https://y.org"),
    ("<ol><li>first</li><li>second<ul><li>inner</li></ul></li></ol>", "1. first\n2. second\n   - inner"),
    ("<blockquote><p>quoted</p></blockquote><p>after</p>", "> quoted\n\nafter"),
    ("<h2>Title</h2><p>x<br>y</p><hr>", "## Title\n\nx\ny\n\n---"),
    ('<img src="a.png" alt="diagram"><script>evil()</script>', "diagram (a.png)"),
    ("<ul><li>unclosed<li>items</ul>", "- unclosed\n- items"),
    ("", ""),
])
def test_html_to_text(html, text):
    assert html_to_text(html) == text
