"""``bench rescore``: recompute every registered metric of stored results from their predictions, refitting nothing.

It also brings results stored by an older bench up to the current layout of their configuration (the same run
keyed the way this version keys it), so a later ``bench run`` recognises them as current.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from bench.data.spec import TaskSpec
from bench.errors import BenchError
from bench.evaluate.conformal import DEFAULT_ALPHA
from bench.evaluate.harness import config_hash
from bench.evaluate.intervals import interval_report
from bench.evaluate.metrics import METRICS_VERSION, Predictions, score
from bench.evaluate.thresholds import Thresholds
from bench.rungs.registry import get_rung, list_rungs
from bench.store.results import PREDICTIONS_FILE, ResultStore, StoreError, seed_of

log = logging.getLogger("bench")


def _bases(result: dict[str, Any]) -> list[str]:
    if "bases" in result:
        return list(result["bases"])
    if (result.get("config") or {}).get("base") is None:
        return []
    try:  # results written before bases were stored: the registry knows them
        return list(get_rung(result["rung"]).bases)
    except BenchError:
        raise BenchError(
            f"{result['dataset']}/{result['rung']}: stored before bases were recorded, and no such rung "
            "is registered to say which rungs it wraps"
        ) from None


def migrate_config(result: dict[str, Any], base_hashes: list[str]) -> dict[str, Any]:
    """The stored configuration in this version's layout: the bases' (migrated) hashes as ``bases``, the profile
    without per-rung options (they are in ``options`` already)."""
    config = {k: v for k, v in (result.get("config") or {}).items() if k != "base"}
    config["bases"] = base_hashes
    config["profile"] = {k: v for k, v in (config.get("profile") or {}).items() if k != "rung_options"}
    return config


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def stored_predictions(
    result: dict[str, Any],
    probs: np.ndarray,
    labels: np.ndarray,
    alpha: float | None = None,
    ood_probs: np.ndarray | None = None,
    members: np.ndarray | None = None,
    ood_members: np.ndarray | None = None,
) -> Predictions:
    """What a stored result's metrics are computed from: its task, bins, (multi-label) tuned thresholds and conformal
    ``alpha`` (given, else the one it was scored with, else the default)."""
    data, old = result.get("data") or {}, result.get("metrics") or {}
    spec = TaskSpec(result["dataset"], data.get("task", "single-label"), tuple(data.get("labels") or ()))
    if len(spec.labels) != probs.shape[1]:
        raise BenchError(f"{result['dataset']}/{result['rung']}: stored labels do not match its predictions")
    n_bins = int((result.get("config") or {}).get("ece_bins") or old.get("ece_bins") or 15)
    thresholds = Thresholds.from_metrics(old, spec.labels) if spec.multilabel and "threshold" in old else None
    if alpha is None:
        alpha = float((old.get("conformal") or {}).get("alpha") or DEFAULT_ALPHA)
    return Predictions(spec, probs, labels, n_bins, thresholds, alpha, ood_probs, members, ood_members)


def rescore_result(
    result: dict[str, Any], store: ResultStore, alpha: float | None = None
) -> tuple[dict[str, Any], float]:
    """The result with every registered metric and its interval recomputed from its stored predictions (``alpha``:
    conformal miscoverage, default the stored one), and the largest change of a scalar metric it already had (0
    when all agree; NaN when it had none)."""
    stored = store.load_all_predictions(result["dataset"], result["rung"], seed_of(result))
    p = stored_predictions(result, stored.probs, stored.labels, alpha, *stored[2:])  # OOD and members' if stored
    metrics = score(p)
    before, after = _scalars(result.get("metrics") or {}), _scalars(metrics)
    shared = set(before) & set(after)
    change = max((abs(after[k] - before[k]) for k in shared), default=math.nan)
    rescored = {
        **result,
        "metrics": metrics,
        "metrics_version": METRICS_VERSION,
        "intervals": interval_report(p, metrics),
    }
    return rescored, change


def _rescore_seed(
    store: ResultStore,
    dataset: str,
    seed: int,
    results: dict[str, dict[str, Any]],
    chance: dict[str, bool],
    alpha: float | None = None,
) -> list[dict[str, Any]]:
    """Rescore one seed's results, bases first (a wrapper's configuration holds its bases' hashes)."""
    hashes: dict[str, str] = {}
    rows: list[dict[str, Any]] = []

    def visit(rung: str) -> str:
        if rung in hashes:
            return hashes[rung]
        result = results.get(rung)
        if result is None:
            raise BenchError(f"{dataset}/{rung} seed {seed}: a stored wrapper's base has no stored result")
        bases = _bases(result)
        config = result.get("config") or {}
        if "bases" not in config:  # stored by an older bench: re-key it the way this version does
            config = migrate_config(result, [visit(b) for b in bases])
        result = {**result, "bases": bases, "config": config, "config_hash": config_hash(config)}
        if "chance" not in result and rung in chance:
            result["chance"] = chance[rung]
        change, status = math.nan, result.get("status")
        if status == "ok" and not (store.rung_dir(dataset, rung, seed) / PREDICTIONS_FILE).is_file():
            status = "ok, no predictions.npz: metrics kept"
        elif status == "ok":
            try:
                result, change = rescore_result(result, store, alpha)
                result["rescored_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            except StoreError as exc:  # `run` computes such a result again
                log.warning("%s/%s seed %d: %s; its metrics are kept", dataset, rung, seed, exc)
                status = "ok, predictions unreadable: metrics kept"
        store.rewrite(result)
        metrics = len(result.get("metrics") or {})
        rows.append(
            {"dataset": dataset, "rung": rung, "seed": seed, "status": status, "max_change": change, "metrics": metrics}
        )
        hashes[rung] = result["config_hash"]
        return hashes[rung]

    for rung in results:
        visit(rung)
    return rows


def rescore(store: ResultStore, dataset: str, alpha: float | None = None) -> list[dict[str, Any]]:
    """Rescore every stored result (every seed) of ``dataset`` in place: result.json only — predictions, artifacts,
    fit times and timestamps stay (``alpha``: score conformal sets at this miscoverage instead of the stored one).
    Results in the older flat layout are first moved into their seed's folder. Returns a summary row per
    result."""
    store.migrate(dataset)
    chance = {name: not get_rung(name).capabilities.informative for name in list_rungs()}
    by_seed: dict[int, dict[str, dict[str, Any]]] = {}
    for rung, results in store.seed_results(dataset).items():
        for result in results:
            by_seed.setdefault(seed_of(result), {})[rung] = result
    return [
        row
        for seed, results in sorted(by_seed.items())
        for row in _rescore_seed(store, dataset, seed, results, chance, alpha)
    ]
