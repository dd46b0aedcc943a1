"""Batched scorers equal the plain per-sample implementation of DESIGN.md section 2."""

import numpy as np
import pytest

from seam.errors import SeamError
from seam.models.reference import pm_logprob_plain, score_plain
from seam.models.scoring import PolicyScorer, RewardScorer, _token_batches
from seam.models.templates import get_template

from helpers import random_texts


@pytest.mark.parametrize("template", ["stackllama", "chat", "<|im_start|>Q: {prompt} A: {response}"])
@pytest.mark.parametrize("batch_tokens", [128, 4096])
def test_batched_equals_plain(tiny_loaded, template, batch_tokens):
    pm, rm = tiny_loaded
    prompts, responses = random_texts(12, seed=hash(template) % 1000)
    tpl_pm, tpl_rm = get_template(template, pm.tokenizer), get_template(template, rm.tokenizer)
    lp, tok, trunc = PolicyScorer(pm, tpl_pm, batch_tokens=batch_tokens).score(prompts, responses)
    rew = RewardScorer(rm, tpl_rm, batch_tokens=batch_tokens).score(prompts, responses)
    r0, lp0, tok0 = score_plain(pm, rm, tpl_pm, tpl_rm, prompts, responses)
    assert (tok == tok0).all()
    assert np.abs(lp - lp0).max() < 1e-4
    assert np.abs(rew - r0).max() < 1e-4
    assert not trunc.any()


def test_token_count_is_response_plus_eos(tiny_loaded):
    pm, _ = tiny_loaded
    tpl = get_template("stackllama")
    resp = "banana banana"
    n_resp = len(pm.tokenizer(" " + resp, add_special_tokens=False)["input_ids"])  # upper bound check below
    _, tok, _ = PolicyScorer(pm, tpl).score(["What is it?"], [resp])
    # at least one token for the response and exactly one extra for EOS
    assert 2 <= tok[0] <= n_resp + 1
    _, tok_empty, _ = PolicyScorer(pm, tpl).score(["What is it?"], [""])
    assert tok_empty[0] == 1  # only the appended EOS


def test_duplicate_inputs_scored_once_and_aligned(tiny_loaded):
    pm, rm = tiny_loaded
    tpl = get_template("stackllama")
    calls = []
    scorer = PolicyScorer(pm, tpl)
    lp, _, _ = scorer.score(["p", "p", "q", "p"], ["x", "y", "x", "x"], progress=calls.append)
    assert sum(calls) == 3  # ("p","x") scored once
    assert lp[0] == lp[3] and lp[0] != lp[2]
    single = pm_logprob_plain(pm.model, pm.tokenizer, tpl, "q", "x")[0]
    assert lp[2] == pytest.approx(single, abs=1e-4)


def test_truncation_is_counted(tiny_loaded):
    pm, rm = tiny_loaded
    tpl = get_template("stackllama")
    long = "banana " * 40
    ps = PolicyScorer(pm, tpl, max_response_tokens=5)
    _, tok, trunc = ps.score(["q1", "q2"], [long, "short"])
    assert trunc.tolist() == [True, False]
    assert ps.truncated == 1
    assert tok[0] <= 6  # 5 response tokens (+ boundary) + EOS
    rs = RewardScorer(rm, tpl, max_response_tokens=5)
    rs.score(["q1", "q2"], [long, "short"])
    assert rs.truncated == 1


def test_context_overflow_cuts_response_and_counts(tiny_loaded):
    pm, _ = tiny_loaded  # max_position_embeddings = 512
    tpl = get_template("stackllama")
    ps = PolicyScorer(pm, tpl)
    _, tok, trunc = ps.score(["q"], ["fox " * 2000])
    assert trunc[0] and tok[0] < 512


def test_prompt_longer_than_context_is_an_error(tiny_loaded):
    pm, _ = tiny_loaded
    with pytest.raises(SeamError, match="--max-prompt-tokens"):
        PolicyScorer(pm, get_template("stackllama")).score(["fox " * 2000], ["a"])


def test_template_must_leave_context_before_response(tiny_loaded):
    pm, _ = tiny_loaded
    with pytest.raises(SeamError, match="template"):
        PolicyScorer(pm, get_template("{response} after {prompt}")).score(["q"], ["a"])


def test_bad_templates():
    with pytest.raises(SeamError, match="exactly once"):
        get_template("Q: {prompt}")
    with pytest.raises(SeamError, match="unknown template"):
        get_template("alpaca")


def test_token_batches_respect_budget():
    lengths = [5, 50, 7, 20, 20, 3, 100]
    batches = _token_batches(lengths, 60)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 60
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)  # length-sorted


def test_bfloat16_close_to_float32(tiny_models):
    from seam.models.loading import load_pm

    pm32 = load_pm(tiny_models[0], device="cpu", dtype="float32")
    pm16 = load_pm(tiny_models[0], device="cpu", dtype="bfloat16")
    assert pm16.info["dtype"] == "bfloat16"
    prompts, responses = random_texts(4, seed=3)
    tpl = get_template("stackllama")
    a, t1, _ = PolicyScorer(pm32, tpl).score(prompts, responses)
    b, t2, _ = PolicyScorer(pm16, tpl).score(prompts, responses)
    assert (t1 == t2).all()
    assert np.abs(a - b).max() / np.abs(a).max() < 0.05


def _brute_best(lengths, budget, call_cost):
    """Least total cost over every split of the sorted lengths into contiguous batches."""
    n = len(lengths)
    best = [0.0] + [float("inf")] * n
    for j in range(1, n + 1):
        for i in range(j):
            if j - i == 1 or (j - i) * lengths[j - 1] <= budget:
                best[j] = min(best[j], best[i] + (j - i) * lengths[j - 1] + call_cost)
    return best[n]


@pytest.mark.parametrize("seed", range(6))
def test_pack_sorted_is_least_padding(seed):
    from seam.models.scoring import pack_sorted

    rng = np.random.default_rng(seed)
    lengths = sorted(rng.integers(1, 40, rng.integers(1, 12)).tolist())
    budget, call_cost = int(rng.integers(30, 200)), int(rng.choice([0, 4, 64]))
    ends = pack_sorted(lengths, budget, call_cost)
    assert ends[-1] == len(lengths) and ends == sorted(set(ends))
    starts = [0] + ends[:-1]
    cost = 0
    for a, b in zip(starts, ends):
        assert b - a == 1 or (b - a) * lengths[b - 1] <= budget
        cost += (b - a) * lengths[b - 1] + call_cost
    assert cost == _brute_best(lengths, budget, call_cost)
    assert pack_sorted([], 10) == []


def test_pack_sorted_extra_columns_count_in_the_budget():
    from seam.models.scoring import pack_sorted

    ends = pack_sorted([10] * 6, budget=60, call_cost=1000, extra=20)
    starts = [0] + ends[:-1]
    assert all((b - a) * (10 + 20) <= 60 for a, b in zip(starts, ends)) and ends[-1] == 6


@pytest.mark.parametrize("fast", ["1", "0"])
def test_scorers_use_grouped_query_attention_and_restore_the_model(tiny_loaded, monkeypatch, fast):
    """Under a mask the scorers run torch SDPA with enable_gqa (no key/value head copies), then put the model back.

    Both forwards: the fast Llama-family path and transformers' own (SEAM_FAST_DECODER=0).
    """
    import torch

    import seam.models.attention as att

    monkeypatch.setenv("SEAM_FAST_DECODER", fast)
    pm, rm = tiny_loaded
    assert pm.model.config.num_key_value_heads < pm.model.config.num_attention_heads  # the tiny model is GQA
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(*a, **k):
        seen.append(k.get("enable_gqa", False))
        return real(*a, **k)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    prompts, responses = random_texts(3, seed=5)
    PolicyScorer(pm, get_template("stackllama")).score(prompts, responses)
    RewardScorer(rm, get_template("stackllama")).score(prompts, responses)
    assert seen and all(seen)
    assert pm.model.config._attn_implementation == "sdpa" and rm.model.config._attn_implementation == "sdpa"
    with att.use_gqa_sdpa(pm.model):
        assert pm.model.config._attn_implementation == att.NAME
    assert pm.model.config._attn_implementation == "sdpa"
