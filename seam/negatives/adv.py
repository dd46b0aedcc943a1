"""`adv`: adversarial perturbations of a worse answer that raise the RM's score (the paper's SEAM_Adv).

For each instruction I with golden answer r, start from a worse answer r- (the row's
``rejected`` when present, else a deterministic corruption of r) and search, with the RM as the
victim, for perturbations r* of r- such that R(I∘r*) >= R(I∘r) + margin (paper section 5.2 and
appendix D.2). Every text the search scores is a candidate; up to k distinct ones are kept:
successful ones first (highest reward first), then the highest-scoring others.

Two searches (``--search``): ``batched`` (`seam.negatives.adv_batch`: every round, the candidates
of all instructions are scored in one RM call; no TextAttack) and ``textattack`` (one instruction
at a time with TextAttack; recipes (``--recipe``) in `seam.negatives.adv_attack.RECIPES`, TextAttack
imported offline through `seam.textattack_env` only when ``build`` runs). The RM is queried only
through `seam.models.scoring.RewardScorer` (batched, shared-prompt prefix reuse), and every
forward query is counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import SeamError
from ..models.loading import load_rm
from ..models.scoring import RewardScorer
from ..models.templates import get_template
from ..settings import Settings, setting
from .base import ProgressFn, check_instructions, check_k, count_stats, negatives_frame
from .corrupt import first_corruption

RECIPE_NAMES = ("greedy", "char", "embedding", "hotflip", "wordnet")
SEARCH_NAMES = ("batched", "textattack")


@dataclass
class AdvConfig(Settings):
    """Settings of the adv builder (CLI flags and the dashboard both build this)."""

    k: int = setting(30, "perturbations per instruction (at most)")
    rm: str | None = setting(None, "reward model folder (the victim); or pass a loaded model to AdvBuilder")
    rm_adapter: str | None = setting(None, "PEFT adapter folder for the RM")
    search: str = setting("batched", "batched | textattack: batched scores every instruction's candidates in one RM "
                                     "pass per round (cheaper per query, no TextAttack); textattack runs the "
                                     "per-instruction TextAttack recipes")
    recipe: str = setting("greedy", "--search textattack only: greedy | char | embedding | hotflip | wordnet "
                                    "(see docs/negatives.md)")
    query_budget: int = setting(300, "RM forward queries per instruction for the search")
    margin: float = setting(0.0, "success when R(I∘r*) >= R(I∘r) + margin")
    max_candidates: int = setting(8, "replacements tried per word and transformation (--search batched: also the "
                                     "word positions tried per text and round)")
    max_words: int = setting(128, "only the first N words of a response are perturbed")
    max_modify_rate: float = setting(0.3, "at most this share of the words is changed")
    template: str = setting("stackllama", "stackllama | chat | format string (as for seam score)")
    device: str = setting("auto", "where the RM runs: auto | cpu | cuda | cuda:N")
    dtype: str = setting("auto", "RM weights: auto | float32 | bfloat16 | float16 (auto: float32 on CPU, bfloat16 on GPU)")
    rm_label: str | None = setting(None, "which logit of a multi-label RM is the reward: an index or a label name "
                                         "(default: the RM's single label)")
    device_map: str | None = setting(None, "spread the RM over the GPUs with accelerate (auto, balanced, ...): "
                                           "for RMs that do not fit one device")
    allow_pickle: bool = setting(False, "allow .bin/.pt weights (pickle can run code: only for trusted checkpoints)")
    batch_tokens: int = setting(16384, "padded tokens per RM forward batch")
    max_prompt_tokens: int | None = setting(None, "keep the first N prompt tokens")
    max_response_tokens: int | None = setting(None, "keep the first N response tokens")
    seed: int = setting(0, "for the corrupted start and the character edits")
    gradient: bool = setting(True, "--search batched: HotFlip swaps and gradient word order from one batched "
                                   "backward pass per round (off: black-box)")
    beam: int = setting(1, "--search batched: texts kept per instruction each round (1: greedy hill-climb)")
    round_candidates: int = setting(24, "--search batched: new texts scored per instruction and round, at most")
    round_texts: int = setting(16384, "--search batched: texts in one RM call, at most (further instructions wait "
                                      "for a free place)")

    def validate(self) -> None:
        check_k(self.k)
        if self.search not in SEARCH_NAMES:
            raise SeamError(f"--search {self.search!r}: choose one of {', '.join(SEARCH_NAMES)}")
        if self.recipe not in RECIPE_NAMES:
            raise SeamError(f"--recipe {self.recipe!r}: choose one of {', '.join(RECIPE_NAMES)}")
        if self.search == "batched" and self.recipe != "greedy":
            raise SeamError(f"--recipe {self.recipe} applies to --search textattack only (the batched search has "
                            "no recipes): add --search textattack")
        if self.query_budget < 2:
            raise SeamError(f"--query-budget {self.query_budget}: must be at least 2 RM queries")
        if self.max_candidates < 1 or self.max_words < 1:
            raise SeamError("--max-candidates and --max-words must be >= 1")
        if not 0.0 < self.max_modify_rate <= 1.0:
            raise SeamError(f"--max-modify-rate {self.max_modify_rate}: must be in (0, 1]")
        if self.beam < 1 or self.round_candidates < 1:
            raise SeamError(f"--beam {self.beam} / --round-candidates {self.round_candidates}: must be >= 1")
        if self.round_texts < self.round_candidates:
            raise SeamError(f"round_texts {self.round_texts}: must be at least --round-candidates ({self.round_candidates})")


class AdvBuilder:
    name = "adv"
    Config = AdvConfig

    def __init__(self, config: AdvConfig | None = None, rm=None):
        self.cfg = config or AdvConfig()
        self.cfg.validate()
        self._rm = rm

    def _load_rm(self):
        if self._rm is not None:
            return self._rm
        if not self.cfg.rm:
            raise SeamError("the adv builder needs the reward model: pass --rm DIR")
        return load_rm(self.cfg.rm, self.cfg.rm_adapter, self.cfg.device, self.cfg.dtype, self.cfg.allow_pickle,
                       label=self.cfg.rm_label, device_map=self.cfg.device_map)

    def build(self, instructions: pd.DataFrame, progress: ProgressFn | None = None) -> tuple[pd.DataFrame, dict]:
        t0 = time.time()
        cfg = self.cfg
        instructions = check_instructions(instructions)
        rm = self._load_rm()
        scorer = RewardScorer(rm, get_template(cfg.template, rm.tokenizer), cfg.max_prompt_tokens,
                              cfg.max_response_tokens, cfg.batch_tokens)
        ids = instructions["id"].astype(str).tolist()
        prompts = instructions["prompt"].tolist()
        golds = instructions["chosen"].tolist()
        starts, start_kinds = [], []
        for rid, p, gold, rej in zip(ids, prompts, golds, instructions["rejected"].tolist()):
            if isinstance(rej, str) and rej.strip() and rej.strip() != gold.strip():
                starts.append(rej)
                start_kinds.append("rejected")
            else:
                text, kind = first_corruption(gold, cfg.seed, rid, p)
                starts.append(text)
                start_kinds.append(f"corrupted:{kind}")
        # one batched pass for all gold and start rewards
        rewards = scorer.score(prompts + prompts, golds + starts)
        r_gold, r_start = rewards[:len(ids)], rewards[len(ids):]
        thresholds = [float(g) + cfg.margin for g in r_gold]
        pre_queries = 2 * len(ids)
        rounds = None
        if cfg.search == "batched":
            from .adv_batch import BatchedSearch  # lazy: torch

            search = BatchedSearch(rm, scorer, cfg)
            results = search.run(ids, prompts, starts, r_start, thresholds, golds, progress)
            rounds = search.rounds
        else:
            from .adv_attack import AttackRunner  # lazy: pulls in textattack and torch (imported offline only now)

            runner = AttackRunner(rm, scorer, cfg)
            results = []
            for i in range(len(ids)):
                results.append(runner.run(prompts[i], starts[i], thresholds[i]))
                if progress:
                    progress(i + 1, len(ids), "attack")
        recipe = cfg.recipe if cfg.search == "textattack" else "batched"
        out_ids, texts, metas = [], [], []
        successes = start_successes = attack_queries = grad_calls = 0
        per_success_queries = []
        for i, (rid, res) in enumerate(zip(ids, results)):
            threshold = thresholds[i]
            attack_queries += res.queries
            grad_calls += res.grad_calls
            start_successes += int(float(r_start[i]) >= threshold)
            if res.success:
                successes += 1
                per_success_queries.append(res.queries)
            pool = [(t, r, n) for t, r, n in res.pool if t.strip() and t != starts[i] and t.strip() != golds[i].strip()]
            pool.sort(key=lambda x: (-(x[1] >= threshold), -x[1], x[0]))
            for rank, (text, reward, changed) in enumerate(pool[:cfg.k]):
                out_ids.append(rid)
                texts.append(text)
                metas.append({
                    "recipe": recipe, "search": cfg.search, "start": start_kinds[i], "rank": rank + 1,
                    "success": bool(reward >= threshold), "attack_success": bool(res.success),
                    "rm_gold": round(float(r_gold[i]), 6), "rm_start": round(float(r_start[i]), 6),
                    "rm_neg": round(float(reward), 6), "margin": cfg.margin, "words_changed": int(changed),
                    "queries": int(res.queries), "grad_calls": int(res.grad_calls),
                })
        frame = negatives_frame(out_ids, self.name, texts, metas)
        stats = count_stats(self.name, ids, frame, cfg.k, t0)
        n = len(ids)
        total_queries = pre_queries + attack_queries
        stats.update({
            "search": cfg.search,
            "recipe": recipe,
            "beam": cfg.beam if cfg.search == "batched" else None,
            "rounds": rounds,
            "query_budget": cfg.query_budget,
            "margin": cfg.margin,
            "attacked": n,
            "successes": successes,
            "success_rate": successes / n if n else None,
            "start_already_succeeds": start_successes,
            "rm_queries": int(total_queries),
            "attack_queries": int(attack_queries),
            "grad_calls": int(grad_calls),
            "queries_per_success": (total_queries / successes) if successes else None,
            "median_attack_queries_per_success": float(np.median(per_success_queries)) if per_success_queries else None,
            "successful_negatives": int(sum(m["success"] for m in metas)),
            "rm_truncated": int(scorer.truncated),
        })
        stats["lines"] = _lines(stats)
        return frame, stats


def _lines(s: dict) -> list[str]:
    rate = f"{100 * s['success_rate']:.1f}%" if s["success_rate"] is not None else "n/a"
    qps = f"{s['queries_per_success']:.1f}" if s["queries_per_success"] is not None else "n/a (no success)"
    how = (f"batched search (beam {s['beam']}, {s['rounds']} round{'' if s['rounds'] == 1 else 's'})"
           if s["search"] == "batched"
           else f"TextAttack recipe {s['recipe']}")
    return [
        f"  {how}, budget {s['query_budget']} queries, margin {s['margin']}: "
        f"success {s['successes']}/{s['attacked']} ({rate}); {s['start_already_succeeds']} starts already fooled the RM",
        f"  RM queries {s['rm_queries']} ({s['attack_queries']} in the search, {s['grad_calls']} gradient passes); "
        f"RM queries per success {qps}; successful negatives {s['successful_negatives']}",
    ]
