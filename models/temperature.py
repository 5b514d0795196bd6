"""Temperature scaling (Guo et al. 2017) over any rung with logits: one scalar T fitted on validation NLL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bench.data import Input, Split
from bench.data.splits import subsample
from bench.evaluate.calibration import calibration_error, top_label
from bench.rungs.protocol import Rung
from bench.rungs.wrapper import Wrapper
from models.torch_base import probabilities


def _nll(logits: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if multilabel:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y.double())
    return torch.nn.functional.cross_entropy(logits, y)


def fit_temperature(logits: np.ndarray, y: np.ndarray, multilabel: bool = False, max_iter: int = 200) -> float:
    """The T > 0 minimising the NLL of ``softmax(logits / T)`` (multi-label: sigmoids), by LBFGS on log T."""
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    target = torch.as_tensor(y)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _nll(z / log_t.exp(), target, multilabel)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())


class TemperatureScaled(Wrapper):
    """``base``'s logits divided by a temperature T fitted on (at most ``max_calibration`` examples of) the
    validation split. Argmax is unchanged."""

    has_logits = True
    requires_logits = True

    def __init__(self, base: Rung, max_calibration: int | None = 1000, seed: int = 0) -> None:
        self._set_bases([base])
        self.max_calibration = max_calibration
        self.seed = seed

    def fit_own(self, train: Split, validation: Split) -> None:
        validation = subsample(
            validation, self.max_calibration, self.seed
        )  # T is one scalar: 1,000 examples pin it down
        z = self.base.predict_logits(validation.inputs)
        self.temperature_ = fit_temperature(z, validation.y, self.spec.multilabel)
        self.calibration_ = {"temperature": self.temperature_, "calibration_examples": len(validation)}
        if not self.spec.multilabel:
            for name, logits in (("before", z), ("after", z / self.temperature_)):
                p = probabilities(logits, False)
                self.calibration_[f"val_ece_{name}"] = calibration_error(*top_label(p, validation.y))
                self.calibration_[f"val_nll_{name}"] = float(
                    -np.mean(np.log(np.clip(p[np.arange(len(p)), validation.y], 1e-12, 1)))
                )

    def predict_logits(self, inputs: Sequence[Input]) -> np.ndarray:
        return self.base.predict_logits(inputs) / self.temperature_

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        return probabilities(self.predict_logits(inputs), self.spec.multilabel)

    def own_parameters(self) -> int:
        return 1

    def own_fit_info(self) -> dict[str, Any]:
        return dict(self.calibration_)

    def state(self) -> dict[str, Any]:
        return dict(self.calibration_)

    def restore(self, state: dict[str, Any]) -> None:
        self.calibration_ = dict(state)
        self.temperature_ = float(state["temperature"])
