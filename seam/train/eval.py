"""Evaluation (paper appendix C.2): RM accuracy on preference pairs; policy quality by judges,
response length and KL to a reference; run-vs-run comparison with CIs and paired tests.

* `evaluate_rm(cfg)`      pairwise accuracy (r(chosen) > r(rejected)) with a bootstrap CI
* `generate(...)`         batched sampling or greedy decoding from a PM, prompts rendered with the template
* `evaluate_policy(cfg)`  responses (generated, or read from a file) + judges + length + KL
* `compare_runs(a, b)`    win rate of A vs B per prompt; across seeds, a paired test of per-seed means
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..data import read_table
from ..errors import SeamError
from ..models.loading import load_pm, load_rm
from ..models.scoring import PolicyScorer, RewardScorer
from ..models.templates import check_template, get_template
from .data import load_rows, queries
from .judges import JUDGES, JudgeSettings, build_judge
from .stats import (PAIRED_TESTS, bootstrap_ci, min_detectable_effect, paired_bootstrap_ci, paired_t_ci, paired_test,
                    win_rate)

ProgressFn = Callable[[int, int], None]  # (done, total)


# ============================================================================ reward model


@dataclass
class RMEvalConfig:
    rm: str = field(default="", metadata={"help": "reward model folder"})
    data: str = field(default="", metadata={"help": "preference test split: id, prompt, chosen, rejected"})
    rm_adapter: str | None = field(default=None, metadata={"help": "PEFT adapter for the RM"})
    template: str = field(default="stackllama", metadata={"help": "stackllama | chat | format string"})
    max_rows: int | None = field(default=None, metadata={"help": "first N rows only"})
    max_prompt_tokens: int | None = field(default=None, metadata={"help": "cut prompts to N tokens"})
    max_response_tokens: int | None = field(default=None, metadata={"help": "cut responses to N tokens"})
    batch_tokens: int = field(default=16384, metadata={"help": "padded tokens per batch"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    dtype: str = field(default="auto", metadata={"help": "auto | float32 | bfloat16 | float16"})
    allow_pickle: bool = field(default=False, metadata={"help": "allow pickle weights"})
    seed: int = field(default=0, metadata={"help": "bootstrap seed"})


@dataclass
class RMEvalResult:
    accuracy: float  # share of pairs with r(chosen) > r(rejected); ties count as wrong
    ci_low: float
    ci_high: float
    n: int
    ties: int
    mean_margin: float  # mean r(chosen) - r(rejected)
    truncated: int
    rows: pd.DataFrame  # id, r_chosen, r_rejected, margin, correct

    def summary(self) -> dict:
        return {"accuracy": self.accuracy, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n,
                "ties": self.ties, "mean_margin": self.mean_margin, "truncated": self.truncated}


def evaluate_rm(cfg: RMEvalConfig) -> RMEvalResult:
    """Pairwise accuracy of the RM on a preference test split (paper appendix C.2)."""
    df = load_rows(cfg.data, cfg.max_rows)
    missing = df["rejected"].isna()
    if missing.any():
        raise SeamError(f"--data {cfg.data}: {int(missing.sum())} of {len(df)} rows have no rejected response "
                        f"(first: id {df.loc[missing, 'id'].iloc[0]!r}); RM accuracy needs (chosen, rejected) pairs")
    check_template(cfg.template)  # a bad --template fails before the model loads
    loaded = load_rm(cfg.rm, cfg.rm_adapter, cfg.device, cfg.dtype, cfg.allow_pickle)
    scorer = RewardScorer(loaded, get_template(cfg.template, loaded.tokenizer), cfg.max_prompt_tokens,
                          cfg.max_response_tokens, cfg.batch_tokens)
    n = len(df)
    prompts = df["prompt"].tolist()
    rewards = scorer.score(prompts + prompts, df["chosen"].tolist() + df["rejected"].tolist())
    r_c, r_r = rewards[:n], rewards[n:]
    correct = (r_c > r_r).astype(np.float64)
    ci = bootstrap_ci(correct, seed=cfg.seed)
    rows = pd.DataFrame({"id": df["id"], "r_chosen": r_c, "r_rejected": r_r, "margin": r_c - r_r,
                         "correct": correct.astype(bool)})
    return RMEvalResult(float(correct.mean()), ci.low, ci.high, n, int((r_c == r_r).sum()),
                        float((r_c - r_r).mean()), int(scorer.truncated), rows)


# ============================================================================ generation


def generate(loaded, prompts: list[str], template, max_new_tokens: int = 128, temperature: float = 0.0,
             top_p: float = 1.0, seed: int = 0, batch_size: int = 16, max_prompt_tokens: int | None = None,
             progress: ProgressFn | None = None, return_tokens: bool = False):
    """Responses of `loaded` (a `LoadedModel` PM) to `prompts`, rendered like PPO queries.

    temperature 0 = greedy. Generation stops at the tokenizer's EOS; special tokens are removed.
    With `return_tokens`, also the number of generated tokens per response (EOS excluded)."""
    import torch

    tok, model = loaded.tokenizer, loaded.model
    texts, _ = queries(list(prompts), tok, template, max_prompt_tokens)
    enc = tok(texts, add_special_tokens=True)["input_ids"]
    order = np.argsort([len(e) for e in enc], kind="stable")
    out: list[str] = [""] * len(texts)
    counts = np.zeros(len(texts), dtype=np.int64)
    pad, eos = tok.pad_token_id, tok.eos_token_id
    torch.manual_seed(seed)
    kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=tok.eos_token_id)
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    done = 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(enc[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):  # left padding
                ids[r, width - len(enc[i]):] = torch.tensor(enc[i])
                mask[r, width - len(enc[i]):] = 1
            gen = model.generate(input_ids=ids.to(loaded.device), attention_mask=mask.to(loaded.device), **kwargs)
            new = gen[:, width:].cpu()
            stop = (new == eos) | (new == pad)
            n_tok = torch.where(stop.any(dim=1), stop.int().argmax(dim=1), torch.tensor(new.shape[1]))
            decoded = tok.batch_decode(new, skip_special_tokens=True)
            for r, i in enumerate(idx):
                out[i] = decoded[r].strip()
                counts[i] = int(n_tok[r])
            done += len(idx)
            if progress:
                progress(done, len(texts))
    return (out, counts) if return_tokens else out


# ============================================================================ policy


@dataclass
class PolicyEvalConfig:
    data: str = field(default="", metadata={"help": "evaluation prompts (instructions contract; meta may carry testbed tasks)"})
    pm: str | None = field(default=None, metadata={"help": "policy folder to generate with (or give responses)"})
    pm_adapter: str | None = field(default=None, metadata={"help": "PEFT adapter for the policy"})
    responses: str | None = field(default=None, metadata={"help": "judge these responses (file with id, response) instead of generating"})
    judges: tuple[str, ...] = field(default=("rm",), metadata={"help": f"any of {', '.join(JUDGES)}"})
    ref: str | None = field(default=None, metadata={"help": "reference policy for the KL estimate (e.g. the SFT model)"})
    ref_adapter: str | None = field(default=None, metadata={"help": "PEFT adapter for the reference"})
    template: str = field(default="stackllama", metadata={"help": "stackllama | chat | format string"})
    max_new_tokens: int = field(default=128, metadata={"help": "max tokens per response"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling"})
    seed: int = field(default=0, metadata={"help": "sampling and bootstrap seed"})
    batch_size: int = field(default=16, metadata={"help": "prompts per generation batch"})
    max_rows: int | None = field(default=None, metadata={"help": "first N prompts only"})
    max_prompt_tokens: int | None = field(default=None, metadata={"help": "cut prompts to N tokens"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    dtype: str = field(default="auto", metadata={"help": "auto | float32 | bfloat16 | float16"})
    allow_pickle: bool = field(default=False, metadata={"help": "allow pickle weights"})
    judge: JudgeSettings = field(default_factory=JudgeSettings)

    def validate(self) -> None:
        if not self.data:
            raise SeamError("--data is required: the evaluation prompts")
        if bool(self.pm) == bool(self.responses):
            raise SeamError("give exactly one of --pm (generate responses) or --responses FILE (judge existing ones)")
        unknown = [j for j in self.judges if j not in JUDGES]
        if unknown:
            raise SeamError(f"--judge {unknown[0]!r}: unknown judge; use one or more of {', '.join(JUDGES)}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise SeamError("--max-new-tokens and --batch-size must be positive integers")
        if self.temperature < 0:
            raise SeamError(f"--temperature must be >= 0, got {self.temperature}")
        if self.ref and not self.pm:
            raise SeamError("--ref (KL) needs --pm: the KL is measured between the policy and the reference")


@dataclass
class PolicyEvalResult:
    rows: pd.DataFrame  # id, prompt, response, response_tokens, [kl], score_<judge>...
    summary: dict  # per judge: mean, ci_low, ci_high, n, n_failed; response_tokens; kl


def _read_responses(path: str, ids: pd.Series) -> list[str]:
    table = read_table(path)
    if not {"id", "response"} <= set(map(str, table.columns)):
        raise SeamError(f"--responses {path}: needs columns id and response (found: {', '.join(map(str, table.columns))})")
    by_id = dict(zip(table["id"].astype(str), table["response"]))
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise SeamError(f"--responses {path}: no response for id {missing[0]!r} ({len(missing)} missing); "
                        "give one response per evaluation prompt")
    return ["" if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v) for v in (by_id[i] for i in ids)]


def _ci_summary(values: np.ndarray, seed: int) -> dict:
    ci = bootstrap_ci(values, seed=seed)
    return {"mean": ci.estimate, "ci_low": ci.low, "ci_high": ci.high, "n": ci.n,
            "n_failed": int(np.isnan(values).sum())}


def evaluate_policy(cfg: PolicyEvalConfig, progress: ProgressFn | None = None) -> PolicyEvalResult:
    """Generate (or read) responses for the prompts of `cfg.data` and judge them."""
    cfg.validate()
    df = load_rows(cfg.data, cfg.max_rows)
    responses = _read_responses(cfg.responses, df["id"]) if cfg.responses else None  # checked before any model loads
    check_template(cfg.template)
    judges = [build_judge(name, _judge_settings(cfg)) for name in cfg.judges]
    loaded = None
    if cfg.pm:
        loaded = load_pm(cfg.pm, cfg.pm_adapter, cfg.device, cfg.dtype, cfg.allow_pickle)
        template = get_template(cfg.template, loaded.tokenizer)
        responses, lengths = generate(loaded, df["prompt"].tolist(), template, cfg.max_new_tokens, cfg.temperature,
                                      cfg.top_p, cfg.seed, cfg.batch_size, cfg.max_prompt_tokens, progress,
                                      return_tokens=True)
    rows = pd.DataFrame({"id": df["id"], "prompt": df["prompt"], "response": responses})
    summary: dict = {"n": len(rows)}
    if loaded is not None:
        rows["response_tokens"] = lengths  # generated tokens, EOS excluded
        summary["response_tokens"] = _ci_summary(lengths.astype(float), cfg.seed)
    rows["response_words"] = [len(r.split()) for r in responses]
    summary["response_words"] = _ci_summary(rows["response_words"].to_numpy(float), cfg.seed)
    if cfg.ref:
        ref = load_pm(cfg.ref, cfg.ref_adapter, cfg.device, cfg.dtype, cfg.allow_pickle, flag="--ref")
        prompts = df["prompt"].tolist()
        lp_pol, _, _ = PolicyScorer(loaded, template).score(prompts, responses)
        lp_ref, _, _ = PolicyScorer(ref, get_template(cfg.template, ref.tokenizer)).score(prompts, responses)
        rows["kl"] = lp_pol - lp_ref  # k1 estimate of KL(policy || ref) per response, in nats
        summary["kl"] = _ci_summary(rows["kl"].to_numpy(float), cfg.seed)
    for judge in judges:
        scores = np.asarray(judge.score(df, responses), dtype=np.float64)
        rows[f"score_{judge.name}"] = scores
        summary[judge.name] = _ci_summary(scores, cfg.seed)
    return PolicyEvalResult(rows, summary)


def _judge_settings(cfg: PolicyEvalConfig) -> JudgeSettings:
    s = cfg.judge
    s.template = s.template or cfg.template
    s.device = cfg.device if s.device == "auto" else s.device
    s.dtype = cfg.dtype if s.dtype == "auto" else s.dtype
    s.allow_pickle = s.allow_pickle or cfg.allow_pickle
    return s


# ============================================================================ comparing runs


@dataclass
class CompareResult:
    score: str
    n_prompts: int  # aligned (id) pairs, pooled over seeds
    n_seeds: int
    mean_a: float
    mean_b: float
    diff: dict  # bootstrap CI of mean(A - B) per prompt (pooled)
    win_rate: dict  # A vs B per prompt (pooled), ties half
    prompt_test: dict  # paired test over prompts (pooled)
    seed_test: dict | None  # paired test over per-seed means (needs >= 2 seeds)
    seed_diff: dict | None  # Student-t CI of the mean per-seed difference
    seed_sd: float | None = None  # standard deviation of the per-seed differences
    mde: dict | None = None  # minimum detectable effect (80% power, two-sided 5%) at these seeds and prompts

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _score_column(df: pd.DataFrame, score: str, where: str) -> str:
    col = score if score in df.columns else f"score_{score}"
    if col not in df.columns:
        cols = [c for c in df.columns if c.startswith("score_") or c in ("kl", "response_tokens")]
        raise SeamError(f"{where}: no column {score!r} or 'score_{score}' (score columns: {', '.join(cols) or 'none'}); "
                        "pass --score with one of them")
    if "id" not in df.columns:
        raise SeamError(f"{where}: needs an id column to pair prompts across runs")
    return col


def compare_runs(a: list[pd.DataFrame], b: list[pd.DataFrame], score: str = "gold", test: str = "t",
                 level: float = 0.95, seed: int = 0, names: tuple[list[str], list[str]] | None = None) -> CompareResult:
    """Compare runs A and B on per-prompt scores (higher = better).

    `a[k]` and `b[k]` are evaluation tables (id + score column) of seed k; prompts are paired by id.
    Win rate and the prompt-level test pool all seeds; with >= 2 seeds the per-seed means are
    also compared with a paired test across seeds (`test`) and a bootstrap CI of their difference."""
    if not a or len(a) != len(b):
        raise SeamError(f"give the same number of runs for A and B (one per seed, in the same seed order); "
                        f"got {len(a)} and {len(b)}")
    if test not in PAIRED_TESTS:
        raise SeamError(f"--test must be one of {', '.join(PAIRED_TESTS)}, got {test!r}")
    names = names or ([f"A[{i}]" for i in range(len(a))], [f"B[{i}]" for i in range(len(b))])
    xs, ys, mean_a, mean_b = [], [], [], []
    for k, (da, db) in enumerate(zip(a, b)):
        ca, cb = _score_column(da, score, names[0][k]), _score_column(db, score, names[1][k])
        m = pd.merge(da[["id", ca]].astype({"id": str}), db[["id", cb]].astype({"id": str}), on="id",
                     suffixes=("_a", "_b"))
        if m.empty:
            raise SeamError(f"{names[0][k]} and {names[1][k]} share no prompt ids; compare evaluations of the same prompts")
        x = m[f"{ca}_a" if ca == cb else ca].to_numpy(float)
        y = m[f"{cb}_b" if ca == cb else cb].to_numpy(float)
        xs.append(x)
        ys.append(y)
        mean_a.append(float(np.nanmean(x)) if np.isfinite(x).any() else math.nan)
        mean_b.append(float(np.nanmean(y)) if np.isfinite(y).any() else math.nan)
    x, y = np.concatenate(xs), np.concatenate(ys)
    prompt_method = "wilcoxon" if test == "t" and len(x) >= 10 else test
    seed_test = seed_diff = seed_sd = None
    d = (x - y)[np.isfinite(x - y)]
    mde = {"prompts": min_detectable_effect(float(d.std(ddof=1)), len(d), paired_t=False) if len(d) >= 2 else None}
    if len(a) >= 2:
        seed_test = paired_test(mean_a, mean_b, method=test).to_dict()
        seed_diff = paired_t_ci(mean_a, mean_b, level=level).to_dict()
        per_seed = np.asarray(mean_a) - np.asarray(mean_b)
        seed_sd = float(np.nanstd(per_seed, ddof=1))
        mde["seeds"] = min_detectable_effect(seed_sd, int(np.isfinite(per_seed).sum()))
    return CompareResult(
        score=score, n_prompts=int(len(x)), n_seeds=len(a), mean_a=float(np.nanmean(x)), mean_b=float(np.nanmean(y)),
        diff=paired_bootstrap_ci(x, y, level=level, seed=seed).to_dict(),
        win_rate=win_rate(x, y, level=level, seed=seed).to_dict(),
        prompt_test=paired_test(x, y, method=prompt_method).to_dict(),
        seed_test=seed_test, seed_diff=seed_diff, seed_sd=seed_sd, mde=mde)


def read_eval_table(path: str | Path) -> pd.DataFrame:
    return read_table(path)
