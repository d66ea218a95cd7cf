"""Attention over a token prefix every row of a batch shares, read once per step instead of once per row.

The golden suite's prompts share a ~1,150-token prefix (template header, tool list, date) and differ in a short
suffix. Copied into every row's KV cache, the prefix is most of what a decoding step reads at batch 16 on a CPU
(30 layers x 16 rows x 1,150 positions), and all rows read the same numbers. Here the rows' cache holds only what
follows the prefix; the prefix's keys and values are held once (one row), and attention is computed in two parts
joined by their log-sum-exp (cascade attention, as in FlashInfer):

    prefix part: every query of every row against the one shared prefix (no mask: every row sees all of it),
                 one matrix product with the rows folded into the query axis;
    own part:    each row's queries against its own cache entries, with the model's causal/padding mask.

That split is for decoding steps (one query a row). A prefill of several queries a row (prompts admitted after
the prefix) instead puts the prefix in front of each row's keys for one fused SDPA call, which never materialises
the [queries x prefix] scores the product above would.

The model sees a cache of row parts only and is given explicit positions (the prefix's length onward), so RoPE
and the masks it builds are those of the full prompt. Outside `attending(...)` the function is transformers' own
SDPA attention, so training, `generate()` and every other caller are unchanged.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator, Sequence

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "sdpa_shared_prefix"

# Per layer index: (keys, values) of the shared prefix, each [1, kv_heads, prefix_len, head_dim].
_ACTIVE: ContextVar[Sequence[tuple[torch.Tensor, torch.Tensor]] | None] = ContextVar("shared_prefix", default=None)


@contextmanager
def attending(prefix: Sequence[tuple[torch.Tensor, torch.Tensor]] | None) -> Iterator[None]:
    """Within the block, attention layers also attend to `prefix` (per layer keys/values; None or empty: nothing)."""
    token = _ACTIVE.set(prefix or None)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def shared_prefix_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                            **kwargs: Any) -> tuple[torch.Tensor, None]:
    """An attention function for transformers' AttentionInterface: query [B, H, q, D], key/value [B, KV, S, D]
    (the rows' own entries), returns [B, q, H, D] like transformers' SDPA."""
    prefix = _ACTIVE.get()
    if prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    pk, pv = prefix[module.layer_idx]
    b, h, q, d = query.shape
    kv = key.shape[1]
    g = h // kv
    scale = scaling if scaling is not None else d ** -0.5
    if q > 1:
        return _prefill_attention(query, key, value, pk, pv, attention_mask, scale), None
    grouped = query.reshape(b, kv, g * q, d)  # head kv*g + j, query i -> row (j*q + i) of its kv head
    # prefix part: fold the rows into the query axis, so the one copy of the prefix is read once
    folded = grouped.transpose(0, 1).reshape(kv, b * g * q, d)
    s1 = torch.matmul(folded, pk[0].transpose(-1, -2)) * scale          # [KV, B*G*q, P]
    m1 = s1.amax(dim=-1, keepdim=True)
    e1 = torch.exp(s1 - m1)
    l1 = e1.sum(dim=-1, keepdim=True)
    o1 = torch.matmul(e1, pv[0])                                          # [KV, B*G*q, D]
    unfold = lambda t: t.reshape(kv, b, g * q, t.shape[-1]).transpose(0, 1)  # noqa: E731 -> [B, KV, G*q, .]
    m1, l1, o1 = unfold(m1), unfold(l1), unfold(o1)
    # own part: each row against its own entries, masked as the model asked
    s2 = torch.matmul(grouped, key.transpose(-1, -2)) * scale             # [B, KV, G*q, S]
    mask = _mask(attention_mask, b, q, key.shape[-2], query.device)
    if mask is not None:
        grouped_mask = mask[:, None, None].expand(b, 1, g, q, mask.shape[-1]).reshape(b, 1, g * q, -1)
        s2 = s2.masked_fill(~grouped_mask, float("-inf"))
    m2 = s2.amax(dim=-1, keepdim=True)
    m = torch.maximum(m1, m2)
    e2 = torch.exp(s2 - m)
    c1 = torch.exp(m1 - m)
    out = (o1 * c1 + torch.matmul(e2, value)) / (l1 * c1 + e2.sum(dim=-1, keepdim=True))
    return out.reshape(b, h, q, d).transpose(1, 2).contiguous(), None


def _prefill_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pk: torch.Tensor,
                       pv: torch.Tensor, attention_mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Several queries a row (admitting prompts after the prefix): the prefix put in front of each row's keys and
    one fused SDPA call, which never materialises the [queries x prefix] scores; the prefix is copied per row for
    this one call only (the decoding steps, one query a row, keep reading it once)."""
    b, h, q, d = query.shape
    keys = torch.cat([pk.expand(b, -1, -1, -1), key], dim=2)
    values = torch.cat([pv.expand(b, -1, -1, -1), value], dim=2)
    own = _mask(attention_mask, b, q, key.shape[-2], query.device)  # never None: q > 1 here
    mask = torch.cat([own.new_ones((b, q, pk.shape[-2])), own], dim=-1)[:, None]
    out = torch.nn.functional.scaled_dot_product_attention(query, keys, values, attn_mask=mask, scale=scale,
                                                           enable_gqa=True)
    return out.transpose(1, 2).contiguous()


def _mask(attention_mask: torch.Tensor | None, b: int, q: int, s: int, device: torch.device) -> torch.Tensor | None:
    """A boolean [B, q, S] mask (True: attend) from what the model built; None means plain causal."""
    if attention_mask is None:
        if q == 1:
            return None
        causal = torch.arange(s, device=device)[None, :] <= torch.arange(s - q, s, device=device)[:, None]
        return causal.expand(b, q, s)
    mask = attention_mask[:, 0, :, -s:] if attention_mask.dim() == 4 else attention_mask
    if mask.dtype != torch.bool:
        mask = mask == 0  # an additive float mask: 0 where attending
    return mask.expand(b, q, s)


def prefix_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values) of a one-row prefix cache."""
    return [(layer.keys, layer.values) for layer in cache.layers]


AttentionInterface.register(NAME, shared_prefix_attention)
AttentionMaskInterface.register(NAME, sdpa_mask)
