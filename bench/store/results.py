"""The results store: ``<output>/<dataset>/<rung>/result.json`` and ``predictions.npz``, written atomically.

result.json schema (``schema_version`` 1):

- ``dataset``, ``rung``, ``family``, ``bases`` (the rungs a wrapper wraps), ``status`` (``ok`` | ``failed`` |
  ``not_applicable``),
  ``error`` (failed: the exception line) / ``reason`` (not applicable), ``traceback`` (failed)
- ``config`` (rung options, bases' config hashes, profile caps, seed, device, ECE bins, dataset fingerprint) and
  ``config_hash``
- ``dataset_fingerprint``, ``data`` (split sizes, source, notes)
- ``metrics``: every registered metric (:mod:`bench.evaluate.metrics`) and ``metrics_version``; ``efficiency``: see
  :class:`bench.evaluate.efficiency.Efficiency` (``params``, ``size_bytes``, ``fit_seconds`` are totals with the
  bases'; ``*_own`` the wrapper's alone)
- ``fit_info`` (what fitting chose), ``environment`` (versions, CPU/GPU, git commit), ``created_at``

predictions.npz: ``probs`` ``[N, C]`` float and ``labels`` (``[N]`` ints, or ``[N, C]`` 0/1) for the
test split, columns in the dataset card's label order.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
RESULT_FILE = "result.json"
PREDICTIONS_FILE = "predictions.npz"
ARTIFACT_DIR = "artifact"
FRESH_STATUSES = ("ok", "not_applicable")


def _atomic_write_bytes(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any) -> str:
    """JSON text for result files (NaN stored as null)."""
    return json.dumps(_nan_to_none(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n"


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


class ResultStore:
    """Reads and writes results under one output folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def rung_dir(self, dataset: str, rung: str) -> Path:
        return self.root / dataset / rung

    def read(self, dataset: str, rung: str) -> dict[str, Any] | None:
        """The stored result of ``rung`` on ``dataset``, or None."""
        path = self.rung_dir(dataset, rung) / RESULT_FILE
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError):
            return None

    def results(self, dataset: str) -> list[dict[str, Any]]:
        """Every stored result for ``dataset``."""
        folder = self.root / dataset
        if not folder.is_dir():
            return []
        found = (self.read(dataset, d.name) for d in sorted(folder.iterdir()) if d.is_dir())
        return [r for r in found if r is not None]

    def datasets(self) -> list[str]:
        """Datasets with at least one stored result."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and any(d.glob(f"*/{RESULT_FILE}")))

    def is_current(self, dataset: str, rung: str, config_hash: str) -> bool:
        """True when a finished (ok / not applicable) result with this config hash is stored."""
        stored = self.read(dataset, rung)
        return bool(stored and stored.get("config_hash") == config_hash and stored.get("status") in FRESH_STATUSES)

    def write(self, result: dict[str, Any], probs: np.ndarray | None = None, labels: np.ndarray | None = None) -> Path:
        """Store a result (and, for ``ok``, its test predictions). Predictions land before result.json,
        so a result file never points at missing or stale predictions."""
        folder = self.rung_dir(result["dataset"], result["rung"])
        preds = folder / PREDICTIONS_FILE
        if probs is not None and labels is not None:
            _atomic_write_bytes(
                preds, lambda fh: np.savez_compressed(fh, probs=probs.astype(np.float64), labels=labels)
            )
        payload = {"schema_version": SCHEMA_VERSION, **result}
        _atomic_write_bytes(folder / RESULT_FILE, lambda fh: fh.write(to_json(payload).encode("utf-8")))
        if probs is None:
            preds.unlink(missing_ok=True)
        return folder

    def rewrite(self, result: dict[str, Any]) -> Path:
        """Replace a stored result.json, leaving its predictions and artifact as they are (``bench rescore``)."""
        folder = self.rung_dir(result["dataset"], result["rung"])
        payload = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in result.items() if k != "schema_version"}}
        _atomic_write_bytes(folder / RESULT_FILE, lambda fh: fh.write(to_json(payload).encode("utf-8")))
        return folder

    def load_predictions(self, dataset: str, rung: str) -> tuple[np.ndarray, np.ndarray]:
        """``(probs, labels)`` stored for ``rung`` on ``dataset``."""
        with np.load(self.rung_dir(dataset, rung) / PREDICTIONS_FILE) as data:
            return data["probs"], data["labels"]

    @contextmanager
    def artifact_dir(self, dataset: str, rung: str) -> Iterator[Path]:
        """A fresh folder to save a fitted rung into; it replaces the stored artifact on success."""
        final = self.rung_dir(dataset, rung) / ARTIFACT_DIR
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".artifact."))
        try:
            yield tmp
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
