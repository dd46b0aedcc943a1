"""The `filter-ppo` and `augment-ppo` jobs: the Runs page's one-click experiments (docs/jobs.md).

Payload (docs/jobs.md): ``{"score_run_id": int, "variants": [str], "p": 0.2, "baselines": [...],
"seeds": [0], "ppo": {...PPOConfig overrides...}}``; optional extras: ``method`` (ppo, grpo, rloo
or bon: the trainer of every arm; the ppo knobs are mapped onto it), ``trainer`` (that method's own
overrides, e.g. ``{"num_generations": 4}``), ``label`` (the on-policy label file of the ``oracle``
and ``skill-prior`` baselines; default ``<project>/hidden/label.jsonl`` when it exists), ``eval`` (EvalSettings
fields, e.g. ``{"n_prompts": 40, "max_new_tokens": 48}``), ``eval_data`` (a held-out prompts file),
``out_dir``, ``eval_initial`` (false: skip evaluating the starting policy), and for augment-ppo ``k``, ``sft`` / ``rm`` (trainer overrides), ``sft_data``,
``rm_data``, ``rm_test_data``.

What the job does:

1. reads the score run's dataset, SEAM scores and negatives from the store and writes them under
   ``<project>/experiments/job-<id>-<kind>/inputs/`` (the project folder is the store's folder);
2. runs the arms through `seam.experiment` (filter: ``seam`` + the baselines, ``full`` = the whole
   RL set; augment: ``original`` + ``seam`` + the baselines that apply, ``random`` and ``full``);
3. records one ``filter`` / ``augment`` run (the selection: its files are artifacts), one ``ppo``
   run per arm and seed (inputs with content hashes: the selected RL file, the PM and RM or the
   arm's retrained ``sft`` / ``rm`` runs, the eval prompts; artifacts: the model folder, the
   per-prompt evaluation and its summary json), and an ``eval`` run for the starting policy;
4. mirrors every trainer step into ``run_metrics`` (``store.log_metrics``) as it happens, and the
   evaluation as ``eval/*`` metrics (``eval/gold_score``, ``eval/rm_score`` with ``/ci_low`` and
   ``/ci_high``, ``eval/win_rate`` vs the reference arm of the same seed, ``eval/kl``, ...);
5. stops at the next trainer step when the job is cancelled (``ctx.check_cancelled``), marking the
   unfinished runs ``cancelled``.

Each finished unit (an SFT, RM or PPO run with its evaluation) is committed with
``ctx.commit_chunk``; a requeued or crashed job resumes: finished run folders and evaluations on
disk are reused (`seam.experiment` resumes by its output folder) and committed units are not
written twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seam.data import write_table
from seam.errors import SeamError
from seam.experiment import (
    RUNNERS,
    AugmentExperimentConfig,
    EvalSettings,
    ExperimentHooks,
    ExperimentInputs,
    ExperimentStopped,
    FilterExperimentConfig,
)
from seam.experiment.labels import project_label

from ..context import JobCancelled, JobContext, JobLost
from .common import model_row

FILTER_BASELINES = ("random", "perplexity", "reward-gap", "full", "oracle", "skill-prior")
AUGMENT_BASELINES = ("random", "full")
LABEL_BASELINES = ("oracle", "skill-prior")  # need the project's on-policy label (a world-v2 study's hidden/label.jsonl)
_NORMALISE = {"reward_gap": "reward-gap", "rewardgap": "reward-gap", "skill_prior": "skill-prior"}


def filter_ppo(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return _Job(ctx, payload, "filter").run()


def augment_ppo(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return _Job(ctx, payload, "augment").run()


def _numbers(metrics: dict) -> dict[str, float]:
    return {str(k): float(v) for k, v in (metrics or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def eval_metrics(summary: dict, vs_reference: dict | None = None) -> dict[str, float]:
    """An evaluation summary (+ comparison with the reference) as flat `eval/*` metrics."""
    out: dict[str, float | None] = {}
    for judge, name in (("gold", "gold_score"), ("rm", "rm_score")):
        s = summary.get(judge)
        if isinstance(s, dict) and s.get("mean") is not None:
            out[f"eval/{name}"] = s["mean"]
            out[f"eval/{name}/ci_low"] = s.get("ci_low")
            out[f"eval/{name}/ci_high"] = s.get("ci_high")
            out[f"eval/{name}/n"] = s.get("n")
    for key in ("kl", "response_tokens", "response_words"):
        s = summary.get(key)
        if isinstance(s, dict) and s.get("mean") is not None:
            out[f"eval/{key}"] = s["mean"]
    vs = vs_reference or {}
    head = vs.get("gold") or vs.get("rm")
    if head:
        out["eval/win_rate"] = head["win_rate"]
        out["eval/win_rate/ci_low"] = head["win_ci_low"]
        out["eval/win_rate/ci_high"] = head["win_ci_high"]
    for judge, d in vs.items():
        out[f"eval/{judge}_win_rate"] = d["win_rate"]
        out[f"eval/{judge}_diff"] = d["diff"]
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and v == v}


class _Job:
    def __init__(self, ctx: JobContext, payload: dict[str, Any], kind: str):
        self.ctx, self.store, self.kind = ctx, ctx.store, kind
        self.payload = dict(payload or {})
        self.run_ids: dict[str, int] = {}  # unit key -> runs.id
        self.open_runs: set[int] = set()  # runs of this attempt not yet finished
        self.live: set[int] = set()  # runs that received trainer metrics as they were logged
        self.parent: int | None = None  # the filter / augment run

    # ------------------------------------------------------------------ payload and inputs

    def _settings(self) -> None:
        p = self.payload
        try:
            self.score_run_id = int(p["score_run_id"])
        except (KeyError, TypeError, ValueError):
            raise SeamError(f"{self.kind}-ppo payload needs an integer score_run_id, got {p!r}") from None
        self.score_run = self.store.score_run(self.score_run_id)
        if self.score_run.get("status") != "done":
            raise SeamError(f"score run {self.score_run_id} is {self.score_run.get('status')!r}, not done; "
                            "wait for its score job to finish")
        allowed = FILTER_BASELINES if self.kind == "filter" else AUGMENT_BASELINES
        default = ["random", "perplexity", "reward_gap", "full"] if self.kind == "filter" else ["random", "full"]
        baselines = p.get("baselines", default)
        if not isinstance(baselines, list):
            raise SeamError(f"payload baselines must be a list of names, got {baselines!r}")
        arms, skipped = [], []
        for b in baselines:
            name = _NORMALISE.get(str(b), str(b))
            if name in allowed:
                arms.append(name)
            elif name in FILTER_BASELINES or name in AUGMENT_BASELINES:
                skipped.append(name)
            else:
                raise SeamError(f"unknown baseline {b!r}; use any of {', '.join(FILTER_BASELINES)}")
        self.skipped = skipped
        ref = "full" if self.kind == "filter" else "original"
        head = [ref] if (self.kind == "augment" or "full" in arms) else []
        self.arms = tuple(dict.fromkeys(head + ["seam"] + [a for a in arms if a != ref]))
        variants = p.get("variants") or list(self.score_run["variants"] or [])
        unknown = sorted(set(variants) - set(self.score_run["variants"] or []))
        if unknown:
            raise SeamError(f"variant(s) {', '.join(unknown)} are not in score run {self.score_run_id} "
                            f"(it has {', '.join(self.score_run['variants'] or [])})")
        self.variants = tuple(variants)
        seeds = p.get("seeds", [0])
        if not isinstance(seeds, list) or not seeds:
            raise SeamError(f"payload seeds must be a non-empty list of integers, got {seeds!r}")
        self.seeds = tuple(int(s) for s in seeds)
        self.p = float(p.get("p", 0.2))
        ppo = p.get("ppo") or {}
        if not isinstance(ppo, dict):
            raise SeamError(f"payload ppo must be an object of PPO settings, got {ppo!r}")
        self.ppo = dict(ppo)
        self.method = str(p.get("method") or "ppo").strip().lower()

    def _folder(self) -> Path:
        if self.payload.get("out_dir"):
            return Path(self.payload["out_dir"])
        database = self.store.engine.url.database
        if self.store.engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            raise SeamError(f"{self.kind}-ppo needs a folder for its files: the store {self.store.display} is not a "
                            "SQLite file; pass out_dir in the payload")
        return Path(database).resolve().parent / "experiments" / f"job-{self.ctx.job_id}-{self.kind}"

    def _project(self) -> Path:
        """The project folder: the SQLite store's folder."""
        return Path(self.store.engine.url.database or ".").resolve().parent

    def _model(self, model_id, role: str) -> dict:
        if model_id is None:
            raise SeamError(f"score run {self.score_run_id} has no {role.upper()}; it is needed for PPO")
        row = model_row(self.store, model_id, role)
        if row.get("adapter"):
            raise SeamError(f"model {model_id} ({row.get('name')}) is a base + adapter; merge it with "
                            "`seam train merge` and register the merged folder for experiments")
        if not Path(row["path"]).exists():
            raise SeamError(f"model {model_id} ({role}): {row['path']} does not exist on this worker")
        return row

    def _write_inputs(self, folder: Path):
        store, run = self.store, self.score_run
        inputs = folder / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        self.pm, self.rm = self._model(run.get("pm_model_id"), "pm"), self._model(run.get("rm_model_id"), "rm")
        rl, scores, negs = inputs / "rl.jsonl", inputs / "seam.jsonl", inputs / "negatives.jsonl"
        if not rl.is_file():  # written once: a resumed job reads exactly the same inputs
            write_table(store.instructions(run["dataset_id"]), rl)
        if not scores.is_file():
            s = store.seam_scores(self.score_run_id)
            if s.empty:
                raise SeamError(f"score run {self.score_run_id} holds no SEAM scores")
            write_table(s, scores)
        has_negs = negs.is_file()
        if not has_negs:
            n = store.negatives(run["dataset_id"])
            if len(n):
                write_table(n[["id", "variant", "text", "meta"]], negs)
                has_negs = True
        project = self._project()
        p = self.payload
        demo = project / "data"
        files = {
            "eval": p.get("eval_data"),
            "sft": p.get("sft_data") or (str(demo / "sft.jsonl") if (demo / "sft.jsonl").is_file() else None),
            "rm_train": p.get("rm_data") or (str(demo / "rm_train.jsonl") if (demo / "rm_train.jsonl").is_file() else None),
            "rm_test": p.get("rm_test_data") or (str(demo / "rm_test.jsonl") if (demo / "rm_test.jsonl").is_file() else None),
        }
        if self.kind == "augment" and not (files["sft"] and files["rm_train"]):
            raise SeamError("augment-ppo retrains the PM and RM: put sft_data and rm_data (the original SFT rows and RM "
                            f"pairs) in the payload, or run it in a `seam demo` project (no data/sft.jsonl in {project})")
        return ExperimentInputs(rl=str(rl), pm=self.pm["path"], rm=self.rm["path"], scores=str(scores),
                                negatives=str(negs) if has_negs else None,
                                project=str(project) if (project / "demo.json").is_file() else None,
                                **{k: v for k, v in files.items() if v and (self.kind == "augment" or k == "eval")})

    def _config(self):
        p = self.payload
        ev = p.get("eval") or {}
        if not isinstance(ev, dict):
            raise SeamError(f"payload eval must be an object of evaluation settings, got {ev!r}")
        names = {f for f in EvalSettings.__dataclass_fields__}
        bad = sorted(set(ev) - names)
        if bad:
            raise SeamError(f"unknown eval setting {bad[0]!r}; valid: {', '.join(sorted(names))}")
        trainer = p.get("trainer") or {}
        if not isinstance(trainer, dict):
            raise SeamError(f"payload trainer must be an object of the method's settings, got {trainer!r}")
        label = p.get("label")
        if label is None and set(self.arms) & set(LABEL_BASELINES):
            found = project_label(self._project())
            label = str(found) if found else None
        common = dict(arms=self.arms, seeds=self.seeds, p=self.p, variants=self.variants, ppo=self.ppo,
                      method=self.method, trainer=dict(trainer), label=label,
                      eval=ev, device=str(self.ppo.get("device", "auto")),
                      dtype=str(self.ppo.get("dtype", "auto")),
                      eval_initial=p.get("eval_initial", True), command=f"{self.kind}-ppo job {self.ctx.job_id}")
        if self.kind == "filter":
            return FilterExperimentConfig.from_dict(common, where=f"{self.kind}-ppo payload")
        return AugmentExperimentConfig.from_dict({**common, "k": p.get("k", 5), "sft": dict(p.get("sft") or {}),
                                                  "rm": dict(p.get("rm") or {})}, where=f"{self.kind}-ppo payload")

    # ------------------------------------------------------------------ runs in the store

    def _existing_runs(self) -> list[dict]:
        runs = self.store.runs()
        out = []
        for r in runs.to_dict("records"):
            cfg = r.get("config") or {}
            if cfg.get("job_id") == self.ctx.job_id:
                out.append(r)
        return out

    def _parent_run(self, folder: Path) -> int:
        for r in self._existing_runs():
            if r["kind"] == self.kind and (r.get("config") or {}).get("role") == "selection":
                self.store.update_run(int(r["id"]), status="running")
                return int(r["id"])
        run = self.score_run
        config = {"job_id": self.ctx.job_id, "role": "selection", "arm": f"SEAM {self.kind} (job {self.ctx.job_id})",
                  "experiment": self.kind, "score_run_id": self.score_run_id, "variants": list(self.variants),
                  "p": self.p, "arms": list(self.arms), "seeds": list(self.seeds), "ppo": self.ppo, "rl_method": self.method,
                  "payload": self.payload, "folder": str(folder)}
        rid = self.store.create_run(self.kind, config, name=f"SEAM {self.kind} (job {self.ctx.job_id})", status="running",
                                    inputs=[{"role": "rl_data", "ref_kind": "dataset", "ref_id": int(run["dataset_id"]),
                                             "path": str(folder / "inputs" / "rl.jsonl")},
                                            {"role": "seam_scores", "ref_kind": "file",
                                             "path": str(folder / "inputs" / "seam.jsonl")},
                                            {"role": "scores", "ref_kind": "score_run", "ref_id": self.score_run_id},
                                            {"role": "pm", "ref_kind": "model", "ref_id": int(self.pm["id"]),
                                             "path": self.pm["path"], "content_hash": self.pm.get("fingerprint")},
                                            {"role": "rm", "ref_kind": "model", "ref_id": int(self.rm["id"]),
                                             "path": self.rm["path"], "content_hash": self.rm.get("fingerprint")}])
        self.store.update_run(rid, status="running", artifacts={"folder": str(folder)})
        return rid

    def _recover(self) -> None:
        """Map committed units to their runs; mark leftovers of a crashed attempt failed."""
        done = self.ctx.done_chunks()
        for r in self._existing_runs():
            key = (r.get("config") or {}).get("unit")
            if not key:
                continue
            if key in done and r["status"] == "done":
                self.run_ids[key] = int(r["id"])
            elif r["status"] in ("created", "queued", "running"):
                self.store.update_run(int(r["id"]), status="failed",
                                      error="interrupted (worker stopped or crashed); the unit is redone in a new run")

    def _model_input(self, role: str, path: str, arm: str) -> dict:
        """Lineage of the policy / reward model a unit starts from: the arm's retrained run, else the registered model."""
        key = f"{'sft' if role == 'pm' else 'rm'}/{arm}"
        if self.kind == "augment" and key in self.run_ids:
            return {"role": role, "ref_kind": "run", "ref_id": self.run_ids[key], "path": path}
        model = self.pm if role == "pm" else self.rm
        return {"role": role, "ref_kind": "model", "ref_id": int(model["id"]), "path": path,
                "content_hash": model.get("fingerprint")}

    def _create_unit_run(self, unit) -> int:
        kind = {"ppo": "ppo", "sft": "sft", "rm": "rm", "initial": "eval"}[unit.phase]
        arm = "starting policy" if unit.phase == "initial" else unit.arm
        config = {"job_id": self.ctx.job_id, "unit": unit.key, "arm": arm, "seed": unit.seed,
                  "experiment": self.kind, "phase": unit.phase, unit.phase: unit.config,
                  **({"rl_method": self.method} if unit.phase == "ppo" else {})}
        inputs: list[dict] = [{"role": "selection", "ref_kind": "run", "ref_id": self.parent}]
        paths = unit.paths
        if unit.phase == "ppo":
            inputs += [{"role": "rl_data", "ref_kind": "file", "path": paths["data"]},
                       self._model_input("pm", paths["policy"], unit.arm),
                       self._model_input("rm", paths["reward_model"], unit.arm),
                       {"role": "eval_data", "ref_kind": "file", "path": paths["eval_data"]}]
        elif unit.phase in ("sft", "rm"):
            inputs += [{"role": "train_data", "ref_kind": "file", "path": paths["data"]},
                       {"role": "base", "ref_kind": "model", "ref_id": int(self.pm["id"]), "path": self.pm["path"],
                        "content_hash": self.pm.get("fingerprint")}]
        else:
            inputs += [self._model_input("pm", paths["policy"], "initial")]
        name = f"{arm}" + ("" if unit.seed is None else f" s{unit.seed}") + f" ({unit.phase}, job {self.ctx.job_id})"
        rid = self.store.create_run(kind, config, name=name, status="running", inputs=inputs)
        self.store.update_run(rid, status="running")
        self.run_ids[unit.key] = rid
        self.open_runs.add(rid)
        return rid

    # ------------------------------------------------------------------ hooks

    def on_start(self, unit) -> None:
        if unit.phase in ("ppo", "sft", "rm", "initial"):
            self._create_unit_run(unit)
            self.ctx.log(f"{unit.key}: started (run {self.run_ids[unit.key]})")

    def on_metrics(self, unit, step: int, metrics: dict) -> None:
        rid = self.run_ids.get(unit.key)
        values = _numbers(metrics)
        if rid is not None and values:
            self.store.log_metrics(rid, step, values)
            self.live.add(rid)

    def on_end(self, res) -> None:
        unit = res.unit
        if unit.phase in ("select", "augment"):
            name = f"{unit.phase}:{unit.arm}" + ("" if unit.seed is None else f":s{unit.seed}")
            files = {f"{name}:{k}": v for k, v in unit.paths.items()}
            self.store.update_run(self.parent, artifacts=files)
            return
        key = unit.key
        if key in self.ctx.done_chunks():
            return
        rid = self.run_ids.get(key)
        fresh = rid is None or rid not in self.open_runs
        if fresh:  # finished on disk by an earlier attempt, never committed: record it now
            rid = self._create_unit_run(unit)
        steps = int((res.train or {}).get("steps") or 0)
        # a unit trained by an earlier attempt (its curve went to that attempt's run): copy the curve from disk
        history = _history(unit) if rid not in self.live and unit.phase in ("ppo", "sft", "rm") else []
        artifacts: dict[str, str] = {}
        metrics: dict[str, float] = {}
        if unit.phase == "ppo":
            artifacts = {"model": unit.paths["output_dir"], "eval_rows": unit.paths["eval_rows"],
                         "results_json": unit.paths["eval_summary"], "selected_rl": unit.paths["data"]}
            metrics = eval_metrics(res.summary, res.vs_reference)
        elif unit.phase in ("sft", "rm"):
            artifacts = {"model": unit.paths["output_dir"]}
        else:
            metrics = eval_metrics(res.summary)

        def write(conn) -> None:  # noqa: ANN001
            for h in history:
                vals = _numbers({k: v for k, v in h.items() if k != "step"})
                if vals:
                    self.store.log_metrics(rid, int(h.get("step", 0)), vals, conn=conn)
            if metrics:
                self.store.log_metrics(rid, steps, metrics, conn=conn)
            self.store.update_run(rid, status="done", artifacts=artifacts or None, conn=conn)

        self.ctx.commit_chunk(key, write)
        self.open_runs.discard(rid)
        self.ctx.log(f"{key}: done (run {rid})")

    def _close_open(self, status: str, error: str | None = None) -> None:
        for rid in sorted(self.open_runs):
            self.store.update_run(rid, status=status, error=error)
        self.open_runs.clear()
        if self.parent is not None:
            self.store.update_run(self.parent, status=status, error=error)

    def should_stop(self) -> bool:
        return self.ctx.lost_event.is_set() or self.ctx.is_cancelled()

    # ------------------------------------------------------------------ the job

    def run(self) -> dict[str, Any]:
        self._settings()
        folder = self._folder()
        folder.mkdir(parents=True, exist_ok=True)
        inputs = self._write_inputs(folder)
        cfg = self._config()
        if self.skipped:
            self.ctx.log(f"baselines {', '.join(self.skipped)} do not apply to {self.kind} experiments; skipped")
        self.ctx.check_cancelled()
        self.parent = self._parent_run(folder)
        self._recover()
        self.ctx.log(f"{self.kind} experiment: arms {', '.join(self.arms)}; seeds {', '.join(map(str, self.seeds))}; "
                     f"files in {folder}")
        hooks = ExperimentHooks(progress=lambda f, step: self.ctx.progress(f, step), log=self.ctx.log,
                                metrics=self.on_metrics, on_start=self.on_start, on_end=self.on_end,
                                should_stop=self.should_stop)
        try:
            result = RUNNERS[self.kind](inputs, cfg, folder / "experiment", hooks)
        except JobLost:
            raise  # another worker owns the job now: leave its runs alone
        except (ExperimentStopped, JobCancelled) as exc:
            if self.ctx.lost_event.is_set():
                raise JobLost(f"job {self.ctx.job_id} was reclaimed by another worker") from None
            self._close_open("cancelled", f"cancelled: {exc}")
            self.ctx.check_cancelled()  # raises JobCancelled
            raise JobCancelled(str(exc)) from None
        except BaseException as exc:
            msg = str(exc) if isinstance(exc, SeamError) else f"{type(exc).__name__}: {exc}"
            try:
                self._close_open("failed", msg)
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            raise
        artifacts = {k: str(v) for k, v in result.files.items()}
        self.store.update_run(self.parent, status="done", artifacts=artifacts)
        self.ctx.progress(1.0, "done", force=True)
        arms = [{k: r.get(k) for k in ("arm", "n_train", "gold", "gold_ci_low", "gold_ci_high", "gold_diff",
                                       "gold_win_rate", "rm", "rm_diff", "rm_win_rate") if k in r} for r in result.arms]
        return {"folder": str(folder), "method": cfg.method, "results_md": str(result.files["results_md"]),
                "results_json": str(result.files["results_json"]), "parent_run": self.parent,
                "runs": dict(self.run_ids), "arms": arms, "seconds": result.seconds}


def _history(unit) -> list[dict]:
    path = Path(unit.paths.get("output_dir", "")) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
