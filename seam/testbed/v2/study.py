"""The world-v2 validation study: does SEAM find the instructions where the RM and the PM disagree?

    python -m seam.testbed.v2.study --seed 0 --dir /tmp/study-0

Stages, in this order (each writes its files and is skipped on a re-run once finished):

1. ``world``: the world (skills, splits, hidden assignments), the RL instructions with a held-out
   rejected answer each (a flaw of a random kind: the preference data a lab would have), the SFT rows,
   and the contrast corpus (every non-RL world task plus new tasks: ``corpus_factor`` x the RL set).
2. ``rm``: the small RM trained on the planted pairs, and the planting check on held-out probes
   (the study stops here when it fails, unless ``--keep-going``).
3. ``pm``: the policy SFT'd on the SFT split (flaws planted in prone skills): a small model trained from
   scratch (the validation study's tier) or SmolLM2-135M-Instruct with LoRA (``pm_backbone``; the demo).
4. ``label``: n policy samples per RL instruction at temperature 1, judged by the gold judge and
   scored by the RM: the on-policy label S (`label.py`). Written under ``hidden/`` with the truth.
5. ``negatives``: contrast (the corpus, band [0.8, 0.9]), llm (the rules backend of
   `seam.negatives`: generic corruptions, neither the PM nor the testbed's flaw code) and adv (the
   batched attack from the held-out rejected answers). None of them reads ``hidden/``.
6. ``score``: SEAM per instruction, variant and weighting with the project's scoring engine, and the
   PM log-likelihood of every golden answer (the perplexity baseline).
7. ``report``: `report.evaluate` against the label; ``report/validation.{md,json}``.

The world, the planting and the label are fixed before any SEAM score is computed; nothing is
tuned on SEAM's result. ``StudyConfig.demo()`` is what ``seam demo`` builds (SmolLM2 as the PM, a
smaller world, ~11 minutes on 2 CPU cores); ``Study.run``'s ``on_stage`` and ``progress`` hooks let the
dashboard's worker load each stage as it lands and show its progress (jobs/kinds/demo.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ...data import load_instructions, write_table
from ...errors import SeamError
from ...io import json_safe, write_json, write_text
from ...models.loading import load_pm, load_rm, smollm2_hf
from ...models.scoring import PolicyScorer, RewardScorer
from ...models.templates import get_template
from ...negatives import BUILDERS, build_negatives
from ...score.config import ScoreConfig
from ...score.pipeline import SeamScorer
from ...settings import Settings, setting
from ..task import Task
from .flaws import applicable_kinds, flaw
from .label import judge_samples, on_policy_label
from .measure import MeasureConfig, planting_of, run_main, train_world_rm
from .planting import report_markdown as planting_markdown
from .planting import sft_rows
from .policy import TEMPLATE, build_causal_base, sample_policy, train_policy, train_policy_lora
from .predictors import predictors_for
from .report import evaluate, write_report
from .skills import SKILLS, SPLITS, World, WorldV2Config, build_world, instructions_rows, skill_tasks, stable_rng, task_skill

STAGES = ("world", "rm", "pm", "label", "negatives", "score", "report")
BACKBONES = ("scratch", "smollm2")
VARIANTS = ("contrast", "llm", "adv")
WEIGHTINGS = ("paper", "prob")
RUN_OPTIONS = ("keep_going",)  # settings that do not change what a stage computes


@dataclass
class StudyConfig(Settings):
    """Everything that defines one study run (the same config and seed give the same study)."""

    seed: int = setting(0, "world seed: skills' tasks, splits, hidden assignments, every sampler")
    tasks_per_skill: int = setting(150, "tasks per skill before the splits (facts skills have 28 to 50)")
    fractions: tuple[float, ...] = setting((0.3, 0.05, 0.25, 0.4), "rm_train, rm_test, sft, rl shares per skill")
    corpus_factor: float = setting(10.0, "new corpus tasks per RL instruction (contrast retrieves from the corpus)")
    eval_per_skill: int = setting(24, "held-out eval prompts per skill for RL experiments (data/eval.jsonl)")
    flip_rate: float = setting(0.5, "share of blind skills' surface pairs written flipped (flawed chosen)")
    rm_epochs: float = setting(6.0, "RM training epochs")
    rm_layers: int = setting(3, "RM transformer layers")
    rm_hidden: int = setting(192, "RM hidden size")
    sft_flaw_rate: float = setting(0.3, "share of SFT answers with the skill's flaw in prone skills")
    sft_extra_per_skill: int = setting(400, "SFT tasks per skill beyond the world's SFT split (the policy needs more)")
    pm_layers: int = setting(4, "policy transformer layers")
    pm_hidden: int = setting(256, "policy hidden size")
    pm_vocab: int = setting(1024, "policy tokenizer vocabulary (BPE, digits split)")
    pm_epochs: float = setting(3.0, "policy SFT epochs")
    pm_learning_rate: float = setting(2e-3, "policy SFT peak learning rate")
    pm_backbone: str = setting("scratch", "policy: scratch (a small model trained from scratch) | smollm2 "
                               "(SmolLM2-135M-Instruct + LoRA SFT: the demo's PM)")
    pm_steps: int = setting(40, "smollm2: LoRA SFT optimizer steps")
    pm_batch: int = setting(16, "smollm2: LoRA SFT batch size")
    pm_lora_r: int = setting(16, "smollm2: LoRA rank")
    pm_gold_tasks: int | None = setting(None, "held-out tasks for the policy's gold score before / after SFT (None = all)")
    samples: int = setting(8, "policy samples per RL instruction for the label (even: two halves)")
    temperature: float = setting(1.0, "sampling temperature of the label")
    max_new_tokens: int = setting(64, "tokens per policy sample")
    k_contrast: int = setting(30, "contrast negatives per instruction (paper: 30)")
    band: tuple[float, float] = setting((0.8, 0.9), "contrast cosine band (paper: [0.8, 0.9])")
    k_llm: int = setting(30, "llm (rules backend) negatives per instruction")
    k_adv: int = setting(10, "adv negatives per instruction")
    adv_budget: int = setting(120, "RM queries per instruction for the attack")
    n_boot: int = setting(2000, "bootstrap draws for the intervals")
    keep_going: bool = setting(False, "continue past a failed planting check (the report says it failed)")

    def validate(self) -> None:
        if self.samples < 2 or self.samples % 2:
            raise SeamError(f"--samples {self.samples}: give an even number >= 2 (the label is split in halves)")
        if self.corpus_factor < 0:
            raise SeamError(f"--corpus-factor {self.corpus_factor}: must be >= 0")
        if self.pm_backbone not in BACKBONES:
            raise SeamError(f"--pm-backbone {self.pm_backbone}: use one of {', '.join(BACKBONES)}")

    @classmethod
    def tiny(cls, seed: int = 0) -> StudyConfig:
        """Tiny models and a small world: the whole study in well under a minute (tests, smoke runs)."""
        return cls(seed=seed, tasks_per_skill=8, fractions=(0.4, 0.1, 0.2, 0.3), corpus_factor=1.0, rm_epochs=0.5,
                   rm_layers=1, rm_hidden=32, pm_layers=1, pm_hidden=32, pm_vocab=300, pm_epochs=0.5,
                   sft_extra_per_skill=0, eval_per_skill=2, samples=2, max_new_tokens=12, k_contrast=3, band=(0.3, 1.0), k_llm=2,
                   k_adv=2, adv_budget=8, n_boot=50, keep_going=True)

    @classmethod
    def demo(cls, seed: int = 0) -> StudyConfig:
        """What `seam demo` builds: SmolLM2-135M-Instruct as the PM (LoRA SFT), a small RM (2 layers x 128; the
        planting check holds on all 32 skills with 45 training tasks per skill, measured), 150 RL instructions
        and fewer negatives per variant, so the build fits 15 minutes on 2 CPU cores."""
        return cls(seed=seed, tasks_per_skill=60, fractions=(0.75, 0.08, 0.08, 0.09), eval_per_skill=4, rm_epochs=6.0,
                   rm_hidden=128, rm_layers=2, sft_extra_per_skill=10, pm_backbone="smollm2", pm_steps=24, pm_batch=16,
                   pm_learning_rate=5e-4, pm_gold_tasks=48, samples=4, max_new_tokens=48, k_contrast=10, k_llm=10, k_adv=6, adv_budget=60,
                   n_boot=1000)

    @classmethod
    def preset(cls, tiny: bool = False, seed: int = 0, size: int | None = None, study: bool = False) -> StudyConfig:
        """What `seam demo [--tiny | --study | --size N] --seed S` builds: the demo (SmolLM2 PM), the tiny study,
        the validation study (small from-scratch PM; this class's defaults, exactly what
        `python -m seam.testbed.v2.study` builds) or a validation study with at least N RL instructions."""
        if tiny and (size is not None or study):
            raise SeamError("--tiny does not go with --study or --size: --tiny fixes a small world")
        if tiny:
            return cls.tiny(seed)
        if size is not None:
            return cls.for_size(seed, size)
        return cls(seed=seed) if study else cls.demo(seed)

    def built_stages(self, root: Path) -> dict[str, dict]:
        """The stages already built in `root` for this configuration ({} when it holds none, or another study)."""
        state = _read_state(root)
        return dict(state.get("stages", {})) if self.same_as(state.get("config", {})) else {}

    def holds_another(self, root: Path) -> bool:
        """Whether `root` holds stages of a study with another configuration (`Study.run` would refuse it)."""
        state = _read_state(root)
        return bool(state.get("stages")) and not self.same_as(state.get("config", {}))

    def same_as(self, stored: dict) -> bool:
        """Whether a study.json's config is this one (run options aside). Settings added since it was written
        take their defaults, which reproduce what the study did before they existed."""
        stored = {**json_safe(StudyConfig().to_dict()), **stored}
        return all(stored.get(k) == v for k, v in json_safe(self.to_dict()).items() if k not in RUN_OPTIONS)

    def expected_seconds(self) -> dict[str, float]:
        """Each stage's build time on 2 CPU cores (measured; weights the dashboard's progress and ETA)."""
        if self == StudyConfig.tiny(self.seed):
            return dict(TINY_SECONDS)
        return dict(DEMO_SECONDS if self.pm_backbone == "smollm2" else STUDY_SECONDS)

    @classmethod
    def for_size(cls, seed: int, size: int) -> StudyConfig:
        """The default study with tasks_per_skill chosen so the RL split has at least `size` instructions."""
        if size < 64:
            raise SeamError(f"--size {size}: give at least 64 RL instructions (2 per skill)")
        cfg = cls(seed=seed)
        share = cfg.fractions[SPLITS.index("rl")]
        cfg.tasks_per_skill = max(8, -(-size // int(share * len(SKILLS))))
        while (n := len(build_world(cfg.world_config()).splits["rl"])) < size:  # the facts skills run out early
            cfg.tasks_per_skill += max(1, -(-(size - n) // int(share * (len(SKILLS) - 7))))
        return cfg

    def world_config(self) -> WorldV2Config:
        return WorldV2Config(seed=self.seed, tasks_per_skill=self.tasks_per_skill, fractions=self.fractions)

    def rm_config(self) -> MeasureConfig:
        return MeasureConfig(tasks_per_skill=self.tasks_per_skill, flip_rate=self.flip_rate, epochs=self.rm_epochs,
                             layers=self.rm_layers, hidden=self.rm_hidden)


# measured stage times on 2 CPU cores (seconds): the demo preset, the default study (seed 1), the tiny one
DEMO_SECONDS = {"world": 1, "rm": 200, "pm": 190, "label": 140, "negatives": 15, "score": 110, "report": 1}
STUDY_SECONDS = {"world": 7, "rm": 1150, "pm": 340, "label": 140, "negatives": 146, "score": 150, "report": 3}
TINY_SECONDS = {"world": 1, "rm": 3, "pm": 3, "label": 1, "negatives": 2, "score": 1, "report": 1}

StageHook = Callable[[str, int, int, str, float], None]  # (stage, index 1.., total, "start"|"done"|"reused", seconds)
Progress = Callable[[str, float, str], None]  # (stage, fraction of that stage done, step)


# ---------------------------------------------------------------- world-side data (testbed code)

def rl_rows(world: World) -> list[dict]:
    """The RL instructions, each with a held-out rejected answer: a flaw of a kind drawn uniformly from
    every kind that applies to its skill (surface, copy, computation, content), never used in training."""
    rows = instructions_rows(world.splits["rl"])
    for row, task in zip(rows, world.splits["rl"]):
        rng = stable_rng(world.seed, "v2-rl-rejected", task.id)
        kinds = applicable_kinds(task_skill(task))
        row["rejected"] = flaw(task, kinds[int(rng.integers(len(kinds)))], rng)
    return rows


def _beyond_world(world: World, skill: str, skip: int, n: int, prefix: str) -> list[Task]:
    """Tasks `skip` .. `skip + n` after the world's own in the skill's stream (fewer when it runs out), renamed."""
    n_world = sum(task_skill(t) == skill for t in world.tasks)
    more = skill_tasks(skill, n_world + skip + n, world.seed)[n_world + skip:]
    return [Task(f"{prefix}-{t.id}", t.category, t.prompt, t.answer, t.golden, t.params) for t in more]


def with_more_sft(world: World, extra_per_skill: int) -> World:
    """The world with `extra_per_skill` more SFT tasks per skill (the first ones after the world's own
    in each skill's stream; finite facts skills have none left). The policy needs more examples than
    the RM to learn the skills; the hidden assignments and the other splits are unchanged."""
    extra = [t for s in world.skills for t in _beyond_world(world, s, 0, extra_per_skill, "sft")]
    splits = dict(world.splits, sft=world.splits["sft"] + extra)
    return World(world.config, world.skills, world.blind, world.prone, world.flaw_kind, world.tasks + extra, splits)


def corpus_rows(world: World, factor: float, skip: int = 0) -> list[dict]:
    """Every world task outside the RL split, plus about `factor` x |RL| new tasks from the skills' own
    streams (after the world's tasks and `skip` more: the extra SFT tasks; finite facts skills have
    none left)."""
    rl_ids = {t.id for t in world.splits["rl"]}
    have = [t for t in world.tasks if t.id not in rl_ids]
    extra = [t for s in world.skills for t in _beyond_world(world, s, skip, _corpus_count(world, factor, s), "corpus")]
    return instructions_rows(have + extra)


def _corpus_count(world: World, factor: float, skill: str) -> int:
    return int(round(factor * sum(task_skill(t) == skill for t in world.splits["rl"])))


def eval_rows(world: World, per_skill: int, factor: float, skip: int = 0) -> list[dict]:
    """Held-out evaluation prompts for RL experiments: the rm_test split (no model trains on it; the
    planting check probes it) plus `per_skill` tasks per skill from after the corpus in each skill's
    stream (finite facts skills, and skills whose stream runs dry, have none left). None of them is an
    RL, SFT, RM-training or corpus task."""
    new = [t for s in world.skills for t in _beyond_world(world, s, skip + _corpus_count(world, factor, s), per_skill,
                                                          "eval")]
    return instructions_rows(world.splits["rm_test"] + new)


# ---------------------------------------------------------------- stages

class Study:
    def __init__(self, cfg: StudyConfig, root: Path, say=print):
        cfg.validate()
        self.cfg, self.root, self.say = cfg, Path(root), say
        self._progress: Progress | None = None
        self._stage = ""
        self.state_file = self.root / "study.json"

    # ---- bookkeeping
    def _state(self) -> dict:
        if self.state_file.exists():
            return json.loads(self.state_file.read_text())
        return {"config": self.cfg.to_dict(), "stages": {}}

    def run(self, until: str = "report", redo: str | None = None, on_stage: StageHook | None = None,
            progress: Progress | None = None) -> dict:
        """Run the stages up to `until`, reusing finished ones; `redo` re-runs that stage and every later one.

        `on_stage(stage, index, total, event, seconds)` is called as each stage starts ("start") and when it
        is finished ("done") or found finished ("reused"); `progress(stage, fraction, step)` inside the long
        stages. Both are how the `demo-build` job loads each stage and shows progress."""
        self._progress = progress
        for sub in ("data", "hidden", "models", "negatives", "results", "report", "work"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        state = self._state()
        state.setdefault("template", TEMPLATE)  # how both models render (prompt, response): `seam score --template`
        if not self.cfg.same_as(state["config"]):
            raise SeamError(f"{self.root} holds a study with another config; use a new --dir (or delete that one)")
        if redo is not None:
            for name in STAGES[STAGES.index(redo):]:
                state["stages"].pop(name, None)
        todo = STAGES[: STAGES.index(until) + 1]
        for index, name in enumerate(todo, 1):
            if name in state["stages"]:
                self.say(f"[{name}] done before ({state['stages'][name]['seconds']} s), reused")
                if on_stage:
                    on_stage(name, index, len(todo), "reused", state["stages"][name]["seconds"])
                continue
            self.say(f"[{name}] ...")
            if on_stage:
                on_stage(name, index, len(todo), "start", 0.0)
            self._stage = name
            t0 = time.time()
            info = getattr(self, f"stage_{name}")() or {}
            state["stages"][name] = {"seconds": round(time.time() - t0, 1), "built_at": time.time(), **info}
            write_json(self.state_file, json_safe(state), indent=2)
            self.say(f"[{name}] {state['stages'][name]['seconds']} s")
            if on_stage:
                on_stage(name, index, len(todo), "done", state["stages"][name]["seconds"])
        return self._state()

    def _ticker(self, what: str, lo: float = 0.0, hi: float = 1.0):
        """A (done, total, *detail) callback for a part of the current stage spanning [lo, hi] of it: says about
        every 10% and reports the stage's fraction to the `progress` hook."""
        printer = _printer(self.say, what)

        def tick(done, total, *rest):
            printer(done, total, *rest)
            if self._progress:
                self._progress(self._stage, lo + (hi - lo) * min(done / max(total, 1), 1.0), f"{what} {done}/{total}")
        return tick

    def world(self) -> World:
        return build_world(self.cfg.world_config())

    # ---- 1
    def stage_world(self) -> dict:
        world = self.world()
        d = self.root / "data"
        rl = rl_rows(world)
        write_table(rl, d / "rl.jsonl")
        write_table(sft_rows(with_more_sft(world, self.cfg.sft_extra_per_skill), self.cfg.sft_flaw_rate), d / "sft.jsonl")
        corpus = corpus_rows(world, self.cfg.corpus_factor, skip=self.cfg.sft_extra_per_skill)
        write_table(corpus, d / "corpus.jsonl")
        held = eval_rows(world, self.cfg.eval_per_skill, self.cfg.corpus_factor, skip=self.cfg.sft_extra_per_skill)
        write_table(held, d / "eval.jsonl")
        write_json(self.root / "hidden" / "truth.json", json_safe(world.truth()), indent=2)
        return {"rl": len(rl), "corpus": len(corpus), "eval": len(held),
                "splits": {k: len(v) for k, v in world.splits.items()}}

    # ---- 2
    def stage_rm(self) -> dict:
        world = self.world()
        work = self.root / "work" / "rm"
        work.mkdir(parents=True, exist_ok=True)
        res, pairs, probes, _ = train_world_rm(world, work, self.cfg.rm_config(), self.say,
                                                progress=self._ticker("RM training step", 0.0, 0.95))
        report, _ = planting_of(res.output_dir, probes)
        report.update({"truth": world.truth(), "pairs": len(pairs), "rm_steps": res.steps,
                       "rm_train_seconds": round(res.seconds, 1)})
        write_json(self.root / "report" / "planting.json", json_safe(report), indent=2)
        write_text(self.root / "report" / "planting.md", planting_markdown(report) + "\n")
        _replace_dir(Path(res.output_dir), self.root / "models" / "rm")
        self.say(f"  planting: {report['message']}")
        if not report["ok"] and not self.cfg.keep_going:
            raise SeamError(f"the planting check failed ({report['message']}); see {self.root / 'report' / 'planting.md'}"
                            " (pass --keep-going to study this RM anyway; the report then says the check failed)")
        acc = {k: report["accuracy"].get(k) for k in ("covered_surface", "blind_surface", "computation", "copy", "content")}
        return {"planting_ok": bool(report["ok"]), "planting": report["message"], "rm_steps": res.steps,
                "pairs": len(pairs), "rm_accuracy": acc}

    # ---- 3
    def stage_pm(self) -> dict:
        cfg = self.cfg
        sft = load_instructions(self.root / "data" / "sft.jsonl")
        work = self.root / "work" / "pm"
        train_span = (0.0, 0.8)
        if cfg.pm_backbone == "smollm2":
            base = smollm2_hf()
            res = train_policy_lora(self.root / "data" / "sft.jsonl", base, self.root / "models" / "pm",
                                    steps=cfg.pm_steps, batch_size=cfg.pm_batch, learning_rate=cfg.pm_learning_rate,
                                    lora_r=cfg.pm_lora_r, seed=cfg.seed,
                                    progress=self._ticker("LoRA SFT step", *train_span))
        else:
            texts = [p + " " + c for p, c in zip(sft["prompt"], sft["chosen"])]
            base = build_causal_base(work / "base", texts, vocab_size=cfg.pm_vocab, hidden=cfg.pm_hidden,
                                     layers=cfg.pm_layers, heads=4, seed=cfg.seed)
            res = train_policy(self.root / "data" / "sft.jsonl", base, work / "sft", epochs=cfg.pm_epochs,
                               learning_rate=cfg.pm_learning_rate, batch_size=32, seed=cfg.seed)
            _replace_dir(Path(res.output_dir), self.root / "models" / "pm")
        held = self.world().splits["rm_test"][: cfg.pm_gold_tasks]  # tasks neither model trained on
        gold = {}
        for i, (name, folder) in enumerate((("before", base), ("after", self.root / "models" / "pm"))):
            out = sample_policy(folder, [t.prompt for t in held], 1, temperature=cfg.temperature, seed=cfg.seed,
                                max_new_tokens=cfg.max_new_tokens,
                                progress=self._ticker(f"gold score {name} SFT", 0.8 + 0.1 * i, 0.9 + 0.1 * i))
            gold[name] = float(judge_samples(held, out)[0].mean())
        self.say(f"  policy gold score on {len(held)} held-out tasks: {gold['before']:.3f} before SFT, {gold['after']:.3f} after")
        return {"pm_steps": res.steps, "pm_train_seconds": round(res.seconds, 1), "sft_rows": len(sft),
                "pm_final_loss": res.metrics.get("train_loss"), "pm_gold_before_sft": gold["before"],
                "pm_gold_after_sft": gold["after"], "held_out_tasks": len(held)}

    # ---- 4
    def stage_label(self) -> dict:
        cfg = self.cfg
        world = self.world()
        rl = world.splits["rl"]
        prompts = [t.prompt for t in rl]
        t0 = time.time()
        samples = sample_policy(self.root / "models" / "pm", prompts, cfg.samples, temperature=cfg.temperature,
                                seed=cfg.seed, max_new_tokens=cfg.max_new_tokens,
                                progress=self._ticker("sample", 0.0, 0.9))
        t_sample = time.time() - t0
        score, correct = judge_samples(rl, samples)
        scorer = RewardScorer(load_rm(str(self.root / "models" / "rm"), device="cpu"), get_template(TEMPLATE),
                              batch_tokens=16384)
        n = cfg.samples
        flat_p = [p for p in prompts for _ in range(n)]
        flat_s = [s for row in samples for s in row]
        r = scorer.score(prompts + flat_p, [t.golden for t in rl] + flat_s)
        rm_gold, rm_samples = np.asarray(r[: len(rl)]), np.asarray(r[len(rl):]).reshape(len(rl), n)
        label = on_policy_label([t.id for t in rl], rm_gold, rm_samples, score, correct)
        label["skill"] = [task_skill(t) for t in rl]
        label["category"] = [t.category for t in rl]
        write_table(label.to_dict("records"), self.root / "hidden" / "label.jsonl")
        write_table([{"id": t.id, "samples": s, "gold_score": sc.tolist(), "rm": rr.tolist()}
                     for t, s, sc, rr in zip(rl, samples, score, rm_samples)], self.root / "hidden" / "samples.jsonl")
        return {"sample_seconds": round(t_sample, 1), "samples": len(flat_s),
                "pm_gold_score": float(score.mean()), "pm_correct": float(correct.mean()),
                "pm_worse_share": float((score < 1 - 1e-9).mean())}

    # ---- 5
    def stage_negatives(self) -> dict:
        cfg = self.cfg
        rl = load_instructions(self.root / "data" / "rl.jsonl")
        corpus = load_instructions(self.root / "data" / "corpus.jsonl")
        rm = str(self.root / "models" / "rm")
        stats = {}
        spans = {"contrast": (0.0, 0.3), "llm": (0.3, 0.4), "adv": (0.4, 1.0)}
        for variant, settings, kwargs in (
            ("contrast", {"k": cfg.k_contrast, "band": tuple(cfg.band), "device": "cpu"}, {"corpus": corpus}),
            ("llm", {"k": cfg.k_llm, "backend": "rules", "seed": cfg.seed}, {}),
            ("adv", {"k": cfg.k_adv, "rm": rm, "device": "cpu", "query_budget": cfg.adv_budget, "seed": cfg.seed}, {}),
        ):
            t0 = time.time()
            frame, st = build_negatives(variant, rl, BUILDERS[variant].Config(**settings), progress=self._ticker(variant, *spans[variant]), **kwargs)
            write_table(frame, self.root / "negatives" / f"{variant}.jsonl")
            stats[variant] = {k: v for k, v in st.items() if k != "lines"} | {"seconds": round(time.time() - t0, 1)}
            for line in st.get("lines", []):
                self.say(line)
        write_json(self.root / "negatives" / "stats.json", json_safe(stats), indent=2)
        return {v: {"negatives": s.get("negatives"), "seconds": s["seconds"]} for v, s in stats.items()}

    # ---- 6
    def stage_score(self) -> dict:
        rl = load_instructions(self.root / "data" / "rl.jsonl")
        negs = pd.concat([pd.read_json(self.root / "negatives" / f"{v}.jsonl", lines=True) for v in VARIANTS],
                         ignore_index=True)
        negs["id"] = negs["id"].astype(str)
        pm = load_pm(str(self.root / "models" / "pm"), device="cpu")
        rm = load_rm(str(self.root / "models" / "rm"), device="cpu")
        scorer = SeamScorer(pm, rm, ScoreConfig(template=TEMPLATE, device="cpu", side_by_side="off"))
        chunks = list(scorer.iter_chunks(rl, negs, progress=self._ticker("score", 0.0, 0.9)))
        details = pd.concat([c.details for c in chunks], ignore_index=True)
        (self.root / "results").mkdir(parents=True, exist_ok=True)
        write_table(pd.concat([c.scores for c in chunks], ignore_index=True), self.root / "results" / "seam.jsonl")
        write_table(details, self.root / "results" / "details.parquet")
        lp, tok, _ = PolicyScorer(pm, get_template(TEMPLATE, pm.tokenizer)).score(rl["prompt"].tolist(),
                                                                                 rl["chosen"].tolist())
        gold = pd.DataFrame({"id": rl["id"].astype(str), "pm_gold_logprob_mean": np.asarray(lp) / np.asarray(tok)})
        write_table(gold.to_dict("records"), self.root / "results" / "gold.jsonl")
        return {"details": len(details), "truncated": {"pm": scorer.stats.pm_truncated, "rm": scorer.stats.rm_truncated}}

    # ---- 7
    def stage_report(self) -> dict:
        label = pd.read_json(self.root / "hidden" / "label.jsonl", lines=True)
        label["id"] = label["id"].astype(str)
        details = pd.read_parquet(self.root / "results" / "details.parquet")
        gold = pd.read_json(self.root / "results" / "gold.jsonl", lines=True)
        gold["id"] = gold["id"].astype(str)
        preds = predictors_for(label, details, gold, seed=self.cfg.seed)
        result = evaluate(label, preds, seed=self.cfg.seed, n_boot=self.cfg.n_boot)
        state = self._state()
        truth = json.loads((self.root / "hidden" / "truth.json").read_text())
        anatomy = label_anatomy(label, truth)
        negs = json.loads((self.root / "negatives" / "stats.json").read_text())
        result["study"] = {"config": self.cfg.to_dict(), "template": TEMPLATE, "stages": state["stages"], "label_anatomy": anatomy,
                           "negatives": negs,
                           "command": f"python -m seam.testbed.v2.study --seed {self.cfg.seed} --dir {self.root}"}
        context = _context(state, self.cfg, self.root) + _negatives_lines(negs, self.cfg) + _anatomy_lines(anatomy)
        write_report(result, self.root / "report", context_lines=context)
        for line in result["verdict"]:
            self.say(f"  {line}")
        return {"verdict": result["verdict"]}


# ---------------------------------------------------------------- helpers

def label_anatomy(label: pd.DataFrame, truth: dict) -> list[dict]:
    """What the label is made of, per planted cell (blind x prone): read after SEAM, for the report only."""
    cell = label.assign(blind=label["skill"].isin(truth["blind"]), prone=label["skill"].isin(truth["prone"]))
    cols = ["S", "S_surface", "S_wrong", "fooled_share", "correct_share"]
    out = []
    for (b, pr), g in cell.groupby(["blind", "prone"]):
        out.append({"blind": bool(b), "prone": bool(pr), "n": len(g), **{c: float(g[c].mean()) for c in cols}})
    return out


def _anatomy_lines(anatomy: list[dict]) -> list[str]:
    lines = ["", "What the label is made of (hidden cells, mean per instruction; fooled = share of samples judged "
             "worse and rewarded above the golden answer; correct = share stating the right answer):", "",
             "| RM | PM | instructions | mean S | S surface | S wrong | fooled | correct |", "|---|---|---|---|---|---|---|---|"]
    for a in anatomy:
        lines.append(f"| {'blind' if a['blind'] else 'covered'} | {'prone' if a['prone'] else 'not prone'} | {a['n']} | "
                     f"{a['S']:.3f} | {a['S_surface']:.3f} | {a['S_wrong']:.3f} | {a['fooled_share']:.3f} | "
                     f"{a['correct_share']:.3f} |")
    return lines


def _negatives_lines(stats: dict, cfg: StudyConfig) -> list[str]:
    parts = []
    for v, st in stats.items():
        per = st.get("per_instruction") or {}
        mean = per.get("mean") if isinstance(per, dict) else None
        parts.append(f"{v} {st.get('negatives')} ({'' if mean is None else f'{mean:.1f} per instruction, '}"
                     f"{st.get('without_negatives')} instructions with none, {st.get('seconds')} s)")
    return ["Negatives: " + "; ".join(parts) + f". Contrast band [{cfg.band[0]}, {cfg.band[1]}], "
            f"{stats.get('contrast', {}).get('corpus_rows')} corpus rows; llm = the rules backend of seam.negatives "
            "(generic corruptions of the golden answer: not the policy, not the world's flaw code); adv = the "
            "batched attack from each instruction's held-out rejected answer."]

def _read_state(root: Path) -> dict:
    """A study folder's study.json ({} when there is none or it cannot be read)."""
    try:
        return json.loads((Path(root) / "study.json").read_text())
    except (OSError, ValueError):
        return {}


def _replace_dir(src: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst)


def _printer(say, what: str):
    """A progress callback that prints about every 10%."""
    last = {"tenth": -1}

    def progress(done, total, *rest):
        tenth = int(10 * done / max(total, 1))
        if tenth != last["tenth"]:
            last["tenth"] = tenth
            say(f"  {what}: {done}/{total}" + (f" ({rest[0]})" if rest and rest[0] else ""))
    return progress


def _policy_words(cfg: StudyConfig) -> str:
    if cfg.pm_backbone == "smollm2":
        return (f"SmolLM2-135M-Instruct, LoRA r {cfg.pm_lora_r} SFT, {cfg.pm_steps} steps x {cfg.pm_batch} "
                f"on the SFT split")
    return f"from scratch, {cfg.pm_layers} layers x {cfg.pm_hidden}"


def _context(state: dict, cfg: StudyConfig, root: Path) -> list[str]:
    st = state["stages"]
    secs = sum(s["seconds"] for s in st.values())
    lines = [f"World seed {cfg.seed}: {st['world']['rl']} RL instructions over {len(SKILLS)} skills; contrast corpus "
             f"{st['world']['corpus']} tasks. Planting check: {'held' if st['rm']['planting_ok'] else 'FAILED'} "
             f"(report/planting.md). RM held-out accuracy (golden > flawed): " + "; ".join(
                 f"{k.replace('_', ' ')} {v['accuracy']:.3f} [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]"
                 for k, v in st["rm"]["rm_accuracy"].items() if v and v.get("accuracy") is not None) + ".",
             f"Policy ({_policy_words(cfg)}): gold score of its samples "
             f"{st['label']['pm_gold_score']:.3f} (states the correct answer in {st['label']['pm_correct']:.1%}; "
             f"judged worse than gold in {st['label']['pm_worse_share']:.1%}); gold score on held-out tasks "
             f"{st['pm']['pm_gold_before_sft']:.3f} before SFT, {st['pm']['pm_gold_after_sft']:.3f} after.",
             "Stages: " + ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in st.items()) + f"; total {secs / 60:.1f} min "
             f"on 2 CPU cores. Command: `python -m seam.testbed.v2.study --seed {cfg.seed} --dir {root}`."]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="study folder (created; a re-run reuses finished stages)")
    ap.add_argument("--until", choices=STAGES, default="report", help="stop after this stage")
    ap.add_argument("--redo", choices=STAGES, default=None, help="run this stage and every later one again")
    for f, v in asdict(StudyConfig()).items():
        if isinstance(v, bool):
            ap.add_argument("--" + f.replace("_", "-"), action="store_true", default=v)
        elif isinstance(v, tuple):
            ap.add_argument("--" + f.replace("_", "-"), type=float, nargs=len(v), default=v)
        else:
            ap.add_argument("--" + f.replace("_", "-"), type=int if v is None else type(v), default=v)
    args = ap.parse_args(argv)
    cfg = StudyConfig(**{f: (tuple(getattr(args, f)) if isinstance(v, tuple) else getattr(args, f))
                         for f, v in asdict(StudyConfig()).items()})
    import torch  # lazy: only the command line sets threads

    torch.set_num_threads(2)
    Study(cfg, Path(args.dir), say=lambda m: print(m, file=sys.stderr, flush=True)).run(args.until, args.redo)
    print((Path(args.dir) / "report" / "validation.md").read_text() if args.until == "report" else "")
    return 0


if __name__ == "__main__":
    run_main(main)
