"""A plain, obviously-correct implementation of DESIGN.md section 2: one model call per text.

It exists to check the batched scorers (tests) and as the baseline in benchmarks/score_bench.py.
Do not use it for real work: it is slow by design.
"""

from __future__ import annotations

import numpy as np

from .templates import Template


def pm_logprob_plain(model, tokenizer, template: Template, prompt: str, response: str) -> tuple[float, int]:
    """log P(response | prompt) over tokens overlapping the response span + appended EOS; and T."""
    import torch

    r = template.render(prompt, response)
    enc = tokenizer(r.text, add_special_tokens=True, return_offsets_mapping=True)
    ids = list(enc["input_ids"]) + [tokenizer.eos_token_id]
    scored = [t for t, (s, e) in enumerate(enc["offset_mapping"])
              if e > s and s < r.response_end and e > r.response_start and r.response_end > r.response_start]
    scored.append(len(ids) - 1)
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids], device=device)).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
    total = sum(float(logp[t - 1, ids[t]]) for t in scored)
    return total, len(scored)


def rm_reward_plain(model, tokenizer, template: Template, prompt: str, response: str, label: int = 0) -> float:
    """The RM's logit `label` (the reward) for one rendered text."""
    import torch

    r = template.render(prompt, response)
    ids = tokenizer(r.text, add_special_tokens=True)["input_ids"]
    device = next(model.parameters()).device
    with torch.inference_mode():
        return float(model(input_ids=torch.tensor([ids], device=device)).logits[0, label].float())


def score_plain(pm, rm, template_pm: Template, template_rm: Template, prompts, responses):
    """Per-sample loop over both models. Returns (rewards, logprob_sums, tokens)."""
    label = int(rm.info.get("reward_label", 0))
    rewards = np.array([rm_reward_plain(rm.model, rm.tokenizer, template_rm, p, r, label) for p, r in zip(prompts, responses)])
    lp = [pm_logprob_plain(pm.model, pm.tokenizer, template_pm, p, r) for p, r in zip(prompts, responses)]
    return rewards, np.array([x[0] for x in lp]), np.array([x[1] for x in lp], dtype=np.int64)
