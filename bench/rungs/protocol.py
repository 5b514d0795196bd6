"""The one classifier protocol every rung implements (scikit-learn style: parameters in ``__init__``)."""

from __future__ import annotations

import importlib
import inspect
import json
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from bench.data.spec import Input, Split, TaskSpec
from bench.errors import BenchError

Target = str | Any  # an object, or "module:object" to import on first use
ARTIFACT_FILE = "rung.skops"
LEGACY_ARTIFACT_FILE = "rung.pkl"  # written by bench < 0.9; never read (unpickling can run code)
CLASS_FILE = "rung.json"
#: types every rung's saved state may hold besides skops' defaults (builtins, numpy, scipy, scikit-learn)
COMMON_TRUSTED_TYPES = ("bench.data.spec.TaskSpec", "builtins.frozenset", "pathlib.PosixPath", "pathlib.WindowsPath")


class UnsafeArtifactError(BenchError):
    """A stored model file that bench refuses to load: it is not in a format bench reads without running code,
    or it names types that no rung declares."""


def type_name(cls: type) -> str:
    """``module.QualName``, as skops names types."""
    return f"{cls.__module__}.{cls.__qualname__}"


def load_trusted(path: Path, trusted: Sequence[str]) -> Any:
    """An object from a skops file, refused (:class:`UnsafeArtifactError`, nothing constructed) when the file is not
    a skops archive or names a type outside skops' defaults and ``trusted``. skops rebuilds objects from a JSON
    schema and builds only the types it is told to trust, so a file cannot run code the way a pickle can."""
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise UnsafeArtifactError(
            f"{path}: not a model file bench wrote ({type(exc).__name__}); refit with --force"
        ) from None
    untrusted = sorted(set(found) - set(trusted))
    if untrusted:
        raise UnsafeArtifactError(
            f"{path}: refusing to load it: it names types no rung declares ({', '.join(untrusted)}); "
            "delete it or refit with --force"
        )
    return sio.load(path, trusted=list(found))


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
    #: whether :meth:`predict_members` is available (an ensemble: its members' probabilities are stored and scored)
    has_members: ClassVar[bool] = False
    #: types (``module.QualName``) beyond skops' defaults that the default :meth:`save` writes, trusted by :meth:`load`
    trusted_types: ClassVar[tuple[str, ...]] = ()
    #: the precision :meth:`forward_flops` run in: achieved FLOP/s are compared with the matmul peak in it
    compute_dtype: str = "float32"

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

    def predict_members(self, inputs: Sequence[Input]) -> np.ndarray:
        """Each member's probabilities ``[K, N, C]``, whose mean is :meth:`predict_proba`; only where
        :attr:`has_members`."""
        raise NotImplementedError(f"{type(self).__name__} has no members")

    def num_parameters(self) -> int:
        """Number of learned numeric parameters."""
        return 0

    def fit_info(self) -> dict[str, Any]:
        """What fitting chose (e.g. the regularisation picked on validation), stored in result.json. An iterative
        fit records ``converged`` (False: its validation score was still improving at its step limit)."""
        return {}

    def efficiency_report(self, inputs: Sequence[Input]) -> dict[str, Any]:
        """Extra efficiency figures measured on the test inputs (e.g. padding efficiency), merged into result.json."""
        return {}

    def warm_up(self) -> None:
        """Run inference once on every input shape it can meet (the harness calls it before timing), where shapes
        cost set-up the first time (e.g. kernel selection on a GPU); default: nothing to do."""
        return None

    def prepare(self, inputs: Sequence[Input]) -> Any | None:
        """The host-side stage of inference (tokenisation) done on ``inputs`` ahead of the model, for
        :meth:`predict_prepared`, so the harness can also time the model alone; None (the default) where the rung
        has no such stage."""
        return None

    def predict_prepared(self, prepared: Any) -> np.ndarray:
        """:meth:`predict_proba` of the inputs :meth:`prepare` took; only where it returns something."""
        raise NotImplementedError(f"{type(self).__name__} has no separate host stage")

    def forward_flops(self, inputs: Sequence[Input]) -> float | None:
        """Floating-point operations of the model's forward passes that predict ``inputs``, on their real tokens
        (padding not counted); None where not counted. The harness divides them by the measured time."""
        return None

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters and their current values (scikit-learn's ``get_params``)."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self" and hasattr(self, name)}

    @property
    def is_fitted(self) -> bool:
        """True once :meth:`fit` (or :meth:`load`) has run."""
        return hasattr(self, "spec")

    # Persistence: rungs built from scikit-learn / numpy parts use these defaults (skops, which cannot run code on
    # load); torch rungs override them with safetensors + JSON.
    def save(self, folder: Path) -> None:
        """Write the fitted rung under ``folder``."""
        import skops.io as sio

        folder.mkdir(parents=True, exist_ok=True)
        sio.dump(self, folder / ARTIFACT_FILE)

    @classmethod
    def load(cls, folder: Path) -> Self:
        """Read a rung written by :meth:`save`; types outside :attr:`trusted_types` are refused, not built."""
        path = Path(folder) / ARTIFACT_FILE
        if not path.is_file():
            old = (
                " (a pickle from an older bench, which is never loaded)"
                if (path.parent / LEGACY_ARTIFACT_FILE).exists()
                else ""
            )
            raise UnsafeArtifactError(f"{folder}: no {ARTIFACT_FILE}{old}; refit with --force")
        obj = load_trusted(path, (type_name(cls), *COMMON_TRUSTED_TYPES, *cls.trusted_types))
        if not isinstance(obj, cls):
            raise UnsafeArtifactError(f"{folder} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj


def resolve(target: Target) -> Any:
    """The object behind a target: itself, or ``module:object`` imported."""
    if not isinstance(target, str):
        return target
    module, sep, qualname = target.partition(":")
    if not sep:
        raise ValueError(f"{target!r} is not a 'module:object' string")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def check_probabilities(probs: np.ndarray, n: int, spec: TaskSpec) -> np.ndarray:
    """Validate a rung's output: shape, finiteness, range and (single-label) rows summing to one."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n, spec.n_classes):
        raise ValueError(f"predict_proba returned shape {probs.shape}, expected {(n, spec.n_classes)}")
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1 + 1e-6:
        raise ValueError("predict_proba returned values outside [0, 1] or non-finite values")
    probs = np.clip(probs, 0.0, 1.0)
    if not spec.multilabel:
        if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-5):
            raise ValueError("predict_proba rows do not sum to one")
        probs = probs / probs.sum(axis=1, keepdims=True)  # float32 rounding → exact float64 distributions
    return probs


def logits_of_mean(probs: np.ndarray, multilabel: bool) -> np.ndarray:
    """Logits whose softmax (multi-label: sigmoids) gives back ``probs``: what a rung that averages probabilities
    (MC-Dropout, an ensemble) exposes, so temperature scaling composes over it."""
    p = np.clip(probs, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p)) if multilabel else np.log(p)


def under_trained(fit_info: dict[str, Any] | None) -> bool:
    """Whether a stored ``fit_info`` — or that of a base it wraps, at any depth — says the fit had not converged."""
    info = fit_info or {}
    nested = [info.get("base"), *(info.get("bases") or [])]
    return info.get("converged") is False or any(under_trained(b) for b in nested if isinstance(b, dict))


def under_trained_hint(rung: str, fit_info: dict[str, Any]) -> str:
    """Why ``rung`` (a fit :func:`under_trained` flags) is under-trained and how to lift its limit, in one
    sentence for the run's warnings and the leaderboard's sanity checks."""
    cap = fit_info.get("limit_rule") or "max_steps"
    return (
        f"its validation {fit_info.get('monitor', 'score')} was still improving when it reached its limit of "
        f"{fit_info.get('steps', '?')} steps ({fit_info.get('epochs', '?')} epochs, set by {cap}); raise "
        f"{rung}.{cap} (--option) or use --profile full"
    )
