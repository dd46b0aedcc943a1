"""`train_sft`: supervised fine-tuning of the policy model with TRL's SFTTrainer (full or LoRA)."""

from __future__ import annotations

from ..models.templates import get_template
from .common import (begin_run, drop_default_printers, last_metrics, lora_config, make_callbacks, MetricsCallback,
                     resolve_runtime, StopFn, trainer_args, TrainResult, write_manifest)
from .config import SFTConfig
from .data import load_rows, sft_dataset
from .models import load_causal_lm


def _steps(n_rows: int, cfg) -> int:
    if cfg.max_steps > 0:
        return cfg.max_steps
    per_epoch = -(-n_rows // (cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps))
    return max(1, int(per_epoch * cfg.num_train_epochs + 0.999999))


def train_sft(cfg: SFTConfig, metrics_callback: MetricsCallback | None = None,
              should_stop: StopFn | None = None) -> TrainResult:
    """Fine-tune `cfg.model` on (prompt, chosen) rows of `cfg.data`; returns the finished run.

    The loss covers the response tokens and the EOS (what `seam score` scores); `metrics_callback`
    gets every logged step; `should_stop()` is polled after each step."""
    timer, run = begin_run(cfg)
    df = load_rows(cfg.data, cfg.max_rows)
    eval_df = load_rows(cfg.eval_data, flag="--eval-data") if cfg.eval_data else None
    rt = resolve_runtime(cfg.device, cfg.dtype)
    from transformers import set_seed
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    set_seed(cfg.seed)
    tok, model = load_causal_lm(cfg.model, "--model", cfg.allow_pickle)
    template = get_template(cfg.template, tok)
    train = sft_dataset(df, tok, template, model, cfg.max_length, cfg.max_prompt_tokens, cfg.completion_only_loss)
    evals = (sft_dataset(eval_df, tok, template, model, cfg.max_length, cfg.max_prompt_tokens, cfg.completion_only_loss)
             if eval_df is not None else None)
    args = TRLSFTConfig(**trainer_args(cfg, run, rt, evals is not None), max_length=None, packing=False,
                        dataset_num_proc=None, completion_only_loss=None)

    run.create()
    recorder, callbacks = make_callbacks(run, metrics_callback, should_stop, _steps(train.rows, cfg), cfg.disable_tqdm)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train.dataset,
                         eval_dataset=evals.dataset if evals else None, processing_class=tok,
                         peft_config=lora_config(cfg, "CAUSAL_LM") if cfg.lora else None, callbacks=callbacks)
    drop_default_printers(trainer)
    output = trainer.train()
    if evals is not None:
        trainer.evaluate()
    trainer.save_model(str(run.path))
    tok.save_pretrained(str(run.path))
    metrics = last_metrics(recorder.history)
    metrics.update({k: v for k, v in output.metrics.items() if isinstance(v, (int, float))})
    result = TrainResult(
        kind="sft", output_dir=run.final, adapter=cfg.lora, base_model=cfg.model, metrics=metrics,
        history=recorder.history, steps=int(trainer.state.global_step), seconds=timer.seconds,
        rows={"train": train.rows, "eval": evals.rows if evals else 0,
              "truncated": train.truncated + (evals.truncated if evals else 0)},
        stopped=recorder.stopped, config=cfg.to_dict())
    write_manifest(run.path, result, {"device": rt.device, "report_to": args.report_to})
    run.finish()
    return result
