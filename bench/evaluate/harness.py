"""The one evaluation path: dataset → rung → predictions → metrics, latency, size → stored result."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
import sys
import time
import traceback
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from bench import __version__, cache
from bench.data import Dataset, Split
from bench.environment import cpu_count, environment, thread_budget, timing_machine
from bench.errors import BenchError, NotApplicable
from bench.evaluate.conformal import DEFAULT_ALPHA
from bench.evaluate.efficiency import (
    GPU_THROUGHPUT_BATCH,
    Efficiency,
    flops_report,
    folder_size,
    matmul_peak,
    measure_latency,
    measure_throughput,
    sweep_throughput,
    thread_count,
    throughput_inputs,
)
from bench.evaluate.intervals import interval_report
from bench.evaluate.metrics import METRICS_VERSION, Predictions, score
from bench.evaluate.thresholds import Thresholds
from bench.profiles import Profile
from bench.rungs.protocol import Rung, UnsafeArtifactError, check_probabilities, under_trained, under_trained_hint
from bench.rungs.registry import RungInfo, base_arguments, create_rung, get_rung, load_rung, save_rung
from bench.rungs.wrapper import Wrapper
from bench.store.results import ARTIFACT_DIR, ResultStore, artifact_digest, base_key

log = logging.getLogger("bench")


@dataclass(frozen=True)
class RunSettings:
    """Everything about a run that is not the dataset or the rung."""

    profile: Profile
    seed: int = 0
    device: str = "cpu"
    ece_bins: int = 15
    force: bool = False
    retime: bool = False  # time stored results again here, from their artifacts (not part of a configuration)
    # a scoring parameter, not part of a result's configuration: `bench rescore --alpha` changes it for stored
    # results without refitting
    conformal_alpha: float = DEFAULT_ALPHA
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-rung user options (--option)

    def options_for(self, rung: str) -> dict[str, Any]:
        """Factory keyword arguments for ``rung``: those its registration declares for the profile, overridden by
        the user's."""
        return {**get_rung(rung).options_for(self.profile.name), **self.options.get(rung, {})}


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is an error."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise BenchError(f"unknown device {device!r}; use cpu, cuda or auto")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise BenchError(f"--device {device} asked for, but torch sees no CUDA GPU")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if loaded) torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def base_cells(rung: str, settings: RunSettings) -> list[tuple[str, int]]:
    """The (base, seed) cells rung ``rung`` is built on under ``settings`` (an ensemble's: several seeds)."""
    return get_rung(rung).base_seeds(settings.seed, settings.options_for(rung))


def member_cells(rung: str, settings: RunSettings) -> list[tuple[str, int]]:
    """The (base, seed) cells of every ensemble's members at or below ``rung`` (those of ``finetuned+ens+ts`` are
    ``finetuned+ens``'s), deepest first: what a run plans as cells of their own, to store and reuse them."""
    cells = [
        cell for base, seed in base_cells(rung, settings) for cell in member_cells(base, replace(settings, seed=seed))
    ]
    return cells + (base_cells(rung, settings) if get_rung(rung).members is not None else [])


def config_for(rung: str, dataset: Dataset, settings: RunSettings) -> dict[str, Any]:
    """The configuration a stored result is keyed on (a wrapper's includes its bases' hashes)."""
    return {
        "rung": rung,
        "bases": [
            config_hash(config_for(base, dataset, replace(settings, seed=seed)))
            for base, seed in base_cells(rung, settings)
        ],
        "options": settings.options_for(rung),
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint,
        "profile": settings.profile.to_dict(),
        "seed": settings.seed,
        "device": settings.device,
        "ece_bins": settings.ece_bins,
        "bench_version": __version__,
    }


def config_hash(config: dict[str, Any]) -> str:
    """A short, stable hash of a configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


CONTENDED_CPU_SHARE = 0.8  # a timing whose process got under 80% of a CPU per second of waiting was contended


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def time_rung(
    rung: Any, dataset: Dataset, settings: RunSettings, method: str = "inline"
) -> tuple[Efficiency, dict[str, Any]]:
    """Latency, then throughput at the batch a short sweep found fastest (:func:`sweep_throughput`: powers of two
    up to the profile's ``throughput_batch``, on a GPU up to :data:`GPU_THROUGHPUT_BATCH`, no call over
    ``throughput_call_seconds``) and, for a rung with a host stage (:meth:`~bench.rungs.protocol.Rung.prepare`),
    of the model alone on inputs tokenised ahead; with caches off; and how loaded the machine
    was meanwhile: the 1-minute load average before and after, and the process's CPU time over wall time. A
    timing is marked ``contended`` when the load exceeded the CPUs or, on CPU, the process got under
    :data:`CONTENDED_CPU_SHARE` of a CPU (a rung runs at least one thread: less means it waited for others).
    A rung that counts its forward operations (:meth:`~bench.rungs.protocol.Rung.forward_flops`) also gets the
    FLOP/s it achieved on the throughput batch's real tokens, as a fraction of the measured matmul peak."""
    p = settings.profile
    inputs = dataset.test.inputs
    eff = Efficiency(threads=thread_count(), device=settings.device)
    rung.warm_up()  # every shape inference can meet, so the first rung timed in a process pays nothing extra
    load_before, cpu0, wall0 = _load(), time.process_time(), time.perf_counter()
    with cache.disabled():
        eff.update(
            measure_latency(
                rung.predict_proba,
                inputs,
                warmup=p.latency_warmup,
                min_calls=p.latency_min_calls,
                min_seconds=p.latency_min_seconds,
                max_seconds=p.latency_max_seconds,
                device=settings.device,
            )
        )
        cap = p.throughput_batch if settings.device == "cpu" else max(p.throughput_batch, GPU_THROUGHPUT_BATCH)
        sweep = sweep_throughput(
            rung.predict_proba, inputs, cap, device=settings.device, call_seconds=p.throughput_call_seconds
        )
        batch = max(sweep, key=sweep.__getitem__)
        texts = throughput_inputs(inputs, batch)  # the batch measure_throughput times
        measure = functools.partial(
            measure_throughput,
            inputs=inputs,
            batch_size=batch,
            repeats=p.throughput_repeats,
            device=settings.device,
            max_seconds=p.throughput_max_seconds,
        )
        eff.update(measure(rung.predict_proba))
        eff["throughput_sweep"] = {str(size): rate for size, rate in sweep.items()}
        prepared = rung.prepare(texts)
        if prepared is not None:  # the model alone, its inputs tokenised ahead of the timed calls
            alone = measure(lambda _: rung.predict_prepared(prepared), track_memory=False)
            eff["throughput_prepared_per_s"] = alone["throughput_per_s"]
    cpu, wall, load_after = time.process_time() - cpu0, time.perf_counter() - wall0, _load()
    flops = rung.forward_flops(texts)  # the model's work on real tokens, untimed
    if flops:
        peak = matmul_peak(settings.device, rung.compute_dtype, thread_count())
        eff.update(flops_report(flops, batch, eff["throughput_per_s"], peak, rung.compute_dtype))
    share = cpu / wall if wall > 0 else float("nan")
    loads = [v for v in (load_before, load_after) if v is not None]
    contended = bool(
        (loads and max(loads) > cpu_count() + 0.5) or (settings.device == "cpu" and share < CONTENDED_CPU_SHARE)
    )
    timing = {
        "load_1m_before": load_before,
        "load_1m_after": load_after,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "cpu_share": share,
        "contended": contended,
        "method": method,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return eff, timing


TIMED_FIELDS = ("latency_", "throughput_", "peak_memory_bytes", "threads", "device", "flops_")


def retime(
    stored: dict[str, Any], dataset: Dataset, settings: RunSettings, store: ResultStore, method: str = "retimed"
) -> dict[str, Any]:
    """A stored result timed again on this machine: its fitted artifact is loaded (nothing is refitted), latency,
    throughput and memory are measured afresh; metrics, predictions, fit times and artifacts stay."""
    artifact = store.rung_dir(dataset.name, stored["rung"], settings.seed) / ARTIFACT_DIR
    rung = load_rung(artifact)
    eff, timing = time_rung(rung, dataset, settings, method)
    kept = {k: v for k, v in (stored.get("efficiency") or {}).items() if not k.startswith(TIMED_FIELDS)}
    machine = timing_machine(thread_count(), settings.device)
    retimed = {**stored, "efficiency": {**kept, **eff}, "timing": timing, "machine": machine}
    if not timing_pending(stored):
        before = (stored.get("machine") or {}).get("key") or (stored.get("environment") or {}).get("cpu")
        retimed["retimed_from"] = before
    store.rewrite(retimed)
    return retimed


def _stored_or_built(
    name: str, dataset: Dataset, settings: RunSettings, store: ResultStore
) -> tuple[Rung, float, str | None]:
    """Rung ``name`` fitted already when the store holds its current artifact — the one its current result names
    by content hash — with its stored fit time and that hash; else built afresh (fit time 0, no hash: the caller
    fits it). A stored artifact that would run code or names a foreign class is refused
    (:class:`UnsafeArtifactError`), never loaded."""
    stored = store.read(dataset.name, name, settings.seed)
    artifact = store.rung_dir(dataset.name, name, settings.seed) / ARTIFACT_DIR
    current = config_hash(config_for(name, dataset, settings))
    if stored and stored.get("status") == "ok" and stored.get("config_hash") == current and artifact.is_dir():
        why = (
            "it was stored before artifacts were hashed"
            if stored.get("artifact_sha256") is None
            else store.artifact_mismatch(stored)
        )
        if why:
            log.warning("%s/%s: not reusing its stored artifact: %s; fitting it again", dataset.name, name, why)
            return *build_rung(name, dataset, settings, store)[:2], None
        try:
            rung = load_rung(artifact)
        except UnsafeArtifactError:
            raise
        except Exception as exc:  # e.g. an artifact a newer library cannot read: fit the base again instead
            log.warning(
                "%s/%s: stored artifact unreadable (%s: %s); fitting it again",
                dataset.name,
                name,
                type(exc).__name__,
                exc,
            )
        else:
            log.info("%s: reusing the fitted %s", dataset.name, name)
            return rung, float(stored["efficiency"]["fit_seconds"]), stored["artifact_sha256"]
    return *build_rung(name, dataset, settings, store)[:2], None


def build_rung(
    rung_name: str, dataset: Dataset, settings: RunSettings, store: ResultStore
) -> tuple[Rung, float, dict[str, str | None]]:
    """Create a rung; a wrapper gets its bases already fitted where the store holds their current artifacts
    (fine-tune once, evaluate every calibration from the same weights). Also returns the stored fit time of
    what was reused (0 if nothing was) and, per base, the content hash of the stored artifact it reuses (None:
    fitted afresh)."""
    info = get_rung(rung_name)
    context = {"seed": settings.seed, "device": settings.device}
    options = settings.options_for(rung_name)
    if not info.bases:
        return create_rung(rung_name, context=context, **options), 0.0, {}
    cells = base_cells(rung_name, settings)
    built = [_stored_or_built(base, dataset, replace(settings, seed=seed), store) for base, seed in cells]
    names = [base_key(base, seed, settings.seed) for base, seed in cells]
    if "logits" in info.capabilities.needs:
        without = [name for name, (rung, _, _) in zip(names, built) if not rung.has_logits]
        if without:
            raise NotApplicable(f"{rung_name} needs logits, and {', '.join(without)} exposes none")
    bases = base_arguments([rung for rung, _, _ in built], several=info.members is not None)
    reused = {name: digest for name, (_, _, digest) in zip(names, built)}
    return (
        create_rung(rung_name, context=context, **bases, **options),
        sum(seconds for _, seconds, _ in built),
        reused,
    )


def not_applicable(info: RungInfo, dataset: Dataset) -> str | None:
    """Why the rung's declared capabilities rule this dataset out, or None."""
    why = info.capabilities.unsupported(dataset.spec.label_kind, dataset.spec.pair)
    return None if why is None else f"{info.name} {why}"


def _own_size(rung: Rung, folder: Any) -> int:
    """Bytes of a saved rung less its bases' folders (a wrapper's own state)."""
    total = folder_size(folder)
    if isinstance(rung, Wrapper):
        total -= sum(folder_size(f) for f in type(rung).base_folders(folder))
    return total


def predict(rung: Rung, split: Split, dataset: Dataset) -> tuple[np.ndarray, np.ndarray | None]:
    """``rung``'s checked probabilities on ``split`` and, for an ensemble, its members' ``[K, N, C]`` (else None)."""
    probs = check_probabilities(rung.predict_proba(split.inputs), len(split), dataset.spec)
    if not rung.has_members:
        return probs, None
    members = np.stack([check_probabilities(m, len(split), dataset.spec) for m in rung.predict_members(split.inputs)])
    if not np.allclose(members.mean(axis=0), probs, atol=1e-6):
        raise ValueError(f"{type(rung).__name__}: predict_proba is not the mean of predict_members")
    return probs, members


def tune_thresholds(rung: Rung, dataset: Dataset) -> Thresholds:
    """Multi-label decision thresholds (global and per label) maximising F1 on the rung's validation probabilities."""
    val = dataset.validation
    return Thresholds.tune(check_probabilities(rung.predict_proba(val.inputs), len(val), dataset.spec), val.y)


Step = Literal["done", "time", "fit"]


def timing_pending(result: dict[str, Any]) -> bool:
    """True for a result fitted and scored but not timed yet (a run whose timing phase has not reached it)."""
    return bool((result.get("timing") or {}).get("pending"))


def next_step(
    rung_name: str,
    dataset: Dataset,
    settings: RunSettings,
    store: ResultStore,
    here: Collection[str] | None = None,
) -> tuple[Step, dict[str, Any] | None]:
    """What a cell needs, with its stored result: ``done`` (stored and current: nothing to do), ``time`` (quality
    current, but not timed yet, timed while the machine was busy, timed on a machine other than ``here`` — the
    keys of the machines that will time it, default this one's —, or ``retime`` asked: its artifact is loaded and
    timed, nothing refitted) or ``fit`` (not stored, stale, or ``force``)."""
    chash = config_hash(config_for(rung_name, dataset, settings))
    if settings.force or not store.is_current(dataset.name, rung_name, chash, settings.seed):
        return "fit", None
    stored = store.read(dataset.name, rung_name, settings.seed)
    assert stored is not None
    if stored.get("status") != "ok":
        log.info("%s/%s: up to date (config %s), skipped; --force reruns it", dataset.name, rung_name, chash)
        return "done", stored
    here = set(here) if here is not None else {timing_machine(thread_count(), settings.device)["key"]}
    timed_on = (stored.get("machine") or {}).get("key")
    busy = bool((stored.get("timing") or {}).get("contended"))
    pending = timing_pending(stored)
    if timed_on in here and not busy and not pending and not settings.retime:
        log.info("%s/%s: up to date (config %s), skipped; --force reruns it", dataset.name, rung_name, chash)
        return "done", stored
    if not (store.rung_dir(dataset.name, rung_name, settings.seed) / ARTIFACT_DIR).is_dir():
        if pending:
            return "fit", None
        if timed_on in here and not busy:  # --retime without the artifact: the stored timing stands
            log.warning("%s/%s: no stored artifact to time again; its latency stands", dataset.name, rung_name)
            return "done", stored
        log.warning(
            "%s/%s: timed on another machine (%s) and its fitted artifact is not here, so its latency "
            "stays that machine's (the tables say so); --force refits it here",
            dataset.name,
            rung_name,
            timed_on or (stored.get("environment") or {}).get("cpu"),
        )
        return "done", stored
    why = (
        "not timed yet"
        if pending
        else "timed while this machine was busy"
        if busy and timed_on in here
        else "--retime"
        if timed_on in here
        else f"was timed on {timed_on}"
    )
    if stored.get("artifact_sha256") is not None:
        log.info("%s/%s: quality reused, timed again on this machine (%s)", dataset.name, rung_name, why)
        return "time", stored
    log.warning(
        "%s/%s: %s, and its artifact was stored before artifacts were hashed (it is not loaded): fitting it again",
        dataset.name,
        rung_name,
        why,
    )
    return "fit", None


def result_header(rung_name: str, dataset: Dataset, settings: RunSettings) -> dict[str, Any]:
    """What every result of ``rung_name`` on ``dataset`` records before it runs: rung, configuration, data."""
    info = get_rung(rung_name)
    config = config_for(rung_name, dataset, settings)
    return {
        "dataset": dataset.name,
        "rung": rung_name,
        "family": info.family,
        "description": info.description,
        "bases": list(info.bases),
        "chance": not info.capabilities.informative,  # predictions ignore the input
        "status": "ok",
        "config": config,
        "config_hash": config_hash(config),
        "dataset_fingerprint": dataset.fingerprint,
        "data": {
            "source": dataset.source,
            "notes": list(dataset.notes),
            "task": dataset.spec.task_type,
            "labels": list(dataset.spec.labels),
            **{name: len(s) for name, s in dataset.splits.items()},
            **({"ood": len(dataset.ood), "held_out": list(dataset.ood.spec.labels)} if dataset.ood is not None else {}),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def store_failure(rung_name: str, dataset: Dataset, settings: RunSettings, store: ResultStore, error: str) -> dict:
    """Store ``rung_name`` as ``failed`` with ``error`` (a cell that could not run to the end, e.g. its worker died
    on every try)."""
    result = {**result_header(rung_name, dataset, settings), "status": "failed", "error": error}
    result["environment"] = environment()
    store.write(result)
    return result


def evaluate(
    rung_name: str, dataset: Dataset, settings: RunSettings, store: ResultStore, time_it: bool = True
) -> dict[str, Any]:
    """Fit, predict, score, time and store one rung on one (profile-capped) dataset.

    A rung that raises is stored as ``failed`` and :class:`NotApplicable` as ``not_applicable``;
    neither stops the caller. A stored result with the same config hash is reused unless ``force`` (and timed
    again where :func:`next_step` says so). Without ``time_it`` the result is stored with its timing pending (an
    executor times it later, from the stored artifact).
    """
    step, stored = next_step(rung_name, dataset, settings, store)
    if step == "done":
        assert stored is not None
        return stored
    if step == "time":
        assert stored is not None
        return retime(stored, dataset, settings, store) if time_it else stored
    info = get_rung(rung_name)
    result = result_header(rung_name, dataset, settings)
    test = dataset.test
    probs = ood_probs = members = ood_members = None
    started = time.perf_counter()
    try:
        why = not_applicable(info, dataset)
        if why:
            raise NotApplicable(why)
        seed_everything(settings.seed)
        # the declared threads, whatever the machine or executor: a fit's result must not depend on the core count
        with thread_budget(info.resources.threads()):
            rung, reused_fit_seconds, reused = build_rung(rung_name, dataset, settings, store)
            if info.bases:
                result["base_artifacts"] = reused  # the stored base artifacts it was built on (None: fitted here)
            t0 = time.perf_counter()
            rung.fit(dataset.train, dataset.validation)
            own_fit_seconds = time.perf_counter() - t0
            fit_seconds = own_fit_seconds + reused_fit_seconds  # a wrapper's cost includes its bases' training
            thresholds = tune_thresholds(rung, dataset) if dataset.spec.multilabel else None
            t0 = time.perf_counter()
            probs, members = predict(rung, test, dataset)
            predict_seconds = time.perf_counter() - t0
            if dataset.ood is not None:  # test examples of classes held out: scored for OOD detection only
                ood_probs, ood_members = predict(rung, dataset.ood, dataset)
        scored = Predictions(
            dataset.spec,
            probs,
            test.y,
            settings.ece_bins,
            thresholds,
            settings.conformal_alpha,
            ood_probs,
            members,
            ood_members,
        )
        result["metrics"] = score(scored)
        result["metrics_version"] = METRICS_VERSION
        result["intervals"] = interval_report(scored, result["metrics"])
        with store.artifact_dir(dataset.name, rung_name, settings.seed) as folder:
            save_rung(rung, folder)
            size, own_size = folder_size(folder), _own_size(rung, folder)
            result["artifact_sha256"] = artifact_digest(folder)
        with cache.disabled():
            report = rung.efficiency_report(test.inputs)
        params = rung.num_parameters()
        own_params = rung.own_parameters() if isinstance(rung, Wrapper) else params
        # totals include the bases' (what deploying the rung costs); *_own count the wrapper alone
        if time_it:
            timed, result["timing"] = time_rung(rung, dataset, settings)
            result["machine"] = timing_machine(thread_count(), settings.device)
        else:
            timed, result["timing"] = Efficiency(), {"pending": True}
        if result["timing"].get("contended"):
            log.warning(
                "%s/%s: timed while the machine was busy (load %s, CPU share %.2f): its latency is marked",
                dataset.name,
                rung_name,
                result["timing"]["load_1m_after"],
                result["timing"]["cpu_share"],
            )
        result["efficiency"] = {
            **timed,
            "fit_seconds": fit_seconds,
            "fit_seconds_own": own_fit_seconds,
            "predict_seconds": predict_seconds,
            "params": params,
            "params_own": own_params,
            "size_bytes": size,
            "size_bytes_own": own_size,
            **report,
        }
        wrapper = {"own_fit_seconds": own_fit_seconds, "reused_fit_seconds": reused_fit_seconds} if info.bases else {}
        result["fit_info"] = {**rung.fit_info(), **wrapper}
        if under_trained(result["fit_info"]) and not info.bases:
            log.warning(
                "%s/%s: under-trained: %s", dataset.name, rung_name, under_trained_hint(rung_name, result["fit_info"])
            )
    except UnsafeArtifactError:
        raise  # a stored file bench refuses to load: the user decides (--force refits)
    except NotApplicable as exc:
        result.update(status="not_applicable", reason=str(exc))
        probs = None
    except Exception as exc:  # a crashing rung is recorded and the run goes on
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
        probs = None
        log.error("%s/%s failed: %s: %s", dataset.name, rung_name, type(exc).__name__, exc)
    result["duration_seconds"] = time.perf_counter() - started
    result["environment"] = environment()
    if probs is None:
        store.write(result)
    else:
        store.write(result, probs, test.y, ood_probs, members, ood_members)
    return result
