"""Speed and cost: latency percentiles at batch size 1, throughput, peak memory during predict, size on disk."""

from __future__ import annotations

import functools
import gc
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

Predict = Callable[[Sequence[Any]], Any]


class Efficiency(TypedDict, total=False):
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_ms_mean: float
    latency_calls: int
    throughput_per_s: float
    throughput_batch: int
    throughput_calls: int
    throughput_sweep: dict[str, float]
    throughput_prepared_per_s: float
    fit_seconds: float
    predict_seconds: float
    params: int
    size_bytes: int
    peak_memory_bytes: int
    threads: int
    device: str
    flops_per_text: float
    flops_per_s: float
    flops_peak_per_s: float
    flops_peak_fraction: float
    flops_dtype: str


#: how a result's latency, throughput and memory were taken (``timing.method``), as the tables explain it
TIMING_METHODS = {
    "inline": "straight after fitting, in the process that fitted it, one rung at a time",
    "retimed": "from its stored artifact, in a later run on this machine (quality reused, not refitted)",
    "exclusive": "from its stored artifact in a timing phase after every fit of the run, the node held exclusively "
    "(--executor ray)",
}


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for queued device work (CUDA); a no-op on CPU."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def measure_latency(
    predict: Predict,
    inputs: Sequence[Any],
    *,
    warmup: int,
    min_calls: int,
    min_seconds: float,
    max_seconds: float,
    device: str = "cpu",
) -> Efficiency:
    """Single-input latency: ``warmup`` untimed calls, then at least ``min_calls`` calls and
    ``min_seconds`` (stopping at ``max_seconds``), cycling through ``inputs``; percentiles in ms."""
    sync = synchronizer(device)
    n = len(inputs)
    for i in range(warmup):
        predict([inputs[i % n]])
    sync()
    times: list[int] = []
    start = time.perf_counter()
    i = 0
    while True:
        elapsed = time.perf_counter() - start
        if (len(times) >= min_calls and elapsed >= min_seconds) or (elapsed >= max_seconds and times):
            break
        x = [inputs[i % n]]
        t0 = time.perf_counter_ns()
        predict(x)
        sync()
        times.append(time.perf_counter_ns() - t0)
        i += 1
    ms = np.asarray(times, dtype=np.float64) / 1e6
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return Efficiency(
        latency_ms_p50=float(p50),
        latency_ms_p95=float(p95),
        latency_ms_p99=float(p99),
        latency_ms_mean=float(ms.mean()),
        latency_calls=len(times),
    )


def measure_throughput(
    predict: Predict,
    inputs: Sequence[Any],
    *,
    batch_size: int,
    repeats: int,
    device: str = "cpu",
    max_seconds: float = 60.0,
    track_memory: bool = True,
) -> Efficiency:
    """Texts per second on one batch of ``batch_size`` inputs: the median of up to ``repeats`` timed calls,
    stopping once ``max_seconds`` are spent (at least one). The warm-up call also measures peak memory."""
    sync = synchronizer(device)
    batch = throughput_inputs(inputs, batch_size)
    t0 = time.perf_counter()
    peak = measure_peak_memory(predict, batch, device) if track_memory else None
    warmup = time.perf_counter() - t0
    times: list[float] = []
    spent = warmup
    while len(times) < repeats and (not times or spent < max_seconds):
        t0 = time.perf_counter()
        predict(batch)
        sync()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    out = Efficiency(
        throughput_per_s=float(batch_size / np.median(times)), throughput_batch=batch_size, throughput_calls=len(times)
    )
    if peak is not None:
        out["peak_memory_bytes"] = peak
    return out


#: the largest throughput batch a GPU sweep tries (a CPU stays within the profile's ``throughput_batch``)
GPU_THROUGHPUT_BATCH = 8192


def sweep_throughput(
    predict: Predict,
    inputs: Sequence[Any],
    cap: int,
    *,
    device: str = "cpu",
    call_seconds: float = 4.0,
    max_seconds: float = 20.0,
    smallest: int = 8,
) -> dict[int, float]:
    """A short sweep of the throughput batch: texts per second at ``smallest``, twice that, ... up to ``cap``, each
    from one untimed call (new shapes) and the faster of two timed ones. It stops before a size whose call would,
    at the last rate, take over ``call_seconds`` or bring the sweep past ``max_seconds``."""
    sync = synchronizer(device)
    rates: dict[int, float] = {}
    spent, size = 0.0, min(smallest, cap)
    while True:
        batch = throughput_inputs(inputs, size)
        t0 = time.perf_counter()
        predict(batch)
        sync()
        best = float("inf")
        for _ in range(2):
            t1 = time.perf_counter()
            predict(batch)
            sync()
            best = min(best, time.perf_counter() - t1)
        spent += time.perf_counter() - t0
        rates[size] = size / max(best, 1e-9)
        following = min(size * 2, cap)
        guess = following / rates[size]
        if following == size or guess > call_seconds or spent + 3 * guess > max_seconds:
            return rates
        size = following


def throughput_inputs(inputs: Sequence[Any], batch_size: int) -> list[Any]:
    """The batch :func:`measure_throughput` times: the first ``batch_size`` inputs, cycled if there are fewer."""
    return [inputs[i % len(inputs)] for i in range(batch_size)]


@functools.cache
def matmul_peak(device: str, dtype: str = "float32", threads: int = 0, repeats: int = 10) -> float:
    """The machine's measured dense matrix-product rate in FLOP/s: the fastest of ``repeats`` square products
    (1024 on a CPU, 8192 on a GPU) in ``dtype`` with torch's current threads (``threads`` keys the cache).
    Measured once per process and setting; it is what a model's achieved FLOP/s are a fraction of."""
    import torch

    n = 8192 if device.startswith("cuda") else 1024
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, generator=gen, device=device).to(getattr(torch, dtype))
    b = torch.randn(n, n, generator=gen, device=device).to(getattr(torch, dtype))
    sync, best = synchronizer(device), float("inf")
    with torch.inference_mode():
        torch.matmul(a, b)
        sync()
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            sync()
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def flops_report(flops: float, batch_size: int, throughput_per_s: float, peak: float, dtype: str) -> Efficiency:
    """Achieved FLOP/s of a throughput measurement whose batch ran ``flops`` useful operations, against ``peak``."""
    achieved = flops * throughput_per_s / batch_size
    return Efficiency(
        flops_per_text=flops / batch_size,
        flops_per_s=achieved,
        flops_peak_per_s=peak,
        flops_peak_fraction=achieved / peak,
        flops_dtype=dtype,
    )


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_peak_memory(predict: Predict, batch: Sequence[Any], device: str = "cpu") -> int:
    """Peak extra memory while predicting ``batch``: the larger of traced Python/NumPy allocations and
    sampled resident-set growth (which also sees native allocations such as torch's); on CUDA, the
    peak of device memory allocated by torch."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        predict(batch)
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - before)
    gc.collect()
    peak_rss, done = [0], threading.Event()
    base = _rss() if os.path.exists("/proc/self/statm") else 0

    def sample() -> None:
        while not done.is_set():
            peak_rss[0] = max(peak_rss[0], _rss() - base)
            done.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True) if base else None
    if sampler:
        sampler.start()
    tracemalloc.start()
    try:
        predict(batch)
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        done.set()
        if sampler:
            sampler.join()
    return int(max(traced_peak, peak_rss[0]))


def folder_size(path: Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def thread_count() -> int:
    """Threads the compute libraries use (torch's intra-op pool when torch is loaded)."""
    import sys

    if "torch" in sys.modules:
        return int(sys.modules["torch"].get_num_threads())
    return int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
