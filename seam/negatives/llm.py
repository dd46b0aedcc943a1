"""`llm`: an LLM writes k worse answers per instruction (the paper's SEAM_GPT, appendix D.1).

Backends (a name registry, `BACKENDS`):

* ``openai``: any OpenAI-compatible chat-completions endpoint through the official client, one
  request per instruction with the paper's prompt; bounded concurrency, retries with backoff on
  429 / 5xx / timeouts, and an on-disk reply cache so a re-run costs nothing.
* ``local``: a local causal LM folder (HF layout or one .gguf file, e.g. SmolLM2-135M-Instruct),
  prompted through its chat template for one flawed answer at a time, sampled in batches.
* ``rules``: deterministic corruptions of the golden answer (tests, demos, no model at all).

The builder asks, de-duplicates (case/punctuation-insensitive, never the golden answer itself),
and asks again in another round while an instruction has fewer than k answers (``max_rounds``).
It never pads: whoever stays short is counted in the stats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, NamedTuple, Protocol

import pandas as pd

from ..errors import SeamError
from ..settings import Settings, setting
from .base import ProgressFn, check_instructions, check_k, count_stats, negatives_frame
from .llm_local import LocalBackend
from .llm_openai import OpenAIBackend
from .llm_rules import RulesBackend
from .prompting import dedupe


class Row(NamedTuple):
    id: str
    prompt: str
    chosen: str


Proposal = tuple[str, dict]  # (answer text, meta)


@dataclass
class LLMConfig(Settings):
    """Settings of the llm builder (CLI flags and the dashboard both build this)."""

    k: int = setting(30, "answers per instruction (at most)")
    backend: str = setting("openai", "openai | local | rules")
    model: str | None = setting(None, "openai: model name (else $OPENAI_MODEL)")
    base_url: str | None = setting(None, "openai: endpoint, e.g. http://127.0.0.1:8000/v1 (else $OPENAI_BASE_URL)")
    api_key_env: str = setting("OPENAI_API_KEY", "openai: name of the environment variable holding the key (never stored)")
    local_model: str | None = setting(None, "local: model folder (HF layout or one .gguf file)")
    temperature: float = setting(1.0, "sampling temperature (openai and local)")
    top_p: float = setting(0.95, "local: nucleus sampling")
    max_tokens: int = setting(4096, "openai: reply token limit")
    max_new_tokens: int = setting(256, "local: tokens per generated answer")
    timeout: float = setting(120.0, "openai: seconds per request")
    concurrency: int = setting(4, "openai: requests in flight")
    max_retries: int = setting(5, "openai: retries of one request on 429 / 5xx / timeout / connection errors")
    max_rounds: int = setting(2, "ask again while an instruction has fewer than k distinct answers")
    max_prompt_chars: int = setting(6000, "question and answer are cut to this many characters in prompts")
    batch_size: int = setting(32, "local: sequences per generate call (32 beats 16 by ~18% on a 2-core CPU)")
    device: str = setting("auto", "local: auto | cpu | cuda")
    dtype: str = setting("auto", "local: auto | float32 | bfloat16 | float16")
    cache: bool = setting(True, "openai: reuse cached replies")
    seed: int = setting(0, "rules and local: sampling seed")

    def validate(self) -> None:
        check_k(self.k)
        if self.backend not in BACKENDS:
            raise SeamError(f"--backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        for flag, v in (("--concurrency", self.concurrency), ("--max-rounds", self.max_rounds),
                        ("--batch-size", self.batch_size), ("--max-new-tokens", self.max_new_tokens),
                        ("--max-tokens", self.max_tokens)):
            if v < 1:
                raise SeamError(f"{flag} {v}: must be >= 1")
        if self.max_retries < 0:
            raise SeamError(f"--max-retries {self.max_retries}: must be >= 0")
        if self.timeout <= 0:
            raise SeamError(f"--timeout {self.timeout}: must be a positive number of seconds")
        if self.temperature < 0:
            raise SeamError(f"--temperature {self.temperature}: must be >= 0")


class LLMBackend(Protocol):
    name: str
    model_name: str
    stats: dict

    def propose(self, rows: list[Row], need: list[int], round_: int, progress: ProgressFn | None) -> list[list[Proposal]]:
        """For each row with need > 0, candidate answers with meta (may be more or fewer than need)."""


BACKENDS: dict[str, Callable[[LLMConfig], LLMBackend]] = {"openai": OpenAIBackend, "local": LocalBackend,
                                                          "rules": RulesBackend}


class LLMBuilder:
    name = "llm"
    Config = LLMConfig

    def __init__(self, config: LLMConfig | None = None, backend: LLMBackend | None = None):
        self.cfg = config or LLMConfig()
        self.cfg.validate()
        self._backend = backend

    def build(self, instructions: pd.DataFrame, progress: ProgressFn | None = None) -> tuple[pd.DataFrame, dict]:
        t0 = time.time()
        cfg = self.cfg
        instructions = check_instructions(instructions)
        backend = self._backend or BACKENDS[cfg.backend](cfg)
        rows = [Row(str(i), p, c) for i, p, c in zip(instructions["id"], instructions["prompt"], instructions["chosen"])]
        got: list[list[Proposal]] = [[] for _ in rows]
        seen: list[set] = [set() for _ in rows]
        rounds = 0
        for r in range(cfg.max_rounds):
            need = [max(0, cfg.k - len(g)) for g in got]
            if not any(need):
                break
            rounds += 1
            proposals = backend.propose(rows, need, r, progress)
            added = 0
            for i, props in enumerate(proposals):
                if need[i] <= 0 or not props:
                    continue
                by_text = {}
                for text, meta in props:
                    by_text.setdefault(text, meta)
                fresh = dedupe(list(by_text), rows[i].chosen, seen[i])[:need[i]]
                got[i].extend((t, by_text[t]) for t in fresh)
                added += len(fresh)
            if added == 0:
                break
        ids, texts, metas = [], [], []
        for row, props in zip(rows, got):
            for t, m in props:
                ids.append(row.id)
                texts.append(t)
                metas.append(m)
        frame = negatives_frame(ids, self.name, texts, metas)
        stats = count_stats(self.name, [r.id for r in rows], frame, cfg.k, t0)
        stats.update({"backend": backend.name, "model": backend.model_name, "rounds": rounds, **backend.stats})
        stats["lines"] = _lines(stats)
        return frame, stats


def _lines(s: dict) -> list[str]:
    parts = [f"  backend {s['backend']}, model {s['model']}, rounds {s['rounds']}"]
    if s["backend"] == "openai":
        parts.append(f"  requests {s['requests']}, cache hits {s['cache_hits']}, retries {s['retries']} "
                     f"({', '.join(f'{k} {v}' for k, v in s['errors'].items() if v) or 'no errors'}), "
                     f"failed instructions {s['failed']}")
        parts.append(f"  tokens: prompt {s['prompt_tokens']}, completion {s['completion_tokens']} "
                     f"(saved by the cache: {s['cached_tokens']})")
    elif s["backend"] == "local":
        parts.append(f"  sequences {s['sequences']}, new tokens {s['new_tokens']}")
    return parts
