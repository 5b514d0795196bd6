from __future__ import annotations

import numpy as np
import pytest

from bench.evaluate.efficiency import folder_size, measure_latency, measure_peak_memory, measure_throughput


def test_latency_honours_call_count_and_percentile_order():
    calls = []
    stats = measure_latency(
        lambda xs: calls.append(len(xs)), ["a", "b"], warmup=3, min_calls=25, min_seconds=0.0, max_seconds=5.0
    )
    assert stats["latency_calls"] >= 25 and len(calls) == stats["latency_calls"] + 3
    assert set(calls) == {1}  # batch size 1
    assert 0 <= stats["latency_ms_p50"] <= stats["latency_ms_p95"] <= stats["latency_ms_p99"]


def test_throughput_uses_the_batch_size():
    seen = []
    stats = measure_throughput(lambda xs: seen.append(len(xs)), ["a", "b", "c"], batch_size=16, repeats=3)
    assert seen == [16] * 4 and stats["throughput_per_s"] > 0 and stats["throughput_batch"] == 16
    assert stats["throughput_calls"] == 3 and "peak_memory_bytes" in stats


def test_throughput_stops_at_its_time_budget():
    import time

    seen = []
    stats = measure_throughput(
        lambda xs: (seen.append(1), time.sleep(0.05)), ["a"], batch_size=4, repeats=50, max_seconds=0.0
    )
    assert stats["throughput_calls"] == 1 and len(seen) == 2  # warm-up + one timed call


def test_peak_memory_sees_a_large_allocation():
    def predict(xs):
        block = np.ones((len(xs), 8_000_000 // len(xs)))  # 64 MB
        return block.sum()

    assert measure_peak_memory(predict, ["x"] * 8) >= 60_000_000
    assert measure_peak_memory(lambda xs: None, ["x"]) < 5_000_000


def test_folder_size(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 50)
    assert folder_size(tmp_path) == 150


def test_cache_is_keyed_by_content_and_off_while_timing(tmp_path, monkeypatch):
    from bench import cache

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return np.arange(3.0)

    key = cache.inputs_digest(["a", ("b", "c")])
    assert key != cache.inputs_digest(["a", ("b", "d")])
    first, hit1 = cache.cached_array("k", key, compute)
    second, hit2 = cache.cached_array("k", key, compute)
    assert (hit1, hit2) == (False, True) and len(calls) == 1 and np.array_equal(first, second)
    with cache.disabled():
        _, hit3 = cache.cached_array("k", key, compute)
    assert not hit3 and len(calls) == 2


class VirtualClock:
    """time.perf_counter for the sweep tests: a predict advances it by a modelled cost, so rates are exact."""

    def __init__(self, cost):
        self.now, self.cost, self.calls = 0.0, cost, []

    def perf_counter(self) -> float:
        return self.now

    def predict(self, batch) -> None:
        self.calls.append(len(batch))
        self.now += self.cost(len(batch))


def _sweep(monkeypatch, cost, cap, **kwargs):
    import bench.evaluate.efficiency as eff

    clock = VirtualClock(cost)
    monkeypatch.setattr(eff.time, "perf_counter", clock.perf_counter)
    return eff.sweep_throughput(clock.predict, ["a", "b", "c"], cap, **kwargs), clock


def test_sweep_finds_the_batch_where_throughput_peaks(monkeypatch):
    """Fixed overhead per call (favours big batches) plus a per-text cost that grows past 128 texts (a cache
    spill): the rate peaks at 128, and every size up to the cap is tried, each once untimed and twice timed."""
    rates, clock = _sweep(monkeypatch, lambda n: 0.01 + n * 1e-4 * (1 if n <= 128 else 3), cap=512)
    assert list(rates) == [8, 16, 32, 64, 128, 256, 512]
    assert max(rates, key=rates.__getitem__) == 128
    assert rates[128] == pytest.approx(128 / (0.01 + 128e-4), rel=1e-9)
    assert clock.calls == [n for n in rates for _ in range(3)]


def test_sweep_stops_before_a_call_over_its_limits(monkeypatch):
    """A slow rung (10 ms a text): 16 texts take 0.16 s, so 32 (0.32 s) would pass call_seconds=0.2; with a total
    budget of 0.6 s it stops earlier, where three calls of the next size would not fit."""
    rates, _ = _sweep(monkeypatch, lambda n: n * 0.01, cap=256, call_seconds=0.2)
    assert list(rates) == [8, 16]
    rates, _ = _sweep(monkeypatch, lambda n: n * 0.01, cap=256, call_seconds=10, max_seconds=0.6)
    assert list(rates) == [8]  # 0.24 s spent on 8; three calls of 16 would end at 0.72 s
    rates, _ = _sweep(monkeypatch, lambda n: 1e-6, cap=20)
    assert list(rates) == [8, 16, 20]  # the cap itself is the last size
