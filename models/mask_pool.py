"""Cheap dropout masks for MC-Dropout on CPU: slices of one pre-sampled Bernoulli pool at random offsets.

Drawing a fresh Bernoulli mask costs more than the layer it follows on a CPU (a [64, 25, 384] mask: 6.7 ms,
the 384x384 linear before it: 4.1 ms), which made T MC passes cost 1.65x T deterministic passes. A mask
cut from a pool of 2**24 pre-sampled keep/drop values at a uniformly random offset costs one multiply
(0.12 ms). Every element is still dropped with probability p, and two masks share values only when their
offsets coincide (probability about 1 in 16 million per pair), so passes remain independent draws for every
input; what differs from fresh masks is a weak dependence between *different* positions of different calls,
which does not bias the MC mean. ``sampler="exact"`` keeps baal's fresh masks (the reference).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

POOL_SIZE = 1 << 24
MAX_SLICE = POOL_SIZE // 4  # larger tensors get fresh masks: offsets need room to be random
ATTENTION = "bench_pooled_dropout"


class MaskPool:
    """Pre-scaled keep masks (0 or 1/(1-p)) for each dropout rate, cut at offsets from a seeded generator."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._pools: dict[tuple[float, torch.device], torch.Tensor] = {}
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the offset sequence (the pools themselves depend on ``self.seed`` only)."""
        self._offsets = np.random.default_rng(seed)
        self._torch = torch.Generator().manual_seed(seed)

    def _pool(self, p: float, device: torch.device) -> torch.Tensor:
        key = (p, device)
        if key not in self._pools:
            gen = torch.Generator().manual_seed(self.seed * 1000003 + int(p * 1e6))
            keep = torch.empty(POOL_SIZE).bernoulli_(1 - p, generator=gen)
            self._pools[key] = (keep / (1 - p)).to(device)
        return self._pools[key]

    def mask(self, p: float, like: torch.Tensor) -> torch.Tensor:
        """A keep mask shaped like ``like``, scaled so that the expected output equals the input."""
        n = like.numel()
        if n > MAX_SLICE:
            keep = torch.empty(like.shape).bernoulli_(1 - p, generator=self._torch) / (1 - p)
            return keep.to(like.device, like.dtype)
        offset = int(self._offsets.integers(0, POOL_SIZE - n + 1))
        return self._pool(p, like.device)[offset : offset + n].view(like.shape).to(like.dtype)

    def drop(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """``x`` with dropout at rate ``p`` applied, whatever the module's mode."""
        return x if p <= 0 else x * self.mask(p, x)


class PooledDropout(torch.nn.Dropout):
    """Dropout that always samples, with masks from a :class:`MaskPool`."""

    def __init__(self, p: float, pool: MaskPool) -> None:
        super().__init__(p)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool.drop(x, self.p)


def pooled_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention with pooled dropout on the attention probabilities (a transformers attention function).

    Cases it does not cover (causal masks, GQA, position bias, soft-capping, caches, no pool on the module)
    go to ``sdpa`` with its own fresh dropout, so results stay right and only speed differs.
    """
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    pool: MaskPool | None = getattr(module, "mask_pool", None)
    unsupported = (
        kwargs.get("is_causal")
        or getattr(module, "is_causal", False)
        or getattr(module, "num_key_value_groups", 1) != 1
        or any(kwargs.get(k) is not None for k in ("position_bias", "softcap", "sliding_window", "cache"))
    )
    if pool is None or dropout <= 0 or unsupported:
        return ALL_ATTENTION_FUNCTIONS["sdpa"](
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scale = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query * scale, key.transpose(2, 3))
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores.masked_fill_(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores.add_(attention_mask)
    weights = torch.softmax(scores, dim=-1).mul_(pool.mask(dropout, scores))
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def use_pooled_dropout(model: torch.nn.Module, pool: MaskPool) -> None:
    """Swap every plain dropout layer of ``model`` for a pooled one, in place, and route attention through
    :func:`pooled_attention` for modules that own a dropout rate (transformers models)."""
    from baal.bayesian.dropout import Dropout as BaalDropout

    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) in (torch.nn.Dropout, BaalDropout):  # channel dropout (Dropout2d, ...) keeps its own masks
                setattr(parent, name, PooledDropout(child.p, pool))
        parent.mask_pool = pool  # read by pooled_attention
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "_attn_implementation"):
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

        AttentionInterface.register(ATTENTION, pooled_attention)
        # without a registered mask function transformers builds no padding mask for a custom attention
        AttentionMaskInterface.register(ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["eager"])
        config._attn_implementation = ATTENTION
