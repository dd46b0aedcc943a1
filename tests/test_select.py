"""`seam select`: exact counts, SEAM (one variant / rank average), each baseline, lineage."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from seam.cli import main
from seam.data import load_instructions, read_table, write_table
from seam.errors import SeamError
from seam.io import lineage_path
from seam.select import SelectConfig, SelectInputs, drop_count, select, write_selection

N = 20


def _rows(n=N, rejected=True):
    return [{"id": f"q{i:02d}", "prompt": f"What is {i} times 3?", "chosen": f"{i} times 3 is {3 * i}.",
             **({"rejected": f"It is {3 * i + 1}."} if rejected else {}), "meta": {"k": i}} for i in range(n)]


def _scores(ids, variant, values):
    return [{"id": i, "variant": variant, "seam": float(v), "n_negatives": 3, "n_misjudged": int(v < 0), "rm_gold": 0.0}
            for i, v in zip(ids, values)]


@pytest.fixture
def files(tmp_path):
    rows = _rows()
    ids = [r["id"] for r in rows]
    rng = np.random.default_rng(0)
    llm = -rng.random(N) * 3
    contrast = -rng.random(N)
    write_table(rows, tmp_path / "rl.jsonl")
    write_table(_scores(ids, "llm", llm) + _scores(ids, "contrast", contrast), tmp_path / "seam.jsonl")
    return tmp_path, ids, llm, contrast


def test_drop_count_rounding():
    assert [drop_count(n, 0.2) for n in (0, 1, 2, 3, 7, 10, 12, 13)] == [0, 0, 0, 1, 1, 2, 2, 3]
    assert drop_count(10, 0.0) == 0 and drop_count(10, 1.0) == 10 and drop_count(5, 0.5) == 3


def test_seam_one_variant_drops_lowest(files):
    tmp, ids, llm, _ = files
    df = load_instructions(tmp / "rl.jsonl")
    sel = select(df, SelectConfig(variants=("llm",)), SelectInputs(scores=read_table(tmp / "seam.jsonl")))
    expected = [ids[i] for i in np.argsort(llm)[:4]]
    assert sel.dropped["id"].tolist() == expected
    assert len(sel.kept) == N - 4 and sel.kept["id"].tolist() == [i for i in ids if i not in expected]
    assert sel.lineage["n_dropped"] == 4 and sel.lineage["info"]["combine"] == "seam"


def test_seam_rank_average(files):
    tmp, ids, llm, contrast = files
    df = load_instructions(tmp / "rl.jsonl")
    sel = select(df, SelectConfig(p=0.25), SelectInputs(scores=read_table(tmp / "seam.jsonl")))
    # variants default to all in the file, sorted: contrast, llm
    avg = (rankdata(contrast) + rankdata(llm)) / 2
    assert sel.lineage["info"] == {"variants": ["contrast", "llm"], "combine": "rank-average",
                                   "missing": {"contrast": 0, "llm": 0}}
    assert sel.dropped["id"].tolist() == [ids[i] for i in np.argsort(avg, kind="stable")[:5]]
    assert np.allclose(sel.keep_scores["keep_score"], avg)


def test_seam_missing_rows_count_as_zero(tmp_path):
    rows = _rows(5)
    write_table(rows, tmp_path / "rl.jsonl")
    df = load_instructions(tmp_path / "rl.jsonl")
    scores = pd.DataFrame(_scores(["q00", "q01", "q02"], "adv", [-1.0, -0.5, -0.2]))
    sel = select(df, SelectConfig(p=0.6), SelectInputs(scores=scores))  # drops 3: all scored ones
    assert sorted(sel.dropped["id"]) == ["q00", "q01", "q02"]
    assert sel.lineage["info"]["missing"] == {"adv": 2}
    with pytest.raises(SeamError, match="no adv SEAM for 2 instructions"):
        select(df, SelectConfig(missing="error"), SelectInputs(scores=scores))


@pytest.mark.parametrize("scores, match", [
    (pd.DataFrame(_scores(["zzz"], "llm", [-1.0])), "not in --data"),
    (pd.DataFrame({"id": ["q00"], "seam": [1.0]}), "needs columns id, variant, seam"),
    (pd.DataFrame(_scores(["q00", "q00"], "llm", [-1.0, -2.0])), "appears twice"),
])
def test_seam_bad_scores(tmp_path, scores, match):
    write_table(_rows(4), tmp_path / "rl.jsonl")
    with pytest.raises(SeamError, match=match):
        select(load_instructions(tmp_path / "rl.jsonl"), SelectConfig(), SelectInputs(scores=scores))


def test_random_baseline_is_seeded(files):
    tmp, ids, _, _ = files
    df = load_instructions(tmp / "rl.jsonl")
    a = select(df, SelectConfig(method="random", seed=1))
    b = select(df, SelectConfig(method="random", seed=1))
    c = select(df, SelectConfig(method="random", seed=2))
    assert len(a.dropped) == 4 and a.dropped["id"].tolist() == b.dropped["id"].tolist()
    assert set(a.dropped["id"]) != set(c.dropped["id"])


def test_perplexity_baseline_drops_highest(tiny_loaded, files):
    from seam.models.scoring import PolicyScorer
    from seam.models.templates import get_template

    pm, _ = tiny_loaded
    tmp, ids, _, _ = files
    df = load_instructions(tmp / "rl.jsonl")
    sel = select(df, SelectConfig(method="perplexity", p=0.3), SelectInputs(pm=pm))
    logp, tok, _ = PolicyScorer(pm, get_template("stackllama")).score(df["prompt"].tolist(), df["chosen"].tolist())
    ppl = np.exp(-logp / tok)
    assert set(sel.dropped["id"]) == {ids[i] for i in np.argsort(-ppl)[:6]}
    assert sel.lineage["info"]["pm_fingerprint"] == pm.fingerprint


def test_reward_gap_baseline(tiny_loaded, tmp_path):
    from seam.models.scoring import RewardScorer
    from seam.models.templates import get_template

    _, rm = tiny_loaded
    rows = _rows(10)
    for r in rows[5:]:
        del r["rejected"]
    write_table(rows, tmp_path / "rl.jsonl")
    df = load_instructions(tmp_path / "rl.jsonl")
    negs = pd.DataFrame([{"id": r["id"], "variant": "llm", "text": t, "meta": {}}
                         for r in rows[5:] for t in (f"No idea {r['id']}.", "Maybe seven.")])
    with pytest.raises(SeamError, match="no rejected response and no negatives"):
        select(df, SelectConfig(method="reward-gap"), SelectInputs(rm=rm))
    sel = select(df, SelectConfig(method="reward-gap", p=0.4), SelectInputs(rm=rm, negatives=negs))
    scorer = RewardScorer(rm, get_template("stackllama"))
    gold = scorer.score(df["prompt"].tolist(), df["chosen"].tolist())
    gap = np.empty(10)
    gap[:5] = gold[:5] - scorer.score(df["prompt"][:5].tolist(), df["rejected"][:5].tolist())
    for i in range(5, 10):
        texts = negs.loc[negs["id"] == df["id"][i], "text"].tolist()
        gap[i] = gold[i] - scorer.score([df["prompt"][i]] * len(texts), texts).max()
    assert np.allclose(sel.keep_scores["keep_score"], gap)
    assert set(sel.dropped["id"]) == set(df["id"].to_numpy()[np.argsort(gap)[:4]])
    assert sel.lineage["info"]["from_negatives"] == 5


def test_model_baselines_need_models(files):
    tmp, *_ = files
    df = load_instructions(tmp / "rl.jsonl")
    with pytest.raises(SeamError, match="needs --pm"):
        select(df, SelectConfig(method="perplexity"))
    with pytest.raises(SeamError, match="needs --rm"):
        select(df, SelectConfig(method="reward-gap"))
    with pytest.raises(SeamError, match="needs --scores"):
        select(df, SelectConfig())


def test_write_selection_records_lineage_chain(files):
    tmp, ids, llm, _ = files
    df = load_instructions(tmp / "rl.jsonl")
    inputs = SelectInputs(scores=read_table(tmp / "seam.jsonl"),
                          paths={"data": str(tmp / "rl.jsonl"), "scores": str(tmp / "seam.jsonl")})
    sel = select(df, SelectConfig(variants=("llm",)), inputs)
    paths = write_selection(sel, tmp / "rl.f1.jsonl", tmp / "dropped.csv")
    assert paths[-1] == lineage_path(tmp / "rl.f1.jsonl")
    lin = json.loads(lineage_path(tmp / "rl.f1.jsonl").read_text())
    assert lin["operation"] == "select" and lin["dropped_ids"] == sel.dropped["id"].tolist()
    assert lin["inputs"]["data"]["sha256"] == hashlib.sha256((tmp / "rl.jsonl").read_bytes()).hexdigest()
    assert lin["inputs"]["data"]["rows"] == N and lin["config"]["variants"] == ["llm"]
    kept = load_instructions(tmp / "rl.f1.jsonl")
    assert kept["id"].tolist() == sel.kept["id"].tolist() and kept["meta"][0] == {"k": int(kept["id"][0][1:])}
    assert read_table(tmp / "dropped.csv")["id"].tolist() == sel.dropped["id"].tolist()
    # selecting again from the filtered file links to the first lineage
    df2 = load_instructions(tmp / "rl.f1.jsonl")
    sel2 = select(df2, SelectConfig(method="random", p=0.5), SelectInputs(paths={"data": str(tmp / "rl.f1.jsonl")}))
    assert sel2.lineage["inputs"]["data"]["lineage"]["dropped_ids"] == lin["dropped_ids"]


# ----------------------------------------------------------------------------- CLI


def test_cli_select(files, capsys):
    tmp, ids, llm, _ = files
    out = tmp / "kept.parquet"
    code = main(["select", "--data", str(tmp / "rl.jsonl"), "--scores", str(tmp / "seam.jsonl"), "--variants", "llm",
                 "--p", "0.1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "dropped 2 of 20 instructions" in printed
    assert len(read_table(out)) == 18
    assert json.loads(lineage_path(out).read_text())["dropped_ids"] == [ids[i] for i in np.argsort(llm)[:2]]


def test_cli_help(capsys):
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    out = capsys.readouterr().out
    assert "example:" in out and "seam select" in out


@pytest.mark.parametrize("extra, match", [
    (["--p", "1.5"], "--p must be a fraction"),
    (["--method", "seam"], "needs --scores"),
    (["--scores", "{seam}", "--variants", "gpt"], "--variants 'gpt' is not in the scores file"),
    (["--method", "random", "--scores", "{seam}"], "--scores is not used by --method random"),
    (["--method", "perplexity"], "needs --pm"),
    (["--scores", "{tmp}/nope.jsonl"], "nope.jsonl"),
])
def test_cli_bad_input(files, capsys, extra, match):
    tmp, *_ = files
    argv = ["select", "--data", str(tmp / "rl.jsonl"), "--out", str(tmp / "o.jsonl")]
    argv += [e.replace("{seam}", str(tmp / "seam.jsonl")).replace("{tmp}", str(tmp)) for e in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    assert not (tmp / "o.jsonl").exists() and not lineage_path(tmp / "o.jsonl").exists()
