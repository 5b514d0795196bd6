"""The pytest-benchmark suite behind ``python -m bench perf``: every rung's ``predict_proba`` at batch 1 and 16.

Run it directly for pytest-benchmark's own features (``--benchmark-save``, ``--benchmark-compare``,
``--benchmark-compare-fail=median:25%``)::

    python -m pytest bench/perf/suite.py -p no:cacheprovider -o addopts= --benchmark-only

Environment: ``BENCH_PERF_RUNGS`` (comma-separated wildcards, default every rung), ``BENCH_PERF_THREADS``
(threads for torch, OpenMP, MKL, OpenBLAS and the tokenizers; default 1), ``BENCH_PERF_TIMER`` (``cpu``,
the default, or ``wall``: what the gate's rounds are timed with), ``BENCH_PERF_PLAN`` (a baseline
JSON: the entry for this machine gives each case's calls per round, rounds and reference calls, so rounds
do the same work as the baseline's) and ``BENCH_PERF_SLOWDOWN`` (``rung=factor``; a test hook that makes a
rung take ``factor`` times as long).
"""

from __future__ import annotations

import os
import warnings

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from bench.perf import gate as perf  # loads numpy, not torch or the tokenizers

# Before torch and the tokenizers load: their thread pools read these once. numpy's is already loaded,
# so it is limited below with threadpoolctl.
THREADS = int(os.environ.get("BENCH_PERF_THREADS", perf.DEFAULT_THREADS))
os.environ.update(perf.thread_env(THREADS))

import torch  # noqa: E402

from bench.cache import disabled  # noqa: E402
from bench.rungs.registry import list_rungs  # noqa: E402

torch.set_num_threads(THREADS)
threadpool_limits(THREADS)  # pools already loaded (numpy's BLAS); the ladder fixture repeats it after the rungs load
TIMER = os.environ.get("BENCH_PERF_TIMER", perf.DEFAULT_TIMER)
CLOCK = perf.TIMERS[TIMER]


def _selected() -> list[str]:
    patterns = [p.strip() for p in os.environ.get("BENCH_PERF_RUNGS", "*").split(",") if p.strip()]
    names: list[str] = []
    for pattern in patterns:
        names += [n for n in list_rungs(pattern) if n not in names]
    return names


def _plans() -> dict:
    path = os.environ.get("BENCH_PERF_PLAN")
    if not path:
        return {}
    cases = perf.plan_cases(path, THREADS, TIMER)
    if cases is None:
        warnings.warn(
            f"BENCH_PERF_PLAN={path} has no entry for this machine ({perf.machine_key(perf.machine(THREADS, TIMER))}): "
            "calls per round are planned afresh, so round times need not compare with another run's",
            stacklevel=2,
        )
    return cases or {}


RUNGS = _selected()
PLANS = _plans()


@pytest.fixture(scope="session")
def dataset():
    return perf.workload()


@pytest.fixture(scope="session")
def ladder(dataset):
    """Every selected rung fitted once on the fixed workload (wrappers share their base)."""
    fitted = perf.fit_ladder(RUNGS, dataset)
    for name, factor in perf.parse_slowdowns(os.environ.get("BENCH_PERF_SLOWDOWN")).items():
        if name in fitted:
            fitted[name] = perf.Slowed(fitted[name], factor, CLOCK)
    threadpool_limits(THREADS)  # whatever pools the rungs' libraries brought, after they loaded
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
        part_calls = (planned or {}).get("part_calls") or {
            name: perf.plan(part, round_seconds=0.01, case_seconds=0).calls for name, part in reference.parts.items()
        }
        parts: dict[str, list[float]] = {name: [] for name in reference.parts}

        def setup() -> None:  # not timed by pytest-benchmark: each reference part, just before each round
            for name, part in reference.parts.items():
                t0 = CLOCK()
                perf.repeat(part, part_calls[name])
                parts[name].append((CLOCK() - t0) / part_calls[name])

        timed: list[float] = []  # the gate's own round times, by TIMER (pytest-benchmark keeps wall-clock ones)

        def one_round() -> None:
            t0 = CLOCK()
            perf.repeat(call, calls)
            timed.append(CLOCK() - t0)

        benchmark.group = rung
        pools = {p["internal_api"]: p["num_threads"] for p in threadpool_info()}
        benchmark.extra_info.update(
            {
                "rung": rung,
                "batch": batch,
                "calls": calls,
                "part_calls": part_calls,
                "threads": torch.get_num_threads(),
                "pools": pools,
                "timer": TIMER,
            }
        )
        benchmark.pedantic(one_round, setup=setup, rounds=rounds, warmup_rounds=1)
    if benchmark.stats is None:  # --benchmark-disable: nothing was timed
        return
    # setup and one_round ran for the warm-up round first, then for each timed round
    per_call = [t / calls for t in timed[1 : 1 + rounds]]
    benchmark.extra_info.update(perf.estimate(per_call, {n: v[1 : 1 + rounds] for n, v in parts.items()}))
