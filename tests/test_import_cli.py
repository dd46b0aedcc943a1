"""`seam import` as a user runs it: a subprocess of the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SEAM = Path(sys.executable).parent / "seam"


def seam(*args, cwd=None):
    return subprocess.run([str(SEAM), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def assert_one_error_line(result, *parts):
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for part in parts:
        assert part in lines[0], lines[0]


def test_import_writes_file_and_prints_stats(tmp_path):
    src = tmp_path / "trl.jsonl"
    src.write_text(json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"}) + "\n"
                   + json.dumps({"prompt": "", "chosen": "c", "rejected": "r"}) + "\n")
    result = seam("import", "trl", src, "--out", tmp_path / "out.parquet")
    assert result.returncode == 0, result.stderr
    assert f"wrote 1 rows to {tmp_path / 'out.parquet'}" in result.stdout
    assert "rows read: 2" in result.stdout and "1  empty prompt" in result.stdout
    assert (tmp_path / "out.parquet").is_file()


@pytest.mark.parametrize("case", ["invalid json", "missing source", "wrong layout", "missing out folder", "bad extension", "bad option"])
def test_bad_input_exits_2_with_one_error_line(tmp_path, case):
    src = tmp_path / "data.jsonl"
    src.write_text('{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: yo", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: no"}\n{"chosen": \n')
    out = tmp_path / "out.jsonl"
    args, parts = {
        "invalid json": (["hh", src, "--out", out], [str(src), "line 2", "invalid JSON"]),
        "missing source": (["hh", tmp_path / "nope.jsonl", "--out", out], ["nope.jsonl", "file not found"]),
        "wrong layout": (["shp", src, "--out", out], ["line 1", "not the shp layout", "keys found: chosen, rejected"]),
        "missing out folder": (["hh", src, "--out", tmp_path / "sub" / "out.jsonl"], ["mkdir -p"]),
        "bad extension": (["hh", src, "--out", tmp_path / "out.txt"], ["unknown file type (.txt)"]),
        "bad option": (["stackexchange", src, "--out", out, "--min-answers", "1"], ["--min-answers must be at least 2"]),
    }[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = seam("import", *args)
    assert_one_error_line(result, *parts)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temp file


def test_help_has_an_example():
    result = seam("import", "--help")
    assert result.returncode == 0
    assert "example:" in result.stdout and "seam import stackexchange" in result.stdout
    for kind in ("stackexchange", "hh", "shp", "trl", "seam-json", "hf"):
        assert kind in result.stdout
