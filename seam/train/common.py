"""What the three trainers share: run folders, device/precision, LoRA, callbacks, results.

A run folder is built as ``<output_dir>.partial`` and renamed to ``<output_dir>`` only when
training finished, so a crashed or rejected run never looks like a finished one. It holds:

    <output_dir>/               final model (HF layout) or LoRA adapter, with its tokenizer
        seam_run.json           kind, config, base model, final metrics, data counts, timings
        metrics.jsonl           one line per logged step: {"step": N, "loss": ..., ...}
        logs/                   TensorBoard event files (when report_to resolves to tensorboard; W&B
                                keeps its own files under ./wandb/ and online)
        checkpoints/            intermediate checkpoints (only with save_steps > 0)
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import SeamError
from ..io import check_not_input, json_safe, write_json
from ..models.templates import check_template

MetricsCallback = Callable[[int, dict], None]  # (global step, metrics) -> None
StopFn = Callable[[], bool]  # polled after every step; True stops training (the model so far is saved)

RUN_FILE = "seam_run.json"
METRICS_FILE = "metrics.jsonl"
# Files HF/TRL drop next to a saved model that are pickles or noise; removed from the final folder.
_DROP_FROM_FINAL = ("training_args.bin",)


class TrainingStopped(Exception):
    """Raised inside a trainer loop that ignores `control.should_training_stop` (TRL PPO)."""


@dataclass
class TrainResult:
    """What `train_sft` / `train_rm` / `train_ppo` return (also written to seam_run.json)."""

    kind: str  # sft | rm | ppo
    output_dir: Path  # the finished run folder (model or adapter + tokenizer + seam_run.json)
    adapter: bool  # True: output_dir holds a LoRA adapter for `base_model`
    base_model: str  # the model the run started from
    metrics: dict  # last logged value of each metric, plus final eval metrics
    history: list[dict]  # every logged step: {"step": N, ...}
    steps: int
    seconds: float
    rows: dict  # data counts: train, eval, truncated, skipped
    stopped: bool = False  # True when should_stop() ended the run early
    config: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["output_dir"] = str(self.output_dir)
        return json_safe(d)


# ----------------------------------------------------------------------------- run folders


class RunDir:
    """`<output_dir>.partial` while training; `finish()` renames it to `<output_dir>`.

    `inputs` (paths or (flag, path) pairs: the run's data and models) may be neither the folder
    nor inside it, nor hold it (see `seam.io.check_not_input`)."""

    def __init__(self, output_dir: str | os.PathLike, flag: str = "--output-dir", inputs: Iterable[Any] = ()):
        self.final = Path(output_dir)
        check_not_input(self.final, inputs, flag)
        check_not_input(self.final.with_name(self.final.name + ".partial"), inputs, flag)
        if self.final.exists() and (not self.final.is_dir() or any(self.final.iterdir())):
            raise SeamError(f"{flag} {self.final} already exists and is not empty; choose a new folder or delete it")
        parent = self.final.parent
        if not parent.exists():
            raise SeamError(f"{flag} {self.final}: parent folder {parent} does not exist; create it first")
        if not os.access(parent, os.W_OK):
            raise SeamError(f"{flag} {self.final}: cannot write into {parent}; pick a writable folder")
        self.path = self.final.with_name(self.final.name + ".partial")

    def create(self) -> Path:
        shutil.rmtree(self.path, ignore_errors=True)  # leftovers of a crashed run
        self.path.mkdir(parents=True)
        return self.path

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def finish(self) -> Path:
        for name in _DROP_FROM_FINAL:
            (self.path / name).unlink(missing_ok=True)
        if self.checkpoints.exists() and not any(self.checkpoints.iterdir()):
            self.checkpoints.rmdir()
        if self.final.exists():  # an empty folder was allowed
            self.final.rmdir()
        os.replace(self.path, self.final)
        return self.final


# ----------------------------------------------------------------------------- device and precision


@dataclass
class Runtime:
    device: str  # cpu | cuda
    use_cpu: bool
    bf16: bool
    fp16: bool


def resolve_runtime(device: str, dtype: str) -> Runtime:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SeamError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    if dtype == "auto":
        bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
        fp16 = device == "cuda" and not bf16
    else:
        bf16, fp16 = dtype == "bfloat16", dtype == "float16"
    if fp16 and device == "cpu":
        raise SeamError("--dtype float16 mixed precision needs a GPU; use --dtype float32 or bfloat16 on the CPU")
    return Runtime(device, device == "cpu", bf16, fp16)


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None


def wandb_available() -> bool:
    return importlib.util.find_spec("wandb") is not None


def resolve_report_to(value: str) -> str:
    """`auto` -> tensorboard when installed, else none (never wandb: W&B is only used when asked for);
    asking for tensorboard or wandb without the package is a one-line error (the configs' `validate`
    calls this, so it comes before any model loads). W&B reads its key (WANDB_API_KEY) and project
    from the environment itself; nothing of it is stored or logged here."""
    if value == "auto":
        return "tensorboard" if tensorboard_available() else "none"
    if value == "tensorboard" and not tensorboard_available():
        raise SeamError("--report-to tensorboard: the tensorboard package is not installed; "
                        "install it (pip install tensorboard) or use --report-to none (metrics.jsonl is always written)")
    if value == "wandb" and not wandb_available():
        raise SeamError("--report-to wandb: the wandb package is not installed; install it (pip install wandb) "
                        "or use --report-to none (metrics.jsonl is always written)")
    return value


def begin_run(cfg) -> tuple[Timer, RunDir]:
    """Every trainer's first checks, none needing a model: the settings, the output folder (not an input,
    not in use) and the flags; then the run's timer and folder (created later, once data has been read)."""
    cfg.validate()
    timer = Timer()
    run = RunDir(cfg.output_dir, inputs=cfg.input_paths())
    check_flags(cfg)
    return timer, run


def check_flags(cfg) -> None:
    """Flag checks that need no model: report_to, the template (unless chat, which needs the
    tokenizer) and the LoRA target modules. Run before any model loads, so a typo costs nothing."""
    resolve_report_to(cfg.report_to)
    check_template(cfg.template)
    if cfg.lora:
        lora_config(cfg, "CAUSAL_LM")


def trainer_args(cfg, run: RunDir, rt: Runtime, has_eval: bool) -> dict:
    """TrainingArguments fields shared by the SFT and RM trainers."""
    save = cfg.save_steps > 0
    return dict(
        output_dir=str(run.checkpoints),
        logging_dir=str(run.logs),
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=rt.use_cpu,
        bf16=rt.bf16,
        fp16=rt.fp16,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type=cfg.lr_scheduler_type,
        gradient_checkpointing=cfg.gradient_checkpointing,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if (has_eval and cfg.eval_steps) else "no",
        eval_steps=cfg.eval_steps or None,
        save_strategy="steps" if save else "no",
        save_steps=cfg.save_steps if save else 500,
        save_safetensors=True,
        report_to=resolve_report_to(cfg.report_to),
        disable_tqdm=True,  # our own stderr progress bar instead (see ProgressBar)
        dataloader_num_workers=0,
        remove_unused_columns=True,
    )


# ----------------------------------------------------------------------------- LoRA


def lora_config(cfg, task_type: str):
    from peft import LoraConfig

    targets: Any = cfg.lora_target_modules.strip()
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
        if not targets:
            raise SeamError("--lora-target-modules is empty; give module names like q_proj,v_proj or all-linear")
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type=task_type, bias="none")


# ----------------------------------------------------------------------------- callbacks


def make_callbacks(run: RunDir, metrics_callback: MetricsCallback | None, should_stop: StopFn | None,
                   total_steps: int | None, quiet: bool, hard_stop: bool = False):
    """(recorder, [callbacks]) : the recorder keeps the history; callbacks go to the trainer."""
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        """Every on_log -> history, metrics.jsonl and `metrics_callback(step, metrics)`; polls should_stop."""

        def __init__(self):
            self.history: list[dict] = []
            self.stopped = False

        def on_log(self, args, state, control, logs=None, **kwargs):
            metrics = {k: v for k, v in json_safe(dict(logs or {})).items() if k != "total_flos"}
            step = int(state.global_step)
            self.history.append({"step": step, **metrics})
            with open(run.path / METRICS_FILE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": step, **metrics}) + "\n")
            if metrics_callback is not None:
                metrics_callback(step, metrics)

        def on_step_end(self, args, state, control, **kwargs):
            if should_stop is not None and should_stop():
                self.stopped = True
                control.should_training_stop = True
                if hard_stop:
                    raise TrainingStopped()
            return control

    class ProgressBar(TrainerCallback):
        def __init__(self):
            self.bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps or state.max_steps or None, unit="step", desc="training",
                            file=sys.stderr, disable=quiet, dynamic_ncols=True)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs:
                shown = {k: logs[k] for k in ("loss", "objective/scores", "objective/kl", "accuracy") if k in logs}
                self.bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in shown.items()
                                      if isinstance(v, (int, float))}, refresh=False)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()

    recorder = Recorder()
    return recorder, [recorder, ProgressBar()]


def drop_default_printers(trainer) -> None:
    """Remove transformers' stdout printers (ours writes to stderr)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)


def last_metrics(history: list[dict]) -> dict:
    """The last logged value of every metric."""
    out: dict = {}
    for row in history:
        out.update({k: v for k, v in row.items() if k != "step" and v is not None})
    return out


def write_manifest(path: Path, result: TrainResult, extra: dict | None = None) -> None:
    data = {"seam_run": 1, **result.to_json(), **json_safe(extra or {})}
    data.pop("history", None)  # history lives in metrics.jsonl
    write_json(path / RUN_FILE, data)


def read_manifest(folder: str | os.PathLike) -> dict | None:
    p = Path(folder) / RUN_FILE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError:
        return None


class Timer:
    def __init__(self):
        self.t0 = time.time()

    @property
    def seconds(self) -> float:
        return round(time.time() - self.t0, 3)
