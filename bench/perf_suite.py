"""The pytest-benchmark suite behind ``python -m bench perf``: every rung's ``predict_proba`` at batch 1 and 16.

Run it directly for pytest-benchmark's own features (``--benchmark-save``, ``--benchmark-compare``,
``--benchmark-compare-fail=median:25%``)::

    python -m pytest bench/perf_suite.py -p no:cacheprovider -o addopts= --benchmark-only

Environment: ``BENCH_PERF_RUNGS`` (comma-separated wildcards, default every rung), ``BENCH_PERF_THREADS``
(threads for torch, OpenMP, MKL and the tokenizers; default 1), ``BENCH_PERF_PLAN`` (a baseline JSON: the
entry for this machine gives each case's calls per round and rounds, so rounds do the same work as the
baseline's) and ``BENCH_PERF_SLOWDOWN`` (``rung=factor``; a test hook that makes a rung take ``factor`` times
as long).
"""

from __future__ import annotations

import os
import time

import pytest

from bench import perf  # loads no torch yet

# Before anything loads torch or the tokenizers: OpenMP reads its thread count once.
THREADS = int(os.environ.get("BENCH_PERF_THREADS", perf.DEFAULT_THREADS))
os.environ.update(perf.thread_env(THREADS))

import torch  # noqa: E402

from bench.cache import disabled  # noqa: E402
from bench.registry import list_rungs  # noqa: E402

torch.set_num_threads(THREADS)


def _selected() -> list[str]:
    patterns = [p.strip() for p in os.environ.get("BENCH_PERF_RUNGS", "*").split(",") if p.strip()]
    names: list[str] = []
    for pattern in patterns:
        names += [n for n in list_rungs(pattern) if n not in names]
    return names


RUNGS = _selected()
PLANS = perf.plan_cases(os.environ["BENCH_PERF_PLAN"], THREADS) if os.environ.get("BENCH_PERF_PLAN") else {}


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
        rounds = int(planned["rounds"]) if planned else fresh.rounds
        part_calls = {name: perf.plan(part, round_seconds=0.01, case_seconds=0).calls for name, part in reference.parts.items()}
        parts: dict[str, list[float]] = {name: [] for name in reference.parts}

        def setup() -> None:  # not timed by pytest-benchmark: each reference part, just before each round
            for name, part in reference.parts.items():
                t0 = time.perf_counter()
                perf.repeat(part, part_calls[name])
                parts[name].append((time.perf_counter() - t0) / part_calls[name])

        benchmark.group = rung
        benchmark.extra_info.update({"rung": rung, "batch": batch, "calls": calls, "threads": torch.get_num_threads()})
        benchmark.pedantic(perf.repeat, args=(call, calls), setup=setup, rounds=rounds, warmup_rounds=1)
    per_call = [t / calls for t in benchmark.stats.stats.data]
    benchmark.extra_info.update(perf.estimate(per_call, {n: v[-len(per_call):] for n, v in parts.items()}))
