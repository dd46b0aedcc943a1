"""Batched scorers for the reward model (rewards) and the policy model (response log-probs).

Token accounting follows DESIGN.md section 2 exactly:

* PM: the rendered text is tokenized once with the tokenizer's default special tokens, then the EOS
  id is appended. Scored tokens are those whose character span overlaps the response's span, plus
  the appended EOS. ``logprob_sum`` = sum of log p(token | all earlier tokens); ``tokens`` = count.
* RM: the rendered text with default special tokens (no extra EOS); reward = the single logit (or,
  for a multi-label classifier, the logit ``--rm-label`` picked: ``LoadedModel.reward_label``).
* Truncation is in each model's own tokens, applied to the response from the right (the prompt
  keeps its first ``max_prompt_tokens`` tokens when that is set); every truncated row is counted.

Speed: inputs are de-duplicated, sorted by length and packed into batches under a token budget;
everything runs under ``torch.inference_mode``. For the PM, the token prefix that all responses of
one prompt share is encoded once and its key/value cache is reused by every response of that
prompt; only hidden states at scored positions go through the LM head, in slices, so a
full-vocabulary log-softmax is never held for a whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..errors import SeamError
from .attention import use_gqa_sdpa
from .fastpath import fast_decoder, layer_windows
from .templates import Template

if TYPE_CHECKING:  # torch is imported where it is used, so importing this module stays cheap
    import torch

ProgressFn = Callable[[int], None]  # called with the number of sequences just finished


@dataclass
class Encoded:
    ids: list[int]
    scored: np.ndarray  # token positions scored (PM) -- empty for the RM
    truncated: bool


def _max_len(model, tokenizer) -> int:
    cfg_len = getattr(model.config, "max_position_embeddings", None) or 0
    tok_len = getattr(tokenizer, "model_max_length", 0) or 0
    if tok_len > 1_000_000:  # "no limit" sentinel
        tok_len = 0
    cands = [x for x in (cfg_len, tok_len) if x > 0]
    return min(cands) if cands else 4096


def cut_to_tokens(tokenizer, texts: Sequence[str], limit: int | None) -> tuple[list[str], np.ndarray]:
    """Keep the first `limit` tokens of each text (cut from the right). Returns texts and a truncated mask."""
    out, cut = list(texts), np.zeros(len(texts), dtype=bool)
    if not limit:
        return out, cut
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    for i, offsets in enumerate(enc["offset_mapping"]):
        if len(offsets) > limit:
            out[i] = texts[i][: offsets[limit - 1][1]]
            cut[i] = True
    return out, cut


class Encoder:
    """Shared rendering + tokenization with the truncation rules."""

    def __init__(self, tokenizer, template: Template, max_len: int, max_prompt_tokens=None, max_response_tokens=None,
                 append_eos: bool = False):
        self.tok = tokenizer
        self.template = template
        self.max_len = max_len
        self.max_prompt_tokens = max_prompt_tokens
        self.max_response_tokens = max_response_tokens
        self.append_eos = append_eos

    def encode(self, prompts: Sequence[str], responses: Sequence[str]) -> list[Encoded]:
        prompts, _ = cut_to_tokens(self.tok, prompts, self.max_prompt_tokens)
        responses, rcut = cut_to_tokens(self.tok, responses, self.max_response_tokens)
        out: list[Encoded | None] = [None] * len(prompts)
        todo = list(range(len(prompts)))
        extra = 1 if self.append_eos else 0
        for _round in range(8):  # re-cut responses that still exceed the model's context
            if not todo:
                break
            rendered = [self.template.render(prompts[i], responses[i]) for i in todo]
            enc = self.tok([r.text for r in rendered], add_special_tokens=True, return_offsets_mapping=True)
            again = []
            for k, i in enumerate(todo):
                ids = enc["input_ids"][k]
                offs = np.asarray(enc["offset_mapping"][k], dtype=np.int64).reshape(-1, 2)
                r = rendered[k]
                over = (offs[:, 0] < r.response_end) & (offs[:, 1] > r.response_start) & (offs[:, 1] > offs[:, 0])
                if r.response_start == r.response_end:  # empty response: only the EOS is scored
                    over[:] = False
                resp_pos = np.flatnonzero(over)
                excess = len(ids) + extra - self.max_len
                if excess > 0:
                    if len(resp_pos) <= excess:
                        raise SeamError(
                            f"a prompt is longer than the model's context ({self.max_len} tokens) even with an empty response; "
                            "set --max-prompt-tokens to cut prompts"
                        )
                    keep_upto = resp_pos[len(resp_pos) - excess - 1]
                    cut_char = offs[keep_upto, 1] - r.response_start
                    responses[i] = responses[i][: max(int(cut_char), 0)]
                    rcut[i] = True
                    again.append(i)
                    continue
                if self.append_eos:
                    ids = list(ids) + [self.tok.eos_token_id]
                    scored = np.concatenate([resp_pos, [len(ids) - 1]]).astype(np.int64)
                else:
                    scored = resp_pos.astype(np.int64)
                out[i] = Encoded(list(ids), scored, bool(rcut[i]))
            todo = again
        if todo:
            raise SeamError("could not fit responses into the model's context; set --max-response-tokens")
        return out  # type: ignore[return-value]


def pack_sorted(lengths: Sequence[int], budget: int, call_cost: int = 256, extra: int = 0) -> list[int]:
    """Cut points that split ascending `lengths` into batches with the least padding.

    A batch of rows i..j-1 costs (j - i) * lengths[j-1] padded tokens plus `call_cost`, a model
    call's fixed overhead counted in tokens; batches also keep rows * (longest + extra) <= budget
    (one row always fits). Exact dynamic programme over the sorted order, vectorised per end point.
    Returns the end index of every batch (the last is len(lengths)).
    """
    L = np.asarray(lengths, dtype=np.int64)
    n = len(L)
    if n == 0:
        return []
    best = np.zeros(n + 1, dtype=np.float64)
    cut = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        rows_max = max(1, budget // max(int(L[j - 1]) + extra, 1))
        i = np.arange(max(0, j - rows_max), j)
        cost = best[i] + (j - i) * L[j - 1] + call_cost
        k = int(np.argmin(cost))
        best[j], cut[j] = cost[k], i[k]
    ends, j = [], n
    while j > 0:
        ends.append(j)
        j = int(cut[j])
    return ends[::-1]


def _token_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices sorted by length, grouped so that batch_size * max_len <= budget, with little padding."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    ends = pack_sorted(np.asarray(lengths)[order], budget)
    starts = [0] + ends[:-1]
    return [[int(i) for i in order[a:b]] for a, b in zip(starts, ends)]


def _pad(seqs: Sequence[Sequence[int]], pad_id: int, device) -> tuple["torch.Tensor", "torch.Tensor"]:
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[r, : len(s)] = 1
    return ids.to(device), mask.to(device)


# ============================================================================ shared-prefix runner


@dataclass
class _Group:
    """One prompt and the encoded responses that share its token prefix."""

    items: list[int]  # indices into the flat encoded list
    prefix_len: int


class _PrefixRunner:
    """Runs a decoder over many responses per prompt, encoding each shared token prefix once.

    For each group (one prompt), the prefix is the longest common token prefix of its sequences,
    capped so every sequence keeps >= 1 suffix token and no requested position lies before the
    prefix's last token. Groups are taken in windows (sorted by prefix length, at most
    `batch_tokens` prefix tokens each); a window's prefixes run in one call and their key/value
    caches stay while the window's suffixes run. Suffixes are sorted by their own length across
    the whole window and packed under the token budget, so rows of one batch come from many
    prompts and padding stays small; each row gathers its prompt's cached keys/values. For each
    sequence, `need(i)` names the positions whose final hidden states are wanted; they are handed,
    with row ids, to `consume(rows, seq_index, hidden, suffix_ids, cols)` batch by batch.
    """

    def __init__(self, decoder, pad_id: int, device, batch_tokens: int):
        self.decoder = decoder
        self.pad_id = pad_id
        self.device = device
        self.batch_tokens = batch_tokens
        self.call_cost = _call_cost(device)

    @staticmethod
    def groups(prompts: Sequence[str], enc: Sequence[Encoded], need: Sequence[np.ndarray]) -> list[_Group]:
        by_prompt: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            by_prompt.setdefault(p, []).append(i)
        out = []
        for items in by_prompt.values():
            limit = min(min(int(need[i][0]) + 1, len(enc[i].ids) - 1) for i in items)
            ref = enc[items[0]].ids
            plen = limit
            for i in items[1:]:
                ids = enc[i].ids
                k, m = 0, min(plen, len(ids))
                while k < m and ids[k] == ref[k]:
                    k += 1
                plen = k
            out.append(_Group(items, max(plen, 1)))
        return out

    def windows(self, groups: list[_Group]):
        """Groups sorted by prefix length, cut so that rows x longest prefix stays under the budget.

        A decoder that cannot take padding inside the key sequence (``gapless``: transformers'
        sliding-window masks count key columns, not positions) gets one prompt per window, so
        every row's prefix has the same length.
        """
        window, width = [], 0
        gapless = getattr(self.decoder, "gapless", False)
        for g in sorted(groups, key=lambda g: g.prefix_len):
            if window and (gapless or (len(window) + 1) * max(width, g.prefix_len) > self.batch_tokens):
                yield window
                window, width = [], 0
            window.append(g)
            width = max(width, g.prefix_len)
        if window:
            yield window

    def run(self, window: list[_Group], enc: Sequence[Encoded], need: Sequence[np.ndarray], consume,
            progress: ProgressFn | None = None) -> None:
        import torch

        dev = self.device
        # 1) the window's prefixes, once each: [G, Pmax] (sorted by length, so little padding)
        p_ids, p_mask = _pad([enc[g.items[0]].ids[: g.prefix_len] for g in window], self.pad_id, dev)
        G = p_ids.shape[0]
        p_pos = torch.arange(p_ids.shape[1], device=dev).unsqueeze(0).expand(G, -1)
        plens = np.array([g.prefix_len for g in window], dtype=np.int64)
        p_len = torch.as_tensor(plens, device=dev)
        h_last, past = self.decoder.prefix(p_ids, p_mask, p_pos, p_len - 1)  # [G, d], cached keys/values
        # 2) every suffix of the window, sorted by suffix length and packed with the least padding
        owner = sorted(((gi, i) for gi, g in enumerate(window) for i in g.items),
                       key=lambda x: len(enc[x[1]].ids) - plens[x[0]])
        s_len = [len(enc[i].ids) - plens[gi] for gi, i in owner]
        start = 0
        # the budget bounds rows x (suffix + the window's longest prefix): attention spans both
        for end in pack_sorted(s_len, self.batch_tokens, self.call_cost, extra=int(plens.max())):
            self._run_suffixes(owner[start:end], window, plens, p_len, p_mask, h_last, past, enc, need, consume)
            if progress:
                progress(end - start)
            start = end

    def _run_suffixes(self, rows, window, plens, p_len, p_mask, h_last, past, enc, need, consume) -> None:
        import torch

        dev = self.device
        gidx = [gi for gi, _ in rows]
        flat = [i for _, i in rows]
        gsel = torch.as_tensor(gidx, device=dev)
        pw = int(plens[gidx].max())  # prefix columns these rows need (right padding beyond is dropped)
        s_ids, s_mask = _pad([enc[i].ids[window[gi].prefix_len:] for gi, i in rows], self.pad_id, dev)
        mask = torch.cat([p_mask.index_select(0, gsel)[:, :pw], s_mask], dim=1)
        s_pos = p_len.index_select(0, gsel).unsqueeze(1) + torch.arange(s_ids.shape[1], device=dev).unsqueeze(0)
        # 3) the hidden state at position q is column q - (P - 1) of [h_last, suffix states]
        r_np = np.concatenate([np.full(len(need[i]), r) for r, i in enumerate(flat)])
        c_np = np.concatenate([need[i] - (plens[gi] - 1) for gi, i in rows])
        rows_t = torch.as_tensor(r_np, device=dev)
        cols_t = torch.as_tensor(c_np, device=dev)
        in_suffix = c_np > 0
        hs = self.decoder.suffix(s_ids, mask, s_pos, past, gsel, pw, rows_t[in_suffix], cols_t[in_suffix] - 1)  # [M', d]
        if in_suffix.all():
            hidden = hs
        else:
            hidden = h_last.new_empty((len(r_np), h_last.shape[-1]))
            hidden[torch.as_tensor(in_suffix, device=dev)] = hs
            at_prefix = torch.as_tensor(~in_suffix, device=dev)
            hidden[at_prefix] = h_last.index_select(0, gsel[rows_t[at_prefix]])
        consume(rows_t, flat, hidden, s_ids, cols_t)


class _HFDecoder:
    """The transformers forward behind the runner's two calls (any decoder with a key/value cache)."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.gapless = any(w is not None for w in layer_windows(decoder.config))

    def prefix(self, ids, mask, pos, last):
        import torch

        out = self.decoder(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        hs = out.last_hidden_state  # on the last layer's device when a device map spreads the model
        h_last = hs[torch.arange(ids.shape[0], device=hs.device), last.to(hs.device)].to(ids.device)
        # sliding-window layers keep only the window's keys (their own cache layer type): keep the cache as is
        return h_last, (out.past_key_values if self.gapless else out.past_key_values.to_legacy_cache())

    def suffix(self, ids, mask, pos, past, gsel, pw, rows, cols):
        import copy

        from transformers import DynamicCache

        if self.gapless:  # one prompt per window: every row's prefix is the whole cache
            cache = copy.copy(past)
            cache.layers = [copy.copy(layer) for layer in past.layers]
            cache.reorder_cache(gsel)  # new tensors on the copies; the window's cache stays intact
        else:
            cache = DynamicCache.from_legacy_cache(tuple(
                (k.index_select(0, gsel.to(k.device))[:, :, :pw], v.index_select(0, gsel.to(v.device))[:, :, :pw])
                for k, v in past))  # each layer's keys stay on that layer's device
        hs = self.decoder(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                          use_cache=False).last_hidden_state  # [N, S, d]
        return hs[rows.to(hs.device), cols.to(hs.device)].to(ids.device)


def _decoder_backend(model):
    """The runner's forward for `model`: the fast path where the layout allows it, else transformers'."""
    import os

    dec = _base_decoder(model)
    fd = fast_decoder(dec) if os.environ.get("SEAM_FAST_DECODER", "1") != "0" else None
    return fd if fd is not None else _HFDecoder(dec)


def _call_cost(device) -> int:
    """A model call's fixed cost, in tokens of padding worth avoiding it.

    Besides Python and kernel-launch overhead, each call pays for small matrix products running
    below peak. Measured with SmolLM2-135M on 2 CPU cores: 64 beats 8 (many small calls: +25%
    time) and 256 (more padding: +5%). GPUs launch calls far slower than they process a token.
    """
    return 64 if str(device).startswith("cpu") else 1024


def _base_decoder(model):
    return model.get_decoder() if hasattr(model, "get_decoder") and model.get_decoder() is not None else model.base_model


# ============================================================================ reward model


class RewardScorer:
    """R(I∘r): the RM's single logit (or its logit ``loaded.reward_label``) for each rendered (prompt, response).

    The reward is the score head applied to the hidden state of the last non-pad token, which is
    what the HF sequence classifiers do; prompts shared by several responses are encoded once.
    """

    def __init__(self, loaded, template: Template, max_prompt_tokens=None, max_response_tokens=None,
                 batch_tokens: int = 16384):
        self.lm = loaded
        self.encoder = Encoder(loaded.tokenizer, template, _max_len(loaded.model, loaded.tokenizer),
                                max_prompt_tokens, max_response_tokens, append_eos=False)
        self.batch_tokens = batch_tokens
        self.truncated = 0
        model = loaded.model
        self._head = getattr(model, "score", None)
        self._label = int(getattr(loaded, "info", {}).get("reward_label", 0))  # which logit is the reward
        self._pad_id = loaded.tokenizer.pad_token_id
        cfg_pad = getattr(model.config, "pad_token_id", None)
        self._model_pad = cfg_pad if cfg_pad is not None else self._pad_id

    def _last_position(self, ids: list[int]) -> int:
        """Index of the last token that is not the model's pad id (the HF classifier's rule)."""
        for q in range(len(ids) - 1, -1, -1):
            if ids[q] != self._model_pad:
                return q
        return len(ids) - 1

    def score(self, prompts: Sequence[str], responses: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        import torch

        keys = list(zip(prompts, responses))
        uniq = list(dict.fromkeys(keys))
        if not uniq:
            return np.zeros(0, dtype=np.float64)
        enc = self.encoder.encode([k[0] for k in uniq], [k[1] for k in uniq])
        self.truncated += int(sum(e.truncated for e in enc))
        rewards = np.zeros(len(uniq), dtype=np.float64)
        model, device = self.lm.model, self.lm.device
        with torch.inference_mode(), use_gqa_sdpa(model):
            if self._head is None:  # unknown classifier layout: plain batched forward
                for batch in _token_batches([len(e.ids) for e in enc], self.batch_tokens):
                    ids, mask = _pad([enc[i].ids for i in batch], self._pad_id, device)
                    rewards[batch] = model(input_ids=ids, attention_mask=mask).logits[:, self._label].float().cpu().numpy()
                    if progress:
                        progress(len(batch))
            else:
                need = [np.array([self._last_position(e.ids)], dtype=np.int64) for e in enc]
                runner = _PrefixRunner(_decoder_backend(model), self._pad_id, device, self.batch_tokens)

                def consume(rows_t, flat, hidden, _ids, _cols):
                    rewards[flat] = self._head(hidden)[:, self._label].float().cpu().numpy()

                for window in runner.windows(runner.groups([k[0] for k in uniq], enc, need)):
                    runner.run(window, enc, need, consume, progress)
        index = {k: i for i, k in enumerate(uniq)}
        return rewards[[index[k] for k in keys]]


# ============================================================================ policy model


class PolicyScorer:
    """log P_PM(response | prompt) summed over scored tokens, and the token count T."""

    def __init__(self, loaded, template: Template, max_prompt_tokens=None, max_response_tokens=None,
                 batch_tokens: int = 16384, logit_rows: int | None = None):
        self.lm = loaded
        self.encoder = Encoder(loaded.tokenizer, template, _max_len(loaded.model, loaded.tokenizer),
                                max_prompt_tokens, max_response_tokens, append_eos=True)
        self.batch_tokens = batch_tokens
        vocab = int(getattr(loaded.model.config, "vocab_size", 0) or 32000)
        # rows of logits at a time: ~64M floats (256 MB in float32) at most, 1024 rows at most; wider
        # products run nearer the matmul peak than 256-row slices (+20% for SmolLM2's 49k vocabulary)
        self.logit_rows = logit_rows or int(min(1024, max(64, (1 << 26) // vocab)))
        self.truncated = 0
        model = loaded.model
        self._head = model.get_output_embeddings()
        if self._head is None:
            raise SeamError("the PM has no output embedding (LM head); pass a causal language model")
        self._softcap = getattr(model.config, "final_logit_softcapping", None)

    def score(self, prompts: Sequence[str], responses: Sequence[str], progress: ProgressFn | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (logprob_sum, tokens, truncated) arrays aligned with the inputs."""
        import torch

        keys = list(zip(prompts, responses))
        uniq = list(dict.fromkeys(keys))
        n = len(uniq)
        if n == 0:
            z = np.zeros(0)
            return z, z.astype(np.int64), z.astype(bool)
        enc = self.encoder.encode([k[0] for k in uniq], [k[1] for k in uniq])
        for e in enc:
            if e.scored[0] < 1:
                raise SeamError("the template puts the response at the very start of the text, so its first token has no context; "
                                "use a template with text before {response}")
        trunc = np.array([e.truncated for e in enc], dtype=bool)
        self.truncated += int(trunc.sum())
        need = [e.scored - 1 for e in enc]  # hidden state at t-1 predicts token t
        sums = np.zeros(n, dtype=np.float64)
        counts = np.array([len(e.scored) for e in enc], dtype=np.int64)
        runner = _PrefixRunner(_decoder_backend(self.lm.model), self.lm.tokenizer.pad_token_id, self.lm.device,
                               self.batch_tokens)

        def consume(rows_t, flat, hidden, s_ids, cols_t):
            # target of the state in column c (position P-1+c) is suffix token c
            targets = s_ids[rows_t, cols_t]
            lp = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
            for a in range(0, len(targets), self.logit_rows):
                logits = self._head(hidden[a:a + self.logit_rows]).float()  # on the head's device (device maps)
                if self._softcap:
                    logits = torch.tanh(logits / self._softcap) * self._softcap
                lp[a:a + self.logit_rows] = (logits.gather(1, targets[a:a + self.logit_rows, None].to(logits.device))[:, 0]
                                             - torch.logsumexp(logits, dim=1)).to(lp.device)
            per_row = torch.zeros(len(flat), dtype=torch.float64, device=hidden.device).index_add_(
                0, rows_t.to(hidden.device), lp.double())
            sums[flat] = per_row.cpu().numpy()

        with torch.inference_mode(), use_gqa_sdpa(self.lm.model):
            for window in runner.windows(runner.groups([k[0] for k in uniq], enc, need)):
                runner.run(window, enc, need, consume, progress)
        index = {k: i for i, k in enumerate(uniq)}
        sel = [index[k] for k in keys]
        return sums[sel], counts[sel], trunc[sel]
