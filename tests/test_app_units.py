"""The dashboard's logic without a browser: statistics, explorer queries, annotation results and exports,
the dashboard's job handlers, and `seam serve`'s command line."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.sample_project import copy_project, ensure_sample_project

from app import annotate as ann
from app import stats
from db import open_store, queries
from jobs import enqueue_job, get_job
from jobs.worker import Worker


@pytest.fixture(scope="session")
def sample_project(tmp_path_factory) -> Path:
    return ensure_sample_project(tmp_path_factory.getbasetemp() / "seam-sample-project")


@pytest.fixture
def store(sample_project, tmp_path):
    s = open_store(copy_project(sample_project, tmp_path / "project"))
    yield s
    s.close()


# --- statistics ------------------------------------------------------------------------------------

def test_wilson_interval_matches_the_closed_form():
    ci = stats.wilson_ci(3, 10)
    assert ci.estimate == 0.3 and ci.n == 10
    assert (round(ci.low, 4), round(ci.high, 4)) == (0.1078, 0.6032)
    assert math.isnan(stats.wilson_ci(0, 0).estimate)
    assert stats.wilson_ci(0, 5).low == 0.0 and stats.wilson_ci(5, 5).high == 1.0


def test_mean_ci_is_a_t_interval():
    from scipy import stats as sps

    x = [0.61, 0.58, 0.66, 0.59]
    ci = stats.mean_ci(x)
    low, high = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert ci.low == pytest.approx(low) and ci.high == pytest.approx(high)
    assert math.isnan(stats.mean_ci([0.5]).low) and stats.mean_ci([0.5]).estimate == 0.5


def test_cohen_kappa_by_hand():
    a, b = list("aabba"), list("abbba")  # po = 0.8, pe = 0.6*0.4 + 0.4*0.6 = 0.48
    assert stats.cohen_kappa(a, b) == pytest.approx((0.8 - 0.48) / 0.52)
    assert stats.cohen_kappa(a, a) == 1.0
    assert stats.cohen_kappa(list("ab"), list("ba")) == pytest.approx(-1.0)


def test_fleiss_kappa_on_the_textbook_example():
    # Fleiss (1971) / Wikipedia: 10 subjects, 14 raters, 5 categories -> kappa 0.210
    counts = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                       [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert stats.fleiss_kappa(counts) == pytest.approx(0.210, abs=5e-4)
    # two raters on each item: Fleiss' kappa is Scott's pi, close to Cohen's kappa
    two = np.array([[2, 0], [2, 0], [0, 2], [1, 1], [2, 0]])
    assert -1 <= stats.fleiss_kappa(two) <= 1


def test_auroc_equals_the_pairwise_count():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 60).astype(float)  # many ties
    y = rng.integers(0, 2, 60)
    pos, neg = s[y == 1], s[y == 0]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert stats.auroc(s, y) == pytest.approx(brute)
    assert math.isnan(stats.auroc([1, 2], [1, 1]))


def test_spearman_and_lowest_share():
    from scipy.stats import spearmanr

    x, y = [1, 2, 3, 4, 5, np.nan], [2, 1, 4, 3, 5, 0]
    assert stats.spearman(x, y) == pytest.approx(spearmanr(x[:5], y[:5]).statistic)
    mask = stats.lowest_share([3.0, 1.0, 1.0, 2.0, 5.0], 0.4)
    assert mask.tolist() == [False, True, True, False, False]


# --- explorer queries ------------------------------------------------------------------------------

def test_explore_rows_match_a_pandas_reference(store):
    scores = store.seam_scores(1)
    inst = store.instructions(1)
    ref = scores.merge(inst[["id", "prompt", "meta"]], on="id")
    ref["category"] = [m["category"] for m in ref["meta"]]
    ids = store.instruction_ids(1)
    ref["instruction_id"] = ref["id"].map(ids)
    for variant, text, category in (("llm", None, None), ("contrast", "many", None), ("adv", None, "facts"),
                                    ("adv", "the", "spelling")):
        want = ref[ref["variant"] == variant]
        if text:
            want = want[want["prompt"].str.contains(text, case=False, regex=False)]
        if category:
            want = want[want["category"] == category]
        want = want.sort_values(["seam", "instruction_id"])
        got = queries.explore_rows(store, 1, variant, text=text, category=category, limit=5, offset=1)
        assert got["id"].tolist() == want["id"].tolist()[1:6]
        assert queries.explore_count(store, 1, variant, text=text, category=category) == len(want)
    assert queries.categories(store, 1) == sorted(set(ref["category"]))


def test_in_memory_filters_match_sql(store):
    from app import explore

    index = explore.DatasetIndexes().build(store, "test", 1)
    for variant, text, category, desc in (("llm", None, "facts", False), ("adv", "LETTER", None, True),
                                          ("contrast", "the", "spelling", False), ("llm", "facts-0001", None, False),
                                          ("adv", "no such words", None, False)):
        order = queries.seam_order(store, 1, variant)
        mine = explore.select_ids(index, order, text, category, desc)
        sql = queries.explore_ids(store, 1, variant, text=text, category=category, descending=desc)
        assert mine.tolist() == sql.tolist()
        rows = queries.explore_rows(store, 1, variant, text=text, category=category, limit=7, descending=desc)
        assert rows["instruction_id"].tolist() == mine[:7].tolist()
        page = queries.explore_rows_for(store, 1, variant, mine[:7].tolist())
        pd.testing.assert_frame_equal(page, rows)


def test_breakdown_carries_numbers_text_and_negative_ids(store):
    low = store.lowest_seam(1, "contrast", limit=1).iloc[0]
    mine = queries.breakdown(store, 1, int(low["instruction_id"]))
    theirs = store.instruction_breakdown(1, str(low["id"]))
    pd.testing.assert_frame_equal(mine.drop(columns="negative_id"), theirs[mine.columns.drop("negative_id")])
    assert mine["negative_id"].notna().all()
    contrast = mine[mine["variant"] == "contrast"]
    assert all("source_id" in m and "similarity" in m for m in contrast["meta"])


def test_variant_summary_equals_pandas(store):
    d = store.score_details(1)
    got = queries.variant_summary(store, 1).set_index("variant")
    for v, g in d.groupby("variant"):
        assert got.loc[v, "negatives"] == len(g)
        assert got.loc[v, "pm_logprob_mean"] == pytest.approx(g["pm_logprob_mean"].mean())
        assert got.loc[v, "misjudged_share"] == pytest.approx((g["epsilon"] > 0).mean())
        assert got.loc[v, "pm_logprob_std"] == pytest.approx(g["pm_logprob_mean"].std(ddof=0), rel=1e-6)


# --- annotation results ----------------------------------------------------------------------------

def test_judgements_compare_the_human_with_the_rm(store):
    j = ann.judgements(store, 1, "contrast")
    details = store.score_details(1)
    for r in j.itertuples():
        neg_ref = r.response_b_ref  # the sample project shows the golden response as A
        neg = store.negatives(1, "contrast")
        assert r.response_a_ref == "gold" and neg_ref.startswith("negative:")
        idx = neg.index[neg["text"] == r.response_b][0]
        row = details[(details["id"] == neg.loc[idx, "id"]) & (details["variant"] == "contrast")
                      & (details["neg_index"] == neg.loc[idx, "neg_index"])].iloc[0]
        rm_prefers_gold = row["rm_gold"] > row["rm_neg"]
        human_prefers_gold = r.choice == "a"
        assert r.mismatch == float(rm_prefers_gold != human_prefers_gold)
    agree = ann.agreement(j)
    pair = agree["pairs"].iloc[0]
    assert (pair["annotator A"], pair["annotator B"], pair["items"]) == ("alice", "bob", 6)
    assert pair["agreement"] == pytest.approx(4 / 6)  # bob disagrees on every third item
    auc, n = ann.seam_auroc(j)
    assert n == j["mismatch"].notna().sum() and (math.isnan(auc) or 0 <= auc <= 1)


def test_recorded_choice_follows_the_shown_sides(store):
    run = queries.score_runs(store).iloc[0].to_dict()
    seen_flips = set()
    for name in ("u1", "u2", "u3", "u4", "u5", "u6"):
        item = ann.next_item(store, run, ann.MODES[0], "llm", ann.ORDERS[0], name, set())
        seen_flips.add(item.left.ref == "gold")
        ann.record(store, item, "2", name, 1, 1.0)
        last = store.annotations().iloc[-1]
        assert (last["choice"], last["response_b"], last["response_b_ref"]) == ("b", item.right.text, item.right.ref)
        j = ann.judgements(store, 1, "llm")
        assert j.iloc[-1]["human_winner"] == item.right.ref
    assert seen_flips == {True, False}  # the same first item is shown both ways to different annotators
    again = ann.next_item(store, run, ann.MODES[0], "llm", ann.ORDERS[0], "u1", set())
    assert again.key != item.key or again.instruction_id != item.instruction_id


def test_exports_round_trip(store):
    j = ann.judgements(store, 1, "contrast")
    lines = [json.loads(x) for x in ann.to_jsonl(j).splitlines()]
    assert len(lines) == len(j) and {"prompt", "response_a", "response_b", "choice", "annotator"} <= set(lines[0])
    argilla = json.loads(ann.to_argilla(j))
    assert len(argilla["records"]) == len(j)
    rec = argilla["records"][0]
    assert rec["responses"]["preference"][0]["value"] in ("response_a", "response_b", "tie", "both_bad")
    assert set(rec["fields"]) == {"prompt", "response_a", "response_b"}
    ls = json.loads(ann.to_label_studio(j))
    for task, row in zip(ls, lines):
        result = task["annotations"][0]["result"][0]
        if row["choice"] in ("a", "b"):
            assert result["value"]["selected"] == ("left" if row["choice"] == "a" else "right")
        assert task["data"]["annotator"] == row["annotator"]  # completed_by holds a Label Studio user id
        assert task["annotations"][0]["completed_by"] == ann.label_studio_user_ids(j)[row["annotator"]]


# --- job handlers ----------------------------------------------------------------------------------

def test_generate_samples_skips_instructions_sampled_by_another_job(store):
    payload = {"pm_model_id": 1, "dataset_id": 1, "n_instructions": 2, "samples": 2, "max_new_tokens": 4,
               "order": "lowest-seam", "score_run_id": 1, "variant": "adv", "rm_model_id": 2}
    first, second = enqueue_job(store, "generate-samples", payload), enqueue_job(store, "generate-samples", payload)
    Worker(store, echo=False).run(once=True)
    assert get_job(store, first)["status"] == "done" and get_job(store, second)["status"] == "done"
    samples = queries.policy_samples(store, 1)
    by_job = samples.groupby(samples["meta"].map(lambda m: m["job_id"]))["instruction_id"].apply(set)
    assert len(by_job[first]) == 2 and len(by_job[second]) == 2 and not by_job[first] & by_job[second]
    lowest = store.lowest_seam(1, "adv", limit=2)["instruction_id"].tolist()
    assert by_job[first] == set(lowest)
    assert all(isinstance(m["rm_reward"], float) for m in samples["meta"])


def test_generate_samples_payload_errors_fail_the_job(store):
    job = enqueue_job(store, "generate-samples", {"pm_model_id": 1, "dataset_id": 1, "order": "lowest-seam"})
    bad_role = enqueue_job(store, "generate-samples", {"pm_model_id": 2, "dataset_id": 1, "order": "random"})
    Worker(store, echo=False).run(once=True)
    assert "needs score_run_id and variant" in get_job(store, job)["error"]
    assert "registered as RM, not PM" in get_job(store, bad_role)["error"]


# --- seam serve ------------------------------------------------------------------------------------

def _seam(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seam", *args], capture_output=True, text=True, timeout=60)


def test_serve_help_and_bad_input(tmp_path):
    out = _seam("serve", "--help")
    assert out.returncode == 0 and "example:" in out.stdout and "--no-worker" in out.stdout
    bad = _seam("serve", "--db", str(tmp_path / "notes.txt"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = _seam("serve", "--db", str(tmp_path / "proj"), "--port", str(s.getsockname()[1]))
    assert busy.returncode == 2 and "already in use" in busy.stderr


def test_runs_curves_and_arms_name_the_rl_method():
    from app import runs as R

    assert R.default_curve(["loss", "objective/scores", "eval/gold_score"]) == "objective/scores"  # PPO
    assert R.default_curve(["loss", "reward", "reward_std", "eval/gold_score"]) == "reward"  # GRPO / RLOO
    assert R.default_curve(["sft/train_loss", "bon/pick_reward_mean"]) == "bon/pick_reward_mean"  # best-of-n
    assert R.headline(["eval/gold_score", "eval/gold_score/ci_low", "reward"]) == ["eval/gold_score", "reward"]
    assert R.arm_of({"id": 1, "config": {"arm": "seam", "rl_method": "grpo"}}) == "seam [GRPO]"
    assert R.arm_of({"id": 2, "config": {"arm": "seam", "rl_method": "ppo"}}) == "seam"
    assert R.arm_of({"id": 3, "config": {"arm": "seam", "method": "seam"}}) == "seam"  # a selection's method
