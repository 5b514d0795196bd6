from __future__ import annotations

import numpy as np

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
