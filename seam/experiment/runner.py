"""Running an experiment: check the config and inputs, plan the units, run them arm by arm and
seed by seed (resuming after the units an earlier run finished, stopping when asked), and write the
results after every unit.

`run_filter_experiment`, `run_augment_experiment` and `run_sweep` are the entry points (`RUNNERS`
maps a kind to its runner). The work of one unit lives in `seam.experiment.steps`, the Markdown
table and figures in `seam.experiment.report`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..data import load_instructions, load_negatives, read_table, write_table
from ..errors import SeamError
from ..io import json_safe, write_json, write_text
from ..settings import load_config
from ..train.config import RMConfig, SFTConfig
from ..train.eval import compare_runs
from ..train.stats import bootstrap_ci
from .arms import ExperimentInputs, build_arms, demo_heldout
from .config import (LABEL_ARMS, MANIFEST, REFERENCE, AugmentExperimentConfig, ExperimentConfig, FilterExperimentConfig,
                     SweepConfig, canonical_overrides)
from .labels import load_label
from .report import results_markdown, write_figures
from .steps import ExperimentHooks, UnitResult, UnitSteps
from .trainers import TRAINERS, mapped_ppo


@dataclass
class ExperimentResult:
    kind: str
    out_dir: Path
    config: dict
    inputs: dict
    arms: list[dict]  # one summary row per arm (see `table`)
    per_seed: list[dict]  # arm, seed, n_train, gold, rm, kl, tokens, ppo score, seconds
    comparisons: list[dict]  # arm vs reference per score
    initial: dict | None  # eval summary of the starting policy
    units: list[UnitResult]
    files: dict  # name -> path of results.json / results.md / figures
    seconds: float
    eval_prompts: int
    reference: str

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.arms)


# ============================================================================ entry points


def run_filter_experiment(inputs: ExperimentInputs, cfg: FilterExperimentConfig, out_dir: str | os.PathLike,
                          hooks: ExperimentHooks | None = None) -> ExperimentResult:
    """Full RL set vs SEAM filter vs baselines: select -> PPO -> evaluate, per arm and seed."""
    return _Runner(inputs, cfg, out_dir, hooks).run()


def run_augment_experiment(inputs: ExperimentInputs, cfg: AugmentExperimentConfig, out_dir: str | os.PathLike,
                           hooks: ExperimentHooks | None = None) -> ExperimentResult:
    """Original vs augmented PM/RM training data: augment -> SFT + RM -> PPO -> evaluate."""
    return _Runner(inputs, cfg, out_dir, hooks).run()


def run_sweep(inputs: ExperimentInputs, cfg: SweepConfig, out_dir: str | os.PathLike,
              hooks: ExperimentHooks | None = None) -> ExperimentResult:
    """The filter at several drop rates (`cfg.rates`) against the full RL set."""
    return _Runner(inputs, cfg, out_dir, hooks).run()


RUNNERS: dict[str, Callable[..., ExperimentResult]] = {
    "filter": run_filter_experiment, "augment": run_augment_experiment, "sweep": run_sweep}


# ============================================================================ the runner


class _Runner(UnitSteps):
    """One experiment run: validation and setup, the plan, the loop over arms and seeds, the results."""

    def __init__(self, inputs: ExperimentInputs, cfg: ExperimentConfig, out_dir, hooks: ExperimentHooks | None):
        super().__init__(inputs, cfg, out_dir, hooks)
        self._t0 = time.time()

    # ---------------------------------------------------------------- validation and setup

    def _validate(self) -> None:
        cfg, inp = self.cfg, self.inputs
        cfg.validate()
        self.arms = build_arms(cfg)
        self.reference = REFERENCE[cfg.kind]
        for key in ("rl", "pm", "rm"):
            if not getattr(inp, key):
                raise SeamError(f"--{key} is required (or --project with a demo layout)")
        for key, value in asdict(inp).items():
            if value and not Path(value).exists():
                raise SeamError(f"--{key.replace('_', '-')} {value}: not found; check the path")
        methods = {a.method for a in self.arms}
        if methods & {"seam"} and not inp.scores:
            raise SeamError("the seam arm needs SEAM scores: pass --scores FILE (the output of `seam score`)")
        if cfg.kind == "augment":
            for key in ("sft", "rm_train"):
                if not getattr(inp, key):
                    raise SeamError(f"seam experiment augment retrains the PM and RM: pass --{key.replace('_', '-')} FILE "
                                    "(the original SFT rows / RM pairs)")
        # trainer overrides are checked now, not after an hour of training
        load_config(TRAINERS[cfg.method][0], overrides=self._ppo_overrides("policy", "rm", "data", str(self.out / "x"), 0))
        if cfg.method != "ppo":
            ignored = mapped_ppo(cfg.method, cfg.ppo)[1]
            if ignored:
                self.say(f"note: {cfg.method} has no counterpart of the PPO settings {', '.join(ignored)}; ignored")
        if cfg.label and not Path(cfg.label).is_file():
            raise SeamError(f"--label {cfg.label}: not found; pass the label file (e.g. <study>/hidden/label.jsonl)")
        if methods & set(LABEL_ARMS):
            load_label(cfg.label)  # a bad label file is an error now, not after the first arms trained
        if cfg.kind == "augment":
            load_config(SFTConfig, overrides=self._sft_overrides("data", str(self.out / "x")))
            load_config(RMConfig, overrides=self._rm_overrides("data", str(self.out / "x")))

    def _prepare_out(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        record = {"seam_experiment": 1, "kind": self.cfg.kind, "config": _comparable(self.cfg.to_dict()),
                  "inputs": self.inputs.to_dict()}
        path = self.out / MANIFEST
        if path.is_file():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                old = {}
            # the seed list is not part of an experiment's identity: each unit's files are keyed by its seed, so
            # a re-run with more seeds reuses the finished ones and adds the rest (power on demand)
            diff = _differences(_current_names(old), record, ignore=("seeds",))
            if diff:
                raise SeamError(f"--out {self.out} holds a different experiment ({diff}); choose a new folder, "
                                "or delete it to start over")
            before = (old.get("config") or {}).get("seeds")
            if before is not None and list(before) != list(self.cfg.seeds):
                self.say(f"resuming the experiment in {self.out} with seeds {', '.join(map(str, self.cfg.seeds))} "
                         f"(was {', '.join(map(str, before))}): finished seeds are reused")
                write_json(path, record)
            else:
                self.say(f"resuming the experiment in {self.out}")
        elif any(p for p in self.out.iterdir() if not p.name.startswith(".")):
            raise SeamError(f"--out {self.out} is not empty and holds no {MANIFEST}; choose a new folder")
        else:
            write_json(path, record)

    def _load_data(self) -> None:
        rl = load_instructions(self.inputs.rl)
        ev_cfg = self.cfg.eval
        if self.inputs.eval:
            ev = load_instructions(self.inputs.eval)
            overlap = set(ev["id"]) & set(rl["id"])
            if overlap:
                self.say(f"warning: {len(overlap)} eval ids are also in the RL set (first {sorted(overlap)[0]!r}); "
                         "they are removed from the RL pool")
                rl = rl[~rl["id"].isin(overlap)].reset_index(drop=True)
            source = str(Path(self.inputs.eval).resolve())
        elif self.inputs.project and (held := demo_heldout(self.inputs.project, ev_cfg.n_prompts)) is not None:
            ev = held
            overlap = set(ev["id"]) & set(rl["id"])
            rl = rl[~rl["id"].isin(overlap)].reset_index(drop=True)
            source = f"demo world: {len(ev)} tasks of the RL split that the demo left out of data/rl.jsonl"
            self.say(f"eval set: {source}")
        else:
            n_hold = max(1, int(round(ev_cfg.holdout * len(rl))))
            order = np.random.default_rng(12345).permutation(len(rl))
            hold = np.zeros(len(rl), dtype=bool)
            hold[order[:n_hold]] = True
            ev = rl[hold].reset_index(drop=True)
            rl = rl[~hold].reset_index(drop=True)
            source = f"held out: {n_hold} of the RL set ({ev_cfg.holdout:.0%}, seeded)"
            self.say(f"no eval set given: {source}")
        if ev_cfg.n_prompts is not None:
            ev = ev.iloc[: int(ev_cfg.n_prompts)].reset_index(drop=True)
        if len(ev) == 0:
            raise SeamError("the eval set is empty; pass --eval FILE with held-out prompts")
        if "gold" in ev_cfg.judges:
            n_gold = sum(isinstance(m, dict) and {"category", "answer", "params"} <= set(m) for m in ev["meta"])
            if n_gold == 0:
                self.say("note: no eval row carries demo-world meta; the gold judge scores nothing (rm judge only)")
        self.pool = rl
        self.eval_df = ev
        self.eval_source = source
        data = self.out / "data"
        data.mkdir(exist_ok=True)
        self.pool_file, self.eval_file = data / "rl.pool.jsonl", data / "eval.jsonl"
        for df, path in ((rl, self.pool_file), (ev, self.eval_file)):
            if not path.is_file():
                write_table(df, path)
        self.scores = None
        if self.inputs.scores:
            s = read_table(self.inputs.scores)
            if "id" not in s.columns:
                raise SeamError(f"--scores {self.inputs.scores}: no id column; pass the --out file of `seam score`")
            self.scores = s[s["id"].astype(str).isin(set(rl["id"]))].reset_index(drop=True)
        self.negatives = None
        if self.inputs.negatives:
            self.negatives = load_negatives(self.inputs.negatives)

    def _plan(self) -> None:
        """Weights for progress: a PPO unit counts 1 (eval included), an SFT or RM retraining 0.5."""
        n_ppo = len(self.arms) * len(self.cfg.seeds)
        n_train = 2 * len(self.arms) if self.cfg.kind == "augment" else 0
        self._total_weight = n_ppo + 0.5 * n_train + (0.2 if self.cfg.eval_initial else 0)
        self._n_units = n_ppo + n_train
        self._unit_index = 0

    # ---------------------------------------------------------------- the loop

    def run(self) -> ExperimentResult:
        self._validate()
        self._prepare_out()
        self._load_data()
        self._plan()
        self.say(f"{self.cfg.kind} experiment: arms {', '.join(a.name for a in self.arms)}; seeds "
                 f"{', '.join(map(str, self.cfg.seeds))}; {len(self.pool)} RL prompts, {len(self.eval_df)} eval prompts")
        self.initial = None
        if self.cfg.eval_initial:
            self.initial = self._initial_eval()
        for seed in self.cfg.seeds:
            for arm in self.arms:
                self.check_stop()
                self._ppo_unit(arm, seed)
                self._write_results(figures=False)
        self.files = self._write_results(figures=True)
        with contextlib.suppress(OSError):
            (self.out / "scratch").rmdir()  # only when empty
        return self._result()

    # ---------------------------------------------------------------- aggregation and outputs

    def _aggregate(self) -> tuple[list[dict], list[dict], list[dict]]:
        cfg = self.cfg
        seeds = list(cfg.seeds)
        per_seed, arms_rows, comparisons = [], [], []
        for arm in self.arms:
            done = [s for s in seeds if (arm.name, s) in self.evals]
            if not done:
                continue
            for s in done:
                rows = self.evals[(arm.name, s)]
                hist = self.histories.get((arm.name, s)) or []
                last = {}
                for h in hist:
                    last.update({k: v for k, v in h.items() if v is not None})
                rec = {"arm": arm.name, "seed": s, "n_train": self.n_train.get((arm.name, s))}
                for sc in cfg.eval.judges:
                    rec[sc] = _nanmean(rows.get(f"score_{sc}"))
                rec["kl"] = _nanmean(rows.get("kl"))
                rec["response_tokens"] = _nanmean(rows.get("response_tokens"))
                rec["ppo_steps"] = last.get("step")
                rec["ppo_objective_scores"] = last.get("objective/scores")
                per_seed.append(rec)
            row: dict = {"arm": arm.name, "method": arm.method or "none", "p": arm.p, "seeds": len(done),
                         "n_train": self.n_train.get((arm.name, done[0]))}
            for sc in cfg.eval.judges:
                pooled = np.concatenate([self.evals[(arm.name, s)][f"score_{sc}"].to_numpy(float) for s in done])
                ci = bootstrap_ci(pooled, level=cfg.level)
                row.update({sc: ci.estimate, f"{sc}_ci_low": ci.low, f"{sc}_ci_high": ci.high, f"{sc}_n": ci.n})
                row[f"{sc}_per_seed"] = [_nanmean(self.evals[(arm.name, s)][f"score_{sc}"]) for s in done]
            for extra in ("kl", "response_tokens"):
                vals = [r[extra] for r in per_seed if r["arm"] == arm.name and r[extra] is not None]
                row[extra] = float(np.mean(vals)) if vals else None
            objs = [r["ppo_objective_scores"] for r in per_seed if r["arm"] == arm.name
                    and r["ppo_objective_scores"] is not None]
            row["ppo_objective_scores"] = float(np.mean(objs)) if objs else None
            if arm.name in self.rm_accuracy:
                row["rm_test_accuracy"] = self.rm_accuracy[arm.name]
            row.update(self._compare(arm.name, self.reference, done, comparisons))
            if self.second_reference and arm.name != self.reference:
                row.update(self._compare(arm.name, self.second_reference, done, comparisons,
                                         prefix=f"vs_{self.second_reference}_"))
            arms_rows.append(row)
        return arms_rows, per_seed, comparisons

    @property
    def second_reference(self) -> str | None:
        """The arm every other arm is also compared with: `random` (the bar a selection method must clear)."""
        names = [a.name for a in self.arms]
        return "random" if "random" in names and self.reference != "random" else None

    def _compare(self, name: str, ref: str, done: list[int], comparisons: list[dict], prefix: str = "") -> dict:
        """Row fields (`{score}_{prefix}diff`, ...) of arm `name` against arm `ref` over their shared seeds: the
        pooled prompt-level difference, win rate and tests, the seed-level t interval and the minimum
        detectable effects."""
        ref_seeds = [s for s in done if (ref, s) in self.evals]
        row: dict = {}
        if name == ref or not ref_seeds:
            return row
        cfg = self.cfg
        for sc in cfg.eval.judges:
            a = [self.evals[(name, s)] for s in ref_seeds]
            b = [self.evals[(ref, s)] for s in ref_seeds]
            if not any(np.isfinite(t[f"score_{sc}"].to_numpy(float)).any() for t in a):
                continue
            c = compare_runs(a, b, score=sc, test=cfg.test, level=cfg.level).to_dict()
            comparisons.append({"arm": name, "reference": ref, "score": sc, "seeds": ref_seeds, **c})
            seed_ci, mde = c["seed_diff"] or {}, c["mde"] or {}
            fields = {"diff": c["diff"]["estimate"], "diff_ci_low": c["diff"]["low"], "diff_ci_high": c["diff"]["high"],
                      "win_rate": c["win_rate"]["rate"], "p_prompts": c["prompt_test"]["p_value"],
                      "p_seeds": (c["seed_test"] or {}).get("p_value"), "diff_seed_ci_low": seed_ci.get("low"),
                      "diff_seed_ci_high": seed_ci.get("high"), "mde_seeds": mde.get("seeds"),
                      "mde_prompts": mde.get("prompts")}
            row.update({f"{sc}_{prefix}{k}": v for k, v in fields.items()})
        return row

    def _write_results(self, figures: bool) -> dict:
        arms_rows, per_seed, comparisons = self._aggregate()
        self._agg = (arms_rows, per_seed, comparisons)
        files = {"results_json": self.out / "results.json", "results_md": self.out / "results.md"}
        payload = {
            "kind": self.cfg.kind, "reference": self.reference, "config": self.cfg.to_dict(),
            "inputs": self.inputs.to_dict(), "eval": {"source": self.eval_source, "prompts": len(self.eval_df),
                                                      "file": str(self.eval_file)},
            "rl_pool": len(self.pool), "seeds": list(self.cfg.seeds), "arms": arms_rows, "per_seed": per_seed,
            "comparisons": comparisons, "initial": self.initial,
            "seconds": round(time.time() - self._t0, 1), "complete": figures,
        }
        if figures:
            fig_dir = self.out / "figures"
            files.update(write_figures(self.cfg.kind, arms_rows, per_seed, self.histories, fig_dir,
                                       self.reference, self.cfg.eval.judges, self.initial))
            payload["figures"] = {k: str(v) for k, v in files.items() if k.startswith("fig")}
        write_json(files["results_json"], payload)
        write_text(files["results_md"], results_markdown(payload))
        return files

    def _result(self) -> ExperimentResult:
        arms_rows, per_seed, comparisons = self._agg
        return ExperimentResult(
            kind=self.cfg.kind, out_dir=self.out, config=self.cfg.to_dict(), inputs=self.inputs.to_dict(),
            arms=arms_rows, per_seed=per_seed, comparisons=comparisons, initial=self.initial, units=self.units,
            files={k: Path(v) for k, v in self.files.items()}, seconds=round(time.time() - self._t0, 1),
            eval_prompts=len(self.eval_df), reference=self.reference)


# ============================================================================ small helpers


def _comparable(d: dict) -> dict:
    """The config without fields that do not change results (so a resume may differ in them)."""
    d = json_safe(d)
    for k in ("quiet", "command"):
        d.pop(k, None)
    return _without_new_defaults(d)


def _without_new_defaults(config: dict) -> dict:
    """The config without the settings added after the first records (method, trainer, label) where they
    hold their defaults: such a record and one written before they existed are the same experiment."""
    return {k: v for k, v in config.items() if (k, v) not in (("method", "ppo"), ("trainer", {}), ("label", None))}


def _current_names(record: dict) -> dict:
    """A stored experiment record with its trainer overrides under the trainers' current names (a
    record written before the TRL names, with ``steps`` or ``batch_size``, resumes)."""
    config = record.get("config")
    if not isinstance(config, dict):
        return record
    try:
        config = {**config, **{k: canonical_overrides(k, config[k]) for k in ("ppo", "sft", "rm")
                               if isinstance(config.get(k), dict)}}
    except SeamError:  # a key under both names: leave it to the comparison to report
        return record
    return {**record, "config": _without_new_defaults(config)}


def _differences(old: dict, new: dict, ignore: tuple[str, ...] = ()) -> str:
    diffs = []
    for section in ("kind", "config", "inputs"):
        a, b = old.get(section), new.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if section == "config" and k in ignore:
                    continue
                if a.get(k) != b.get(k):
                    diffs.append(f"{section}.{k}: {a.get(k)!r} -> {b.get(k)!r}")
        elif a != b:
            diffs.append(f"{section}: {a!r} -> {b!r}")
    return "; ".join(diffs[:3]) + (f" and {len(diffs) - 3} more" if len(diffs) > 3 else "")


def _nanmean(values) -> float | None:
    if values is None:
        return None
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if len(a) else None


def print_progress_hooks(stream=None) -> ExperimentHooks:
    """Hooks that print one line per event to stderr (the CLI's)."""
    stream = stream or sys.stderr
    t0 = time.time()

    def log(line: str) -> None:
        print(f"[{time.time() - t0:6.0f}s] {line}", file=stream, flush=True)

    return ExperimentHooks(log=log)
