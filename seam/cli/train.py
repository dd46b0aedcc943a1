"""`seam train {sft,rm,ppo,grpo,rloo,bon,merge,eval-rm,eval-policy,compare}`: training, adapters and evaluation."""

from __future__ import annotations

import argparse
import json
import sys

from ..data import read_table, write_table
from ..io import check_not_input, write_json
from ..settings import add_config_flags, config_from_args
from ..train import TRAINERS
from ..train.config import TRAIN_CONFIGS
from ..train.eval import PolicyEvalConfig, RMEvalConfig, compare_runs, evaluate_policy, evaluate_rm
from ..train.judges import JUDGES, JudgeSettings
from ..train.merge import merge_adapter
from . import example_epilog
from ._common import json_output_path, output_path

_TRAIN_HELP = {
    "sft": ("supervised fine-tuning of the policy model (full or LoRA)",
            ["seam train sft --model models/base --data sft.jsonl --out runs/sft --lora --max-steps 200",
             "seam train sft --config sft.yaml --learning-rate 5e-5      # flags override the YAML file",
             "",
             "Trains on (prompt, chosen) rows; the loss covers the response tokens + EOS (the tokens SEAM scores).",
             "The run folder holds the model (or LoRA adapter) + tokenizer, metrics.jsonl and seam_run.json."]),
    "rm": ("train a reward model (one-label classifier, pairwise loss)",
           ["seam train rm --model runs/sft --data prefs.jsonl --eval-data prefs-test.jsonl --out runs/rm",
            "",
            "Rows need prompt, chosen and rejected. A causal LM base gets a fresh score head (seeded).",
            "With --eval-data the final metrics include eval_accuracy."]),
    "ppo": ("PPO of a policy against a reward model (TRL 1.12)",
            ["seam train ppo --policy runs/sft --reward-model runs/rm --data rl.filtered.jsonl --out runs/ppo \\",
             "                --max-steps 200 --per-device-train-batch-size 32 --kl-coef 0.05 --response-length 128 --lora",
             "seam train ppo --config trl_ppo.yaml      # TRL's key names: total_episodes, num_mini_batches, ...",
             "",
             "Policy and reference come from --policy (--sft-model-path); reward and value models from",
             "--reward-model (--reward-model-path); both need the same tokenizer.",
             "Per-update metrics: objective/scores, objective/kl, objective/rlhf_reward, loss/policy_avg, loss/value_avg."]),
    "grpo": ("GRPO of a policy with the reward model as reward function (TRL 1.12 GRPOTrainer)",
             ["seam train grpo --policy runs/sft --reward-model runs/rm --data rl.filtered.jsonl --out runs/grpo \\",
              "                 --max-steps 200 --num-generations 8 --per-device-train-batch-size 16 \\",
              "                 --max-completion-length 128 --beta 0.04 --lora",
              "seam train grpo --config trl_grpo.yaml   # TRL's key names: num_generations, beta, loss_type, ...",
              "",
              "Each prompt gets --num-generations completions; the RM scores template(prompt, completion) with its own",
              "tokenizer (it may differ from the policy's). --per-device-train-batch-size counts completions.",
              "Per-step metrics: reward, reward_std, rewards/reward_model/mean, kl (with --beta > 0), loss, entropy."]),
    "rloo": ("RLOO of a policy with the reward model as reward function (TRL 1.12 RLOOTrainer)",
             ["seam train rloo --policy runs/sft --reward-model runs/rm --data rl.filtered.jsonl --out runs/rloo \\",
              "                 --max-steps 200 --num-generations 4 --per-device-train-batch-size 16 --beta 0.05 --lora",
              "",
              "REINFORCE with a leave-one-out baseline over --num-generations completions per prompt; the reward is",
              "the RM's score minus beta x KL to the reference. Same reward function, data and metrics as grpo."]),
    "bon": ("best-of-n: sample n completions per prompt, keep the RM's best, fine-tune on the picks (k rounds)",
            ["seam train bon --policy runs/sft --reward-model runs/rm --data rl.filtered.jsonl --out runs/bon \\",
             "               --num-generations 8 --rounds 2 --num-train-epochs 1 --lora",
             "",
             "The cheapest RL arm: no value model, no reference; each round samples from the previous round's policy.",
             "The RM scores template(prompt, completion) with its own tokenizer. Per-round metrics:",
             "bon/sample_reward_mean, bon/pick_reward_mean, sft/train_loss. The run folder ends with a plain model",
             "(LoRA rounds are merged) and rounds/round-K/picks.jsonl."]),
}


# Current short spellings of TRL-named fields (not deprecated: the CLI's own vocabulary). The other
# old names (--batch-size, --steps, --mini-batches, ...) still work as hidden flags with a deprecation line.
_FLAG_ALIASES = {"output_dir": ("--out",), "disable_tqdm": ("--quiet",), "sft_model_path": ("--policy",),
                 "reward_model_path": ("--reward-model",)}
# per trainer: GRPO / RLOO call the policy `model` (TRL's model_name_or_path) and take --policy too, as PPO does
_KIND_FLAG_ALIASES = {"grpo": {"model": ("--policy",)}, "rloo": {"model": ("--policy",)}, "bon": {"model": ("--policy",)}}


def _add_train(sub, kind: str) -> None:
    help_, example = _TRAIN_HELP[kind]
    p = sub.add_parser(kind, help=help_, description=help_[0].upper() + help_[1:] + ".",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=example_epilog(*example))
    p.add_argument("--config", metavar="YAML", help="YAML file with one key per setting (flags override it)")
    add_config_flags(p, TRAIN_CONFIGS[kind], aliases={**_FLAG_ALIASES, **_KIND_FLAG_ALIASES.get(kind, {})})
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=_run_train, kind=kind)


def _run_train(args) -> int:
    cfg = config_from_args(TRAIN_CONFIGS[args.kind], args)
    check_not_input(cfg.output_dir, [("--config", args.config)], "--out")  # the trainer checks data and models
    result = TRAINERS[args.kind](cfg)
    if args.json:
        print(json.dumps(result.to_json() | {"history": None}, indent=1))
        return 0
    shown = {k: result.metrics[k] for k in ("loss", "train_loss", "eval_loss", "eval_accuracy", "objective/scores",
                                             "objective/kl", "objective/rlhf_reward", "reward", "kl", "eval_reward",
                                             "bon/sample_reward_mean", "bon/pick_reward_mean")
             if k in result.metrics}
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in shown.items() if isinstance(v, (int, float)))
    what = "LoRA adapter" if result.adapter else "model"
    print(f"trained {result.kind}: {result.steps} steps on {result.rows['train']} rows in {result.seconds:.1f}s"
          + (f"; {metrics}" if metrics else "") + (" (stopped early)" if result.stopped else ""))
    if result.rows.get("truncated"):
        print(f"note: {result.rows['truncated']} rows were cut to fit --max-length / --max-prompt-tokens")
    print(f"wrote {what} + tokenizer to {result.output_dir} (metrics.jsonl, seam_run.json)")
    if result.adapter:
        print(f"merge it with: seam train merge --adapter {result.output_dir} --out {result.output_dir}-merged")
    return 0


# ----------------------------------------------------------------------------- merge


def _add_merge(sub) -> None:
    p = sub.add_parser("merge", help="merge a LoRA run folder into its base model",
                       description="Fold a LoRA adapter into its base model and save a plain HF checkpoint "
                                   "(safetensors + tokenizer) that every seam command loads directly.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=example_epilog("seam train merge --adapter runs/sft-lora --out models/sft-merged",
                                             "seam train merge --adapter runs/rm-lora --base runs/sft --role rm --out models/rm"))
    p.add_argument("--adapter", required=True, metavar="DIR", help="LoRA folder written by `seam train ... --lora`")
    p.add_argument("--out", required=True, metavar="DIR", help="new folder for the merged model")
    p.add_argument("--base", metavar="DIR", help="base model (default: the one recorded in the adapter folder)")
    p.add_argument("--role", choices=["pm", "rm"], help="pm = causal LM, rm = sequence classifier (default: from the run)")
    p.add_argument("--allow-pickle", action="store_true", help="allow .bin/.pt weights (trusted checkpoints only)")
    p.set_defaults(func=_run_merge)


def _run_merge(args) -> int:
    out = merge_adapter(args.adapter, args.out, args.base, args.role, args.allow_pickle)
    print(f"merged {args.adapter} into its base; wrote {out}")
    return 0


# ----------------------------------------------------------------------------- evaluation


def _add_eval_rm(sub) -> None:
    p = sub.add_parser("eval-rm", help="reward model accuracy on a preference test split",
                       description="Pairwise accuracy r(chosen) > r(rejected) with a 95% bootstrap CI "
                                   "(paper appendix C.2); ties count as wrong.".replace("%", "%%"),
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=example_epilog("seam train eval-rm --rm runs/rm --data prefs-test.jsonl --out rm-eval.json"))
    p.add_argument("--rm", required=True, metavar="DIR", help="reward model folder")
    p.add_argument("--rm-adapter", metavar="DIR", help="PEFT adapter for the RM")
    p.add_argument("--data", required=True, metavar="FILE", help="pairs: id, prompt, chosen, rejected")
    p.add_argument("--out", metavar="FILE", help="write the summary as JSON")
    p.add_argument("--rows", metavar="FILE", help="write per-pair rewards (.jsonl/.csv/.parquet)")
    _eval_common(p)
    p.set_defaults(func=_run_eval_rm)


def _eval_common(p) -> None:
    p.add_argument("--template", default="stackllama", help="stackllama (default) | chat | format string")
    p.add_argument("--max-rows", type=int, metavar="N", help="first N rows only")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    p.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed (default 0)")
    p.add_argument("--allow-pickle", action="store_true", help="allow .bin/.pt weights (trusted checkpoints only)")


def _run_eval_rm(args) -> int:
    inputs = [("--rm", args.rm), ("--rm-adapter", args.rm_adapter), ("--data", args.data)]
    out = json_output_path(args.out, "--out", inputs)
    rows_out = output_path(args.rows, "--rows", inputs) if args.rows else None
    cfg = RMEvalConfig(rm=args.rm, data=args.data, rm_adapter=args.rm_adapter, template=args.template,
                       max_rows=args.max_rows, device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle,
                       seed=args.seed)
    res = evaluate_rm(cfg)
    if rows_out:
        write_table(res.rows, rows_out)
    if out:
        write_json(out, res.summary())
    print(f"RM accuracy {res.accuracy:.4f} (95% CI {res.ci_low:.4f}-{res.ci_high:.4f}) on {res.n} pairs; "
          f"mean margin {res.mean_margin:.4f}; ties {res.ties}" + (f"; truncated {res.truncated}" if res.truncated else ""))
    return 0


def _add_eval_policy(sub) -> None:
    p = sub.add_parser("eval-policy", help="judge a policy's responses (gold / RM / LLM / local judge, length, KL)",
                       description="Generate responses with --pm (or read them with --responses) for the prompts of "
                                   "--data and score them with one or more judges: gold (the demo world's programmatic "
                                   "judge), rm (reward model score), llm (MT-Bench single-answer 1-10 prompt through an "
                                   "OpenAI-compatible endpoint), local (the same prompt on a local model: expected "
                                   "rating). Also response length and, with --ref, the KL to a reference policy.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=example_epilog(
                           "seam train eval-policy --pm runs/ppo --data world-test.jsonl --judge gold rm --rm runs/rm \\",
                           "                       --ref runs/sft --out eval-ppo.jsonl --summary eval-ppo.json",
                           "seam train eval-policy --responses answers.jsonl --data prompts.jsonl --judge llm \\",
                           "                       --judge-model gpt-4o --out judged.jsonl",
                           "",
                           "--out has one row per prompt: id, prompt, response, response_tokens, kl, score_<judge>."))
    p.add_argument("--data", required=True, metavar="FILE", help="evaluation prompts (instructions contract)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pm", metavar="DIR", help="policy to generate with")
    src.add_argument("--responses", metavar="FILE", help="judge these responses instead (columns id, response)")
    p.add_argument("--pm-adapter", metavar="DIR", help="PEFT adapter for the policy")
    p.add_argument("--out", required=True, metavar="FILE", help="per-prompt table (.jsonl/.csv/.parquet)")
    p.add_argument("--summary", metavar="FILE", help="also write the summary (means, 95%% CIs) as JSON")
    p.add_argument("--judge", nargs="+", default=["rm"], choices=list(JUDGES), help="judges (default: rm)")
    p.add_argument("--rm", metavar="DIR", help="rm judge: reward model folder")
    p.add_argument("--rm-adapter", metavar="DIR", help="rm judge: PEFT adapter")
    p.add_argument("--judge-model", metavar="NAME", help="llm judge: model name at the endpoint")
    p.add_argument("--base-url", metavar="URL", help="llm judge: OpenAI-compatible base URL")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR", help="llm judge: env var with the key")
    p.add_argument("--judge-workers", type=int, default=4, metavar="N", help="llm judge: parallel requests (default 4)")
    p.add_argument("--local-judge", metavar="DIR", help="local judge: causal LM folder")
    p.add_argument("--ref", metavar="DIR", help="reference policy for the KL estimate (e.g. the SFT model)")
    p.add_argument("--ref-adapter", metavar="DIR", help="PEFT adapter for the reference")
    p.add_argument("--max-new-tokens", type=int, default=128, metavar="N", help="max tokens per response (default 128)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default 1.0)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="prompts per generation batch (default 16)")
    p.add_argument("--max-prompt-tokens", type=int, metavar="N", help="cut prompts to N tokens")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _eval_common(p)
    p.set_defaults(func=_run_eval_policy)


def _run_eval_policy(args) -> int:
    from tqdm import tqdm

    inputs = [("--data", args.data), ("--responses", args.responses), ("--pm", args.pm), ("--pm-adapter", args.pm_adapter),
              ("--rm", args.rm), ("--rm-adapter", args.rm_adapter), ("--local-judge", args.local_judge),
              ("--ref", args.ref), ("--ref-adapter", args.ref_adapter)]
    out = output_path(args.out, "--out", inputs)
    summary_out = json_output_path(args.summary, "--summary", inputs)
    judge = JudgeSettings(rm=args.rm, rm_adapter=args.rm_adapter, llm_model=args.judge_model, base_url=args.base_url,
                          api_key_env=args.api_key_env, max_workers=args.judge_workers, local_model=args.local_judge)
    cfg = PolicyEvalConfig(data=args.data, pm=args.pm, pm_adapter=args.pm_adapter, responses=args.responses,
                           judges=tuple(dict.fromkeys(args.judge)), ref=args.ref, ref_adapter=args.ref_adapter,
                           template=args.template, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                           top_p=args.top_p, seed=args.seed, batch_size=args.batch_size, max_rows=args.max_rows,
                           max_prompt_tokens=args.max_prompt_tokens, device=args.device, dtype=args.dtype,
                           allow_pickle=args.allow_pickle, judge=judge)
    cfg.validate()
    bar = None

    def progress(done, total):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="prompt", desc="generating", file=sys.stderr, disable=args.quiet)
        bar.update(done - bar.n)

    try:
        res = evaluate_policy(cfg, progress)
    finally:
        if bar is not None:
            bar.close()
    write_table(res.rows, out)
    if summary_out:
        write_json(summary_out, res.summary)
    print(f"evaluated {res.summary['n']} prompts")
    for name in list(cfg.judges) + ["response_tokens", "kl"]:
        s = res.summary.get(name)
        if isinstance(s, dict):
            failed = f", {s['n_failed']} not judged" if s.get("n_failed") else ""
            print(f"  {name}: {s['mean']:.4f} (95% CI {s['ci_low']:.4f}-{s['ci_high']:.4f}, n {s['n']}{failed})")
    print(f"wrote {out}" + (f" and {summary_out}" if summary_out else ""))
    return 0


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="run A vs run B: win rate, bootstrap CI, paired tests across prompts and seeds",
                       description="Pair the per-prompt scores of evaluation tables (from eval-policy) by id. One table "
                                   "per side: win rate of A over B, bootstrap CI of the mean difference and a paired test "
                                   "over prompts. Several tables per side (one per seed, same seed order): also a paired "
                                   "test of the per-seed means (paper: 3 seeds, p < 0.05).",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=example_epilog(
                           "seam train compare --a eval-filtered-s0.jsonl eval-filtered-s1.jsonl eval-filtered-s2.jsonl \\",
                           "                   --b eval-full-s0.jsonl eval-full-s1.jsonl eval-full-s2.jsonl --score gold"))
    p.add_argument("--a", nargs="+", required=True, metavar="FILE", help="evaluation tables of run A (one per seed)")
    p.add_argument("--b", nargs="+", required=True, metavar="FILE", help="evaluation tables of run B (same seed order)")
    p.add_argument("--score", default="gold", help="score column: gold, rm, llm, local or any column (default gold)")
    p.add_argument("--test", default="t", choices=["t", "wilcoxon", "permutation", "sign"],
                   help="paired test across seeds (default t; prompts use wilcoxon when t is chosen)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--out", metavar="FILE", help="write the result as JSON")
    p.set_defaults(func=_run_compare)


def _run_compare(args) -> int:
    out = json_output_path(args.out, "--out", [*(("--a", f) for f in args.a), *(("--b", f) for f in args.b)])
    a = [read_table(f) for f in args.a]
    b = [read_table(f) for f in args.b]
    res = compare_runs(a, b, args.score, args.test, args.level, args.seed, names=(list(args.a), list(args.b)))
    if out:
        write_json(out, res.to_dict())
    w, d, t = res.win_rate, res.diff, res.prompt_test
    lvl = int(round(args.level * 100))
    print(f"{res.score}: A {res.mean_a:.4f} vs B {res.mean_b:.4f} over {res.n_prompts} paired prompts ({res.n_seeds} seed(s))")
    print(f"  win rate A over B {w['rate']:.3f} ({lvl}% CI {w['ci_low']:.3f}-{w['ci_high']:.3f}; "
          f"{w['wins']} wins, {w['ties']} ties, {w['losses']} losses)")
    print(f"  mean difference {d['estimate']:.4f} ({lvl}% CI {d['low']:.4f}-{d['high']:.4f}); "
          f"{t['method']} test over prompts p = {t['p_value']:.4g}")
    if res.seed_test:
        s = res.seed_test
        sd = res.seed_diff
        print(f"  across seeds: mean difference {s['mean_diff']:.4f} ({lvl}% t CI {sd['low']:.4f}-{sd['high']:.4f}), "
              f"{s['method']} test p = {s['p_value']:.4g} (n {s['n']})")
    mde = res.mde or {}
    if mde.get("prompts") is not None:
        print(f"  smallest difference detectable (80% power, two-sided 5%): {mde['prompts']:.4f} over prompts"
              + (f", {mde['seeds']:.4f} over seeds" if mde.get("seeds") is not None else ""))
    return 0


# ----------------------------------------------------------------------------- registration


def register(sub) -> None:
    p = sub.add_parser("train", help="train SFT / RM / PPO / GRPO / RLOO models, merge adapters, evaluate and "
                                     "compare runs",
                       description="Training on TRL 1.12 + PEFT, adapter merging, and evaluation (docs/training.md).",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=example_epilog(
                           "seam train sft --model models/base --data sft.jsonl --out runs/sft",
                           "seam train rm  --model runs/sft --data prefs.jsonl --out runs/rm",
                           "seam train ppo --policy runs/sft --reward-model runs/rm --data rl.jsonl --out runs/ppo",
                           "seam train grpo --policy runs/sft --reward-model runs/rm --data rl.jsonl --out runs/grpo",
                           "seam train eval-policy --pm runs/ppo --data test.jsonl --judge gold --out eval.jsonl"))
    inner = p.add_subparsers(dest="train_command", metavar="STEP", parser_class=type(p))
    for kind in ("sft", "rm", "ppo", "grpo", "rloo", "bon"):
        _add_train(inner, kind)
    _add_merge(inner)
    register_eval(inner)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def register_eval(sub) -> None:
    """Add eval-rm, eval-policy and compare to `sub` (also usable for a top-level `seam eval`)."""
    _add_eval_rm(sub)
    _add_eval_policy(sub)
    _add_compare(sub)
