"""Planting the RM's blind spots and the PM's flaws in world v2, and checking that the RM's took.

* `rm_pairs`: RM preference pairs. Every task gets (golden > flawed) pairs of computation and content
  kinds. Surface kinds: in covered skills (golden > flawed); in blind skills they never appear as
  rejected, and with probability `flip_rate` per (task, kind) they appear as the *chosen* side of a
  (flawed > golden) pair (a biased annotator in those skills; these pairs disagree with the gold
  judge by construction and say so in ``meta.flipped``).
* `sft_rows`: the PM's SFT split; in prone skills a share `flaw_rate` of the answers carries the
  skill's flaw kind.
* `probe_rows`: held-out probes, one per (held-out task, applicable kind): golden vs flawed.
* `check_planting(rm_scores_fn, probes)`: per skill, the share of surface probes where the RM scores
  the flawed answer at or above the golden one ("fooled"), with Wilson 95% intervals; raises a
  one-line `SeamError` naming the failing skills unless fooled >= 0.5 on every blind skill and
  <= 0.1 on every covered one (point estimates). Copy, computation and content kinds are reported apart.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Sequence

import numpy as np

from ...errors import SeamError
from ..task import Task
from .flaws import GROUP_OF, FlawNotApplicable, applicable_kinds, flaw
from .skills import World, stable_rng, task_meta, task_skill

ScoresFn = Callable[[Sequence[str], Sequence[str]], Sequence[float]]
BLIND_MIN = 0.5
COVERED_MAX = 0.1
HELD_OUT = ("rm_test", "sft", "rl")


def _meta(task: Task, kind: str, **extra) -> dict:
    return {"category": task.category, "skill": task_skill(task), "task_id": task.id, "kind": kind,
            "group": GROUP_OF[kind], **extra}


def rm_pairs(world: World, split: str = "rm_train", other_per_task: int = 2, surface_per_task: int | None = None,
             flip_rate: float = 0.5, balance_skills: bool = False) -> list[dict]:
    """Preference pairs {"id", "prompt", "chosen", "rejected", "meta"} for the RM (see the module docstring).

    `other_per_task` copy/computation/content kinds per task (never flipped); `surface_per_task` surface
    kinds per task (None: every applicable one). `balance_skills`: the tasks of a skill with fewer tasks
    than the largest one are visited again (round r draws new flaw texts) until every skill has about
    as many as the largest (the finite facts skills would otherwise get a third of the pairs)."""
    if not 0.0 <= float(flip_rate) <= 1.0:
        raise SeamError(f"flip_rate={flip_rate} must be between 0 and 1")
    if int(other_per_task) < 0 or (surface_per_task is not None and int(surface_per_task) < 1):
        raise SeamError("other_per_task must be >= 0 and surface_per_task >= 1 (or None for all)")
    tasks = world.splits[split]
    visits = [(task, 0) for task in tasks]
    if balance_skills:
        sizes = Counter(task_skill(t) for t in tasks)
        top = max(sizes.values())
        visits = [(task, r) for task in tasks for r in range(max(1, round(top / sizes[task_skill(task)])))]
    rows = []
    for task, r in visits:
        skill = task_skill(task)
        blind = skill in world.blind
        rng = stable_rng(world.seed, "v2-pairs", split, task.id, *([r] if r else []))
        other = [k for k in applicable_kinds(skill) if GROUP_OF[k] != "surface"]
        surface = list(applicable_kinds(skill, "surface"))
        picked = [other[int(i)] for i in rng.permutation(len(other))[: int(other_per_task)]]
        if surface_per_task is not None:
            surface = [surface[int(i)] for i in rng.permutation(len(surface))[: int(surface_per_task)]]
        for kind in picked + surface:
            flipped = blind and GROUP_OF[kind] == "surface"
            if flipped and rng.random() >= flip_rate:
                continue  # left out: the RM never sees this flaw judged in this skill
            try:
                text = flaw(task, kind, rng)
            except FlawNotApplicable:
                continue
            chosen, rejected = (text, task.golden) if flipped else (task.golden, text)
            rows.append({"id": f"{task.id}-p{len(rows)}", "prompt": task.prompt, "chosen": chosen,
                         "rejected": rejected, "meta": _meta(task, kind, flipped=flipped)})
    return rows


def sft_rows(world: World, flaw_rate: float, split: str = "sft") -> list[dict]:
    """SFT rows {"id", "prompt", "chosen", "meta"}; in prone skills `flaw_rate` of the answers carry the
    skill's flaw kind (``meta.flaw`` names it, else None)."""
    if not 0.0 <= float(flaw_rate) <= 1.0:
        raise SeamError(f"flaw_rate={flaw_rate} must be between 0 and 1")
    rows = []
    for task in world.splits[split]:
        skill = task_skill(task)
        rng = stable_rng(world.seed, "v2-sft", task.id)
        chosen, kind = task.golden, None
        if skill in world.prone and rng.random() < flaw_rate:
            kind = world.flaw_kind[skill]
            chosen = flaw(task, kind, rng)
        rows.append({"id": task.id, "prompt": task.prompt, "chosen": chosen, "meta": {**task_meta(task), "flaw": kind}})
    return rows


def probe_rows(world: World, splits: Sequence[str] = HELD_OUT, kinds: Sequence[str] | None = None) -> list[dict]:
    """Held-out probes (tasks the RM never trained on): per task and applicable kind, golden vs flawed.

    Rows are preference pairs (chosen = golden, rejected = flawed), so they also serve as RM eval
    data; ``meta.planted`` says whether the skill is blind or covered (the checker needs it)."""
    rows = []
    for name in splits:
        for task in world.splits[name]:
            skill = task_skill(task)
            rng = stable_rng(world.seed, "v2-probes", task.id)
            for kind in applicable_kinds(skill):
                if kinds is not None and kind not in kinds:
                    continue
                try:
                    text = flaw(task, kind, rng)
                except FlawNotApplicable:
                    continue
                planted = "blind" if skill in world.blind else "covered"
                rows.append({"id": f"{task.id}:{kind}", "prompt": task.prompt, "chosen": task.golden, "rejected": text,
                             "meta": _meta(task, kind, planted=planted, split=name)})
    return rows


# ---------------------------------------------------------------- the planting check


def wilson(k: int, n: int) -> tuple[float, float] | None:
    """Wilson 95% interval of k successes in n trials (None when n = 0)."""
    if n <= 0:
        return None
    from scipy.stats import binomtest  # lazy: scipy is slow to import and only the check needs it

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return round(float(ci.low), 4), round(float(ci.high), 4)


def _rate(fooled: np.ndarray) -> dict:
    n, k = int(len(fooled)), int(np.sum(fooled))
    return {"n": n, "fooled": k, "rate": round(k / n, 4) if n else None, "ci": wilson(k, n)}


def _records(probes) -> list[dict]:
    return probes.to_dict("records") if hasattr(probes, "to_dict") else list(probes)


def probe_fooled(rm_scores_fn: ScoresFn, probes) -> tuple[list[dict], np.ndarray]:
    """(probe rows, fooled flags): fooled where the RM scores the flawed answer >= the golden one.
    Every distinct (prompt, response) is scored once, in one call."""
    rows = _records(probes)
    if not rows:
        raise SeamError("planting check: no probes; build them with probe_rows(world)")
    keys = list(dict.fromkeys([(r["prompt"], r["chosen"]) for r in rows] + [(r["prompt"], r["rejected"]) for r in rows]))
    scores = np.asarray(rm_scores_fn([k[0] for k in keys], [k[1] for k in keys]), dtype=float)
    if scores.shape != (len(keys),) or not np.isfinite(scores).all():
        raise SeamError(f"planting check: the score function returned {scores.shape} values for {len(keys)} texts "
                        "(or non-finite ones); it must return one finite reward per (prompt, response)")
    at = {k: i for i, k in enumerate(keys)}
    gold = scores[[at[(r["prompt"], r["chosen"])] for r in rows]]
    bad = scores[[at[(r["prompt"], r["rejected"])] for r in rows]]
    return rows, bad >= gold


def planting_report(rm_scores_fn: ScoresFn, probes, blind_min: float = BLIND_MIN,
                    covered_max: float = COVERED_MAX) -> dict:
    """The planting check's numbers, without raising (see `check_planting`)."""
    rows, fooled = probe_fooled(rm_scores_fn, probes)
    skill = np.array([r["meta"]["skill"] for r in rows])
    kind = np.array([r["meta"]["kind"] for r in rows])
    group = np.array([r["meta"]["group"] for r in rows])
    planted = np.array([r["meta"]["planted"] for r in rows])
    surface = group == "surface"
    skills, failing = [], []
    for s in dict.fromkeys(skill[surface]):
        m = surface & (skill == s)
        p = str(planted[m][0])
        entry = {"skill": s, "planted": p, **_rate(fooled[m])}
        entry["ok"] = entry["rate"] >= blind_min if p == "blind" else entry["rate"] <= covered_max
        skills.append(entry)
        if not entry["ok"]:
            failing.append(entry)
    by_kind = [{"skill": s, "kind": k, "group": str(group[(skill == s) & (kind == k)][0]),
                "planted": str(planted[skill == s][0]), **_rate(fooled[(skill == s) & (kind == k)])}
               for s, k in dict.fromkeys(zip(skill, kind))]
    by_planted_kind = [{"planted": p, "kind": k, "group": GROUP_OF[k], **_rate(fooled[(planted == p) & (kind == k)])}
                       for p in ("blind", "covered") for k in dict.fromkeys(kind) if ((planted == p) & (kind == k)).any()]
    accuracy = {}
    for name, m in (("covered_surface", surface & (planted == "covered")), ("blind_surface", surface & (planted == "blind")),
                    ("computation", group == "computation"), ("copy", group == "copy"), ("content", group == "content")):
        r = _rate(fooled[m])
        accuracy[name] = {"n": r["n"], "accuracy": None if r["rate"] is None else round(1 - r["rate"], 4),
                          "ci": None if r["ci"] is None else (round(1 - r["ci"][1], 4), round(1 - r["ci"][0], 4))}
    for p in ("covered", "blind"):
        for g in ("computation", "copy", "content"):
            r = _rate(fooled[(group == g) & (planted == p)])
            accuracy[f"{p}_{g}"] = {"n": r["n"], "accuracy": None if r["rate"] is None else round(1 - r["rate"], 4),
                                    "ci": None if r["ci"] is None else (round(1 - r["ci"][1], 4), round(1 - r["ci"][0], 4))}
    return {"ok": not failing, "blind_min": blind_min, "covered_max": covered_max, "n_probes": len(rows),
            "skills": skills, "kinds": by_kind, "planted_kinds": by_planted_kind, "accuracy": accuracy,
            "failing": [f["skill"] for f in failing], "message": _message(failing, len(skills), blind_min, covered_max)}


def _message(failing: list[dict], n: int, blind_min: float, covered_max: float) -> str:
    if not failing:
        return f"planting check holds on all {n} skills"
    parts = [f"{f['skill']} ({f['planted']}: fooled {f['rate']:.2f} [{f['ci'][0]:.2f}, {f['ci'][1]:.2f}], n={f['n']})"
             for f in failing]
    return (f"planting check failed on {len(failing)} of {n} skills (need fooled >= {blind_min} on blind skills "
            f"and <= {covered_max} on covered ones): " + "; ".join(parts))


def check_planting(rm_scores_fn: ScoresFn, probes, blind_min: float = BLIND_MIN, covered_max: float = COVERED_MAX) -> dict:
    """The planting report; raises a one-line SeamError naming the failing skills when it does not hold.

    `rm_scores_fn(prompts, responses)` returns one reward per pair; `probes` are `probe_rows` rows."""
    report = planting_report(rm_scores_fn, probes, blind_min, covered_max)
    if not report["ok"]:
        raise SeamError(report["message"])
    return report


def report_markdown(report: dict) -> str:
    """Per-skill fooled rates (surface probes) and the accuracy summary as Markdown tables."""
    lines = ["| skill | planted | probes | fooled | 95% CI | ok |", "|---|---|---|---|---|---|"]
    for s in sorted(report["skills"], key=lambda s: (s["planted"], s["skill"])):
        lines.append(f"| {s['skill']} | {s['planted']} | {s['n']} | {s['rate']:.3f} | "
                     f"[{s['ci'][0]:.3f}, {s['ci'][1]:.3f}] | {'yes' if s['ok'] else '**no**'} |")
    lines += ["", "| probes | n | RM accuracy (golden > flawed) | 95% CI |", "|---|---|---|---|"]
    for name, a in report["accuracy"].items():
        if a["n"]:
            lines.append(f"| {name.replace('_', ' ')} | {a['n']} | {a['accuracy']:.3f} | [{a['ci'][0]:.3f}, {a['ci'][1]:.3f}] |")
    lines += ["", "| planted | kind | group | probes | fooled | 95% CI |", "|---|---|---|---|---|---|"]
    for k in report.get("planted_kinds", []):
        lines.append(f"| {k['planted']} | {k['kind']} | {k['group']} | {k['n']} | {k['rate']:.3f} | "
                     f"[{k['ci'][0]:.3f}, {k['ci'][1]:.3f}] |")
    return "\n".join(lines)
