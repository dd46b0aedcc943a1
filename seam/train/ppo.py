"""`train_ppo`: PPO on TRL 1.12's `trl.experimental.ppo.PPOTrainer`.

The policy and the frozen reference come from the PM; the reward model and the value model (its
initialisation) come from the RM, which must share the policy's tokenizer (TRL feeds the policy's
token ids straight into the RM). Queries are the prompts rendered with the template up to where
the response starts, so the RM sees the same text layout as in `seam score`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

from ..errors import SeamError
from ..models.templates import get_template
from .common import (begin_run, drop_default_printers, last_metrics, lora_config, make_callbacks, MetricsCallback,
                     resolve_report_to, resolve_runtime, StopFn, TrainingStopped, TrainResult, write_manifest)
from .config import PPOConfig
from .data import load_rows, ppo_dataset
from .models import load_causal_lm, load_classifier, same_tokenizer


def _import_ppo():
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.experimental.ppo import PPOConfig as TRLPPOConfig
        from trl.experimental.ppo import PPOTrainer
    return TRLPPOConfig, PPOTrainer


def train_ppo(cfg: PPOConfig, metrics_callback: MetricsCallback | None = None,
              should_stop: StopFn | None = None) -> TrainResult:
    """Run `cfg.updates()` PPO updates (`max_steps`, or TRL's `total_episodes`) of `cfg.sft_model_path`
    against `cfg.reward_model_path` on the prompts of `cfg.data`.

    Metrics per update include objective/scores (mean RM score of the rollouts), objective/kl,
    objective/rlhf_reward, loss/policy_avg and loss/value_avg. The run folder holds the trained
    policy (or its LoRA adapter) with the tokenizer; the value model is not kept."""
    timer, run = begin_run(cfg)
    if cfg.lora and cfg.ref_policy:
        raise SeamError("--ref-policy cannot be combined with --lora (the reference is the policy without its adapter); "
                        "drop one of them")
    df = load_rows(cfg.data, cfg.max_rows)
    local_batch = cfg.local_batch
    if len(df) < local_batch:
        raise SeamError(f"--data {cfg.data}: {len(df)} prompts but one PPO batch needs {local_batch} "
                        "(per_device_train_batch_size x gradient_accumulation_steps); lower "
                        "--per-device-train-batch-size or add prompts")
    rt = resolve_runtime(cfg.device, cfg.dtype)
    from transformers import set_seed

    TRLPPOConfig, PPOTrainer = _import_ppo()
    set_seed(cfg.seed)
    tok, policy = load_causal_lm(cfg.sft_model_path, "--policy", cfg.allow_pickle)
    ref = None
    if not cfg.lora:  # with LoRA, TRL uses the policy with its adapter disabled as the reference
        _, ref = load_causal_lm(cfg.ref_policy or cfg.sft_model_path, "--ref-policy" if cfg.ref_policy else "--policy",
                                cfg.allow_pickle)
    rm_tok, reward, fresh = load_classifier(cfg.reward_model_path, "--reward-model", cfg.allow_pickle)
    if fresh:
        raise SeamError(f"--reward-model {cfg.reward_model_path}: a causal LM, not a trained reward model (its score head "
                        "would be random); pass the folder written by `seam train rm`")
    if not same_tokenizer(tok, rm_tok):
        raise SeamError(f"--reward-model {cfg.reward_model_path}: its tokenizer differs from the policy's; TRL PPO feeds "
                        "policy token ids to the RM, so train the RM from the same base model as the policy")
    value_path = cfg.value_model or cfg.reward_model_path
    _, value, _ = load_classifier(value_path, "--value-model", cfg.allow_pickle)
    for m in (reward, value):
        m.config.pad_token_id = tok.pad_token_id
    padding_side = tok.padding_side
    tok.padding_side = "left"  # queries are left-padded for generation
    template = get_template(cfg.template, tok)
    built = ppo_dataset(df, tok, template, cfg.max_prompt_tokens)
    n_eval = min(len(df), max(cfg.eval_batch_size, 1))
    args = TRLPPOConfig(
        output_dir=str(run.checkpoints), logging_dir=str(run.logs), seed=cfg.seed, use_cpu=rt.use_cpu,
        bf16=rt.bf16, fp16=rt.fp16, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size, per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, total_episodes=cfg.episodes(len(df)),
        num_mini_batches=cfg.num_mini_batches, num_ppo_epochs=cfg.num_ppo_epochs,
        kl_coef=cfg.kl_coef, kl_estimator=cfg.kl_estimator, response_length=cfg.response_length,
        temperature=cfg.temperature, stop_token=cfg.stop_token,
        missing_eos_penalty=cfg.missing_eos_penalty, whiten_rewards=cfg.whiten_rewards, cliprange=cfg.cliprange,
        cliprange_value=cfg.cliprange_value, vf_coef=cfg.vf_coef, gamma=cfg.gamma, lam=cfg.lam,
        local_rollout_forward_batch_size=cfg.local_rollout_forward_batch_size, num_sample_generations=0,
        warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay, lr_scheduler_type=cfg.lr_scheduler_type,
        gradient_checkpointing=cfg.gradient_checkpointing, logging_steps=cfg.logging_steps,
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
        report_to=resolve_report_to(cfg.report_to), disable_tqdm=True, dataloader_num_workers=0,
    )

    run.create()
    recorder, callbacks = make_callbacks(run, metrics_callback, should_stop, cfg.updates(len(df)), cfg.disable_tqdm,
                                         hard_stop=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*degrees of freedom.*")  # ratio variance of a single minibatch
        trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
                             value_model=value, train_dataset=built.dataset,
                             eval_dataset=built.dataset.select(range(n_eval)),
                             peft_config=lora_config(cfg, "CAUSAL_LM") if cfg.lora else None, callbacks=callbacks)
        drop_default_printers(trainer)
        stopped = False
        try:
            with contextlib.redirect_stdout(sys.stderr):  # TRL prints "===training policy===" to stdout
                trainer.train()
        except TrainingStopped:
            stopped = True
            for cb in callbacks:  # close the progress bar
                if hasattr(cb, "bar") and cb.bar is not None:
                    cb.bar.close()
    trainer.save_model(str(run.path))  # saves only the policy (or its adapter)
    tok.padding_side = padding_side
    tok.save_pretrained(str(run.path))
    result = TrainResult(
        kind="ppo", output_dir=run.final, adapter=cfg.lora, base_model=cfg.sft_model_path,
        metrics=last_metrics(recorder.history), history=recorder.history, steps=int(trainer.state.global_step),
        seconds=timer.seconds, rows={"train": built.rows, "eval": 0, "truncated": built.truncated},
        stopped=stopped or recorder.stopped, config=cfg.to_dict())
    write_manifest(run.path, result, {"device": rt.device, "reward_model": cfg.reward_model_path,
                                      "value_model": value_path, "report_to": args.report_to})
    run.finish()
    return result
