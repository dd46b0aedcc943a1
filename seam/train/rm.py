"""`train_rm`: reward model training with TRL's RewardTrainer (pairwise loss -log sigmoid(r+ - r-))."""

from __future__ import annotations

from ..errors import SeamError
from ..models.templates import get_template
from .common import (begin_run, drop_default_printers, last_metrics, lora_config, make_callbacks, MetricsCallback,
                     resolve_runtime, StopFn, trainer_args, TrainResult, write_manifest)
from .config import RMConfig
from .data import check_pairs, load_rows, rm_dataset
from .models import load_classifier
from .sft import _steps


def freeze_below(model, top_layers: int) -> int:
    """Freeze everything but the top `top_layers` decoder layers, the final norm and the score head.

    Backpropagation then stops at the lowest trainable layer, so a step costs little more than a
    forward pass. Returns the number of trainable parameters."""
    import torch

    n_layers = getattr(model.config, "num_hidden_layers", None)
    stacks = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers]
    if not stacks:
        raise SeamError("--train-layers: cannot find this model's stack of decoder layers; train all weights instead")
    if not 1 <= top_layers <= n_layers:
        raise SeamError(f"--train-layers {top_layers}: must be between 1 and the model's {n_layers} layers")
    for p in model.parameters():
        p.requires_grad_(False)
    keep = list(stacks[0][n_layers - top_layers:])
    base = getattr(model, model.base_model_prefix, None)
    if base is not None and hasattr(base, "norm"):
        keep.append(base.norm)
    keep.append(model.score)
    for module in keep:
        for p in module.parameters():
            p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_rm(cfg: RMConfig, metrics_callback: MetricsCallback | None = None,
             should_stop: StopFn | None = None) -> TrainResult:
    """Train a one-label sequence classifier on (prompt, chosen, rejected) rows of `cfg.data`.

    `cfg.model` may be an RM to continue or a causal LM (usually the SFT model), which gets a fresh
    score head seeded by `cfg.seed`. Texts are rendered like `seam score` renders them (no extra EOS
    unless `append_eos`), so the reward is read at the same token. With `eval_data`, the final
    metrics include ``eval_accuracy`` (pairwise accuracy on the held-out pairs)."""
    timer, run = begin_run(cfg)
    df = check_pairs(load_rows(cfg.data, cfg.max_rows))
    eval_df = check_pairs(load_rows(cfg.eval_data, flag="--eval-data"), "--eval-data") if cfg.eval_data else None
    rt = resolve_runtime(cfg.device, cfg.dtype)
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    set_seed(cfg.seed)
    tok, model, fresh_head = load_classifier(cfg.model, "--model", cfg.allow_pickle)
    if cfg.train_layers is not None:
        freeze_below(model, cfg.train_layers)
    template = get_template(cfg.template, tok)
    train = rm_dataset(df, tok, template, model, cfg.max_length, cfg.max_prompt_tokens, cfg.append_eos)
    evals = (rm_dataset(eval_df, tok, template, model, cfg.max_length, cfg.max_prompt_tokens, cfg.append_eos,
                        flag="--eval-data") if eval_df is not None else None)
    args = RewardConfig(**trainer_args(cfg, run, rt, evals is not None), max_length=None, dataset_num_proc=None,
                        center_rewards_coefficient=cfg.center_rewards_coefficient)
    peft = None
    if cfg.lora:
        peft = lora_config(cfg, "SEQ_CLS")  # SEQ_CLS also trains and saves the score head (modules_to_save)

    run.create()
    recorder, callbacks = make_callbacks(run, metrics_callback, should_stop, _steps(train.rows, cfg), cfg.disable_tqdm)
    trainer = RewardTrainer(model=model, args=args, train_dataset=train.dataset,
                            eval_dataset=evals.dataset if evals else None, processing_class=tok,
                            peft_config=peft, callbacks=callbacks)
    drop_default_printers(trainer)
    output = trainer.train()
    metrics = last_metrics(recorder.history)
    metrics.update({k: v for k, v in output.metrics.items() if isinstance(v, (int, float))})
    if evals is not None:
        metrics.update({k: v for k, v in trainer.evaluate().items() if isinstance(v, (int, float))})
    trainer.save_model(str(run.path))
    tok.save_pretrained(str(run.path))
    result = TrainResult(
        kind="rm", output_dir=run.final, adapter=cfg.lora, base_model=cfg.model, metrics=metrics,
        history=recorder.history, steps=int(trainer.state.global_step), seconds=timer.seconds,
        rows={"train": train.rows, "eval": evals.rows if evals else 0,
              "truncated": train.truncated + (evals.truncated if evals else 0)},
        stopped=recorder.stopped, config=cfg.to_dict())
    write_manifest(run.path, result, {"device": rt.device, "fresh_score_head": fresh_head,
                                      "report_to": args.report_to})
    run.finish()
    return result
