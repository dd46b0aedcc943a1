"""adv negatives: TextAttack imports offline; attacks on a tiny RM respect k, budget and the goal;
results are deterministic and their recorded rewards are the RM's; the CLI works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seam.cli import main
from seam.data import load_negatives
from seam.errors import SeamError
from seam.negatives import AdvBuilder, AdvConfig, build_negatives

REPO = Path(__file__).resolve().parents[1]

NET_GUARD = textwrap.dedent("""
    import os, socket
    _log = os.environ["NET_LOG"]
    def _deny(what):
        with open(_log, "a") as fh:
            fh.write(what + "\\n")
        raise OSError("network disabled in this test: " + what)
    _connect = socket.socket.connect
    def connect(self, addr, *a, **k):
        if isinstance(addr, tuple) and addr and addr[0] not in ("127.0.0.1", "::1", "localhost"):
            _deny(f"connect {addr}")
        return _connect(self, addr, *a, **k)
    socket.socket.connect = connect
    _gai = socket.getaddrinfo
    def getaddrinfo(host, *a, **k):
        if host not in (None, "127.0.0.1", "::1", "localhost"):
            _deny(f"dns {host}")
        return _gai(host, *a, **k)
    socket.getaddrinfo = getaddrinfo
""")

CHECK = textwrap.dedent("""
    import json, os
    keys = ("HF_HOME", "XDG_CACHE_HOME", "TA_CACHE_DIR", "TFHUB_CACHE_DIR", "PYTORCH_TRANSFORMERS_CACHE",
            "TOKENIZERS_PARALLELISM", "MPLCONFIGDIR")
    before = {k: os.environ.get(k) for k in keys}
    from seam.textattack_env import import_textattack, nltk_dir
    ta = import_textattack()
    import nltk
    from textattack.constraints.pre_transformation import StopwordModification
    print(json.dumps({"changed": {k: os.environ.get(k) for k in keys if os.environ.get(k) != before[k]},
                      "nltk_first": nltk.data.path[0], "nltk_dir": str(nltk_dir()),
                      "stopwords": len(StopwordModification().stopwords)}))
""")


def test_textattack_imports_offline_on_a_fresh_home(tmp_path):
    home, cache, guard = tmp_path / "home", tmp_path / "cache", tmp_path / "guard"
    home.mkdir()
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NET_GUARD)
    log = tmp_path / "net.log"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "SEAM_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join([str(guard), str(REPO)]), "NET_LOG": str(log), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", CHECK], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not log.exists(), log.read_text()  # no network attempt at all
    assert info["changed"] == {}  # TextAttack's environment changes are undone
    assert info["nltk_first"] == info["nltk_dir"] == str(cache / "nltk_data")
    assert info["stopwords"] == 179
    assert (cache / "nltk_data" / "corpora" / "stopwords" / "english").is_file()
    assert (cache / "textattack" / "post_install_check_3").is_file()
    assert list(home.iterdir()) == []  # nothing written to the home folder
    # `python -m seam.textattack_env` (what `make setup` runs) works and is idempotent
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "seam.textattack_env"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "stopwords written" in proc.stdout, proc.stderr
    assert not log.exists() and list(home.iterdir()) == []


def _frame():
    rows = [
        {"id": "a", "prompt": "What is two plus two?", "chosen": "Two plus two is four.", "rejected": "Two plus two is five."},
        {"id": "b", "prompt": "Sort the list 3, 1, 2 in ascending order.", "chosen": "The sorted list is 1, 2, 3.",
         "rejected": None},
        {"id": "c", "prompt": "What is the capital of France?", "chosen": "The capital of France is Paris.",
         "rejected": "The capital of France is Rome, which is a large city."},
    ]
    df = pd.DataFrame(rows)
    df["meta"] = [{} for _ in rows]
    return df


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAM_CACHE_DIR", str(tmp_path / "cache"))


def test_adv_on_tiny_rm_respects_k_budget_and_goal(cache_env, tiny_loaded):
    from seam.models.scoring import RewardScorer
    from seam.models.templates import get_template

    _, rm = tiny_loaded
    df = _frame()
    cfg = AdvConfig(k=5, query_budget=40, margin=0.0, search="textattack")
    neg, stats = AdvBuilder(cfg, rm=rm).build(df)
    assert list(neg.columns) == ["id", "variant", "text", "meta"] and (neg["variant"] == "adv").all()
    assert neg.groupby("id").size().max() <= 5
    assert neg.groupby("id")["text"].nunique().eq(neg.groupby("id").size()).all()  # distinct
    gold = dict(zip(df["id"], df["chosen"]))
    assert all(t.strip() != gold[i] for i, t in zip(neg["id"], neg["text"]))
    metas = pd.DataFrame(list(neg["meta"]))
    assert (metas["queries"] <= 40).all()
    assert metas.loc[neg["id"].eq("a").to_numpy(), "start"].eq("rejected").all()
    assert metas.loc[neg["id"].eq("b").to_numpy(), "start"].str.startswith("corrupted:").all()
    # recorded rewards are the RM's, and `success` means R(I∘r*) >= R(I∘r) + margin
    scorer = RewardScorer(rm, get_template("stackllama"))
    prompt = dict(zip(df["id"], df["prompt"]))
    r_neg = scorer.score([prompt[i] for i in neg["id"]], neg["text"].tolist())
    r_gold = scorer.score([prompt[i] for i in neg["id"]], [gold[i] for i in neg["id"]])
    np.testing.assert_allclose(metas["rm_neg"], r_neg, atol=1e-5)
    np.testing.assert_allclose(metas["rm_gold"], r_gold, atol=1e-5)
    decided = np.abs(r_neg - r_gold) > 1e-5  # away from the tie, success is exactly R(neg) >= R(gold) + 0
    assert (metas["success"][decided] == (r_neg >= r_gold)[decided]).all()
    # successful negatives first, then by reward
    for _, g in metas.groupby(neg["id"].to_numpy()):
        key = list(zip(~g["success"], -g["rm_neg"]))
        assert key == sorted(key)
    assert stats["successes"] == int(metas.groupby(neg["id"].to_numpy())["success"].any().sum())
    assert stats["rm_queries"] == 2 * len(df) + stats["attack_queries"]
    # deterministic
    again, _ = AdvBuilder(cfg, rm=rm).build(df)
    pd.testing.assert_frame_equal(neg, again)


@pytest.mark.parametrize("recipe", ["char", "embedding", "hotflip"])
def test_adv_recipes_run(cache_env, tiny_loaded, recipe):
    _, rm = tiny_loaded
    neg, stats = build_negatives("adv", _frame(), AdvConfig(k=3, search="textattack", recipe=recipe, query_budget=25), rm=rm)
    assert stats["recipe"] == recipe and len(neg) > 0
    assert all(m["recipe"] == recipe for m in neg["meta"])
    if recipe == "char":
        assert stats["grad_calls"] == 0  # black-box


def test_margin_makes_success_harder(cache_env, tiny_loaded):
    _, rm = tiny_loaded
    hotflip = dict(k=2, search="textattack", recipe="hotflip", query_budget=20)
    _, easy = build_negatives("adv", _frame(), AdvConfig(**hotflip, margin=-100.0), rm=rm)
    _, hard = build_negatives("adv", _frame(), AdvConfig(**hotflip, margin=100.0), rm=rm)
    assert easy["successes"] == 3 and hard["successes"] == 0 and hard["queries_per_success"] is None


def test_wordnet_recipe_without_data_says_how_to_fix(cache_env, tiny_loaded):
    from seam.textattack_env import wordnet_available

    if wordnet_available():
        pytest.skip("WordNet data present on this machine")
    _, rm = tiny_loaded
    with pytest.raises(SeamError, match="wordnet-base"):
        build_negatives("adv", _frame(), AdvConfig(k=2, search="textattack", recipe="wordnet"), rm=rm)


def test_wordnet_recipe_where_wordnet_is_installed(cache_env, tiny_loaded):
    from seam.negatives.adv_attack import WordNetSwap  # prepares the NLTK folder (copies WordNet if installed)
    from seam.textattack_env import wordnet_available

    if not wordnet_available():
        pytest.skip("no WordNet data (apt-get install wordnet-base wordnet-sense-index)")
    assert "big" in WordNetSwap(8)._get_replacement_words("large")
    _, rm = tiny_loaded
    neg, stats = build_negatives("adv", _frame(), AdvConfig(k=2, search="textattack", recipe="wordnet", query_budget=20), rm=rm)
    assert stats["recipe"] == "wordnet" and stats["grad_calls"] == 0


def test_config_validation():
    with pytest.raises(SeamError, match="--recipe"):
        AdvConfig(recipe="bogus").validate()
    with pytest.raises(SeamError, match="--query-budget"):
        AdvConfig(query_budget=1).validate()
    with pytest.raises(SeamError, match="--rm"):
        AdvBuilder(AdvConfig()).build(_frame())


def test_cli_adv(cache_env, tiny_models, tmp_path, capsys):
    _, rm_dir = tiny_models
    data = tmp_path / "rl.jsonl"
    df = _frame()
    data.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "meta" and v is not None}) + "\n"
                            for r in df.to_dict("records")))
    out = tmp_path / "negs.csv"
    code = main(["negatives", "adv", "--data", str(data), "--rm", str(rm_dir), "--out", str(out), "--k", "3",
                 "--query-budget", "30", "--device", "cpu", "--quiet"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "RM queries per success" in cap.out and "success" in cap.out
    neg = load_negatives(out, known_ids=df["id"])
    assert len(neg) > 0 and neg["meta"].map(lambda m: "queries" in m and "success" in m).all()
    # a missing RM folder: exit 2, one line, no output
    bad = tmp_path / "bad.jsonl"
    code = main(["negatives", "adv", "--data", str(data), "--rm", str(tmp_path / "nope"), "--out", str(bad), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --rm") and not bad.exists()


def _se_rows(limit):
    path = REPO.parent / "shared" / "data" / "stackexchange" / "coffee.Posts.xml"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    from seam.data import ImportConfig, iter_import

    return list(iter_import("stackexchange", path, ImportConfig(limit=limit, max_pairs_per_question=1)))


def test_adv_on_real_stackexchange_text(cache_env, tiny_loaded):
    _, rm = tiny_loaded
    df = pd.DataFrame(_se_rows(3))
    neg, stats = build_negatives("adv", df, AdvConfig(k=3, search="textattack", recipe="hotflip", query_budget=20, max_words=48,
                                                      max_response_tokens=128, max_prompt_tokens=128), rm=rm)
    assert stats["attacked"] == 3 and len(neg) > 0
    rej = dict(zip(df["id"], df["rejected"]))
    assert all(t != rej[i] for i, t in zip(neg["id"], neg["text"]))
    assert all(m["start"] == "rejected" for m in neg["meta"])
