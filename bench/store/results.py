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
- ``predictions_sha256`` and ``artifact_sha256``: content hashes of the predictions and the fitted artifact this
  result belongs to. A file that does not match (a run interrupted between writing it and writing result.json, or
  a file changed since) is never used: the result is not current and the rung is fitted again.

predictions.npz: ``probs`` ``[N, C]`` float and ``labels`` (``[N]`` ints, or ``[N, C]`` 0/1) for the
test split, columns in the dataset card's label order; where there are any, ``ood_probs`` (out-of-distribution test
examples) and an ensemble's ``member_probs`` / ``ood_member_probs`` ``[K, N, C]``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bench.errors import BenchError

log = logging.getLogger("bench")

SCHEMA_VERSION = 1
BASE_SEED = " seed "  # in a base_artifacts key: the base is at another seed than the result (an ensemble member)
RESULT_FILE = "result.json"
PREDICTIONS_FILE = "predictions.npz"
ARTIFACT_DIR = "artifact"
SEED_PREFIX = "seed-"
FRESH_STATUSES = ("ok", "not_applicable")
STATUSES = ("ok", "failed", "not_applicable")
LOCK_FILE = ".bench.lock"
_TEMP_PATTERNS = (".artifact.*", ".*.tmp")  # what an interrupted write leaves behind


class StoreError(ValueError):
    """A stored file that cannot be used (unreadable, truncated, or not the one its result names)."""


class StoreBusy(BenchError):
    """Another bench process holds the output folder."""


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def artifact_digest(folder: Path) -> str:
    """SHA-256 over a folder's files: their relative paths and contents, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(folder).as_posix()}\0{file_digest(path)}\n".encode())
    return h.hexdigest()


def valid_result(obj: Any) -> str | None:
    """Why ``obj`` is not a usable result (None when it is): the fields every reader relies on."""
    if not isinstance(obj, dict):
        return f"not a JSON object ({type(obj).__name__})"
    for key in ("dataset", "rung", "status"):
        if not isinstance(obj.get(key), str):
            return f"no {key!r}"
    if obj["status"] not in STATUSES:
        return f"unknown status {obj['status']!r}"
    if obj["status"] == "ok":
        for key in ("metrics", "efficiency"):
            if not isinstance(obj.get(key), dict):
                return f"no {key!r}"
    if not isinstance(obj.get("config", {}), dict):
        return "'config' is not an object"
    return None


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


OPTIONAL_ARRAYS = ("ood_probs", "member_probs", "ood_member_probs")


class StoredPredictions(NamedTuple):
    """What ``predictions.npz`` holds: test probabilities ``[N, C]`` and labels, and where stored, those on
    out-of-distribution examples and an ensemble's members' ``[K, N, C]`` on both."""

    probs: np.ndarray
    labels: np.ndarray
    ood_probs: np.ndarray | None = None
    members: np.ndarray | None = None
    ood_members: np.ndarray | None = None


def seed_of(result: dict[str, Any]) -> int:
    """The seed a result was run with."""
    return int((result.get("config") or {}).get("seed") or 0)


def base_key(base: str, seed: int, own: int) -> str:
    """How a result's ``base_artifacts`` names a base it was built on: the base's name, with `` seed k`` where the
    base is at another seed than the result (an ensemble's members)."""
    return base if seed == own else f"{base}{BASE_SEED}{seed}"


def parse_base_key(key: str, own: int) -> tuple[str, int]:
    """The (base, seed) a :func:`base_key` names."""
    base, sep, seed = key.rpartition(BASE_SEED)
    return (base, int(seed)) if sep and seed.isdigit() else (key, own)


class ResultStore:
    """Reads and writes results under one output folder: ``<dataset>/<rung>/seed-<k>/``, one folder per seed.

    Results written by older versions straight into ``<dataset>/<rung>/`` are still read (as the seed their config
    names); :meth:`migrate` moves them into their seed's folder.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._warned: set[Path] = set()

    def rung_dir(self, dataset: str, rung: str, seed: int = 0) -> Path:
        """Where ``rung``'s result for ``seed`` lives: its seed folder, or an older flat folder holding that seed."""
        folder = self.root / dataset / rung / f"{SEED_PREFIX}{seed}"
        if not (folder / RESULT_FILE).is_file():
            legacy = self.root / dataset / rung
            found = self._read(legacy / RESULT_FILE)
            if found is not None and seed_of(found) == seed:
                return legacy
        return folder

    def _read(self, path: Path) -> dict[str, Any] | None:
        """The result stored at ``path``; None (with a warning, once) when it is missing, unreadable or malformed:
        an unusable result counts as missing, so ``run`` computes it again."""
        if not path.is_file():
            return None
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
            why = valid_result(found)
        except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            found, why = None, f"{type(exc).__name__}: {exc}"
        if why is None:
            return found
        if path not in self._warned:
            self._warned.add(path)
            log.warning("%s: unusable result (%s); treated as missing, `run` computes it again", path, why)
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
        """True when a finished (ok / not applicable) result with this config hash is stored for ``seed``, with
        the predictions it names and, where present, the artifact it names."""
        stored = self.read(dataset, rung, seed)
        if not (stored and stored.get("config_hash") == config_hash and stored.get("status") in FRESH_STATUSES):
            return False
        if stored["status"] != "ok":
            return True
        try:
            self.load_predictions(dataset, rung, seed)
        except StoreError as exc:
            log.warning("%s/%s seed %d: %s; computing it again", dataset, rung, seed, exc)
            return False
        why = self.artifact_mismatch(stored) or self.bases_moved(stored)
        if why:
            log.warning("%s/%s seed %d: %s; fitting it again", dataset, rung, seed, why)
            return False
        return True

    def bases_moved(self, result: dict[str, Any]) -> str | None:
        """Why a wrapper's result no longer belongs to its bases' stored results (None: it does): a base it was
        built on from the store has been fitted again since, so the table would pair the wrapper with other
        weights than it calibrated."""
        for key, digest in (result.get("base_artifacts") or {}).items():
            base, seed = parse_base_key(key, seed_of(result))
            now = self.read(result["dataset"], base, seed)
            if digest is not None and (now or {}).get("artifact_sha256") != digest:
                return f"its base {base} has been fitted again since it was built"
        return None

    def artifact_mismatch(self, result: dict[str, Any]) -> str | None:
        """Why the stored artifact is not the one ``result`` was computed with (None: it is, or there is none, or
        the result predates artifact hashes)."""
        folder = self.rung_dir(result["dataset"], result["rung"], seed_of(result)) / ARTIFACT_DIR
        expected = result.get("artifact_sha256")
        if not folder.is_dir() or expected is None:
            return None
        if artifact_digest(folder) != expected:
            return "its stored artifact is not the one its result names (an interrupted run, or a file changed since)"
        return None

    def clean(self, dataset: str) -> int:
        """Remove what killed writes left under ``dataset`` (temporary artifact folders and files; only safe while
        holding :meth:`locked`); the number removed."""
        removed = 0
        for pattern in _TEMP_PATTERNS:
            for stale in (self.root / dataset).glob(f"*/*/{pattern}"):
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
                removed += 1
        return removed

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

    def write(
        self,
        result: dict[str, Any],
        probs: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        ood_probs: np.ndarray | None = None,
        members: np.ndarray | None = None,
        ood_members: np.ndarray | None = None,
    ) -> Path:
        """Store a result (and, for ``ok``, its test predictions; ``ood_probs``: those on out-of-distribution test
        examples, where the data has them; ``members`` / ``ood_members``: an ensemble's members' ``[K, N, C]``) in
        its seed's folder. Predictions land before result.json, so a result file never points at missing or stale
        predictions."""
        folder = self.root / result["dataset"] / result["rung"] / f"{SEED_PREFIX}{seed_of(result)}"
        preds = folder / PREDICTIONS_FILE
        result = {k: v for k, v in result.items() if k != "predictions_sha256"}
        if probs is not None and labels is not None:
            buffer = io.BytesIO()
            optional = zip(OPTIONAL_ARRAYS, (ood_probs, members, ood_members), strict=True)
            extra = {k: v.astype(np.float64) for k, v in optional if v is not None}
            np.savez_compressed(buffer, probs=probs.astype(np.float64), labels=labels, **extra)
            data = buffer.getvalue()
            result["predictions_sha256"] = hashlib.sha256(data).hexdigest()
            _atomic_write_bytes(preds, lambda fh: fh.write(data))
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
        """``(probs, labels)`` stored for ``rung`` on ``dataset`` with ``seed``; :class:`StoreError` when they are
        missing, unreadable, malformed or not the ones the stored result names."""
        probs, labels, *_ = self.load_all_predictions(dataset, rung, seed)
        return probs, labels

    def load_all_predictions(self, dataset: str, rung: str, seed: int = 0) -> StoredPredictions:
        """:meth:`load_predictions` and what else was stored with them: the probabilities on out-of-distribution test
        examples and an ensemble's members' (None where there were none)."""
        folder = self.rung_dir(dataset, rung, seed)
        path = folder / PREDICTIONS_FILE
        result = self.read(dataset, rung, seed) or {}
        try:
            expected = result.get("predictions_sha256")
            if expected is not None and file_digest(path) != expected:
                raise StoreError(f"{path}: not the predictions its result.json names")
            with np.load(path, allow_pickle=False) as data:
                stored = StoredPredictions(
                    *(np.asarray(data[k]) for k in ("probs", "labels")),
                    *(np.asarray(data[k]) if k in data.files else None for k in OPTIONAL_ARRAYS),
                )
        except StoreError:
            raise
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise StoreError(f"{path}: unreadable predictions ({type(exc).__name__}: {exc})") from None
        probs, labels, ood = stored.probs, stored.labels, stored.ood_probs
        n_classes = len((result.get("data") or {}).get("labels") or []) or None
        if probs.ndim != 2 or len(labels) != len(probs) or (n_classes and probs.shape[1] != n_classes):
            raise StoreError(f"{path}: predictions of shape {probs.shape} with {len(labels)} labels do not fit")
        if ood is not None and (ood.ndim != 2 or ood.shape[1] != probs.shape[1]):
            raise StoreError(f"{path}: out-of-distribution predictions of shape {ood.shape} do not fit")
        for name, members, rows in (("member", stored.members, probs), ("OOD member", stored.ood_members, ood)):
            if members is not None and (rows is None or members.ndim != 3 or members.shape[1:] != rows.shape):
                raise StoreError(f"{path}: {name} predictions of shape {members.shape} do not fit")
        return stored

    def export_bundle(self, dataset: str, rung: str, seed: int = 0) -> bytes | None:
        """A cell's stored result with its predictions and artifact as one uncompressed tar archive (None when no
        result is stored): what an executor ships to a worker that does not share this folder, and back."""
        folder = self.rung_dir(dataset, rung, seed)
        if self._read(folder / RESULT_FILE) is None:
            return None
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name in (ARTIFACT_DIR, PREDICTIONS_FILE, RESULT_FILE):  # result.json last, as on disk
                if (folder / name).exists():
                    tar.add(folder / name, arcname=name, filter=_no_temp_files)
        return buffer.getvalue()

    def import_bundle(self, bundle: bytes) -> dict[str, Any]:
        """Store a bundle of :meth:`export_bundle` in its seed's folder and return its result: the artifact, then the
        predictions, then result.json, each moved into place whole, so an interrupted import leaves nothing that
        a result names (and :meth:`clean` removes its unpacked files)."""
        try:
            with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:") as tar:
                return self._import(tar)
        except (tarfile.TarError, OSError, ValueError, KeyError) as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"an unreadable result bundle ({type(exc).__name__}: {exc})") from None

    def _import(self, tar: tarfile.TarFile) -> dict[str, Any]:
        member = tar.extractfile(RESULT_FILE)
        result = json.loads(member.read()) if member is not None else None
        why = valid_result(result)
        if why is not None:
            raise StoreError(f"a result bundle without a usable {RESULT_FILE} ({why})")
        assert result is not None
        if any(Path(name).name != name or name in (".", "..") for name in (result["dataset"], result["rung"])):
            raise StoreError(f"a result bundle naming a folder outside the store: {result['dataset']}/{result['rung']}")
        folder = self.root / result["dataset"] / result["rung"] / f"{SEED_PREFIX}{seed_of(result)}"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".artifact.bundle."))
        try:
            tar.extractall(tmp, filter="data")
            if (tmp / ARTIFACT_DIR).is_dir():
                if (folder / ARTIFACT_DIR).exists():
                    shutil.rmtree(folder / ARTIFACT_DIR)
                os.replace(tmp / ARTIFACT_DIR, folder / ARTIFACT_DIR)
            if (tmp / PREDICTIONS_FILE).is_file():
                os.replace(tmp / PREDICTIONS_FILE, folder / PREDICTIONS_FILE)
            else:
                (folder / PREDICTIONS_FILE).unlink(missing_ok=True)
            os.replace(tmp / RESULT_FILE, folder / RESULT_FILE)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return result

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

    @contextmanager
    def locked(self, command: str) -> Iterator[None]:
        """Hold the output folder for one bench process (a lock file; released when the process ends, even when
        killed). A second process gets :class:`StoreBusy`, naming the holder. Re-entrant within a process."""
        key = self.root.resolve()
        if key in _HELD:
            yield
            return
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fh = (self.root / LOCK_FILE).open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.readline().strip() or "another process"
            fh.close()
            raise StoreBusy(
                f"{self.root} is in use by another bench process ({holder}); wait for it, or use another --output"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}, `{command}` since {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        fh.flush()
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
            fh.truncate(0)
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


_HELD: set[Path] = set()  # output folders this process holds


def _no_temp_files(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Leave what an interrupted write left (temporary files) out of a bundle."""
    name = Path(info.name).name
    return None if name.startswith(".") and (name.endswith(".tmp") or name.startswith(".artifact.")) else info
