"""Tiny random models built from a config, for tests and `seam demo --tiny` (no download).

Both share one byte-level BPE tokenizer trained here in well under a second, so a PM and an RM
built together can be used by PPO (same tokenizer).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..io import atomic_output

TINY_CORPUS = [
    "Question: What is two plus two?\n\nAnswer: Two plus two is four.",
    "The quick brown fox jumps over the lazy dog. Sort the list 3, 1, 2 in ascending order.",
    "How many letters are in the word banana? The word banana has six letters.",
    "Convert 3 kilometres to metres. 3 kilometres is 3000 metres. Which is larger, 17 or 71?",
    "The capital of France is Paris. I cannot help with that. Water boils at 100 degrees Celsius.",
]


def build_tokenizer(vocab_size: int = 512, texts: list[str] | None = None, split_digits: bool = False):
    """A byte-level BPE tokenizer trained here on `texts` (default: a small built-in corpus), with a chat template.

    `split_digits`: every digit is its own token (as in the Llama tokenizers), so numbers are spelled
    out digit by digit; a small policy learns arithmetic far more easily that way."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if split_digits:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), tok.pre_tokenizer])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(TINY_CORPUS * 4 if texts is None else texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   bos_token="<|im_start|>", unk_token="<|endoftext|>")
    fast.chat_template = (
        "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{'<|im_start|>assistant\n'}}{% endif %}"
    )
    return fast


def tiny_config(tokenizer, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def build_tiny_models(out: str | Path, seed: int = 0, hidden: int = 64, layers: int = 2) -> tuple[Path, Path]:
    """Write `out/pm` (LlamaForCausalLM) and `out/rm` (LlamaForSequenceClassification, 1 label)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    return (save_fresh_llama(out / "pm", tok, role="pm", hidden=hidden, layers=layers, heads=4, seed=seed),
            save_fresh_llama(out / "rm", tok, role="rm", hidden=hidden, layers=layers, heads=4, seed=seed + 1))


def save_fresh_llama(out: str | Path, tokenizer, *, role: str, hidden: int, layers: int, heads: int, seed: int) -> Path:
    """A freshly initialised Llama of `role` "pm" (causal LM) or "rm" (one-label sequence classifier) sized by
    `hidden`, `layers`, `heads` (half as many key/value heads), saved with `tokenizer` to `out` (replaced)."""
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    cfg = tiny_config(tokenizer, hidden=hidden, layers=layers, heads=heads, kv_heads=max(1, heads // 2))
    if role == "rm":
        cfg.num_labels = 1
    torch.manual_seed(seed)
    model = (LlamaForSequenceClassification if role == "rm" else LlamaForCausalLM)(cfg)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)  # an earlier build
    return out
