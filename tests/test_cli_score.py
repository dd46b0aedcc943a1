"""`seam score` end to end: numbers equal the plain implementation; bad input fails cleanly."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from seam.cli import main

from helpers import write_score_files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("score")
    inst, negs = write_score_files(d, 10, seed=7, max_negs=5, variants=("contrast", "llm"), meta=True)
    return d, inst, negs


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_score_matches_plain_implementation(files, tiny_models, tiny_loaded, tmp_path, capsys):
    from seam.models.reference import score_plain
    from seam.models.templates import get_template
    from seam.score import negative_terms

    d, inst, negs = files
    pm_dir, rm_dir = tiny_models
    code, out, err = run_cli(["score", "--pm", pm_dir, "--rm", rm_dir, "--data", d / "rl.jsonl", "--negatives",
                              d / "negs.jsonl", "--out", tmp_path / "s.parquet", "--details", tmp_path / "d.csv",
                              "--batch-tokens", 256, "--chunk-instructions", 3], capsys)
    assert code == 0, err
    assert "scored 10 instructions" in out
    det = pd.read_csv(tmp_path / "d.csv")
    scores = pd.read_parquet(tmp_path / "s.parquet")
    assert len(det) == len(negs)
    # plain per-sample reference for every negative
    pm, rm = tiny_loaded
    tpl = get_template("stackllama")
    prompt_of = {r["id"]: r["prompt"] for r in inst}
    gold_of = {r["id"]: r["chosen"] for r in inst}
    r_neg, lp, tok = score_plain(pm, rm, tpl, tpl, [prompt_of[i] for i in det["id"]], det.merge(
        pd.DataFrame(negs).assign(neg_index=lambda x: x.groupby(["id", "variant"]).cumcount()),
        on=["id", "variant", "neg_index"])["text"].tolist())
    r_gold, _, _ = score_plain(pm, rm, tpl, tpl, [prompt_of[i] for i in det["id"]], [gold_of[i] for i in det["id"]])
    assert np.abs(det["rm_neg"] - r_neg).max() < 1e-4
    assert np.abs(det["rm_gold"] - r_gold).max() < 1e-4
    assert np.abs(det["pm_logprob_sum"] - lp).max() < 1e-4
    assert (det["pm_tokens"] == tok).all()
    eps, ell, term = negative_terms(r_gold, r_neg, lp, tok)
    assert np.abs(det["term"] - term).max() < 1e-4
    ref = pd.DataFrame({"id": det["id"], "variant": det["variant"], "term": term}).groupby(["id", "variant"])["term"].sum()
    got = scores.set_index(["id", "variant"])["seam"]
    assert np.abs(got.sort_index() - ref.sort_index()).max() < 1e-4
    assert set(scores.columns) == {"id", "variant", "seam", "n_negatives", "n_misjudged", "rm_gold"}


def test_prob_weighting_mean_aggregate_and_variant_filter(files, tiny_models, tmp_path, capsys):
    d, _, negs = files
    code, out, err = run_cli(["score", "--pm", tiny_models[0], "--rm", tiny_models[1], "--data", d / "rl.jsonl",
                              "--negatives", d / "negs.jsonl", "--out", tmp_path / "s.jsonl", "--details", tmp_path / "d.jsonl",
                              "--weighting", "prob", "--aggregate", "mean", "--variants", "llm", "--quiet"], capsys)
    assert code == 0, err
    s = pd.read_json(tmp_path / "s.jsonl", lines=True)
    dd = pd.read_json(tmp_path / "d.jsonl", lines=True)
    assert set(s["variant"]) == {"llm"}
    expect = (-np.exp(dd["pm_logprob_mean"]) * dd["epsilon"]).groupby(dd["id"]).mean()
    assert np.allclose(s.set_index("id")["seam"].sort_index(), expect.sort_index(), atol=1e-9)


def test_help_shows_example(capsys):
    with pytest.raises(SystemExit) as e:
        main(["score", "--help"])
    assert e.value.code == 0
    assert "example:" in capsys.readouterr().out


# ------------------------------------------------------------------------------- bad input

def _write(path, text, mode="w"):
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


BAD = {
    "missing data file": (lambda d: {"--data": d / "nope.jsonl"}, "nope.jsonl"),
    "data missing chosen column": (lambda d: {"--data": _write(d / "x.jsonl", '{"id": "a", "prompt": "p"}\n')}, "chosen"),
    "empty prompt": (lambda d: {"--data": _write(d / "x.jsonl", '{"id": "a", "prompt": " ", "chosen": "c"}\n')}, "prompt"),
    "duplicate id": (lambda d: {"--data": _write(d / "x.jsonl", '{"id": "a", "prompt": "p", "chosen": "c"}\n' * 2)}, "duplicate"),
    "non-utf8": (lambda d: {"--data": _write(d / "x.jsonl", b'{"id": "a", "prompt": "\xff\xfe", "chosen": "c"}\n', "wb")}, "UTF-8"),
    "invalid json": (lambda d: {"--data": _write(d / "x.jsonl", '{"id": "a", "prompt": "p", "chosen": "c"}\n{oops\n')}, "line 2"),
    "empty data file": (lambda d: {"--data": _write(d / "x.jsonl", "")}, "empty"),
    "non-string prompt": (lambda d: {"--data": _write(d / "x.jsonl", '{"id": "a", "prompt": 5, "chosen": "c"}\n')}, "prompt"),
    "corrupt parquet": (lambda d: {"--data": _write(d / "x.parquet", b"PAR1 not really", "wb")}, "x.parquet"),
    "negatives unknown id": (lambda d: {"--negatives": _write(d / "n.jsonl", '{"id": "zzz", "variant": "v", "text": "t"}\n')}, "zzz"),
    "negatives empty text": (lambda d: {"--negatives": _write(d / "n.jsonl", '{"id": "q0", "variant": "v", "text": ""}\n')}, "text"),
    "unknown pm folder": (lambda d: {"--pm": d / "no-model"}, "--pm"),
    "rm folder not a model": (lambda d: {"--rm": d}, "--rm"),
    "bad output extension": (lambda d: {"--out": d / "s.txt"}, "--out"),
    "output folder missing": (lambda d: {"--out": d / "missing" / "s.jsonl"}, "missing"),
    "bad template": (lambda d: {"--template": "Q: {prompt}"}, "--template"),
    "bad max tokens": (lambda d: {"--max-response-tokens": "0"}, "--max-response-tokens"),
    "unknown variant": (lambda d: {"--variants": "gpt5"}, "gpt5"),
    "bad weighting flag": (lambda d: {"--weighting": "both"}, "--weighting"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_error_line(case, files, tiny_models, tmp_path, capsys):
    d, _, _ = files
    change, needle = BAD[case]
    args = {"--pm": tiny_models[0], "--rm": tiny_models[1], "--data": d / "rl.jsonl", "--negatives": d / "negs.jsonl",
            "--out": tmp_path / "s.jsonl", "--details": tmp_path / "d.jsonl"}
    args.update(change(tmp_path))
    argv = ["score"] + [str(x) for kv in args.items() for x in kv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1, err
    assert needle.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "s.jsonl").exists() and not (tmp_path / "d.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".s.jsonl", ".d.jsonl", "s.jsonl.", "d.jsonl."))]


def test_real_process_bad_input_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "seam", "score", "--pm", str(tmp_path / "x"), "--rm", str(tmp_path),
                           "--data", str(tmp_path / "missing.jsonl"), "--negatives", str(tmp_path / "n.jsonl"),
                           "--out", str(tmp_path / "o.jsonl")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_side_by_side_flag_gives_the_same_scores(files, tiny_models, tmp_path, capsys):
    d, _, _ = files
    out = {}
    for mode in ("on", "off"):
        code, _, err = run_cli(["score", "--pm", tiny_models[0], "--rm", tiny_models[1], "--data", d / "rl.jsonl",
                                "--negatives", d / "negs.jsonl", "--out", tmp_path / f"{mode}.jsonl",
                                "--side-by-side", mode, "--quiet"], capsys)
        assert code == 0, err
        out[mode] = pd.read_json(tmp_path / f"{mode}.jsonl", lines=True)
    assert np.allclose(out["on"]["seam"], out["off"]["seam"], atol=1e-6)
    code = main([str(a) for a in ["score", "--pm", tiny_models[0], "--rm", tiny_models[1], "--data", d / "rl.jsonl",
                                  "--negatives", d / "negs.jsonl", "--out", tmp_path / "x.jsonl", "--side-by-side", "maybe"]])
    err = capsys.readouterr().err  # ScoreConfig's check: exit 2, one line naming the flag and the choices
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --side-by-side 'maybe'") and "auto, on, off" in err
    assert not (tmp_path / "x.jsonl").exists()
