"""The scoring-only Llama-family forward (seam/models/fastpath.py) equals the transformers forward."""

from pathlib import Path

import numpy as np
import pytest

from seam.models.fastpath import FastDecoder, _why_not, fast_decoder
from seam.models.loading import LoadedModel
from seam.models.reference import score_plain
from seam.models.scoring import PolicyScorer, RewardScorer, _decoder_backend, _HFDecoder
from seam.models.templates import get_template

from helpers import random_texts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(kind: str, tok, **extra):
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    cls = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config}[kind]
    kw = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=512, pad_token_id=tok.pad_token_id,
              eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id, tie_word_embeddings=False)
    if kind == "mistral":
        kw["sliding_window"] = None
    kw.update(extra)
    return cls(**kw)


def _models(kind: str, seed: int = 0, **extra):
    """(PM, RM) LoadedModels of one architecture, random weights (qwen2 has q/k/v biases)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from seam.models.tiny import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(seed)
    pm = AutoModelForCausalLM.from_config(_config(kind, tok, **extra), attn_implementation="sdpa").eval()
    torch.manual_seed(seed + 1)
    rm = AutoModelForSequenceClassification.from_config(_config(kind, tok, num_labels=1, **extra),
                                                        attn_implementation="sdpa").eval()
    with torch.no_grad():  # random biases, so a wrong bias path cannot pass unnoticed
        for m in (pm, rm):
            for name, p in m.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0, 0.5)
    return (LoadedModel(pm, tok, "pm", Path("."), "pm"), LoadedModel(rm, tok, "rm", Path("."), "rm"))


ARCHS = {
    "llama": {},
    "mistral": {},
    "qwen2": {},  # q/k/v biases
    "mistral-window": {"sliding_window": 6},  # every layer slides, far shorter than the texts
    "qwen2-window": {"use_sliding_window": True, "sliding_window": 5, "max_window_layers": 1},  # mixed layers
}


@pytest.fixture(scope="module", params=list(ARCHS))
def arch_models(request):
    return request.param, _models(request.param.split("-")[0], **ARCHS[request.param])


def test_fast_path_is_chosen_for_the_llama_family(arch_models):
    kind, (pm, rm) = arch_models
    assert isinstance(_decoder_backend(pm.model), FastDecoder)
    assert isinstance(_decoder_backend(rm.model), FastDecoder)
    if kind.startswith("qwen2"):
        assert pm.model.model.layers[0].self_attn.q_proj.bias is not None
    if kind == "qwen2-window":
        assert fast_decoder(pm.model.model).windows == [None, 5, 5]
    # transformers' sliding masks count key columns, so its path takes one prompt per window
    assert _HFDecoder(pm.model.model).gapless == kind.endswith("window")


def test_full_forward_equals_transformers(arch_models):
    import torch

    _, (pm, _) = arch_models
    dec = pm.model.model
    ids = torch.randint(3, len(pm.tokenizer), (3, 17))
    mask = torch.ones_like(ids)
    mask[1, 11:] = 0  # right padding
    ids[1, 11:] = pm.tokenizer.pad_token_id
    pos = torch.arange(17).unsqueeze(0).expand(3, -1)
    with torch.inference_mode():
        want = dec(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
        got, _ = fast_decoder(dec).forward(ids, pos, mask)
    real = mask.bool()
    assert (got[real] - want[real]).abs().max() < 1e-5


def test_prefix_then_suffix_with_pruned_last_layer_equals_one_pass(arch_models):
    """Prefixes cached, suffixes on top (rows picking their own prefix), only a few positions wanted."""
    import torch

    _, (pm, _) = arch_models
    dec = pm.model.model
    fd = fast_decoder(dec)
    torch.manual_seed(3)
    prefixes = [torch.randint(3, 200, (n,)) for n in (9, 6)]
    rows = [(0, torch.randint(3, 200, (5,))), (1, torch.randint(3, 200, (8,))), (0, torch.randint(3, 200, (3,)))]
    P, S = 9, 8
    p_ids = torch.zeros(2, P, dtype=torch.long)
    p_mask = torch.zeros(2, P, dtype=torch.long)
    for g, p in enumerate(prefixes):
        p_ids[g, : len(p)], p_mask[g, : len(p)] = p, 1
    s_ids = torch.zeros(3, S, dtype=torch.long)
    s_mask = torch.zeros(3, S, dtype=torch.long)
    for r, (_, s) in enumerate(rows):
        s_ids[r, : len(s)], s_mask[r, : len(s)] = s, 1
    gsel = torch.tensor([g for g, _ in rows])
    plen = torch.tensor([len(p) for p in prefixes])
    want_rows, want_cols = torch.tensor([0, 1, 1, 2]), torch.tensor([4, 0, 7, 2])
    with torch.inference_mode():
        p_pos = torch.arange(P).unsqueeze(0).expand(2, -1)
        last, kv = fd.forward(p_ids, p_pos, p_mask, want=(torch.arange(2), plen - 1), keep_kv=True)
        s_pos = plen[gsel].unsqueeze(1) + torch.arange(S).unsqueeze(0)
        got = fd.forward(s_ids, s_pos, torch.cat([p_mask[gsel], s_mask], 1), past=kv, gsel=gsel, past_width=P,
                         want=(want_rows, want_cols))[0]
        for r, (g, s) in enumerate(rows):  # each row in one plain pass over prefix + suffix
            full = torch.cat([prefixes[g], s]).unsqueeze(0)
            hs = dec(input_ids=full).last_hidden_state[0]
            for k in np.flatnonzero(want_rows.numpy() == r):
                assert (got[k] - hs[len(prefixes[g]) + int(want_cols[k])]).abs().max() < 1e-5
        for g, p in enumerate(prefixes):
            hs = dec(input_ids=p.unsqueeze(0)).last_hidden_state[0]
            assert (last[g] - hs[-1]).abs().max() < 1e-5


@pytest.mark.parametrize("batch_tokens", [96, 4096])
def test_scorers_equal_plain_and_the_transformers_path(arch_models, batch_tokens, monkeypatch):
    kind, (pm, rm) = arch_models
    prompts, responses = random_texts(6, seed=11)
    tpl = get_template("stackllama")
    fast = (PolicyScorer(pm, tpl, batch_tokens=batch_tokens).score(prompts, responses),
            RewardScorer(rm, tpl, batch_tokens=batch_tokens).score(prompts, responses))
    monkeypatch.setenv("SEAM_FAST_DECODER", "0")
    assert isinstance(_decoder_backend(pm.model), _HFDecoder)
    hf = (PolicyScorer(pm, tpl, batch_tokens=batch_tokens).score(prompts, responses),
          RewardScorer(rm, tpl, batch_tokens=batch_tokens).score(prompts, responses))
    r0, lp0, tok0 = score_plain(pm, rm, tpl, tpl, prompts, responses)
    for (lp, tok, _), rew in (fast, hf):
        assert (tok == tok0).all()
        assert np.abs(lp - lp0).max() < 1e-4, kind
        assert np.abs(rew - r0).max() < 1e-4, kind


def test_bfloat16_fast_path_close_to_transformers(monkeypatch):
    import torch

    pm, rm = _models("llama", seed=4)
    pm.model.to(torch.bfloat16)
    rm.model.to(torch.bfloat16)
    prompts, responses = random_texts(4, seed=2)
    tpl = get_template("stackllama")
    a = PolicyScorer(pm, tpl).score(prompts, responses)[0], RewardScorer(rm, tpl).score(prompts, responses)
    monkeypatch.setenv("SEAM_FAST_DECODER", "0")
    b = PolicyScorer(pm, tpl).score(prompts, responses)[0], RewardScorer(rm, tpl).score(prompts, responses)
    assert np.abs(a[0] - b[0]).max() / np.abs(b[0]).max() < 0.02  # bf16 rounding only
    assert np.abs(a[1] - b[1]).max() < 0.1


def test_layouts_the_fast_path_does_not_cover_fall_back():
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    from seam.models.tiny import build_tokenizer

    tok = build_tokenizer()
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2))
    assert _why_not(gpt2.transformer) == "architecture"
    assert isinstance(_decoder_backend(gpt2), _HFDecoder)

    pm, _ = _models("llama", seed=5)
    lora = get_peft_model(pm.model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert "adapter" in _why_not(lora.base_model.model.model)
    assert isinstance(_decoder_backend(lora.base_model.model), _HFDecoder)



@pytest.mark.parametrize("fast", ["1", "0"])
def test_batches_of_empty_responses_only(arch_models, fast, monkeypatch):
    """Empty responses score only the EOS, read from the prefix's last state: a batch may want no suffix state."""
    _, (pm, rm) = arch_models
    monkeypatch.setenv("SEAM_FAST_DECODER", fast)
    tpl = get_template("stackllama")
    for prompts, responses in ((["two plus two"] * 2, ["", ""]), (["two plus two"] * 3 + ["sort"], ["", "", "four", ""])):
        lp, tok, _ = PolicyScorer(pm, tpl).score(prompts, responses)
        rew = RewardScorer(rm, tpl).score(prompts, responses)
        r0, lp0, tok0 = score_plain(pm, rm, tpl, tpl, prompts, responses)
        assert (tok == tok0).all() and np.abs(lp - lp0).max() < 1e-4 and np.abs(rew - r0).max() < 1e-4
