"""Floating-point operations of a torch model's forward pass on real tokens, counted by torch's FlopCounterMode.

A transformer's forward over one unpadded input of ``L`` tokens costs exactly ``c0 + c1 L + c2 L^2`` operations
(the linear layers grow with ``L``, attention with ``L^2``, pooler and head are fixed), so three counts at three
lengths give the coefficients, and any set of inputs is then costed from its token lengths without running the
model again. The same holds for a convolutional network (``c2 = 0``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


# FlopCounterMode (torch 2.13) counts the CUDA attention kernels but not the CPU one, so the CPU attention of a
# transformer would count as nothing (measured: MiniLM at 64 tokens, only its linear layers were counted).
def _attention(query_shape: Any, key_shape: Any, value_shape: Any, *_: Any, **__: Any) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention}


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations ``fn`` runs through torch (a multiply-add counts two)."""
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION) as counter, torch.inference_mode():
        fn()
    return int(counter.get_total_flops())


class FlopModel(NamedTuple):
    """Forward operations of one unpadded input of ``L`` tokens: ``c0 + c1 L + c2 L^2``; an input shorter than
    ``min_length`` costs what one of ``min_length`` does (the model pads it that far itself)."""

    c0: float
    c1: float
    c2: float
    min_length: int = 1

    def total(self, lengths: Sequence[int] | np.ndarray) -> float:
        """Operations of a forward over inputs of these token lengths, padding not counted."""
        n = np.maximum(np.asarray(lengths, dtype=np.float64), self.min_length)
        return float(np.sum(self.c0 + self.c1 * n + self.c2 * n * n))


def fit_flop_model(forward: Callable[[int], Any], max_length: int, min_length: int = 1) -> FlopModel:
    """The coefficients from counts of ``forward(L)`` (one input of ``L`` tokens) at three lengths between
    ``min_length`` and ``max_length``; an exact fit, as the count is a polynomial of degree two in ``L``."""
    top = min(max_length, max(64, 4 * min_length))
    points = sorted({max(min_length, top // 4), max(min_length, top // 2), top})
    if len(points) < 3:
        raise ValueError(f"lengths {min_length}..{max_length} are too few to fit a FLOP model")
    counts = [count_flops(lambda n=n: forward(n)) for n in points]
    c0, c1, c2 = np.linalg.solve(np.vander(np.asarray(points, dtype=np.float64), 3, increasing=True), counts)
    return FlopModel(float(c0), float(c1), float(c2), min_length)
