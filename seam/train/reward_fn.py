"""The reward model as a TRL reward function (GRPO, RLOO): text in, one score per completion out.

TRL 1.12's `GRPOTrainer` / `RLOOTrainer` call a plain callable reward function as
``f(prompts=[...], completions=[...], completion_ids=[...], **columns)`` with the decoded
completions (`skip_special_tokens=True`) and every other dataset column as a list, and log its
mean under ``rewards/<f.__name__>/mean``. `RewardModelFunction` renders each (prompt, completion)
with the project's template (`seam.models.templates`, default ``stackllama``: "Question: {prompt}
\\n\\nAnswer: {response}") and scores it with `seam.models.scoring.RewardScorer`: exactly what
`seam score` reads as R(I∘r). The RM tokenizes the text itself, so it may use another tokenizer
than the policy (and, with ``--template chat``, its own chat template).

The raw prompts come from the ``seam_row`` column (an index into the prompts the function was
built with; they may carry chat messages), else the ``prompts`` argument is taken as raw prompts.
"""

from __future__ import annotations

from typing import Sequence

from ..errors import SeamError
from ..models.loading import load_rm
from ..models.scoring import RewardScorer
from ..models.templates import get_template

ROW_COLUMN = "seam_row"  # dataset column: index of the row's raw prompt in RewardModelFunction.prompts


def _text(completion) -> str:
    """A completion as text: TRL passes strings, or [{"role": "assistant", "content": ...}] for chat data."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


class RewardModelFunction:
    """``f(prompts, completions, seam_row=None, **kwargs) -> list[float]``: R(template(prompt, completion))
    under the reward model `loaded` (a `seam.models.loading.LoadedModel`), batched by `RewardScorer`.

    `prompts` (optional): the raw prompts that ``seam_row`` indexes. `truncated` counts the texts the
    RM had to cut to fit its context (in its own tokens; also logged per step through TRL's
    ``log_metric`` as ``rewards/<name>/truncated``); `calls` the batches scored."""

    def __init__(self, loaded, template: str = "stackllama", prompts: Sequence[str] | None = None,
                 name: str = "reward_model", max_prompt_tokens: int | None = None, batch_tokens: int = 16384):
        self.loaded = loaded
        self.template = get_template(template, loaded.tokenizer)
        self.scorer = RewardScorer(loaded, self.template, max_prompt_tokens=max_prompt_tokens, batch_tokens=batch_tokens)
        self.prompts = list(prompts) if prompts is not None else None
        self.__name__ = name  # TRL logs rewards/<__name__>/mean
        self.calls = 0

    @property
    def truncated(self) -> int:
        return self.scorer.truncated

    def raw_prompts(self, prompts: Sequence, rows: Sequence[int] | None) -> list:
        if rows is None or self.prompts is None:
            return [p if isinstance(p, str) else _text(p) for p in prompts]
        if len(rows) != len(prompts):
            raise SeamError(f"reward function: {len(rows)} {ROW_COLUMN} values for {len(prompts)} prompts")
        return [self.prompts[int(i)] for i in rows]

    def __call__(self, prompts: Sequence, completions: Sequence, seam_row: Sequence[int] | None = None,
                 log_metric=None, **kwargs) -> list[float]:
        if len(prompts) != len(completions):
            raise SeamError(f"reward function: {len(prompts)} prompts but {len(completions)} completions")
        raw = self.raw_prompts(prompts, seam_row)
        self.calls += 1
        before = self.scorer.truncated
        rewards = [float(x) for x in self.scorer.score(raw, [_text(c) for c in completions])]
        if log_metric is not None:  # TRL's hook: averaged per logging step next to the reward
            log_metric(f"rewards/{self.__name__}/truncated", float(self.scorer.truncated - before))
        return rewards


def load_reward_function(path: str, template: str = "stackllama", prompts: Sequence[str] | None = None,
                         device: str = "auto", dtype: str = "auto", allow_pickle: bool = False,
                         flag: str = "--reward-model", name: str = "reward_model") -> RewardModelFunction:
    """Load the RM at `path` (`load_rm`: HF folder, .gguf folder, LoRA run, cached hub id) as a
    `RewardModelFunction`. A causal LM (random score head) is refused."""
    loaded = load_rm(path, device=device, dtype=dtype, allow_pickle=allow_pickle, flag=flag, warn_fresh_head=False)
    if loaded.info.get("fresh_head"):
        raise SeamError(f"{flag} {path}: a causal LM, not a trained reward model (its score head would be random); "
                        "pass the folder written by `seam train rm`")
    return RewardModelFunction(loaded, template, prompts=prompts, name=name)
