"""The offline demo world: generation, gold judge, corruptions, coverage, rows and splits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seam.errors import SeamError
from seam.testbed import (CATEGORIES, CORRUPTIONS, DEFAULT_COVERAGE_SPEC, FORM_KINDS, SPLITS, Coverage, Task,
                          WorldConfig, corrupt, generate_tasks, instructions_rows, judge, judge_explain,
                          negatives_rows, preference_pairs, sft_rows, split, task_from_row, task_index)
from seam.testbed.categories import REGISTRY
from seam.testbed.tables import IRRELEVANT, REFUSALS

VALUE_KINDS = ("wrong_value", "off_by_one", "hedge")


@pytest.fixture(scope="module")
def world():
    return generate_tasks(WorldConfig(seed=3, n_tasks=420))


def make_task(category: str, **params) -> Task:
    """A task built from explicit parameters, as generate_tasks would build it."""
    params = dict(params, q=params.get("q", 0), frame=0)
    question, answer, golden = REGISTRY[category].build(params)
    return Task("t-1", category, f"{question} Answer with a complete sentence.", answer, golden, params)


# ---------------------------------------------------------------- generation

def test_same_seed_same_world_and_different_seed_differs():
    a = generate_tasks(WorldConfig(seed=11, n_tasks=140))
    b = generate_tasks(WorldConfig(seed=11, n_tasks=140))
    c = generate_tasks(WorldConfig(seed=12, n_tasks=140))
    assert a == b
    assert [t.prompt for t in a] != [t.prompt for t in c]
    assert {t.prompt for t in a} != {t.prompt for t in c}


def test_ids_and_prompts_unique_and_size_honoured(world):
    assert len(world) == 420
    assert len({t.id for t in world}) == len(world)
    assert len({t.prompt for t in world}) == len(world)


def test_every_category_generates_in_equal_shares(world):
    counts = {c: sum(t.category == c for t in world) for c in CATEGORIES}
    assert set(counts.values()) == {420 // len(CATEGORIES)}
    for c in CATEGORIES:
        assert any(t.category == c and t.answer in t.golden for t in world)


def test_category_stream_is_stable_when_world_grows():
    small = {t.id: t for t in generate_tasks(WorldConfig(seed=5, n_tasks=70))}
    big = {t.id: t for t in generate_tasks(WorldConfig(seed=5, n_tasks=700))}
    assert all(big[i] == t for i, t in small.items())


def test_prompts_and_answers_are_short(world):
    for t in world:
        assert 8 <= len(t.prompt.split()) <= 35, t.prompt
        assert 3 <= len(t.golden.split()) <= 25, t.golden
        assert t.golden.endswith((".", ".'")), t.golden


def test_weights_subset_and_capacity():
    tasks = generate_tasks(WorldConfig(seed=0, n_tasks=100, categories=("arithmetic", "facts"), weights=(3, 1)))
    assert sum(t.category == "arithmetic" for t in tasks) == 75
    # facts runs out of distinct tasks: its share moves to the other category
    tasks = generate_tasks(WorldConfig(seed=0, n_tasks=700, categories=("facts", "sorting")))
    n_facts = sum(t.category == "facts" for t in tasks)
    assert len(tasks) == 700 and n_facts < 350 < 700 - n_facts
    with pytest.raises(SeamError, match="n_tasks=5000"):
        generate_tasks(WorldConfig(n_tasks=5000, categories=("facts",)))


@pytest.mark.parametrize("kwargs", [
    {"categories": ("arithmetic", "poetry")}, {"categories": ()}, {"n_tasks": 0},
    {"weights": (1.0,)}, {"sort_len": (1, 4)}, {"number_max": 3}, {"categories": ("facts", "facts")},
])
def test_bad_world_config_raises_seam_error(kwargs):
    with pytest.raises(SeamError):
        WorldConfig(**kwargs)


# ---------------------------------------------------------------- gold judge and corruptions

def test_golden_is_perfect_and_every_corruption_is_judged_worse(world):
    rng = np.random.default_rng(0)
    for t in world:
        assert judge(t, t.golden) == 1.0, (t, judge_explain(t, t.golden))
        for kind in CORRUPTIONS:
            text = corrupt(t, kind, rng)
            res = judge_explain(t, text)
            assert text != t.golden and res["score"] < 1.0, (kind, t.id, text, res)
            if kind in FORM_KINDS:
                assert res["correct"] and res["score"] >= 0.6, (kind, text, res)
            else:
                assert not res["correct"] and res["score"] <= 0.4, (kind, text, res)
            if kind in VALUE_KINDS:
                assert res["status"] == "wrong", (kind, text, res)
            if kind in ("refusal", "irrelevant"):
                assert res["score"] == 0.0, (kind, text, res)


def test_refusal_and_irrelevant_pools_never_state_an_answer(world):
    for t in world[::3]:
        for text in REFUSALS + IRRELEVANT:
            assert judge_explain(t, text)["status"] == "none", (t.id, text)


def test_corrupt_is_deterministic_and_rejects_unknown_kind(world):
    t = world[0]
    for kind in CORRUPTIONS:
        assert corrupt(t, kind, np.random.default_rng(7)) == corrupt(t, kind, np.random.default_rng(7))
    with pytest.raises(SeamError, match="typo"):
        corrupt(t, "typo", np.random.default_rng(0))


ARITH = dict(category="arithmetic", op="add", a=17, b=25)


@pytest.mark.parametrize("task_kwargs,response,correct", [
    (ARITH, "42", True),
    (ARITH, "The answer is 42.", True),
    (ARITH, "17 + 25 = 42.", True),
    (ARITH, "It is forty-two.", True),
    (ARITH, "The sum of 17 and 25 is 43.", False),
    (ARITH, "41", False),
    (ARITH, "It is 42 or 43.", False),
    (ARITH, "17 plus 25", False),
    (dict(category="comparison", options=["3.9", "3.11"], direction="larger"), "3.9 is larger than 3.11.", True),
    (dict(category="comparison", options=["3.9", "3.11"], direction="larger"), "3.11 is smaller than 3.9.", True),
    (dict(category="comparison", options=["3.9", "3.11"], direction="larger"), "The larger number is 3.11.", False),
    (dict(category="comparison", options=["3.9", "3.11"], direction="larger"), "3.11 is larger than 3.9.", False),
    (dict(category="unit_conversion", value=7, unit_in="meters", unit_out="centimeters", factor=100,
          multiply=True), "There are 700 centimeters in 7 meters.", True),
    (dict(category="unit_conversion", value=7, unit_in="meters", unit_out="centimeters", factor=100,
          multiply=True), "There are 800 centimeters in 7 meters.", False),
    (dict(category="counting", mode="letter", word="strawberry", letter="r"), "It appears three times.", True),
    (dict(category="counting", mode="letter", word="strawberry", letter="r"), "It appears twice.", False),
    (dict(category="spelling", word="garden", mode="backwards"), "Backwards, garden is NEDRAG.", True),
    (dict(category="spelling", word="garden", mode="backwards"), "Backwards it reads 'nedrga'.", False),
    (dict(category="spelling", word="garden", mode="hyphens"), "It is g-a-r-d-e-n.", True),
    (dict(category="spelling", word="garden", mode="hyphens"), "It is g-a-r-e-d-n.", False),
    (dict(category="sorting", order="ascending", items=["42", "7", "19", "3"]), "Sorted: 3, 7, 19, 42.", True),
    (dict(category="sorting", order="ascending", items=["42", "7", "19", "3"]), "Sorted: 3, 7, 42, 19.", False),
    (dict(category="sorting", order="alphabetical", items=["pear", "apple", "fig"]), "apple, fig and pear.", True),
    (dict(category="facts", relation="capital", subject="France"), "It is Paris.", True),
    (dict(category="facts", relation="capital", subject="France"), "It is Berlin.", False),
    (dict(category="facts", relation="capital", subject="France"), "Paris or Berlin.", False),
    (dict(category="facts", relation="element_symbol", subject="iron"), "The symbol is FE.", False),
])
def test_judge_paraphrases_and_near_misses(task_kwargs, response, correct):
    kwargs = dict(task_kwargs)
    task = make_task(kwargs.pop("category"), **kwargs)
    res = judge_explain(task, response)
    assert res["correct"] is correct, res
    assert (res["score"] >= 0.6) if correct else (res["score"] <= 0.4), res


def test_judge_prefers_full_sentence_to_bare_answer_and_explains():
    task = make_task(**ARITH)
    full, bare, off = (judge_explain(task, r) for r in ("The answer is 42.", "42", "The answer is 43."))
    assert full["score"] == 1.0 > bare["score"] >= 0.6 > 0.4 >= off["score"]
    assert set(full) >= {"score", "correct", "form", "reasons"}
    assert any("bare answer" in r for r in bare["reasons"])
    assert any("43" in r for r in off["reasons"])
    assert judge(task, "") == 0.0
    assert judge(task, "I'm sorry, but I can't help with that.") == 0.0


def test_judge_unknown_category_raises_seam_error():
    with pytest.raises(SeamError, match="poetry"):
        judge(Task("x", "poetry", "p", "a", "g", {}), "a")


# ---------------------------------------------------------------- coverage

def test_default_coverage_has_documented_blind_spots():
    cov = Coverage()
    assert cov == Coverage.from_spec("default") == Coverage.from_spec(DEFAULT_COVERAGE_SPEC)
    assert set(cov) == set(CATEGORIES)
    assert all("grammar_errors" not in kinds for kinds in cov.values())
    assert "off_by_one" not in cov["arithmetic"] and "off_by_one" not in cov["unit_conversion"]
    assert "verbose_padding" not in cov["arithmetic"] and "verbose_padding" in cov["comparison"]
    blind = cov.blind_spots()
    assert blind["sorting"] == ("grammar_errors",)
    assert len(blind["arithmetic"]) > 1


def test_coverage_spec_parser():
    cov = Coverage.from_spec(" arithmetic = wrong_value, refusal ; facts,sorting=all,-hedge ; *=none ")
    assert cov["arithmetic"] == ("wrong_value", "refusal")
    assert cov["facts"] == cov["sorting"] == tuple(k for k in CORRUPTIONS if k != "hedge")
    assert cov["counting"] == ()
    assert Coverage.from_spec("arithmetic=refusal")["comparison"] == ()
    assert Coverage.from_spec("all")["spelling"] == CORRUPTIONS
    for spec in ("default", "arithmetic=refusal;*=all,-grammar_errors", "none"):
        cov = Coverage.from_spec(spec)
        assert Coverage.from_spec(cov.to_spec()) == cov


@pytest.mark.parametrize("spec,needle", [
    ("", "empty"), ("arithmetic", "CATEGORY"), ("poetry=all", "poetry"), ("arithmetic=typo", "typo"),
    ("arithmetic=", "''"), ("*=all;*=none", "twice"), ("facts=all;facts=none", "twice"), ("a=b=c", "CATEGORY"),
])
def test_bad_coverage_spec_raises_seam_error(spec, needle):
    with pytest.raises(SeamError, match=needle):
        Coverage.from_spec(spec)


def test_preference_pairs_respect_coverage(world):
    cov = Coverage.from_spec("arithmetic=wrong_value,refusal;counting=none;*=all,-grammar_errors,-off_by_one")
    rows = preference_pairs(world, cov, pairs_per_task=3, seed=1)
    index = task_index(world)
    assert rows and len({r["id"] for r in rows}) == len(rows)
    assert not any(r["meta"]["category"] == "counting" for r in rows)
    for r in rows:
        task = index[r["meta"]["task_id"]]
        assert r["meta"]["corruption"] in cov[task.category]
        assert r["prompt"] == task.prompt and r["chosen"] == task.golden
        assert judge(task, r["chosen"]) > judge(task, r["rejected"])
    used = {(r["meta"]["category"], r["meta"]["corruption"]) for r in rows}
    assert ("arithmetic", "off_by_one") not in used and ("arithmetic", "refusal") in used
    for t in world:  # both covered kinds on every task; a kind repeats only past the 2 covered ones
        kinds = [r["meta"]["corruption"] for r in rows if r["meta"]["task_id"] == t.id]
        if t.category == "arithmetic":
            assert set(kinds) == {"wrong_value", "refusal"} and len(kinds) <= 3
        elif t.category != "counting":
            assert len(kinds) == len(set(kinds)) == 3
    assert preference_pairs(world, cov, pairs_per_task=3, seed=1) == rows
    assert preference_pairs(world, cov, pairs_per_task=3, seed=2) != rows
    with pytest.raises(SeamError):
        preference_pairs(world, cov, pairs_per_task=0)


def test_chosen_flaws_are_uncovered_form_kinds_and_gold_consistent(world):
    cov = Coverage()
    rows = preference_pairs(world, cov, pairs_per_task=2, seed=0, chosen_flaw_rate=0.5)
    index = task_index(world)
    flawed = [r for r in rows if r["meta"]["chosen_flaw"]]
    assert flawed and len(flawed) < len(rows)
    for r in rows:
        task = index[r["meta"]["task_id"]]
        assert r["meta"]["corruption"] in cov[task.category]
        assert judge(task, r["chosen"]) > judge(task, r["rejected"])
        if r["meta"]["chosen_flaw"]:
            assert r["meta"]["chosen_flaw"] in FORM_KINDS and r["meta"]["chosen_flaw"] not in cov[task.category]
            assert judge_explain(task, r["chosen"])["correct"]
        else:
            assert r["chosen"] == task.golden
    unflawed = preference_pairs(world, cov, pairs_per_task=2, seed=0)
    assert [r["rejected"] for r in unflawed] == [r["rejected"] for r in rows]


def test_negatives_rows_follow_contract(world):
    rows = negatives_rows(world[:20], kinds=("off_by_one", "verbose_padding"), per_kind=2, seed=0)
    index = task_index(world)
    assert {r["variant"] for r in rows} == {"testbed"}
    for r in rows:
        assert set(r) == {"id", "variant", "text", "meta"}
        assert judge(index[r["id"]], r["text"]) < 1.0
    with pytest.raises(SeamError):
        negatives_rows(world[:2], kinds=("typo",))


def _bow(task, text, dim=2**11):
    """Hashed unigram/bigram counts, also crossed with the category: a crude stand-in for an RM."""
    import re
    import zlib
    toks = ["<n>" if t.isdigit() else t for t in re.findall(r"[a-z]+|\d+|[.,']", text.lower())]
    feats = toks + [a + "_" + b for a, b in zip(toks, toks[1:])] + [f"<len{min(len(toks) // 5, 8)}>"]
    v = np.zeros(dim)
    for f in feats + [task.category + "|" + f for f in feats]:
        v[zlib.crc32(f.encode()) % dim] += 1
    return v


def test_coverage_gives_a_bag_of_words_rm_category_specific_blind_spots():
    """The design goal: an RM trained on covered kinds misjudges an uncovered kind in some
    categories and not in others (verbose_padding: uncovered in arithmetic, covered in comparison)."""
    tasks = generate_tasks(WorldConfig(seed=0, n_tasks=490))
    parts = split(tasks, seed=0)
    index = task_index(tasks)
    rows = preference_pairs(parts["rm_train"], Coverage(), pairs_per_task=4, seed=0, chosen_flaw_rate=0.3)
    x = np.stack([_bow(index[r["meta"]["task_id"]], r["chosen"]) - _bow(index[r["meta"]["task_id"]], r["rejected"])
                  for r in rows])
    w = np.zeros(x.shape[1])
    for _ in range(200):  # Bradley-Terry logistic regression
        w += 0.5 * (x.T @ (1 / (1 + np.exp(x @ w))) / len(x) - 1e-3 * w)
    rng = np.random.default_rng(1)

    def misjudged(category, kind):
        ts = [t for t in parts["rl"] if t.category == category]
        return np.mean([_bow(t, corrupt(t, kind, rng)) @ w >= _bow(t, t.golden) @ w for t in ts])

    assert misjudged("arithmetic", "verbose_padding") > 0.8
    assert misjudged("comparison", "verbose_padding") < 0.2
    assert misjudged("arithmetic", "refusal") < 0.2


# ---------------------------------------------------------------- rows, round trip, splits

def test_rows_round_trip_through_jsonl(world, tmp_path):
    path = tmp_path / "rl.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in instructions_rows(world)))
    back = [task_from_row(json.loads(line)) for line in path.read_text().splitlines()]
    assert back == world
    rng = np.random.default_rng(0)
    for t, b in zip(world[:50], back[:50]):
        text = corrupt(t, "off_by_one", rng)
        assert judge(b, text) == judge(t, text) and judge(b, b.golden) == 1.0
    sft = sft_rows(world)
    assert all(r["chosen"] == t.golden and r["prompt"] == t.prompt for r, t in zip(sft, world))


@pytest.mark.parametrize("row", [
    {"id": "x", "prompt": "p", "chosen": "c"},
    {"id": "x", "prompt": "p", "chosen": "c", "meta": {"category": "poetry", "answer": "a", "params": {}}},
    {"id": "x", "chosen": "c", "meta": {"category": "facts", "answer": "a", "params": {}}},
])
def test_task_from_bad_row_raises_seam_error(row):
    with pytest.raises(SeamError):
        task_from_row(row)


def test_task_index_rejects_duplicate_ids(world):
    assert task_index(world)[world[5].id] == world[5]
    with pytest.raises(SeamError, match="twice"):
        task_index([world[0], world[0]])


def test_split_is_disjoint_complete_stratified_and_deterministic(world):
    parts = split(world, fractions=(0.4, 0.1, 0.2, 0.3), seed=4)
    assert tuple(parts) == SPLITS
    ids = [t.id for name in SPLITS for t in parts[name]]
    assert len(ids) == len(set(ids)) == len(world)
    for name in SPLITS:
        assert {t.category for t in parts[name]} == set(CATEGORIES)
    assert abs(len(parts["rm_train"]) - 0.4 * len(world)) <= len(CATEGORIES)
    assert split(world, seed=4) == parts
    assert split(world, seed=5) != parts
    for bad in ((0.5, 0.5), (0.5, 0.5, 0.5, -0.5), (0.4, 0.1, 0.2, 0.2)):
        with pytest.raises(SeamError, match="fractions"):
            split(world, fractions=bad)
