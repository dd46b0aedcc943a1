"""Judges of policy responses, behind one interface and a name registry.

* ``gold``  the demo world's programmatic judge (rows whose meta carries a testbed task), 0-1
* ``rm``    a reward model's score R(I∘r)
* ``llm``   an LLM with the MT-Bench single-answer prompt (paper appendix C, Prompt 1) through any
            OpenAI-compatible endpoint; the rating is parsed from ``[[N]]``, 1-10
* ``local`` a local causal LM given the same prompt; instead of free generation, the rating is the
            expectation of N under the model's distribution over the continuations ``N]]`` after
            ``Rating: [[`` (N = 1..10): batched, deterministic, and never unparsable

A judge returns one float per response, NaN where it cannot judge (counted by the caller).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import SeamError
from ..models.loading import load_pm, load_rm
from ..models.scoring import PolicyScorer, RewardScorer
from ..models.templates import FormatTemplate, get_template
from ..testbed import judge, task_from_row

# Prompt 1 of the paper (MT-Bench single-answer grading).
JUDGE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the "
    "user question displayed below. Your evaluation should consider factors such as the helpfulness, relevance, "
    "accuracy, depth, creativity, and level of detail of the response. Begin your evaluation by providing a short "
    "explanation. Be as objective as possible. After providing your explanation, please rate the response on a scale "
    "of 1 to 10 by strictly following this format: \"[[rating]]\", for example: \"Rating: [[5]]\"."
)
JUDGE_USER = ("[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n"
              "[The End of Assistant's Answer]")
_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_RATING_LOOSE = re.compile(r"\[\s*(\d+(?:\.\d+)?)\s*\]")


def parse_rating(text: str | None) -> float:
    """The rating in ``[[N]]`` (MT-Bench's fallback: ``[N]``), NaN when absent or outside 0-10.

    >>> parse_rating("Good answer. Rating: [[7]]"), parse_rating("no rating")
    (7.0, nan)
    """
    if not text:
        return float("nan")
    m = _RATING.search(text) or _RATING_LOOSE.search(text)
    if not m:
        return float("nan")
    value = float(m.group(1))
    return value if 0 <= value <= 10 else float("nan")


@dataclass
class JudgeSettings:
    """What the judges need; each judge reads only its own fields."""

    template: str | None = None  # how the RM sees (prompt, response); None = the evaluation's template
    rm: str | None = None  # rm judge: reward model folder
    rm_adapter: str | None = None
    llm_model: str | None = None  # llm judge: model name at the endpoint
    base_url: str | None = None  # llm judge: OpenAI-compatible base URL (None: the client's default)
    api_key_env: str = "OPENAI_API_KEY"  # llm judge: environment variable holding the key
    max_workers: int = 4  # llm judge: parallel requests
    local_model: str | None = None  # local judge: causal LM folder
    device: str = "auto"
    dtype: str = "auto"
    allow_pickle: bool = False
    batch_tokens: int = 16384
    client: Any = None  # injected OpenAI-compatible client (tests, custom auth)


class Judge:
    name = "judge"
    scale = (0.0, 1.0)

    def score(self, rows: pd.DataFrame, responses: list[str]) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class GoldJudge(Judge):
    """The demo world's programmatic judge; NaN for rows without testbed meta."""

    name = "gold"
    scale = (0.0, 1.0)

    def __init__(self, settings: JudgeSettings | None = None):
        self._judge, self._task = judge, task_from_row

    def applies(self, row: dict) -> bool:
        meta = row.get("meta")
        return isinstance(meta, dict) and {"category", "answer", "params"} <= set(meta)

    def score(self, rows, responses):
        out = np.full(len(responses), np.nan)
        for i, (row, resp) in enumerate(zip(rows.to_dict("records"), responses)):
            if self.applies(row):
                out[i] = self._judge(self._task(row), resp)
        return out


class RMJudge(Judge):
    name = "rm"
    scale = (-np.inf, np.inf)

    def __init__(self, settings: JudgeSettings):
        if not settings.rm:
            raise SeamError("the rm judge needs --rm DIR (a reward model)")
        self.loaded = load_rm(settings.rm, settings.rm_adapter, settings.device, settings.dtype, settings.allow_pickle)
        self.scorer = RewardScorer(self.loaded, get_template(settings.template or "stackllama", self.loaded.tokenizer),
                                   batch_tokens=settings.batch_tokens)

    def score(self, rows, responses):
        return self.scorer.score(rows["prompt"].tolist(), list(responses))


class LLMJudge(Judge):
    """MT-Bench single-answer grading through an OpenAI-compatible chat endpoint."""

    name = "llm"
    scale = (1.0, 10.0)

    def __init__(self, settings: JudgeSettings):
        if not settings.llm_model:
            raise SeamError("the llm judge needs --judge-model NAME (the model served at --base-url)")
        self.model = settings.llm_model
        self.max_workers = max(1, int(settings.max_workers))
        self.client = settings.client
        if self.client is None:
            from openai import OpenAI

            key = os.environ.get(settings.api_key_env) or ("EMPTY" if settings.base_url else None)
            if not key:
                raise SeamError(f"the llm judge needs an API key in ${settings.api_key_env} (or --base-url for a local "
                                "OpenAI-compatible server that ignores keys)")
            self.client = OpenAI(base_url=settings.base_url, api_key=key, max_retries=2)
        self.failures: list[str] = []

    def _one(self, question: str, answer: str) -> float:
        try:
            reply = self.client.chat.completions.create(
                model=self.model, temperature=0, max_tokens=1024,
                messages=[{"role": "system", "content": JUDGE_SYSTEM},
                          {"role": "user", "content": JUDGE_USER.format(question=question, answer=answer)}])
            text = reply.choices[0].message.content
        except Exception as exc:  # network, auth, rate limits: NaN for this row, reported by the caller
            self.failures.append(f"{type(exc).__name__}: {exc}")
            return float("nan")
        return parse_rating(text)

    def score(self, rows, responses):
        questions = rows["prompt"].tolist()
        with ThreadPoolExecutor(self.max_workers) as pool:
            out = np.array(list(pool.map(self._one, questions, list(responses))), dtype=np.float64)
        if len(out) and np.isnan(out).all() and self.failures:
            raise SeamError(f"the llm judge failed on every response (first error: {self.failures[0][:200]}); "
                            "check --base-url, --judge-model and the API key")
        return out


class LocalJudge(Judge):
    """Expected MT-Bench rating under a local causal LM (no sampling, no parsing)."""

    name = "local"
    scale = (1.0, 10.0)
    RATINGS = tuple(range(1, 11))

    def __init__(self, settings: JudgeSettings):
        if not settings.local_model:
            raise SeamError("the local judge needs --local-judge DIR (a causal LM folder)")
        self.loaded = load_pm(settings.local_model, None, settings.device, settings.dtype, settings.allow_pickle,
                              flag="--local-judge")
        self.scorer = PolicyScorer(self.loaded, FormatTemplate("{prompt}{response}"), batch_tokens=settings.batch_tokens)

    def judge_prompt(self, question: str, answer: str) -> str:
        tok = self.loaded.tokenizer
        user = JUDGE_USER.format(question=question, answer=answer)
        if getattr(tok, "chat_template", None):
            try:
                text = tok.apply_chat_template([{"role": "system", "content": JUDGE_SYSTEM},
                                                {"role": "user", "content": user}],
                                               tokenize=False, add_generation_prompt=True)
            except Exception:  # templates without a system role
                text = tok.apply_chat_template([{"role": "user", "content": JUDGE_SYSTEM + "\n\n" + user}],
                                               tokenize=False, add_generation_prompt=True)
        else:
            text = f"{JUDGE_SYSTEM}\n\n{user}\n\n"
        return text + "Rating: [["

    def score(self, rows, responses):
        prompts = [self.judge_prompt(q, a) for q, a in zip(rows["prompt"].tolist(), responses)]
        k = len(self.RATINGS)
        flat_prompts = [p for p in prompts for _ in range(k)]
        flat_resp = [f"{r}]]" for _ in prompts for r in self.RATINGS]
        logp, _, _ = self.scorer.score(flat_prompts, flat_resp)
        logp = logp.reshape(len(prompts), k)
        w = np.exp(logp - logp.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        return w @ np.asarray(self.RATINGS, dtype=np.float64)


JUDGES: dict[str, Callable[[JudgeSettings], Judge]] = {
    "gold": GoldJudge,
    "rm": RMJudge,
    "llm": LLMJudge,
    "local": LocalJudge,
}


def build_judge(name: str, settings: JudgeSettings) -> Judge:
    try:
        builder = JUDGES[name]
    except KeyError:
        raise SeamError(f"--judge {name!r}: unknown judge; use one or more of {', '.join(JUDGES)}") from None
    return builder(settings)
