"""MC-Dropout over any torch rung: baal's ``patch_module`` plus every functional dropout site switched on."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn.modules.dropout import _DropoutNd

from bench.cache import cached_array, digest, inputs_digest
from bench.data import Input, Split
from bench.errors import NotApplicable
from bench.rungs.protocol import logits_of_mean
from bench.rungs.wrapper import Wrapper
from models.mask_pool import MaskPool, use_pooled_dropout
from models.torch_base import TorchClassifier

MIN_CACHED = 256


SAMPLERS = ("pooled", "exact")


def stochastic_copy(module: torch.nn.Module, pool: MaskPool | None = None) -> torch.nn.Module:
    """A copy of ``module`` in which every dropout site samples at inference.

    baal's ``patch_module`` swaps each dropout layer for one that always samples. That is not enough
    under transformers 5: attention passes ``dropout=0.0 if not self.training else self.dropout.p`` to
    its attention function, so attention-probability dropout stays off in eval mode. Every module that
    owns a dropout layer, or a float dropout rate, is therefore put in training mode — non-recursively,
    so normalisation layers with running statistics (none in transformers) keep their eval behaviour.
    With a ``pool``, masks come from it (:mod:`models.mask_pool`) instead of fresh Bernoulli draws.
    """
    from baal.bayesian.dropout import patch_module

    stochastic = patch_module(copy.deepcopy(module), inplace=True)
    stochastic.eval()
    for sub in stochastic.modules():
        owns_layer = any(isinstance(child, _DropoutNd) for child in sub.children())
        owns_rate = any("dropout" in k and isinstance(v, float) and v > 0 for k, v in vars(sub).items())
        if owns_layer or owns_rate:
            sub.training = True  # plain attribute: children keep their own mode
    if pool is not None:
        use_pooled_dropout(stochastic, pool)
    return stochastic


class MCDropoutClassifier(Wrapper):
    """Mean of the softmax (multi-label: sigmoid) probabilities over ``passes`` stochastic forward passes.

    Inputs are tokenised and collated once; each batch is then run ``passes`` times, replicated in memory
    up to ``max_rows`` rows per forward (baal's ``replicate_in_memory``). On a 2-core CPU replication does
    not pay (64 rows: 1.51x T deterministic passes, 1024 rows: 1.73x), hence the small default.
    Logits are the log of the mean probabilities (for temperature scaling on top).
    ``sampler="pooled"`` (default) cuts dropout masks from a pre-sampled pool, which makes T passes cost
    about T deterministic passes on a CPU; ``"exact"`` draws fresh masks with baal's layers (about 1.65x).
    """

    has_logits = True

    def __init__(
        self, base: TorchClassifier, passes: int = 20, max_rows: int = 64, seed: int = 0, sampler: str = "pooled"
    ) -> None:
        self._set_bases([base])
        self.passes = passes
        self.max_rows = max_rows
        self.seed = seed
        self.sampler = sampler

    def fit_own(self, train: Split, validation: Split) -> None:
        if not isinstance(self.base, TorchClassifier):
            raise NotApplicable(f"MC-Dropout needs a torch rung, got {type(self.base).__name__}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        self._prepare()

    def reseed(self, seed: int) -> None:
        """Draw from another dropout seed from now on (the MC sweep's repeats)."""
        self.seed = seed
        self._prepare()

    def _prepare(self) -> None:
        self.pool_ = MaskPool(self.seed) if self.sampler == "pooled" else None
        self.stochastic_ = stochastic_copy(self.base.module_, self.pool_)
        state = self.base.module_.state_dict()
        self.weights_digest_ = digest(state[k].detach().cpu().numpy().tobytes() for k in sorted(state))

    def _seed_for(self, inputs: Sequence[Input]) -> int:
        """Dropout seed for a set of inputs: the same inputs get the same MC estimate, whatever the call order."""
        return int(digest([str(self.seed), inputs_digest(inputs)])[:12], 16)

    def sample_probs(self, inputs: Sequence[Input], passes: int | None = None) -> np.ndarray:
        """Per-pass probabilities ``[T, N, C]``."""
        t = passes or self.passes
        enc = self.base.encode_inputs(inputs)
        out = np.empty((t, len(inputs), self.spec.n_classes), dtype=np.float32)
        module = self.base.module_
        self.base.module_ = self.stochastic_
        try:
            with torch.inference_mode():
                seed = self._seed_for(inputs)
                torch.manual_seed(seed)
                if self.pool_ is not None:
                    self.pool_.reseed(seed)
                for idx, batch in self.base.batches(enc):
                    per_chunk = max(1, self.max_rows // len(idx))
                    done = 0
                    while done < t:
                        reps = min(per_chunk, t - done)
                        big = {k: v.repeat(reps, *([1] * (v.dim() - 1))) for k, v in batch.items()}
                        logits = self.base.forward(big).float()
                        probs = torch.sigmoid(logits) if self.spec.multilabel else torch.softmax(logits, dim=-1)
                        out[done : done + reps, idx] = probs.view(reps, len(idx), -1).cpu().numpy()
                        done += reps
        finally:
            self.base.module_ = module
        return out

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        """Mean over passes; whole splits are cached on disk (``finetuned+mc+ts`` reuses ``finetuned+mc``'s)."""
        if len(inputs) < MIN_CACHED:
            return self.sample_probs(inputs).mean(axis=0, dtype=np.float64)
        key = f"{self.weights_digest_}-{self.passes}-{self.seed}-{self.sampler}-{inputs_digest(inputs)}"
        probs, _ = cached_array("mc_dropout", key, lambda: self.sample_probs(inputs).mean(axis=0, dtype=np.float64))
        return probs

    def predict_logits(self, inputs: Sequence[Input]) -> np.ndarray:
        return logits_of_mean(self.predict_proba(inputs), self.spec.multilabel)

    def efficiency_report(self, inputs: Sequence[Input], sample: int = 64) -> dict[str, Any]:
        """The base's padding figures plus the cost of T passes against T deterministic passes, on the
        first ``sample`` inputs: fastest of 3 interleaved timings each, as noise on a shared machine only adds."""
        subset = list(inputs[:sample])
        det, mc = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            self.base.predict_proba(subset)
            det.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            self.sample_probs(subset)
            mc.append(time.perf_counter() - t0)
        return {
            **self.base.efficiency_report(inputs),
            "mc_passes": self.passes,
            "mc_sampler": self.sampler,
            "mc_cost_ratio": min(mc) / (self.passes * min(det)),
            "mc_cost_sample": len(subset),
        }

    def forward_flops(self, inputs: Sequence[Input]) -> float | None:
        once = self.base.forward_flops(inputs)
        return None if once is None else self.passes * once

    def own_fit_info(self) -> dict[str, Any]:
        return {"passes": self.passes, "sampler": self.sampler}

    def restore(self, state: dict[str, Any]) -> None:
        self._prepare()
