"""World v2 (seam.testbed.v2): skills, hidden assignments, planted flaws and the planting check."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from seam.errors import SeamError
from seam.testbed import judge, judge_explain, task_from_row
from seam.testbed.v2 import (GROUPS, SKILLS, WorldV2Config, applicable_kinds, assign, build_world, check_planting,
                             flaw, instructions_rows, planting_report, probe_rows, rm_pairs, sft_rows, skill_groups)
from seam.testbed.v2.flaws import FlawNotApplicable

SURFACE = set(GROUPS["surface"])


@pytest.fixture(scope="module")
def world():
    return build_world(WorldV2Config(seed=3, tasks_per_skill=10))


@pytest.fixture(scope="module")
def pairs(world):
    return rm_pairs(world, flip_rate=0.5)


@pytest.fixture(scope="module")
def probes(world):
    return probe_rows(world)


def test_at_least_thirty_skills_and_rows_carry_category_and_skill(world):
    assert len(SKILLS) >= 30 and len(world.skills) == len(SKILLS)
    assert {t.params["skill"] for t in world.tasks} == set(SKILLS)
    assert len({t.id for t in world.tasks}) == len(world.tasks)
    rows = instructions_rows(world.splits["rl"])
    assert all(r["meta"]["skill"] in SKILLS and r["meta"]["category"] == r["meta"]["skill"].split("/")[0] for r in rows)
    for r in rows[:40]:  # a row read back rebuilds the task for the gold judge
        assert judge(task_from_row(r), r["chosen"]) == 1.0
    # the hidden assignments are not in the instructions rows
    assert not any(k in str(rows) for k in ("blind", "prone", "flipped"))


def test_every_split_has_every_skill(world):
    for name, tasks in world.splits.items():
        assert {t.params["skill"] for t in tasks} == set(SKILLS), name


def test_assignments_are_balanced_deterministic_and_seeded():
    n = len(SKILLS)
    b0, p0, f0 = assign(SKILLS, 0)
    assert (b0, p0, f0) == assign(SKILLS, 0)
    assert len(b0) == n // 2 and len(p0) == n // 2 and len(b0 & p0) == n // 4
    assert len(p0 - b0) == n // 4  # half the covered skills are prone too
    seen_b, seen_p = {b0}, {p0}
    for seed in range(1, 6):
        b, p, _ = assign(SKILLS, seed)
        seen_b.add(b)
        seen_p.add(p)
    assert len(seen_b) == 6 and len(seen_p) == 6  # a seed change changes both assignments
    # blind is stratified by category: no category with >= 2 skills is all blind or all covered
    cats = Counter(s.split("/")[0] for s in SKILLS)
    blind_cats = Counter(s.split("/")[0] for s in b0)
    assert all(0 < blind_cats[c] < k for c, k in cats.items() if k >= 2)
    # every skill's flaw kind is one of its surface kinds
    assert all(f0[s] in applicable_kinds(s, "surface") for s in SKILLS)


def test_twins_share_their_hidden_assignments():
    """Skills whose prompts use the same words are blind (and prone) together (docs/world-v2.md)."""
    groups = skill_groups(SKILLS)
    assert sorted(s for g in groups for s in g) == sorted(SKILLS)
    assert ("facts/capital", "facts/country_of_capital") in groups and ("facts/nature",) in groups
    for seed in range(20):
        b, p, _ = assign(SKILLS, seed)
        for g in groups:
            assert len({s in b for s in g}) == 1 and len({s in p for s in g}) == 1, (seed, g)
    sub = ("arithmetic/addition", "counting/letter", "counting/vowels", "spelling/backwards")
    assert skill_groups(sub) == [("arithmetic/addition",), ("counting/letter",), ("counting/vowels",),
                                 ("spelling/backwards",)]


def test_assignments_are_independent():
    """Prone status carries no information about blind status: within each seed the 2 x 2 table is
    balanced, and over seeds each skill is prone about as often when blind as when covered."""
    both = np.zeros(len(SKILLS))
    blind = np.zeros(len(SKILLS))
    prone = np.zeros(len(SKILLS))
    seeds = range(200)
    for seed in seeds:
        b, p, _ = assign(SKILLS, seed)
        bi = np.array([s in b for s in SKILLS])
        pi = np.array([s in p for s in SKILLS])
        table = np.array([[(bi & pi).sum(), (bi & ~pi).sum()], [(~bi & pi).sum(), (~bi & ~pi).sum()]])
        assert np.abs(table - 8).max() <= 1  # whole twin groups at a time: balanced up to one skill
        both += bi & pi
        blind += bi
        prone += pi
    # P(prone and blind) = P(prone) P(blind) per skill, up to sampling noise
    gap = both / len(seeds) - (blind / len(seeds)) * (prone / len(seeds))
    assert np.abs(gap).max() < 0.12
    assert 0.3 < prone.min() / len(seeds) and prone.max() / len(seeds) < 0.7


def test_every_planted_flaw_is_judged_worse_than_gold(world, pairs, probes):
    for task in world.tasks:
        assert judge(task, task.golden) == 1.0
    seen = Counter()
    for r in probes:
        task = _task(world, r["meta"]["task_id"])
        assert judge(task, r["rejected"]) < judge(task, r["chosen"]) == 1.0, (r["meta"], r["rejected"])
        seen[r["meta"]["kind"]] += 1
    # every applicable kind was built for every held-out task (no silent FlawNotApplicable)
    held = [t for name in ("rm_test", "sft", "rl") for t in world.splits[name]]
    want = Counter(k for t in held for k in applicable_kinds(t.params["skill"]))
    assert seen == want
    for r in pairs:
        task = _task(world, r["meta"]["task_id"])
        gold, bad = (r["rejected"], r["chosen"]) if r["meta"]["flipped"] else (r["chosen"], r["rejected"])
        assert gold == task.golden and judge(task, bad) < 1.0
    for r in sft_rows(world, flaw_rate=1.0):
        if r["meta"]["flaw"]:
            assert judge(_task(world, r["id"]), r["chosen"]) < 1.0


def test_new_kinds_keep_their_promise(world):
    rng = np.random.default_rng(0)
    for task in world.splits["rl"]:
        skill = task.params["skill"]
        for kind, status in (("operand_miscopy", "wrong"), ("flattery", "correct"), ("terse", "correct")):
            if kind in applicable_kinds(skill):
                assert judge_explain(task, flaw(task, kind, rng))["status"] == status
    t = next(t for t in world.tasks if t.params["skill"] == "facts/capital")
    with pytest.raises(FlawNotApplicable):
        flaw(t, "operand_miscopy", rng)


def test_blind_skills_flip_surface_kinds_and_covered_skills_reject_them(world, pairs):
    rejected_surface = {(r["meta"]["skill"], r["meta"]["kind"]) for r in pairs
                        if r["meta"]["kind"] in SURFACE and r["chosen"] == _task(world, r["meta"]["task_id"]).golden}
    chosen_surface = {(r["meta"]["skill"], r["meta"]["kind"]) for r in pairs
                      if r["meta"]["kind"] in SURFACE and r["rejected"] == _task(world, r["meta"]["task_id"]).golden}
    for skill in world.skills:
        kinds = set(applicable_kinds(skill, "surface"))
        if skill in world.blind:
            assert not any((skill, k) in rejected_surface for k in kinds), skill
            assert any((skill, k) in chosen_surface for k in kinds), skill
        else:
            assert {k for k in kinds if (skill, k) in rejected_surface} == kinds, skill
            assert not any((skill, k) in chosen_surface for k in kinds), skill
    # copy, computation and content kinds are rejected everywhere, never chosen
    other = [r for r in pairs if r["meta"]["kind"] not in SURFACE]
    assert other and not any(r["meta"]["flipped"] for r in other)
    assert {r["meta"]["skill"] for r in other} == set(world.skills)


def test_flip_rate_and_sft_flaw_rate(world):
    none = rm_pairs(world, flip_rate=0.0)
    assert not any(r["meta"]["flipped"] for r in none)
    full = rm_pairs(world, flip_rate=1.0)
    blind_tasks = [t for t in world.splits["rm_train"] if t.params["skill"] in world.blind]
    assert sum(r["meta"]["flipped"] for r in full) == sum(len(applicable_kinds(t.params["skill"], "surface"))
                                                         for t in blind_tasks)
    rows = sft_rows(world, flaw_rate=1.0)
    for r in rows:
        skill = r["meta"]["skill"]
        assert r["meta"]["flaw"] == (world.flaw_kind[skill] if skill in world.prone else None)
    assert all(r["meta"]["flaw"] is None for r in sft_rows(world, flaw_rate=0.0))
    with pytest.raises(SeamError):
        rm_pairs(world, flip_rate=1.5)


def test_balance_skills_evens_out_the_finite_skills():
    world = build_world(WorldV2Config(seed=1, tasks_per_skill=80, skills=(
        "arithmetic/addition", "facts/nature", "counting/letter", "sorting/ascending")))
    plain = Counter(r["meta"]["skill"] for r in rm_pairs(world) if r["meta"]["group"] == "surface")
    balanced = rm_pairs(world, balance_skills=True)
    counts = Counter(r["meta"]["skill"] for r in balanced if r["meta"]["group"] == "surface")
    assert counts["facts/nature"] > plain["facts/nature"] and counts["arithmetic/addition"] == plain["arithmetic/addition"]
    assert len({r["id"] for r in balanced}) == len(balanced)
    blind_rejected = [r for r in balanced if r["meta"]["skill"] in world.blind and r["meta"]["group"] == "surface"
                      and not r["meta"]["flipped"]]
    assert not blind_rejected


def _synthetic(probes, fooled_in: set[str]):
    """A score function: golden answers 0; flawed answers +1 in `fooled_in` skills, -1 elsewhere."""
    gold = {(r["prompt"], r["chosen"]) for r in probes}
    skill_of = {r["prompt"]: r["meta"]["skill"] for r in probes}

    def fn(prompts, responses):
        return [0.0 if (p, r) in gold else (1.0 if skill_of[p] in fooled_in else -1.0) for p, r in zip(prompts, responses)]
    return fn


def test_planting_check_raises_for_an_rm_that_is_never_fooled(world, probes):
    with pytest.raises(SeamError) as info:
        check_planting(_synthetic(probes, set()), probes)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("planting check failed on 16 of 32 skills")
    assert all(s in msg for s in world.blind) and not any(f"{s} (" in msg for s in set(world.skills) - world.blind)


def test_planting_check_raises_naming_covered_skills_an_rm_is_fooled_on(world, probes):
    covered = sorted(set(world.skills) - world.blind)
    with pytest.raises(SeamError, match=f"failed on 1 of 32 skills.*{covered[0]}"):
        check_planting(_synthetic(probes, set(world.blind) | {covered[0]}), probes)


def test_planting_check_passes_for_an_rm_fooled_exactly_on_blind_skills(world, probes):
    report = check_planting(_synthetic(probes, set(world.blind)), probes)
    assert report["ok"] and not report["failing"]
    rates = {s["skill"]: s for s in report["skills"]}
    assert set(rates) == set(world.skills)
    for s, r in rates.items():
        assert r["rate"] == (1.0 if s in world.blind else 0.0)
        lo, hi = r["ci"]
        assert lo <= r["rate"] <= hi and (hi - lo) > 0  # Wilson: never a zero-width interval
    acc = report["accuracy"]
    assert acc["covered_surface"]["accuracy"] == 1.0 and acc["blind_surface"]["accuracy"] == 0.0
    assert {"computation", "copy", "content"} <= set(acc)


def test_planting_report_rejects_a_bad_score_function(probes):
    with pytest.raises(SeamError, match="one finite reward"):
        planting_report(lambda p, r: [0.0], probes)
    with pytest.raises(SeamError, match="no probes"):
        planting_report(lambda p, r: [0.0] * len(p), [])


def _task(world, task_id):
    if not hasattr(world, "_index"):
        world._index = {t.id: t for t in world.tasks}
    return world._index[task_id]


@pytest.mark.slow
def test_measure_runs_end_to_end(tmp_path):
    """The tiny-RM measurement runs (mechanics only: too small to expect the check to hold)."""
    from seam.testbed.v2.measure import MeasureConfig, measure_seed

    rep = measure_seed(0, tmp_path, MeasureConfig(tasks_per_skill=6, epochs=1.0, vocab_size=512, threads=1),
                       say=lambda m: None)
    assert rep["n_probes"] > 0 and len(rep["skills"]) == 32 and (tmp_path / "planting.json").is_file()
