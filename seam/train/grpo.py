"""`train_grpo` and `train_rloo`: TRL 1.12's stable `GRPOTrainer` / `RLOOTrainer` against the reward model.

Both sample `num_generations` completions per prompt from the policy and learn from how each
completion's reward compares with the others of its prompt (GRPO: group mean and std; RLOO: the
leave-one-out mean). The reward is `seam.train.reward_fn.RewardModelFunction`: TRL decodes the
completions, the RM reads template(prompt, completion) with its own tokenizer, as `seam score` does,
so the RM need not share the policy's tokenizer (unlike PPO). Prompts are rendered with the
template up to where the response starts (the policy's query, as for PPO).
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass

from ..errors import SeamError
from ..models.scoring import cut_to_tokens
from ..models.templates import get_template
from .common import (begin_run, drop_default_printers, last_metrics, lora_config, make_callbacks, MetricsCallback,
                     resolve_runtime, StopFn, trainer_args, TrainResult, write_manifest)
from .config import GroupRLCommon, GRPOConfig, RLOOConfig
from .data import load_rows, queries
from .models import load_causal_lm, split_model_arg
from .reward_fn import ROW_COLUMN, load_reward_function


@dataclass
class _Prompts:
    dataset: object  # datasets.Dataset: prompt (the rendered query), seam_row (index into `raw`)
    rows: int
    truncated: int


def _prompt_dataset(prompts: list, tokenizer, template, max_prompt_tokens, offset: int, raw: list) -> _Prompts:
    """Queries for the policy; the (cut) raw prompts are appended to `raw` for the reward function."""
    from datasets import Dataset

    cut, mask = cut_to_tokens(tokenizer, prompts, max_prompt_tokens)
    texts, _ = queries(cut, tokenizer, template, None)
    raw.extend(cut)
    rows = list(range(offset, offset + len(texts)))
    return _Prompts(Dataset.from_dict({"prompt": texts, ROW_COLUMN: rows}), len(texts), int(mask.sum()))


def _import_trl(kind: str):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "grpo":
            from trl import GRPOConfig as TRLConfig
            from trl import GRPOTrainer as Trainer
        else:
            from trl import RLOOConfig as TRLConfig
            from trl import RLOOTrainer as Trainer
    return TRLConfig, Trainer


def _trl_fields(cfg: GroupRLCommon) -> dict:
    """Our settings under the names of TRL's GRPOConfig / RLOOConfig (the shared ones, then each trainer's)."""
    out = {name: getattr(cfg, name) for name in (
        "num_generations", "max_completion_length", "temperature", "top_p", "top_k", "min_p", "repetition_penalty",
        "beta", "num_iterations", "epsilon", "epsilon_high", "mask_truncated_completions", "disable_dropout",
        "shuffle_dataset")}
    if isinstance(cfg, GRPOConfig):
        out.update(loss_type=cfg.loss_type, scale_rewards=cfg.scale_rewards)
    else:
        clip = cfg.reward_clip_range
        out.update(normalize_advantages=cfg.normalize_advantages, reward_clip_range=tuple(clip) if clip else None)
    return out


def _train_group(cfg: GroupRLCommon, metrics_callback: MetricsCallback | None,
                 should_stop: StopFn | None) -> TrainResult:
    kind = cfg.kind
    timer, run = begin_run(cfg)
    df = load_rows(cfg.data, cfg.max_rows)
    eval_df = load_rows(cfg.eval_data, flag="--eval-data") if cfg.eval_data else None
    if len(df) < cfg.prompts_per_step:
        raise SeamError(f"--data {cfg.data}: {len(df)} prompts but one {kind.upper()} step samples "
                        f"{cfg.prompts_per_step} (per_device_train_batch_size x gradient_accumulation_steps / "
                        "num_generations); lower --per-device-train-batch-size or add prompts")
    rt = resolve_runtime(cfg.device, cfg.dtype)
    from transformers import set_seed

    TRLConfig, Trainer = _import_trl(kind)
    set_seed(cfg.seed)
    tok, policy = load_causal_lm(cfg.model, "--policy", cfg.allow_pickle)
    # TRL builds the reference (beta > 0, no LoRA) with from_pretrained(policy.config._name_or_path): for a
    # LoRA run merged in memory that is the adapter's base, not the policy, so keep a frozen copy to use instead.
    merged_run = split_model_arg(cfg.model, "--policy")[1] is not None
    ref = copy.deepcopy(policy).eval().requires_grad_(False) if (cfg.beta and not cfg.lora and merged_run) else None
    policy.warnings_issued = {**getattr(policy, "warnings_issued", {}), "estimate_tokens": True}  # no input_ids: no FLOPs
    raw: list = []
    template = get_template(cfg.template, tok)
    train = _prompt_dataset(df["prompt"].tolist(), tok, template, cfg.max_prompt_tokens, 0, raw)
    evals = (_prompt_dataset(eval_df["prompt"].tolist(), tok, template, cfg.max_prompt_tokens, len(raw), raw)
             if eval_df is not None else None)
    # the RM only scores: its weights in the run's precision (auto: bf16 on a GPU, fp32 on the CPU)
    reward = load_reward_function(cfg.reward_model_path, cfg.template, prompts=raw, device=rt.device,
                                  dtype=cfg.dtype, allow_pickle=cfg.allow_pickle)
    args = TRLConfig(**{**trainer_args(cfg, run, rt, evals is not None), "remove_unused_columns": False},
                     **_trl_fields(cfg))

    run.create()
    recorder, callbacks = make_callbacks(run, metrics_callback, should_stop, cfg.max_steps if cfg.max_steps > 0 else None,
                                         cfg.disable_tqdm)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*degrees of freedom.*")  # std of a one-element group slice
        trainer = Trainer(model=policy, reward_funcs=reward, args=args, train_dataset=train.dataset,
                          eval_dataset=evals.dataset if evals else None, processing_class=tok,
                          peft_config=lora_config(cfg, "CAUSAL_LM") if cfg.lora else None, callbacks=callbacks)
        if ref is not None:
            trainer.ref_model = trainer.accelerator.prepare_model(ref, evaluation_mode=True)
        drop_default_printers(trainer)
        output = trainer.train()
        if evals is not None:
            trainer.evaluate()
    trainer.save_model(str(run.path))  # the policy, or its LoRA adapter
    tok.save_pretrained(str(run.path))
    metrics = last_metrics(recorder.history)
    metrics.update({k: v for k, v in output.metrics.items() if isinstance(v, (int, float))})
    result = TrainResult(
        kind=kind, output_dir=run.final, adapter=cfg.lora, base_model=cfg.model, metrics=metrics,
        history=recorder.history, steps=int(trainer.state.global_step), seconds=timer.seconds,
        rows={"train": train.rows, "eval": evals.rows if evals else 0,
              "truncated": train.truncated + (evals.truncated if evals else 0)},
        stopped=recorder.stopped, config=cfg.to_dict())
    write_manifest(run.path, result, {"device": rt.device, "reward_model": cfg.reward_model_path,
                                      "reward_function": reward.__name__, "rm_truncated": reward.truncated,
                                      "report_to": args.report_to})
    run.finish()
    return result


def train_grpo(cfg: GRPOConfig, metrics_callback: MetricsCallback | None = None,
               should_stop: StopFn | None = None) -> TrainResult:
    """GRPO of `cfg.model` with the reward model `cfg.reward_model_path` as reward function, on the
    prompts of `cfg.data`. Metrics per step include reward, reward_std, rewards/reward_model/mean,
    kl (beta > 0), entropy, clip_ratio/*, completions/mean_length and loss. The run folder holds the
    trained policy (or its LoRA adapter) with the tokenizer."""
    return _train_group(cfg, metrics_callback, should_stop)


def train_rloo(cfg: RLOOConfig, metrics_callback: MetricsCallback | None = None,
               should_stop: StopFn | None = None) -> TrainResult:
    """RLOO of `cfg.model` against the reward model `cfg.reward_model_path` (the same reward function
    as `train_grpo`); the KL penalty beta x KL is subtracted from the reward. Same metrics and run folder."""
    return _train_group(cfg, metrics_callback, should_stop)
