"""Input-independent rungs: uniform random, random by class prior (stratified), majority.

They follow scikit-learn's ``DummyClassifier`` semantics, with deterministic per-text randomness
(a hash of the text and the seed) so a text always gets the same prediction, whatever the batch.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Literal, Self

import numpy as np

from bench.data import Input, Split
from bench.rungs.protocol import Rung

Strategy = Literal["uniform", "stratified", "majority"]
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def text_uniforms(inputs: Sequence[Input], n_cols: int, seed: int) -> np.ndarray:
    """``[N, n_cols]`` uniforms in [0, 1), a deterministic function of each input and the seed."""
    keys = np.array(
        [zlib.crc32(x.encode() if isinstance(x, str) else "\x1f".join(x).encode()) for x in inputs], dtype=np.uint64
    )
    with np.errstate(over="ignore"):
        base = keys * np.uint64(0x100000001B3) + np.uint64(seed & 0xFFFFFFFF) * _GOLDEN
        cols = [_splitmix64(base + np.uint64(j) * _GOLDEN * np.uint64(2)) for j in range(n_cols)]
    return (np.stack(cols, axis=1) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class ChanceClassifier(Rung):
    """A chance-level baseline.

    - ``uniform``: probabilities 1/C (multi-label: 0.5), the predicted class uniformly random
      (a 1e-6 per-text jitter breaks the tie).
    - ``stratified``: a class drawn from the training prior, returned one-hot (multi-label: each
      label drawn with its own prior), as scikit-learn's ``stratified`` strategy.
    - ``majority``: the training prior as probabilities, so the majority class is always predicted
      (multi-label: each label's prior).
    """

    def __init__(self, strategy: Strategy = "uniform", seed: int = 0) -> None:
        self.strategy = strategy
        self.seed = seed

    def fit(self, train: Split, validation: Split) -> Self:
        if self.strategy not in ("uniform", "stratified", "majority"):
            raise ValueError(f"unknown strategy {self.strategy!r}")
        self.spec = train.spec
        self.prior_ = train.class_counts() / len(train)
        return self

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        n, c = len(inputs), self.spec.n_classes
        multilabel = self.spec.multilabel
        if self.strategy == "majority":
            return np.tile(self.prior_, (n, 1)).astype(np.float64)
        u = text_uniforms(inputs, c if multilabel or self.strategy == "uniform" else 1, self.seed)
        if self.strategy == "uniform":
            base = 0.5 if multilabel else 1.0 / c
            probs = base * (1.0 + 1e-6 * (u - 0.5))
            return probs if multilabel else probs / probs.sum(axis=1, keepdims=True)
        if multilabel:
            return (u < self.prior_).astype(np.float64)
        cdf = np.cumsum(self.prior_)
        drawn = np.minimum(np.searchsorted(cdf, u[:, 0] * cdf[-1], side="right"), c - 1)
        return np.eye(c)[drawn]

    def num_parameters(self) -> int:
        return 0 if self.strategy == "uniform" else int(self.prior_.size)
