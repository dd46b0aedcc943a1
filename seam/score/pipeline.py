"""From an instructions table + a negatives table to SEAM details and scores, chunk by chunk.

Instructions are processed in chunks (``chunk_instructions`` at a time), so the model-side working
set does not grow with the data set, and a caller (the CLI, or the job worker that commits each
chunk) can stream results out and resume by skipping ids already done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from ..data.chat import with_messages
from ..errors import SeamError
from ..models.scoring import PolicyScorer, RewardScorer
from ..models.templates import get_template
from .config import ScoreConfig
from .formula import aggregate, details_frame

ProgressCallback = Callable[[int, int, str], None]  # (done, total, step)


@dataclass
class ChunkResult:
    ids: list[str]  # instruction ids covered by this chunk (also those without negatives)
    details: pd.DataFrame
    scores: pd.DataFrame


@dataclass
class RunStats:
    instructions: int = 0
    negatives: int = 0
    without_negatives: int = 0
    pm_truncated: int = 0
    rm_truncated: int = 0
    variants: dict = field(default_factory=dict)


class SeamScorer:
    """Holds the two scorers; `iter_chunks` yields per-chunk details and scores."""

    def __init__(self, pm, rm, cfg: ScoreConfig):
        cfg.validate()
        self.cfg = cfg
        self.pm_scorer = PolicyScorer(pm, get_template(cfg.template, pm.tokenizer), cfg.max_prompt_tokens,
                                      cfg.max_response_tokens, cfg.batch_tokens)
        self.rm_scorer = RewardScorer(rm, get_template(cfg.template, rm.tokenizer), cfg.max_prompt_tokens,
                                      cfg.max_response_tokens, cfg.batch_tokens)
        self.stats = RunStats()
        self.side_by_side = _want_side_by_side(cfg.side_by_side, pm, rm)

    def iter_chunks(self, instructions: pd.DataFrame, negatives: pd.DataFrame, done_ids: Iterable[str] = (),
                    progress: ProgressCallback | None = None) -> Iterator[ChunkResult]:
        cfg = self.cfg
        instructions = with_messages(instructions)  # chat rows from the store keep their conversation (meta.messages)
        negs = negatives
        if cfg.variants:
            unknown = set(cfg.variants) - set(negs["variant"].unique())
            if unknown:
                raise SeamError(f"--variants {', '.join(sorted(unknown))}: not in the negatives file (it has {', '.join(sorted(negs['variant'].unique()))})")
            negs = negs[negs["variant"].isin(cfg.variants)]
        negs = negs.assign(neg_index=negs.groupby(["id", "variant"], sort=False).cumcount())
        by_id = negs.groupby("id", sort=False).indices
        done = set(done_ids)
        todo = instructions[~instructions["id"].isin(done)]
        # sequences: each negative twice (PM, RM) and each gold once, for instructions that have negatives
        total = int(sum(len(by_id.get(i, ())) * 2 + 1 for i in todo["id"] if i in by_id))
        finished = 0
        self.stats.instructions += len(todo)

        def tick(n: int, step: str) -> None:
            nonlocal finished
            finished += n
            if progress:
                progress(finished, total, step)

        for start in range(0, len(todo), cfg.chunk_instructions):
            chunk = todo.iloc[start:start + cfg.chunk_instructions]
            ids = chunk["id"].tolist()
            rows = [by_id[i] for i in ids if i in by_id]
            self.stats.without_negatives += sum(1 for i in ids if i not in by_id)
            if not rows:
                yield ChunkResult(ids, details_frame([], [], [], [], [], [], []), aggregate(details_frame([], [], [], [], [], [], [])))
                continue
            cn = negs.iloc[np.concatenate(rows)]
            prompt_of = dict(zip(chunk["id"], chunk["prompt"]))
            gold_of = dict(zip(chunk["id"], chunk["chosen"]))
            n_prompts = [prompt_of[i] for i in cn["id"]]
            # RM: every gold once and every negative, in one call so each prompt is encoded once
            golds = [i for i in ids if i in by_id]
            before = finished
            rm_job = partial(self.rm_scorer.score, [prompt_of[i] for i in golds] + n_prompts,
                             [gold_of[i] for i in golds] + cn["text"].tolist())
            pm_job = partial(self.pm_scorer.score, n_prompts, cn["text"].tolist())
            ticks = (lambda n: tick(n, "RM gold + negatives"), lambda n: tick(n, "PM negatives"))
            if self.side_by_side:
                rm_all, (lp, tok, _) = run_side_by_side([rm_job, pm_job], ticks)
            else:
                rm_all, (lp, tok, _) = rm_job(progress=ticks[0]), pm_job(progress=ticks[1])
            repeated = len(golds) + 2 * len(cn) - (finished - before)  # the scorers tick distinct texts only
            if repeated > 0:
                tick(repeated, "repeated texts")
            rm_gold_of = dict(zip(golds, rm_all[:len(golds)]))
            rm_neg = rm_all[len(golds):]
            det = details_frame(cn["id"].tolist(), cn["variant"].tolist(), cn["neg_index"].to_numpy(),
                                [rm_gold_of[i] for i in cn["id"]], rm_neg, lp, tok, cfg.weighting)
            det = det.sort_values(["id", "variant", "neg_index"], kind="stable",
                                  key=lambda s: s.map({v: k for k, v in enumerate(ids)}) if s.name == "id" else s)
            det = det.reset_index(drop=True)
            self.stats.negatives += len(det)
            for v, n in det["variant"].value_counts().items():
                self.stats.variants[v] = self.stats.variants.get(v, 0) + int(n)
            self.stats.pm_truncated = self.pm_scorer.truncated
            self.stats.rm_truncated = self.rm_scorer.truncated
            yield ChunkResult(ids, det, aggregate(det, cfg.aggregate))


SIDE_BY_SIDE_MAX_HIDDEN = 512


def _want_side_by_side(mode: str, pm, rm) -> bool:
    """`auto`: small models (hidden size under 512) both on the CPU, with at least 2 torch threads.

    Measured on 2 cores: hidden 256 (the benchmark's small model) 1.15x faster side by side;
    hidden 576 (SmolLM2-135M) 5% slower, its products already use both cores well. A GPU runs one
    model at a time.
    """
    if mode != "auto":
        return mode == "on"
    import torch

    hidden = max(int(getattr(m.model.config, "hidden_size", 0) or 1 << 30) for m in (pm, rm))
    return (pm.device.type == "cpu" and rm.device.type == "cpu" and torch.get_num_threads() >= 2
            and hidden < SIDE_BY_SIDE_MAX_HIDDEN)


def run_side_by_side(jobs: list[Callable], progress: list[Callable[[int], None]]) -> list:
    """Run `jobs` (each called as ``job(progress=fn)``) at once in worker threads; return their results.

    Each worker gets an equal share of torch's CPU threads: small models' matrix products and
    element-wise operations scale poorly across threads, so two half-width models side by side
    finish sooner than one after the other on all threads (1.15x for the PM and RM of
    benchmarks/score_bench.py's small model on 2 cores; see _want_side_by_side for when). torch releases the GIL inside its
    operations. Progress is relayed to the calling thread, so callbacks (progress bars, database
    writes) never run on a worker; the first error a worker raises is raised here.
    """
    import queue
    import threading

    import torch

    total = torch.get_num_threads()
    share = max(1, total // len(jobs))
    events: queue.SimpleQueue = queue.SimpleQueue()
    results: list = [None] * len(jobs)
    errors: list = [None] * len(jobs)

    def work(k: int) -> None:
        try:
            torch.set_num_threads(share)
            results[k] = jobs[k](progress=lambda n: events.put((k, n)))
        except BaseException as exc:  # handed to the calling thread
            errors[k] = exc
        finally:
            events.put((k, None))

    workers = [threading.Thread(target=work, args=(k,), name=f"seam-score-{k}", daemon=True) for k in range(len(jobs))]
    try:
        for w in workers:
            w.start()
        running = len(workers)
        while running:
            try:
                k, n = events.get(timeout=0.5)
            except queue.Empty:
                continue
            if n is None:
                running -= 1
            elif progress[k]:
                progress[k](n)
    finally:
        torch.set_num_threads(total)
    for exc in errors:
        if exc is not None:
            raise exc
    return results
