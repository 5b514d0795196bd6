"""Deep ensemble (Lakshminarayanan et al. 2017) over any probabilistic rung: the mean of K members' probabilities.

The members are the base rung fitted at K consecutive seeds (its registration names the option K, see
:meth:`bench.rungs.registry.RungInfo.base_seeds`): the harness hands them over already fitted where the store
holds them, so an ensemble costs no training beyond its members' own results, and K times their inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench import cache
from bench.cache import inputs_digest
from bench.data import Input, Split
from bench.rungs.protocol import Rung, logits_of_mean
from bench.rungs.wrapper import Wrapper

MIN_MEMO = 256  # whole splits: the harness asks for the members and then their mean of the same inputs


class DeepEnsemble(Wrapper):
    """Mean of ``members`` fitted rungs' probabilities (softmax rows, or multi-label sigmoids); logits are the log of
    the mean (for temperature scaling on top). :meth:`predict_members` gives each member's, for the ensemble's
    diversity metrics and OOD scores."""

    has_logits = True
    has_members = True

    def __init__(self, bases: Sequence[Rung], members: int = 3) -> None:
        self._set_bases(bases)
        self.members = members

    def fit_own(self, train: Split, validation: Split) -> None:
        if len(self.bases) != self.members:
            raise ValueError(f"an ensemble of {self.members} members got {len(self.bases)} bases")

    def predict_members(self, inputs: Sequence[Input]) -> np.ndarray:
        memo = getattr(self, "memo_", None)
        key = inputs_digest(inputs) if len(inputs) >= MIN_MEMO and cache.enabled() else None  # not while timed
        if key is not None and memo is not None and memo[0] == key:
            return memo[1]
        out = np.stack([np.asarray(b.predict_proba(inputs), dtype=np.float64) for b in self.bases])
        if key is not None:
            self.memo_ = (key, out)
        return out

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        return self.predict_members(inputs).mean(axis=0)

    def predict_logits(self, inputs: Sequence[Input]) -> np.ndarray:
        return logits_of_mean(self.predict_proba(inputs), self.spec.multilabel)

    def efficiency_report(self, inputs: Sequence[Input]) -> dict[str, Any]:
        return {**super().efficiency_report(inputs), "ensemble_members": len(self.bases)}

    def own_fit_info(self) -> dict[str, Any]:
        return {"members": len(self.bases)}
