"""The pytest-benchmark suite behind ``python -m bench perf``: every rung's ``predict_proba`` at batch 1 and 16.

Run it directly for pytest-benchmark's own features (``--benchmark-save``, ``--benchmark-compare``,
``--benchmark-compare-fail=median:25%``)::

    python -m pytest bench/perf_suite.py -p no:cacheprovider --benchmark-only

Environment: ``BENCH_PERF_RUNGS`` (comma-separated wildcards, default every rung), ``BENCH_PERF_PLAN``
(a baseline JSON whose calls per round and reference parts to reuse, so rounds do the same work as the
baseline's), ``BENCH_PERF_REFERENCE`` (JSON case -> reference part, set between ``--save`` runs) and
``BENCH_PERF_SLOWDOWN`` (``rung=factor``; a test hook that makes a rung do its work ``factor`` times).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from bench import perf
from bench.cache import disabled
from bench.registry import list_rungs


def _selected() -> list[str]:
    patterns = [p.strip() for p in os.environ.get("BENCH_PERF_RUNGS", "*").split(",") if p.strip()]
    names: list[str] = []
    for pattern in patterns:
        names += [n for n in list_rungs(pattern) if n not in names]
    return names


def _baseline_plans() -> dict[str, Any]:
    path = os.environ.get("BENCH_PERF_PLAN")
    if path and Path(path).is_file():
        return json.loads(Path(path).read_text(encoding="utf-8")).get("cases", {})
    return {}


RUNGS = _selected()
PLANS = _baseline_plans()


@pytest.fixture(scope="session")
def dataset():
    return perf.workload()


@pytest.fixture(scope="session")
def ladder(dataset):
    """Every selected rung fitted once on the fixed workload (wrappers share their base)."""
    fitted = perf.fit_ladder(RUNGS, dataset)
    for name, factor in perf.parse_slowdowns(os.environ.get("BENCH_PERF_SLOWDOWN")).items():
        if name in fitted:
            fitted[name] = perf.Slowed(fitted[name], factor)
    return fitted


@pytest.fixture(scope="session")
def reference():
    ref = perf.Reference()
    ref()
    return ref


@pytest.mark.parametrize("batch", perf.BATCH_SIZES)
@pytest.mark.parametrize("rung", RUNGS)
def test_predict(benchmark, ladder, dataset, reference, rung, batch):
    inputs = perf.case_inputs(dataset, batch)
    model = ladder[rung]
    key = f"{rung}@{batch}"
    with disabled():  # on-disk caches (embeddings, MC estimates) would time a lookup, not the rung
        def call() -> None:
            model.predict_proba(inputs)

        planned = PLANS.get(key)
        fresh = perf.plan(call)
        calls = int(planned["calls"]) if planned else fresh.calls
        part_calls = {name: perf.plan(part, round_seconds=0.01, case_seconds=0).calls for name, part in reference.parts.items()}
        parts: dict[str, list[float]] = {name: [] for name in reference.parts}

        def setup() -> None:  # not timed by pytest-benchmark: each reference part, just before each round
            for name, part in reference.parts.items():
                t0 = time.perf_counter()
                perf.repeat(part, part_calls[name])
                parts[name].append((time.perf_counter() - t0) / part_calls[name])

        benchmark.group = rung
        benchmark.extra_info.update({"rung": rung, "batch": batch, "calls": calls})
        benchmark.pedantic(perf.repeat, args=(call, calls), setup=setup, rounds=fresh.rounds, warmup_rounds=1)
    rounds = benchmark.stats.stats.data
    per_call = [t / calls for t in rounds]
    fixed = planned.get("reference") if planned else json.loads(os.environ.get("BENCH_PERF_REFERENCE", "{}")).get(key)
    chosen = perf.choose_reference(per_call, {n: v[-len(rounds):] for n, v in parts.items()}, fixed)
    benchmark.extra_info.update(chosen)
    benchmark.extra_info["seconds_per_call"] = float(sorted(per_call)[len(per_call) // 2])
