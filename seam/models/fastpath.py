"""A scoring-only forward for Llama-family decoders, in plain torch operations.

The scorers need few things from a decoder: run a batch of prompt prefixes and keep their
keys/values, run suffixes on top of those (each row on its own prompt's prefix), and return the
final hidden state at a few positions. transformers' generic forward does more than that, and
small models pay for it: key/value caches gathered and then concatenated in every layer, a boolean
mask converted in every attention call, RMSNorm as five element-wise passes, every position
through the last layer.

``FastDecoder`` does the same arithmetic as the transformers modules (it reads their weights; it
copies nothing) with these differences in *how*:

* RMSNorm through ``torch.nn.functional.rms_norm`` (one fused pass, the same numbers in float32);
* rotary embedding applied to queries and keys with the model's own rotary module's cos/sin;
* each layer's keys/values written once into one buffer (prefix rows gathered straight into it);
* attention by torch SDPA under one additive mask per call (per distinct sliding window),
  grouped-query heads kept grouped;
* **the last layer only where an output is wanted**: keys and values are computed for every
  position (later queries read them), but the query, attention output and MLP of the final layer
  run only at the wanted positions (one per row for the RM and for prefixes), and so does the
  final norm.

It covers ``llama``, ``mistral`` and ``qwen2`` configurations whose layers are the plain modules
(``nn.Linear`` projections, RMSNorm; full or sliding-window attention layers). Anything else (an
unmerged adapter, a quantized layer, another architecture) gets ``None`` from
:func:`fast_decoder` and the scorers use the transformers forward. Results equal the
transformers forward within float rounding (tests/test_fastpath.py).
"""

from __future__ import annotations


MODEL_TYPES = ("llama", "mistral", "qwen2")


def _plain_linear(m) -> bool:
    import torch

    return type(m) is torch.nn.Linear


def _why_not(decoder) -> str | None:
    """Why `decoder` cannot use the fast path, or None when it can."""
    cfg = getattr(decoder, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in MODEL_TYPES:
        return "architecture"
    for name in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(decoder, name):
            return f"no {name}"
    if any(t not in ("full_attention", "sliding_attention") for t in (getattr(cfg, "layer_types", None) or [])):
        return "attention layer type"
    norms = [decoder.norm] + [n for layer in decoder.layers for n in (layer.input_layernorm, layer.post_attention_layernorm)]
    if any(not type(n).__name__.endswith("RMSNorm") or not hasattr(n, "variance_epsilon") for n in norms):
        return "norm"
    for layer in decoder.layers:
        a, m = layer.self_attn, layer.mlp
        if not all(_plain_linear(x) for x in (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)):
            return "non-linear projection (adapter or quantized layer)"
        if not hasattr(a, "scaling") or not hasattr(a, "head_dim"):
            return "attention module"
    if len(decoder.layers) != cfg.num_hidden_layers:
        return "layer count"
    if any(hasattr(m, "_hf_hook") for m in decoder.modules()):
        return "accelerate hooks (offloaded or dispatched weights)"
    return None


def layer_windows(cfg) -> list:
    """Each layer's sliding window (None: full attention), as the transformers models read the config."""
    window = getattr(cfg, "sliding_window", None)
    types = getattr(cfg, "layer_types", None)
    if types:
        return [window if t == "sliding_attention" else None for t in types]
    return [window] * cfg.num_hidden_layers


def fast_decoder(decoder) -> "FastDecoder | None":
    """A FastDecoder over `decoder`'s own modules, or None when its layout is not the plain Llama family."""
    return FastDecoder(decoder) if _why_not(decoder) is None else None


class FastDecoder:
    """Prefix/suffix forward with key/value reuse and last-layer pruning (see the module docstring)."""

    def __init__(self, decoder):
        cfg = decoder.config
        self.decoder = decoder
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = decoder.layers[0].self_attn.head_dim
        self.scaling = decoder.layers[0].self_attn.scaling
        self.windows = layer_windows(cfg)

    # -------------------------------------------------------------------------- pieces
    @staticmethod
    def _norm(x, module):
        import torch

        if x.dtype == torch.float32:
            return torch.nn.functional.rms_norm(x, (x.shape[-1],), module.weight, module.variance_epsilon)
        return module(x)  # other dtypes: the module's own rounding order (float32 inside, then cast)

    @staticmethod
    def _rope(x, cos, sin):
        """x [N, S, heads, hd]; cos/sin [N, S, hd]: x * cos + rotate_half(x) * sin, as the transformers models do."""
        import torch

        half = x.shape[-1] // 2
        return x * cos[:, :, None] + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin[:, :, None]

    def _attend(self, layer, x, q, keys, values, mask):
        """Attention output, residual and MLP. x: residual stream at the query positions [N, W, d]; q [N, W, H, hd]."""
        import torch.nn.functional as F

        N, W = q.shape[:2]
        o = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=mask, scale=self.scaling,
                                           enable_gqa=self.n_kv != self.n_heads)
        x = x + layer.self_attn.o_proj(o.transpose(1, 2).reshape(N, W, -1))
        m = layer.mlp
        h = self._norm(x, layer.post_attention_layernorm)
        return x + m.down_proj(m.act_fn(m.gate_proj(h)) * m.up_proj(h))

    def _heads(self, proj, h, n):
        return proj(h).view(*h.shape[:2], n, self.head_dim)

    # -------------------------------------------------------------------------- the runner's two calls
    def prefix(self, ids, mask, pos, last):
        """Prefixes [G, P]: (final state at each row's `last` position [G, d], per-layer keys/values)."""
        import torch

        return self.forward(ids, pos, mask, want=(torch.arange(ids.shape[0], device=ids.device), last), keep_kv=True)

    def suffix(self, ids, mask, pos, past, gsel, pw, rows, cols):
        """Suffixes on top of cached prefixes (row n on prefix gsel[n]); final states at (rows, cols)."""
        return self.forward(ids, pos, mask, past=past, gsel=gsel, past_width=pw, want=(rows, cols))[0]

    # -------------------------------------------------------------------------- forward
    def forward(self, ids, pos, key_mask, past=None, gsel=None, past_width: int = 0, want=None, keep_kv: bool = False):
        """Run `ids` [N, S] at positions `pos` [N, S] on top of optional cached prefixes.

        key_mask [N, past_width + S] (bool or 0/1): which key columns are real tokens.
        past: per layer (keys, values) [G, kv_heads, P, hd]; row n uses prefix row gsel[n], columns
        :past_width. want: (rows, cols) long tensors, the positions whose final hidden state is
        returned, in that order ([M, d]); None returns all [N, S, d].
        Returns (hidden, kv) where kv is the per-layer (keys, values) of [past | ids] when keep_kv.
        """
        import torch

        dec = self.decoder
        N, S = ids.shape
        P = past_width if past is not None else 0
        K = P + S
        dev = ids.device
        x = dec.embed_tokens(ids)
        cos, sin = dec.rotary_emb(x, pos)
        masks = self._masks(pos, key_mask, P, x.dtype)
        last = len(dec.layers) - 1
        kv_out = []
        for li, layer in enumerate(dec.layers):
            a = layer.self_attn
            h = self._norm(x, layer.input_layernorm)
            keys = torch.empty(N, self.n_kv, K, self.head_dim, dtype=x.dtype, device=dev)
            values = torch.empty_like(keys)
            if P:  # each row's own prompt prefix, gathered straight into the buffer
                pk, pv = past[li]
                torch.index_select(pk[:, :, :P], 0, gsel, out=keys[:, :, :P])
                torch.index_select(pv[:, :, :P], 0, gsel, out=values[:, :, :P])
            keys[:, :, P:] = self._rope(self._heads(a.k_proj, h, self.n_kv), cos, sin).transpose(1, 2)
            values[:, :, P:] = self._heads(a.v_proj, h, self.n_kv).transpose(1, 2)
            if keep_kv:
                kv_out.append((keys, values))
            mask = masks[self.windows[li]]
            if li == last and want is not None:
                counts = torch.bincount(want[0], minlength=N)
                W = int(counts.max()) if len(want[0]) else 1
                if W * 4 <= S * 3:  # prune unless nearly every position is wanted (rows pad to the busiest)
                    out = self._last_layer(layer, x, h, cos, sin, keys, values, mask, want, counts, W)
                    return out, (kv_out if keep_kv else None)
            x = self._attend(layer, x, self._rope(self._heads(a.q_proj, h, self.n_heads), cos, sin), keys, values, mask)
        if want is not None:
            x = x[want[0], want[1]]
        return self._norm(x, dec.norm), (kv_out if keep_kv else None)

    def _masks(self, pos, key_mask, P: int, dtype) -> dict:
        """Additive masks [N, 1, S, P + S], one per distinct layer window, built once per call.

        Key column c < P is cached prefix position c; the others are the positions in `pos`.
        A query sees real keys at or before it and, in a sliding layer, less than a window behind
        (transformers' rule: key position > query position - window).
        """
        import torch

        N, S = pos.shape
        dev = pos.device
        causal = torch.ones(S, P + S, dtype=torch.bool, device=dev).tril(diagonal=P)
        allowed = causal[None, :, :] & key_mask.to(torch.bool)[:, None, :]  # [N, S, K]
        out = {}
        for w in set(self.windows):
            ok = allowed
            if w is not None:
                kpos = torch.cat([torch.arange(P, device=dev).expand(N, P), pos], dim=1)
                ok = ok & (kpos[:, None, :] > pos[:, :, None] - w)
                # a padding query far past its row's end would see no key at all (NaN, which
                # would leak through the next layer's padded keys): let every query see itself
                diag = torch.zeros(S, P + S, dtype=torch.bool, device=dev)
                diag[torch.arange(S, device=dev), P + torch.arange(S, device=dev)] = True
                ok = ok | diag[None]
            if dtype == torch.float32:
                out[w] = torch.zeros(ok.shape, dtype=dtype, device=dev).masked_fill_(~ok, float("-inf")).unsqueeze(1)
            else:
                out[w] = ok.unsqueeze(1)
        return out

    def _last_layer(self, layer, x, h, cos, sin, keys, values, mask, want, counts, W: int):
        """The final layer at the wanted positions only: rows padded to W, the most positions a row wants."""
        import torch

        rows, cols = want
        N = x.shape[0]
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(len(rows), device=x.device) - starts[rows]
        idx = torch.zeros(N, W, dtype=torch.long, device=x.device)  # unused slots repeat column 0 (dropped below)
        idx[rows, slot] = cols

        def take(t):
            return t.gather(1, idx.unsqueeze(-1).expand(-1, -1, t.shape[-1]))

        q = self._rope(self._heads(layer.self_attn.q_proj, take(h), self.n_heads), take(cos), take(sin))
        ms = mask.gather(2, idx[:, None, :, None].expand(-1, 1, -1, mask.shape[-1]))
        out = self._attend(layer, take(x), q, keys, values, ms)[rows, slot]
        return self._norm(out, self.decoder.norm)
