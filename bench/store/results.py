"""The results store: ``<output>/<dataset>/<rung>/seed-<k>/result.json`` and ``predictions.npz`` (and the fitted
``artifact/``), one folder per seed, written atomically.

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
SEED_PREFIX = "seed-"
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


def seed_of(result: dict[str, Any]) -> int:
    """The seed a result was run with."""
    return int((result.get("config") or {}).get("seed") or 0)


class ResultStore:
    """Reads and writes results under one output folder: ``<dataset>/<rung>/seed-<k>/``, one folder per seed.

    Results written by older versions straight into ``<dataset>/<rung>/`` are still read (as the seed their config
    names); :meth:`migrate` moves them into their seed's folder.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def rung_dir(self, dataset: str, rung: str, seed: int = 0) -> Path:
        """Where ``rung``'s result for ``seed`` lives: its seed folder, or an older flat folder holding that seed."""
        folder = self.root / dataset / rung / f"{SEED_PREFIX}{seed}"
        if not (folder / RESULT_FILE).is_file():
            legacy = self.root / dataset / rung
            found = self._read(legacy / RESULT_FILE)
            if found is not None and seed_of(found) == seed:
                return legacy
        return folder

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError):
            return None

    def read(self, dataset: str, rung: str, seed: int = 0) -> dict[str, Any] | None:
        """The stored result of ``rung`` on ``dataset`` for ``seed``, or None."""
        return self._read(self.rung_dir(dataset, rung, seed) / RESULT_FILE)

    def seeds(self, dataset: str, rung: str) -> list[int]:
        """The seeds ``rung`` has results for on ``dataset``, ascending."""
        folder = self.root / dataset / rung
        found = {
            int(d.name[len(SEED_PREFIX) :])
            for d in folder.glob(f"{SEED_PREFIX}*")
            if d.name[len(SEED_PREFIX) :].isdigit() and (d / RESULT_FILE).is_file()
        }
        legacy = self._read(folder / RESULT_FILE)
        if legacy is not None:
            found.add(seed_of(legacy))
        return sorted(found)

    def _seeds_by_rung(self, dataset: str) -> dict[str, list[int]]:
        folder = self.root / dataset
        if not folder.is_dir():
            return {}
        found = {d.name: self.seeds(dataset, d.name) for d in sorted(folder.iterdir()) if d.is_dir()}
        return {rung: seeds for rung, seeds in found.items() if seeds}

    def rungs(self, dataset: str) -> list[str]:
        """Rungs with at least one stored result on ``dataset``."""
        return list(self._seeds_by_rung(dataset))

    def results(self, dataset: str) -> list[dict[str, Any]]:
        """One result per rung of ``dataset``: its lowest seed's (the one leaderboards rank and compare)."""
        found = (self.read(dataset, rung, seeds[0]) for rung, seeds in self._seeds_by_rung(dataset).items())
        return [r for r in found if r is not None]

    def seed_results(self, dataset: str) -> dict[str, list[dict[str, Any]]]:
        """Every stored seed's result of every rung of ``dataset``, by rung, seeds ascending."""
        out = {}
        for rung, seeds in self._seeds_by_rung(dataset).items():
            found = [self.read(dataset, rung, seed) for seed in seeds]
            out[rung] = [r for r in found if r is not None]
        return out

    def datasets(self) -> list[str]:
        """Datasets with at least one stored result."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and self.rungs(d.name))

    def is_current(self, dataset: str, rung: str, config_hash: str, seed: int = 0) -> bool:
        """True when a finished (ok / not applicable) result with this config hash is stored for ``seed``."""
        stored = self.read(dataset, rung, seed)
        return bool(stored and stored.get("config_hash") == config_hash and stored.get("status") in FRESH_STATUSES)

    def migrate(self, dataset: str) -> list[str]:
        """Move results stored flat in ``<rung>/`` (older versions) into ``<rung>/seed-<k>/``; the rungs moved."""
        moved = []
        for rung in self.rungs(dataset):
            legacy = self.root / dataset / rung
            found = self._read(legacy / RESULT_FILE)
            if found is None:
                continue
            target = legacy / f"{SEED_PREFIX}{seed_of(found)}"
            target.mkdir(parents=True, exist_ok=True)
            for name in (PREDICTIONS_FILE, ARTIFACT_DIR, RESULT_FILE):  # result.json last: it marks the move done
                if (legacy / name).exists():
                    os.replace(legacy / name, target / name)
            moved.append(rung)
        return moved

    def write(self, result: dict[str, Any], probs: np.ndarray | None = None, labels: np.ndarray | None = None) -> Path:
        """Store a result (and, for ``ok``, its test predictions) in its seed's folder. Predictions land before
        result.json, so a result file never points at missing or stale predictions."""
        folder = self.root / result["dataset"] / result["rung"] / f"{SEED_PREFIX}{seed_of(result)}"
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
        """Replace a stored result.json where it lies, leaving its predictions and artifact as they are."""
        folder = self.rung_dir(result["dataset"], result["rung"], seed_of(result))
        payload = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in result.items() if k != "schema_version"}}
        _atomic_write_bytes(folder / RESULT_FILE, lambda fh: fh.write(to_json(payload).encode("utf-8")))
        return folder

    def load_predictions(self, dataset: str, rung: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(probs, labels)`` stored for ``rung`` on ``dataset`` with ``seed``."""
        with np.load(self.rung_dir(dataset, rung, seed) / PREDICTIONS_FILE) as data:
            return data["probs"], data["labels"]

    @contextmanager
    def artifact_dir(self, dataset: str, rung: str, seed: int = 0) -> Iterator[Path]:
        """A fresh folder to save a fitted rung into; it replaces the stored artifact on success."""
        final = self.root / dataset / rung / f"{SEED_PREFIX}{seed}" / ARTIFACT_DIR
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
