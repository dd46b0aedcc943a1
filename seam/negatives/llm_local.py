"""`local` backend: a local causal LM writes one flawed answer per sample, in batches.

Small instruct models (SmolLM2-135M-Instruct) cannot follow "give 30 numbered answers", so each
sample asks for *one* lower-quality answer with one named flaw (the paper's four kinds, cycled
over the k samples for variety), rendered through the tokenizer's chat template. Prompts are
length-sorted and generated ``batch_size`` sequences at a time with left padding, sampled with a
seeded RNG that is forked so the caller's global torch RNG state is left as it was.
"""

from __future__ import annotations

from ..errors import SeamError
from ..models.attention import use_gqa_sdpa
from ..models.loading import load_pm
from .prompting import FLAWS, single_messages


class LocalBackend:
    name = "local"

    def __init__(self, cfg, loaded=None):
        self.cfg = cfg
        if loaded is None:
            if not cfg.local_model:
                raise SeamError("--backend local needs --local-model DIR (an HF causal LM folder or a folder with one .gguf file)")
            loaded = load_pm(cfg.local_model, device=cfg.device, dtype=cfg.dtype, flag="--local-model")
        self.lm = loaded
        self.model_name = loaded.path.name
        self.stats = {"sequences": 0, "new_tokens": 0}

    def _render(self, messages: list[dict]) -> list[int]:
        tok = self.lm.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return tok(messages[-1]["content"] + "\n\nAnswer:", add_special_tokens=True)["input_ids"]

    def propose(self, rows, need, round_, progress):
        import torch

        cfg, tok, model = self.cfg, self.lm.tokenizer, self.lm.model
        jobs = []  # (row index, flaw, prompt ids)
        for i, (row, n) in enumerate(zip(rows, need)):
            if n <= 0:
                continue
            q, a = row.prompt[:cfg.max_prompt_chars], row.chosen[:cfg.max_prompt_chars]
            per_flaw = [n // len(FLAWS) + (1 if j < n % len(FLAWS) else 0) for j in range(len(FLAWS))]
            for flaw, count in zip(FLAWS, per_flaw):
                ids = self._render(single_messages(q, a, flaw))
                jobs.extend([(i, flaw, ids)] * count)
        order = sorted(range(len(jobs)), key=lambda j: len(jobs[j][2]))
        out: list[list] = [[] for _ in rows]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = self.lm.device
        done = 0
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode(), \
                use_gqa_sdpa(model):
            torch.manual_seed(cfg.seed * 1000 + round_)
            for a in range(0, len(order), cfg.batch_size):
                batch = [jobs[j] for j in order[a:a + cfg.batch_size]]
                width = max(len(b[2]) for b in batch)
                ids = torch.tensor([[pad] * (width - len(b[2])) + list(b[2]) for b in batch], device=device)
                mask = torch.tensor([[0] * (width - len(b[2])) + [1] * len(b[2]) for b in batch], device=device)
                gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=cfg.temperature > 0,
                                     temperature=max(cfg.temperature, 1e-5), top_p=cfg.top_p,
                                     max_new_tokens=cfg.max_new_tokens, pad_token_id=pad,
                                     eos_token_id=tok.eos_token_id)
                new = gen[:, width:]
                for (i, flaw, _), seq in zip(batch, new):
                    n_tok = int((seq != pad).sum())
                    self.stats["new_tokens"] += n_tok
                    text = tok.decode(seq, skip_special_tokens=True).strip()
                    if text:
                        out[i].append((text, {"backend": "local", "model": self.model_name, "flaw": flaw, "round": round_}))
                self.stats["sequences"] += len(batch)
                done += len(batch)
                if progress:
                    progress(done, len(jobs), f"local round {round_ + 1}")
        return out
