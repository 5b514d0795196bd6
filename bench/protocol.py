"""The one classifier protocol every rung implements (scikit-learn style: parameters in ``__init__``)."""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from bench.data import Input, Split, TaskSpec

ARTIFACT_FILE = "rung.pkl"


class Rung(ABC):
    """A text classifier on the ladder.

    Subclasses take their hyper-parameters in ``__init__`` (no work there), learn in :meth:`fit` and
    return class probabilities from :meth:`predict_proba`: ``[N, C]`` rows summing to one for
    single-label tasks, independent per-label probabilities for multi-label tasks, columns in the
    spec's label order. Rungs that have logits expose them through :meth:`predict_logits`, which
    calibration wrappers build on.
    """

    #: whether :meth:`predict_logits` is available (calibration wrappers need it)
    has_logits: ClassVar[bool] = False

    spec: TaskSpec

    @abstractmethod
    def fit(self, train: Split, validation: Split) -> Self:
        """Learn from ``train``; ``validation`` may be used for model selection. Returns ``self``."""

    @abstractmethod
    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        """Class (or per-label) probabilities, shape ``[N, C]``."""

    def predict_logits(self, inputs: Sequence[Input]) -> np.ndarray:
        """Pre-softmax (or pre-sigmoid) scores ``[N, C]``; only where :attr:`has_logits`."""
        raise NotImplementedError(f"{type(self).__name__} has no logits")

    def num_parameters(self) -> int:
        """Number of learned numeric parameters."""
        return 0

    def fit_info(self) -> dict[str, Any]:
        """What fitting chose (e.g. the regularisation picked on validation), stored in result.json."""
        return {}

    # Persistence: rungs built from picklable parts (sklearn, numpy) can use these defaults;
    # torch rungs override them with safetensors. Only load artifacts this harness wrote.
    def save(self, folder: Path) -> None:
        """Write the fitted rung under ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ARTIFACT_FILE).open("wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, folder: Path) -> Self:
        """Read a rung written by :meth:`save` (trusted files only: this unpickles)."""
        with (Path(folder) / ARTIFACT_FILE).open("rb") as fh:
            obj = pickle.load(fh)
        if not isinstance(obj, cls):
            raise TypeError(f"{folder} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj


def check_probabilities(probs: np.ndarray, n: int, spec: TaskSpec) -> np.ndarray:
    """Validate a rung's output: shape, finiteness, range and (single-label) rows summing to one."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n, spec.n_classes):
        raise ValueError(f"predict_proba returned shape {probs.shape}, expected {(n, spec.n_classes)}")
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1 + 1e-6:
        raise ValueError("predict_proba returned values outside [0, 1] or non-finite values")
    if not spec.multilabel and not np.allclose(probs.sum(axis=1), 1.0, atol=1e-5):
        raise ValueError("predict_proba rows do not sum to one")
    return np.clip(probs, 0.0, 1.0)
