"""Temperature scaling (Guo et al. 2017) over any rung with logits: one scalar T fitted on validation NLL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from bench.calibration import calibration_error, top_label
from bench.data import Input, Split
from bench.errors import NotApplicable
from bench.protocol import Rung, load_rung, save_rung
from bench.registry import register_rung
from bench.splits import subsample
from models.torch_base import probabilities

PARAMS_FILE = "temperature.json"


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


class TemperatureScaled(Rung):
    """``base``'s logits divided by a temperature T fitted on (at most ``max_calibration`` examples of) the
    validation split. Argmax is unchanged."""

    has_logits = True

    def __init__(self, base: Rung, max_calibration: int | None = 1000, seed: int = 0) -> None:
        self.base = base
        self.max_calibration = max_calibration
        self.seed = seed

    def fit(self, train: Split, validation: Split) -> Self:
        if not self.base.has_logits:
            raise NotApplicable(f"{type(self.base).__name__} exposes no logits to scale")
        if not self.base.is_fitted:
            self.base.fit(train, validation)
        self.spec = self.base.spec
        validation = subsample(validation, self.max_calibration, self.seed)  # T is one scalar: 1,000 examples pin it down
        z = self.base.predict_logits(validation.inputs)
        self.temperature_ = fit_temperature(z, validation.y, self.spec.multilabel)
        self.calibration_ = {"temperature": self.temperature_, "calibration_examples": len(validation)}
        if not self.spec.multilabel:
            for name, logits in (("before", z), ("after", z / self.temperature_)):
                p = probabilities(logits, False)
                self.calibration_[f"val_ece_{name}"] = calibration_error(*top_label(p, validation.y))
                self.calibration_[f"val_nll_{name}"] = float(-np.mean(np.log(np.clip(p[np.arange(len(p)), validation.y], 1e-12, 1))))
        return self

    def predict_logits(self, inputs: Sequence[Input]) -> np.ndarray:
        return self.base.predict_logits(inputs) / self.temperature_

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        return probabilities(self.predict_logits(inputs), self.spec.multilabel)

    def num_parameters(self) -> int:
        return self.base.num_parameters() + 1

    def efficiency_report(self, inputs: Sequence[Input]) -> dict[str, Any]:
        return self.base.efficiency_report(inputs)

    def fit_info(self) -> dict[str, Any]:
        return {**self.calibration_, "base": self.base.fit_info()}

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_rung(self.base, folder / "base")
        (folder / PARAMS_FILE).write_text(json.dumps(self.calibration_))

    @classmethod
    def load(cls, folder: Path) -> Self:
        rung = cls(load_rung(folder / "base"), max_calibration=None)
        rung.calibration_ = json.loads((folder / PARAMS_FILE).read_text())
        rung.temperature_ = rung.calibration_["temperature"]
        rung.spec = rung.base.spec
        return rung


def _register_ts(base: str, family: str) -> None:
    @register_rung(f"{base}+ts", family=family, base=base,
                   description=f"Temperature scaling on {base}: one scalar T fitted on validation NLL (LBFGS).")
    def factory(base: Rung, max_calibration: int | None = 1000, seed: int = 0) -> TemperatureScaled:
        return TemperatureScaled(base, max_calibration, seed)


for _base, _family in (("tfidf_lr", "linear+calibration"), ("char_cnn", "cnn+calibration"),
                       ("features_lr", "transformer+calibration"), ("finetuned", "transformer+calibration"),
                       ("finetuned+mc", "transformer+calibration")):
    _register_ts(_base, _family)
