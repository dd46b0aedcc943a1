"""World v2's policies: SmolLM2-135M-Instruct with a LoRA SFT (the demo's PM), or a small causal LM
trained from scratch on the world's SFT split (the validation study's tier), and their samples.

SmolLM2 is the policy of `make demo`; the from-scratch tier exists so that the validation study can
afford 1,500+ instructions x n samples on 2 CPU cores. The small policy is a `LlamaForCausalLM` from
`seam.models.tiny.tiny_config` with a byte-level BPE tokenizer trained on the SFT text, digits
split one per token (so a few layers can learn the arithmetic), fine-tuned with the project's own
`seam.train.train_sft` (TRL SFTTrainer; loss on the response and EOS) and sampled with the
project's batched `seam.train.eval.generate`, rendered with the same template as scoring.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from ...models.loading import load_pm
from ...models.templates import get_template
from ...models.tiny import build_tokenizer, save_fresh_llama
from ...train import train_sft
from ...train.merge import merge_adapter
from ...train.config import SFTConfig
from ...train.eval import generate

TEMPLATE = "stackllama"


def build_causal_base(out: Path, texts: list[str], *, vocab_size: int, hidden: int, layers: int, heads: int,
                      seed: int) -> Path:
    """A fresh LlamaForCausalLM and its tokenizer (digits split), saved to `out`."""
    tok = build_tokenizer(vocab_size, texts, split_digits=True)
    return save_fresh_llama(out, tok, role="pm", hidden=hidden, layers=layers, heads=heads, seed=seed)


def train_policy(sft_file: Path, base: Path, out: Path, *, epochs: float, learning_rate: float, batch_size: int,
                 seed: int):
    """Full fine-tune of `base` on the SFT rows in `sft_file` (prompt, chosen); returns the TrainResult."""
    shutil.rmtree(out, ignore_errors=True)
    cfg = SFTConfig(model=str(base), data=str(sft_file), output_dir=str(out), num_train_epochs=epochs,
                    per_device_train_batch_size=batch_size, learning_rate=learning_rate, warmup_steps=20, seed=seed,
                    device="cpu", report_to="none", max_length=256, logging_steps=50, disable_tqdm=True,
                    template=TEMPLATE)
    return train_sft(cfg)


def train_policy_lora(sft_file: Path, base: Path, out: Path, *, steps: int, batch_size: int, learning_rate: float,
                      lora_r: int, seed: int, progress=None):
    """LoRA SFT of `base` (SmolLM2) on the SFT rows for `steps` optimizer steps, merged into a plain HF folder
    at `out` (what `seam score` and transformers load). Returns the TrainResult of the adapter run."""
    run = out.parent / f"{out.name}-lora"
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    cfg = SFTConfig(model=str(base), data=str(sft_file), output_dir=str(run), max_steps=steps, lora=True, lora_r=lora_r,
                    lora_alpha=2 * lora_r, per_device_train_batch_size=batch_size, learning_rate=learning_rate,
                    warmup_steps=max(1, steps // 10), seed=seed, device="cpu", report_to="none", max_length=256,
                    logging_steps=max(1, steps // 10), disable_tqdm=True, template=TEMPLATE)
    callback = None if progress is None else (lambda step, metrics: progress(step, steps))
    res = train_sft(cfg, metrics_callback=callback)
    merge_adapter(run, out, base=str(base), role="pm")
    shutil.rmtree(run, ignore_errors=True)
    return res


def sample_policy(pm_dir: Path, prompts: Sequence[str], n: int, *, temperature: float = 1.0, seed: int = 0,
                  max_new_tokens: int = 64, batch_size: int = 256, progress=None) -> list[list[str]]:
    """`n` samples per prompt at `temperature` (top-p 1, no top-k: the policy's own distribution).

    All prompts x n go through one batched, length-sorted `generate`; sample j of prompt i is
    ``out[i][j]``."""
    loaded = load_pm(str(pm_dir), device="cpu")
    template = get_template(TEMPLATE, loaded.tokenizer)
    flat = [p for p in prompts for _ in range(n)]
    texts = generate(loaded, flat, template, max_new_tokens=max_new_tokens, temperature=temperature, top_p=1.0,
                     seed=seed, batch_size=batch_size, progress=progress)
    return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]
