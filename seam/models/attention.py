"""A scoring-time attention function: SDPA with grouped-query heads kept grouped under a mask.

transformers' ``sdpa`` path copies every key/value head ``num_heads / num_kv_heads`` times
whenever an attention mask is passed (its comment: masked GQA falls back to the math kernel on
CUDA). On a CPU, torch's SDPA takes the mask and ``enable_gqa=True`` directly and runs about 1.7x
faster for SmolLM2's shapes (9 query / 3 key-value heads), without the copies. The scorers always
pass a mask (padded prefixes, cached keys), so they switch a model to this function while they
run (``use_gqa_sdpa``) and switch it back afterwards. Results equal ``sdpa`` (same kernel family,
checked in tests/test_scoring.py).
"""

from __future__ import annotations

from contextlib import contextmanager

NAME = "seam_sdpa_gqa"
_registered = False


def _attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None, **kwargs):
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    if attention_mask is None or groups == 1 or query.device.type != "cpu" or kwargs.get("output_attentions"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    if attention_mask.ndim == 4:
        attention_mask = attention_mask[:, :, :, : key.shape[-2]]
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=dropout,
                                                           scale=scaling, is_causal=False, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, _attention)
    if NAME not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionMaskInterface.register(NAME, sdpa_mask)
    _registered = True


@contextmanager
def use_gqa_sdpa(model):
    """While inside, a model on ``sdpa`` attention uses the grouped-query function above; others are untouched."""
    cfg = getattr(model, "config", None)
    before = getattr(cfg, "_attn_implementation", None)
    if before != "sdpa" or not hasattr(cfg, "_attn_implementation_internal"):
        yield model
        return
    _register()
    cfg._attn_implementation_internal = NAME
    try:
        yield model
    finally:
        cfg._attn_implementation_internal = before
