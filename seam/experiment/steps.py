"""One unit of an experiment: select an arm's RL set, augment its SFT / RM data, retrain the SFT
policy or the RM, run PPO for one seed and evaluate the result (or evaluate the starting policy).

`UnitSteps` holds the work and the state the units share (the loaded data, the finished
evaluations, the progress weights); `seam.experiment.runner._Runner` extends it with the plan, the
loop over arms and seeds, and the results. Each step first looks for its finished output on disk
(a resumed experiment reuses it and reports the unit as `cached`), reports `on_start` / `on_end`
through the hooks and raises `ExperimentStopped` when `should_stop()` says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..augment import AugmentConfig, augment, write_augmentation
from ..data import write_table
from ..io import lineage_path, write_json
from ..models.loading import load_pm, load_rm
from ..select import SelectConfig, SelectInputs, select, write_selection
from ..settings import load_config
from ..train import RMConfig, SFTConfig, train_rm, train_sft
from ..train.bon import sample_round, write_samples
from ..train.common import METRICS_FILE, read_manifest
from ..train.data import load_rows
from ..train.eval import PolicyEvalConfig, evaluate_policy
from ..train.judges import JudgeSettings
from ..train.merge import merge_adapter
from ..train.models import split_model_arg
from ..train.reward_fn import load_reward_function
from ..train.stats import paired_bootstrap_ci, win_rate
from .arms import Arm, ExperimentInputs
from .config import LABEL_ARMS, ExperimentConfig
from .labels import label_selection, load_label
from .report import format_number, format_summary
from .trainers import TRAINERS, planned_steps, trainer_overrides

ProgressFn = Callable[[float, str], None]


class ExperimentStopped(Exception):
    """Raised when `hooks.should_stop()` said stop; finished units are kept on disk for a resume."""


@dataclass
class Unit:
    """One piece of work, as hooks see it."""

    phase: str  # select | augment | sft | rm | ppo | initial
    arm: str
    seed: int | None
    index: int  # position among the experiment's training units (ppo, sft, rm)
    total: int
    paths: dict = field(default_factory=dict)  # data / output files of the unit
    config: dict = field(default_factory=dict)  # the trainer config or the selection config

    @property
    def key(self) -> str:
        return f"{self.phase}/{self.arm}" + ("" if self.seed is None else f"/s{self.seed}")


@dataclass
class UnitResult:
    unit: Unit
    cached: bool  # True: found finished on disk (a resumed experiment), not rerun
    seconds: float
    summary: dict = field(default_factory=dict)  # eval summary (ppo / initial), trainer metrics (sft / rm), counts (select)
    train: dict = field(default_factory=dict)  # trainer result (steps, metrics, rows, output_dir, adapter)
    vs_reference: dict = field(default_factory=dict)  # ppo: win rate and mean difference vs the reference, same seed


@dataclass
class ExperimentHooks:
    """How a caller (CLI, job worker) follows an experiment. Every hook is optional."""

    progress: ProgressFn | None = None  # (fraction 0..1, step text)
    log: Callable[[str], None] | None = None  # one line per event
    metrics: Callable[[Unit, int, dict], None] | None = None  # every logged trainer step
    on_start: Callable[[Unit], None] | None = None  # a unit starts (not called for cached units)
    on_end: Callable[[UnitResult], None] | None = None  # a unit ended (also for cached units)
    should_stop: Callable[[], bool] | None = None  # polled between units and after every trainer step


def finished_run(folder: Path) -> dict | None:
    """The manifest of a finished, not-stopped run folder; None otherwise."""
    man = read_manifest(folder) if folder.is_dir() else None
    if man and not man.get("stopped"):
        return man
    return None


@contextlib.contextmanager
def _plain_model(path: str, role: str, scratch: Path):
    """(model folder, adapter or None) loadable by `seam.models.loading`; stacked adapters are merged
    into a scratch folder for the duration."""
    base, adapter = split_model_arg(str(path), f"--{role}")
    if adapter is None:
        yield str(path), None
        return
    _, deeper = split_model_arg(base, f"--{role}")
    if deeper is None:
        yield base, str(adapter)
        return
    tmp = scratch / f".merged-{role}-{os.getpid()}-{time.time_ns()}"
    try:
        merge_adapter(str(path), tmp, role=role)
        yield str(tmp), None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class UnitSteps:
    """The per-unit work of an experiment run, and the state its units share.

    The runner sets, before the first unit: `arms`, `reference` (the reference arm's name),
    `pool` / `pool_file` (the RL set PPO draws from), `eval_df` / `eval_file` (the held-out
    prompts), `scores`, `negatives` (or None), and the progress plan `_total_weight`, `_n_units`,
    `_unit_index`."""

    def __init__(self, inputs: ExperimentInputs, cfg: ExperimentConfig, out_dir, hooks: ExperimentHooks | None):
        self.inputs = inputs
        self.cfg = cfg
        self.out = Path(out_dir)
        self.hooks = hooks or ExperimentHooks()
        self.units: list[UnitResult] = []
        self.evals: dict[tuple[str, int], pd.DataFrame] = {}  # (arm, seed) -> per-prompt rows
        self.histories: dict[tuple[str, int], list[dict]] = {}
        self.n_train: dict[tuple[str, int], int] = {}
        self._selections: dict[tuple[str, int | None], Path] = {}
        self._trained: dict[str, tuple[str, str]] = {}  # augment arm -> (policy dir, rm dir)
        self.rm_accuracy: dict[str, float] = {}  # augment arm -> its retrained RM's test accuracy
        self._loaded: dict[str, Any] = {}
        self._done_weight = 0.0

    # ---------------------------------------------------------------- plumbing

    def say(self, line: str) -> None:
        if self.hooks.log:
            self.hooks.log(line)

    def stop_requested(self) -> bool:
        return bool(self.hooks.should_stop and self.hooks.should_stop())

    def check_stop(self) -> None:
        if self.stop_requested():
            raise ExperimentStopped("stopped on request; finished units are kept and a re-run resumes after them")

    def progress(self, extra: float, step: str) -> None:
        if self.hooks.progress:
            self.hooks.progress(min(1.0, (self._done_weight + extra) / self._total_weight), step)

    def _fire_start(self, unit: Unit) -> None:
        if self.hooks.on_start:
            self.hooks.on_start(unit)

    def _emit_end(self, res: UnitResult) -> None:
        self.units.append(res)
        if self.hooks.on_end:
            self.hooks.on_end(res)

    # ---------------------------------------------------------------- trainer settings

    def _ppo_overrides(self, policy, reward_model, data, out, seed) -> dict:
        """The overrides of the arm trainer's config (`cfg.method`: PPO, GRPO, RLOO or best-of-n)."""
        return trainer_overrides(self.cfg, policy, reward_model, data, out, seed)

    def _sft_overrides(self, data, out) -> dict:
        base = {"device": self.cfg.device, "dtype": self.cfg.dtype, "template": self.cfg.template, "report_to": "none",
                "disable_tqdm": self.cfg.quiet, "seed": self._train_seed}
        return {**base, **self.cfg.sft, "model": self.inputs.pm, "data": str(data), "output_dir": str(out)}

    def _rm_overrides(self, data, out) -> dict:
        base = {"device": self.cfg.device, "dtype": self.cfg.dtype, "template": self.cfg.template, "report_to": "none",
                "disable_tqdm": self.cfg.quiet, "seed": self._train_seed}
        return {**base, **self.cfg.rm, "model": self.inputs.pm, "data": str(data), "output_dir": str(out),
                "eval_data": self.inputs.rm_test}

    @property
    def _train_seed(self) -> int:
        ts = getattr(self.cfg, "train_seed", None)
        return int(ts) if ts is not None else int(self.cfg.seeds[0])

    # ---------------------------------------------------------------- the starting policy

    def _initial_eval(self) -> dict:
        unit = Unit("initial", "initial", None, 0, 0, {"policy": self.inputs.pm})
        rows_path, summary_path = self.out / "evals" / "initial.jsonl", self.out / "evals" / "initial.json"
        t0 = time.time()
        if rows_path.is_file() and summary_path.is_file():
            summary = json.loads(summary_path.read_text(encoding="utf-8"))["eval"]
            self._done_weight += 0.2
            self._emit_end(UnitResult(unit, True, 0.0, summary))
            return summary
        self.progress(0.0, "evaluating the starting policy")
        self._fire_start(unit)
        rows, summary = self._evaluate(self.inputs.pm, ref=None)
        self._save_eval(rows, summary, rows_path, summary_path)
        self._done_weight += 0.2
        self._emit_end(UnitResult(unit, False, time.time() - t0, summary))
        self.say(f"starting policy: {format_summary(summary)}")
        return summary

    # ---------------------------------------------------------------- data of an arm

    def _arm_data(self, arm: Arm, seed: int) -> Path:
        """The RL file PPO trains on (filter / sweep); for augment the pool, after training the arm's models."""
        if self.cfg.kind == "augment":
            self._augment_models(arm)
            return self.pool_file
        key = (arm.name, seed if arm.seeded else None)
        if key in self._selections:
            return self._selections[key]
        if arm.method is None:
            self._selections[key] = self.pool_file
            self.n_train[key] = len(self.pool)
            return self.pool_file
        name = f"rl.{arm.slug}" + (f".s{seed}" if arm.seeded else "") + ".jsonl"
        path = self.out / "selections" / name
        unit = Unit("select", arm.name, seed if arm.seeded else None, self._unit_index, self._n_units, {"data": str(path)})
        sel_cfg = SelectConfig(method=arm.method, p=arm.p, variants=arm.variants, seed=seed, template=self.cfg.template)
        unit.config = sel_cfg.to_dict()
        t0 = time.time()
        if path.is_file() and lineage_path(path).is_file():
            lineage = json.loads(lineage_path(path).read_text(encoding="utf-8"))
            self.n_train[key] = int(lineage.get("n_kept", 0))
            self._selections[key] = path
            self._emit_end(UnitResult(unit, True, 0.0, _selection_summary(lineage)))
            return path
        self._fire_start(unit)
        self.progress(0.0, f"{arm.name}: selecting")
        inputs = SelectInputs(scores=self.scores, negatives=self.negatives,
                              paths={"data": self.pool_file, "scores": self.inputs.scores,
                                     "negatives": self.inputs.negatives if arm.method == "reward-gap" else None})
        if arm.method == "perplexity":
            inputs.pm = self._model("pm")
            inputs.paths["pm"] = self.inputs.pm
        if arm.method == "reward-gap":
            inputs.rm = self._model("rm")
            inputs.paths["rm"] = self.inputs.rm
        if arm.method in LABEL_ARMS:
            sel = label_selection(self.pool, self._label(), arm.method, arm.p,
                                  {"data": self.pool_file, "label": self.cfg.label})
        else:
            sel = select(self.pool, sel_cfg, inputs)
        path.parent.mkdir(exist_ok=True)
        write_selection(sel, path)
        self.n_train[key] = len(sel.kept)
        self._selections[key] = path
        self._emit_end(UnitResult(unit, False, time.time() - t0, _selection_summary(sel.lineage)))
        self.say(f"{arm.name}: kept {len(sel.kept)} of {len(self.pool)} RL prompts ({arm.method}, p={arm.p:g})")
        return path

    def _label(self):
        """The hidden label file (oracle / skill-prior arms), read once."""
        if "label" not in self._loaded:
            self._loaded["label"] = load_label(self.cfg.label)
        return self._loaded["label"]

    def _model(self, role: str):
        """The input PM / RM, loaded once (selection baselines)."""
        if role not in self._loaded:
            loader = load_pm if role == "pm" else load_rm
            path = self.inputs.pm if role == "pm" else self.inputs.rm
            scratch = self.out / "scratch"
            scratch.mkdir(exist_ok=True)
            with _plain_model(path, role, scratch) as (folder, adapter):
                self._loaded[role] = loader(folder, adapter, device=self.cfg.device, dtype=self.cfg.dtype)
        return self._loaded[role]

    def _augment_models(self, arm: Arm) -> tuple[str, str]:
        """(policy, reward model) of an augment arm: SFT and RM retrained on its data (once per arm)."""
        if arm.name in self._trained:
            return self._trained[arm.name]
        sel_dir = self.out / "selections"
        sel_dir.mkdir(exist_ok=True)
        if arm.method is None:
            sft_file, rm_file = Path(self.inputs.sft), Path(self.inputs.rm_train)
        else:
            sft_file, rm_file = sel_dir / f"sft.{arm.slug}.jsonl", sel_dir / f"rm_pairs.{arm.slug}.jsonl"
            unit = Unit("augment", arm.name, None, self._unit_index, self._n_units,
                        {"sft_data": str(sft_file), "rm_data": str(rm_file)})
            acfg = AugmentConfig(method=arm.method, p=arm.p, k=self.cfg.k, variants=arm.variants, seed=self._train_seed)
            unit.config = acfg.to_dict()
            if all(f.is_file() and lineage_path(f).is_file() for f in (sft_file, rm_file)):
                lineage = json.loads(lineage_path(rm_file).read_text(encoding="utf-8"))
                self._emit_end(UnitResult(unit, True, 0.0, _augment_summary(lineage)))
            else:
                self._fire_start(unit)
                self.progress(0.0, f"{arm.name}: augmenting")
                t0 = time.time()
                contrast = self._contrast_rows()
                aug = augment(self.pool, acfg, contrast=contrast, scores=self.scores, corpus=self.pool,
                              paths={"data": self.pool_file, "scores": self.inputs.scores,
                                     "contrast": self.inputs.negatives})
                write_augmentation(aug, sft_file, rm_file, sft_base=self.inputs.sft, rm_base=self.inputs.rm_train)
                self._emit_end(UnitResult(unit, False, time.time() - t0, _augment_summary(aug.lineage)))
                self.say(f"{arm.name}: {len(aug.anchors)} anchors, +{len(aug.sft_rows)} SFT rows, "
                         f"+{len(aug.rm_pairs)} RM pairs")
        train_dir = self.out / "train" / arm.slug
        train_dir.mkdir(parents=True, exist_ok=True)
        sft_out = self._train_unit("sft", arm, sft_file, train_dir / "sft")
        rm_out = self._train_unit("rm", arm, rm_file, train_dir / "rm")
        self._trained[arm.name] = (sft_out, rm_out)
        return sft_out, rm_out

    def _contrast_rows(self) -> pd.DataFrame | None:
        """Contrast neighbours from the negatives file, without any neighbour taken from an eval prompt."""
        negs = self.negatives
        if negs is None or "contrast" not in set(negs["variant"].astype(str)):
            self.say("no contrast negatives given: neighbours are retrieved now (contrast builder)")
            return None
        c = negs[negs["variant"].astype(str) == "contrast"]
        eval_ids = set(self.eval_df["id"])
        src = [(m or {}).get("source_id") if isinstance(m, dict) else None for m in c["meta"]]
        keep = np.array([s is None or str(s) not in eval_ids for s in src], dtype=bool)
        return c[keep].reset_index(drop=True)

    def _train_unit(self, phase: str, arm: Arm, data: Path, out: Path) -> str:
        cls, fn, overrides = ((SFTConfig, train_sft, self._sft_overrides(data, out)) if phase == "sft"
                              else (RMConfig, train_rm, self._rm_overrides(data, out)))
        tcfg = load_config(cls, overrides=overrides)
        unit = Unit(phase, arm.name, None, self._unit_index, self._n_units, {"data": str(data), "output_dir": str(out),
                                                                               "base": self.inputs.pm}, tcfg.to_dict())
        self._unit_index += 1
        man = finished_run(out)
        if man is not None:
            self._done_weight += 0.5
            self._note_accuracy(phase, arm, man.get("metrics", {}))
            self._emit_end(UnitResult(unit, True, 0.0, man.get("metrics", {}), _train_info(man)))
            return str(out)
        if out.exists():
            shutil.rmtree(out)
        self._fire_start(unit)
        self.progress(0.0, f"{arm.name}: training {phase.upper()}")
        total = max(1, tcfg.max_steps if tcfg.max_steps > 0 else 1)

        def on_metrics(step: int, m: dict) -> None:
            if self.hooks.metrics:
                self.hooks.metrics(unit, step, m)
            if tcfg.max_steps > 0:
                self.progress(0.5 * min(step / total, 1.0), f"{arm.name}: {phase.upper()} step {step}/{total}")

        res = fn(tcfg, metrics_callback=on_metrics, should_stop=self.stop_requested)
        if res.stopped:
            shutil.rmtree(res.output_dir, ignore_errors=True)
            raise ExperimentStopped(f"stopped during the {phase.upper()} training of arm {arm.name}")
        self._done_weight += 0.5
        man = finished_run(out) or {}
        self._note_accuracy(phase, arm, res.metrics)
        self._emit_end(UnitResult(unit, False, res.seconds, res.metrics, _train_info(man)))
        acc = res.metrics.get("eval_accuracy")
        self.say(f"{arm.name}: {phase.upper()} trained, {res.steps} steps in {res.seconds:.0f}s"
                 + (f", RM test accuracy {acc:.3f}" if isinstance(acc, (int, float)) else ""))
        return str(out)

    def _note_accuracy(self, phase: str, arm: Arm, metrics: dict) -> None:
        acc = (metrics or {}).get("eval_accuracy")
        if phase == "rm" and isinstance(acc, (int, float)):
            self.rm_accuracy[arm.name] = float(acc)

    # ---------------------------------------------------------------- PPO + eval

    def _ppo_unit(self, arm: Arm, seed: int) -> None:
        data = self._arm_data(arm, seed)
        key = (arm.name, seed)
        if self.cfg.kind == "augment":
            policy, reward = self._trained[arm.name]
            self.n_train[key] = len(self.pool)
        else:
            policy, reward = self.inputs.pm, self.inputs.rm
            self.n_train[key] = self.n_train[(arm.name, seed if arm.seeded else None)]
        run_dir = self.out / "runs" / arm.slug / f"s{seed}"
        rows_path = self.out / "evals" / f"{arm.slug}.s{seed}.jsonl"
        summary_path = rows_path.with_suffix(".json")
        tcls, train_fn = TRAINERS[self.cfg.method]
        overrides = self._ppo_overrides(policy, reward, data, run_dir, seed)
        man = finished_run(run_dir)
        if self._shares_first_round() and man is None:
            overrides["first_round_samples"] = str(self._shared_first_round(seed))
        pcfg = load_config(tcls, overrides=overrides)
        name = self.cfg.method.upper() if self.cfg.method != "bon" else "best-of-n"
        unit = Unit("ppo", arm.name, seed, self._unit_index, self._n_units,
                    {"data": str(data), "output_dir": str(run_dir), "policy": str(policy), "reward_model": str(reward),
                     "eval_data": str(self.eval_file), "eval_rows": str(rows_path), "eval_summary": str(summary_path)},
                    pcfg.to_dict())
        self._unit_index += 1
        t0 = time.time()
        if man is not None and rows_path.is_file() and summary_path.is_file():
            stored = json.loads(summary_path.read_text(encoding="utf-8"))
            self.evals[key] = pd.read_json(rows_path, lines=True, dtype={"id": str})
            self.histories[key] = _read_history(run_dir)
            self._done_weight += 1
            self._emit_end(UnitResult(unit, True, float(stored.get("seconds", 0.0)), stored["eval"], _train_info(man),
                                      self._vs_reference(arm, seed)))
            return
        if run_dir.exists() and man is None:
            shutil.rmtree(run_dir)  # a stopped or broken run: redo it
        self._fire_start(unit)
        label = f"{arm.name} seed {seed}"
        self.progress(0.0, f"{label}: {name}")
        if man is None:
            run_dir.parent.mkdir(parents=True, exist_ok=True)

            def on_metrics(step: int, m: dict) -> None:
                if self.hooks.metrics:
                    self.hooks.metrics(unit, step, m)
                total = planned_steps(pcfg, self.n_train.get(key)) or 1
                self.progress(0.85 * min(step / total, 1.0), f"{label}: {name} step {step}/{total}")

            res = train_fn(pcfg, metrics_callback=on_metrics, should_stop=self.stop_requested)
            if res.stopped:
                shutil.rmtree(res.output_dir, ignore_errors=True)
                raise ExperimentStopped(f"stopped during {name} of arm {arm.name}, seed {seed}")
            man = finished_run(run_dir) or {}
            self.histories[key] = res.history
            score_key = {"ppo": "objective/scores", "bon": "bon/pick_reward_mean"}.get(self.cfg.method, "reward")
            self.say(f"{label}: {name} {res.steps} steps in {res.seconds:.0f}s, {score_key} "
                     f"{format_number(res.metrics.get(score_key))}")
        else:
            self.histories[key] = _read_history(run_dir)
        self.check_stop()
        self.progress(0.85, f"{label}: evaluating")
        rows, summary = self._evaluate(run_dir, ref=policy if self.cfg.eval.kl else None)
        seconds = time.time() - t0
        self._save_eval(rows, summary, rows_path, summary_path, seconds)
        self.evals[key] = rows
        self._done_weight += 1
        res_unit = UnitResult(unit, False, seconds, summary, _train_info(man), self._vs_reference(arm, seed))
        self._emit_end(res_unit)
        line = f"{label}: {format_summary(summary)}"
        if res_unit.vs_reference:
            gold_win = res_unit.vs_reference.get("gold", {}).get("win_rate")
            line += f"; win rate vs {self.reference} {format_number(gold_win)}"
        self.say(line)

    def _shares_first_round(self) -> bool:
        """Best-of-n arms that start from the same policy and RM (filter, sweep) share their first round."""
        return self.cfg.method == "bon" and self.cfg.kind != "augment"

    def _shared_first_round(self, seed: int) -> Path:
        """The first best-of-n round of `seed`, sampled once over the whole RL pool and scored by the RM
        (`shared/bon-round0.s{seed}.jsonl`); every arm of the seed picks from it for its own prompts. The
        arms then differ only in which prompts they keep (common random numbers), and the experiment
        samples once per seed instead of once per arm. The full arm's run is the one it would be alone."""
        path = self.out / "shared" / f"bon-round0.s{seed}.jsonl"
        if path.is_file():
            return path
        self.say(f"seed {seed}: sampling the shared first best-of-n round over {len(self.pool)} RL prompts")
        self.progress(0.0, f"seed {seed}: sampling the shared best-of-n round")
        bcfg = load_config(TRAINERS["bon"][0], overrides=self._ppo_overrides(
            self.inputs.pm, self.inputs.rm, self.pool_file, self.out / "shared" / "unused", seed))
        rows = load_rows(str(self.pool_file))
        prompts, ids = rows["prompt"].tolist(), rows["id"].astype(str).tolist()
        reward = load_reward_function(bcfg.reward_model_path, bcfg.template, device=bcfg.device, dtype=bcfg.dtype,
                                      allow_pickle=bcfg.allow_pickle)
        t0 = time.time()
        samples, scores = sample_round(bcfg, bcfg.model, prompts, reward)
        path.parent.mkdir(exist_ok=True)
        write_samples(path, ids, prompts, samples, scores)
        self.say(f"seed {seed}: {len(samples)} samples in {time.time() - t0:.0f}s, mean reward {scores.mean():.3f}")
        return path

    def _evaluate(self, policy: str | Path, ref: str | Path | None) -> tuple[pd.DataFrame, dict]:
        ev = self.cfg.eval
        scratch = self.out / "scratch"
        scratch.mkdir(exist_ok=True)
        with contextlib.ExitStack() as stack:
            pm, pm_adapter = stack.enter_context(_plain_model(str(policy), "pm", scratch))
            ref_dir = ref_adapter = None
            if ref is not None:
                ref_dir, ref_adapter = stack.enter_context(_plain_model(str(ref), "pm", scratch))
            rm_dir, rm_adapter = stack.enter_context(_plain_model(self.inputs.rm, "rm", scratch))
            judge = JudgeSettings(rm=rm_dir, rm_adapter=rm_adapter, template=self.cfg.template)
            pcfg = PolicyEvalConfig(data=str(self.eval_file), pm=pm, pm_adapter=pm_adapter, judges=tuple(ev.judges),
                                    ref=ref_dir, ref_adapter=ref_adapter, template=self.cfg.template,
                                    max_new_tokens=ev.max_new_tokens, temperature=ev.temperature,
                                    seed=0, batch_size=ev.batch_size, device=self.cfg.device, dtype=self.cfg.dtype,
                                    judge=judge)
            result = evaluate_policy(pcfg)
        rows = result.rows.copy()
        rows["id"] = rows["id"].astype(str)
        return rows, result.summary

    def _save_eval(self, rows: pd.DataFrame, summary: dict, rows_path: Path, summary_path: Path,
                   seconds: float = 0.0) -> None:
        rows_path.parent.mkdir(parents=True, exist_ok=True)
        write_table(rows, rows_path)
        write_json(summary_path, {"eval": summary, "seconds": seconds})

    def _vs_reference(self, arm: Arm, seed: int) -> dict:
        """Win rate and mean difference vs the reference arm of the same seed, per score."""
        ref = self.evals.get((self.reference, seed))
        mine = self.evals.get((arm.name, seed))
        if ref is None or mine is None or arm.name == self.reference:
            return {}
        out = {}
        for s in self.cfg.eval.judges:
            col = f"score_{s}"
            m = mine[["id", col]].merge(ref[["id", col]], on="id", suffixes=("_a", "_b"))
            x, y = m[f"{col}_a"].to_numpy(float), m[f"{col}_b"].to_numpy(float)
            if not np.isfinite(x).any():
                continue
            w = win_rate(x, y, level=self.cfg.level)
            d = paired_bootstrap_ci(x, y, level=self.cfg.level)
            out[s] = {"win_rate": w.rate, "win_ci_low": w.ci.low, "win_ci_high": w.ci.high, "diff": d.estimate,
                      "diff_ci_low": d.low, "diff_ci_high": d.high, "n": d.n}
        return out


# ============================================================================ small helpers


def _read_history(run_dir: Path) -> list[dict]:
    p = run_dir / METRICS_FILE
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def _train_info(man: dict) -> dict:
    keep = ("kind", "output_dir", "adapter", "base_model", "steps", "seconds", "rows", "metrics")
    return {k: man.get(k) for k in keep if k in man}


def _selection_summary(lineage: dict) -> dict:
    return {k: lineage.get(k) for k in ("method", "p", "n_in", "n_kept", "n_dropped", "cutoff", "output")}


def _augment_summary(lineage: dict) -> dict:
    return {k: lineage.get(k) for k in ("method", "p", "k", "n_anchors", "n_sft_rows", "n_rm_pairs",
                                        "sft_without_prompt")}

