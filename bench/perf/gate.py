"""The latency regression gate: each rung's prediction time *relative to a fixed reference workload*, compared
with a baseline stored for the same kind of machine.

What makes it survive noisy machines (each measured, see README "Latency regression gate"):

- **The fastest round, not the median.** A round repeats a call until it lasts about ``ROUND_SECONDS``; noise
  (a neighbour on the host, an interrupt, a migration) only ever *adds* time, so the least-disturbed round is
  the steadiest estimate of the work itself. Between fresh processes it moved at most 8-10 % here; the median
  of per-round ratios moved up to 13-15 % at one thread and 22-33 % at two.
- **CPU time** (``TIMERS``, default ``cpu``). Rounds are timed by the process's CPU time, so time the scheduler
  gives to other processes is not counted: with both cores saturated, a 0.6 s call never runs undisturbed,
  and by wall time even its fastest round was +45 %. At one thread CPU time misses only waiting (``wall``).
- **One thread.** With two threads on a two-core machine every parallel region waits for the slower core; the
  suite holds torch, OpenMP, MKL, OpenBLAS and the tokenizers to ``threads`` (default 1): by environment for
  the libraries not loaded yet, and by threadpoolctl for the ones already loaded.
- **A reference timed in the same rounds.** Each case is divided by the geometric mean of the fastest rounds
  of two fixed parts — a float32 matrix product (torch) and pure-Python text handling — so a machine that is
  slower or faster as a whole moves rung and reference together.
- **A baseline per machine kind.** Ratios do not carry between CPU models (AMD EPYC -> Intel Xeon: 0.60x to
  1.47x, for every reference part), so the baseline file keeps one entry per CPU model (name, family, model,
  stepping), ISA, core count, thread count and timer, and ``--check`` compares only with its own kind's entry.
- **Fresh processes, confirmed failures.** Every suite run is its own Python process; a rung over its limit is
  measured again in more fresh processes, together with every base rung, and judged on the median of all its
  runs, each run's figure relative to the ladder's drift *in that run* (the host changes speed within minutes:
  a CI gate once failed three wrapper cases timed at the end of a run by +26 to +30 % against a drift measured
  earlier in it, and passed them at +7 to +16 % minutes later).
- **Judged against the ladder's common drift.** Hours apart, on the same machine and code, every case moved
  together (+3 to +50 %, median +25 %) while the reference parts did not: a shared host changes speed in
  ways two small reference loops do not see. A check therefore divides each case's change by the *ladder's
  common change* (:func:`common_drift`: the median over the base rungs' cases), so a regression is a rung
  slower than the rest of the ladder; a common change beyond its own limit (``DEFAULT_COMMON_LIMIT``) fails
  on its own, so a slowdown of every rung is not excused without bound.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import Dataset, Split, TaskSpec
from bench.errors import BenchError
from bench.rungs.protocol import Rung
from bench.rungs.registry import base_arguments, create_rung, get_rung

BATCH_SIZES = (1, 16)
DEFAULT_THRESHOLD = 0.25
# The ladder's common change (median over base-rung cases) a check tolerates before failing on it alone, and the
# fewest such cases it is estimated from (fewer: no correction, each case judged on its own change).
DEFAULT_COMMON_LIMIT = 0.5
COMMON_MIN_CASES = 6
DEFAULT_THREADS = 1
# What a round is timed with: the process's CPU time (default; time the scheduler gave to others is not
# counted) or the wall clock (counts waiting too: sleeps, blocking I/O, and every neighbour's time slice).
TIMERS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
DEFAULT_TIMER = "cpu"
DEFAULT_BASELINE = Path("perf") / "baseline.json"
ROUND_SECONDS = 0.03  # fast calls are repeated within a round until it lasts about this long
MIN_ROUNDS, MAX_ROUNDS, CASE_SECONDS = 7, 40, 1.2
SCHEMA = 2
_clock = time.perf_counter


POSITIVE = "good great wonderful lovely superb moving brilliant charming funny delightful".split()
NEGATIVE = "bad awful boring dull terrible painful stupid tedious weak messy".split()
FILLER = (
    "the film a story with its cast and plot is was of in that this director script scenes music ending "
    "characters acting pace moments every minute performance camera dialogue"
).split()


def workload(seed: int = 0) -> Dataset:
    """A fixed synthetic sentiment dataset (sst2-like lengths: 4 to 40 words) to fit and time rungs on."""
    rng = np.random.default_rng(seed)

    def split(name: str, n: int) -> Split:
        y = rng.integers(0, 2, n)
        texts = []
        for label in y:
            words = list(rng.choice(FILLER, int(rng.integers(3, 36))))
            for _ in range(int(rng.integers(1, 4))):
                words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POSITIVE if label else NEGATIVE)))
            texts.append(" ".join(words))
        return Split(name, spec, tuple(texts), y)

    spec = TaskSpec("perf_workload", "single-label", ("negative", "positive"))
    splits = {"train": split("train", 256), "validation": split("validation", 96), "test": split("test", 64)}
    return Dataset(spec, splits, source="bench.perf.workload", fingerprint=f"perf-{seed}")


def case_inputs(dataset: Dataset, batch: int) -> list[str]:
    """The fixed inputs timed at a batch size: the first ``batch`` test texts."""
    return list(dataset.test.inputs[:batch])  # type: ignore[arg-type]


def thread_env(threads: int) -> dict[str, str]:
    """Environment that holds torch, OpenMP, MKL, OpenBLAS and the tokenizers to ``threads`` threads (set it
    before numpy and torch load: the thread pools read it once)."""
    n = str(threads)
    return {
        "BENCH_PERF_THREADS": n,
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "RAYON_NUM_THREADS": n,
        "TOKENIZERS_PARALLELISM": "true" if threads > 1 else "false",
    }


class Reference:
    """The fixed reference workload, in parts timed separately: a float32 matrix product (torch, the rungs'
    threads) and pure-Python text handling. A case is divided by the geometric mean of the two parts' fastest
    rounds (:func:`estimate`), so it tracks both the numeric and the interpreter side of a machine."""

    def __init__(self) -> None:
        import torch

        gen = torch.Generator().manual_seed(0)
        self._a = torch.randn(256, 384, generator=gen)
        self._b = torch.randn(384, 1536, generator=gen)
        self._texts = [" ".join(FILLER[i % len(FILLER) :] + POSITIVE[: i % 7]) for i in range(32)]
        self.parts: dict[str, Callable[[], Any]] = {"matmul": self._matmul, "python": self._python}

    def _matmul(self) -> None:
        import torch

        with torch.inference_mode():
            torch.matmul(self._a, self._b)

    def _python(self) -> None:
        counts: dict[str, int] = {}
        for text in self._texts:
            for word in text.lower().split():
                counts[word] = counts.get(word, 0) + 1

    def __call__(self) -> None:
        for part in self.parts.values():
            part()


def fit_ladder(names: Sequence[str], dataset: Dataset, seed: int = 0) -> dict[str, Rung]:
    """Fit the named rungs (and the bases they wrap) once on ``dataset``, each with the small, quick fit its
    registration declares for the latency suite (``perf=``: timing does not depend on how well a rung learned);
    wrappers share their fitted bases (an ensemble's members are its bases at further seeds)."""
    fitted: dict[tuple[str, int], Rung] = {}

    def fit(name: str, at: int) -> Rung:
        if (name, at) not in fitted:
            info = get_rung(name)
            bases = [fit(base, s) for base, s in info.base_seeds(at, info.perf)]
            extra = base_arguments(bases, several=info.members is not None)
            rung = create_rung(name, context={"seed": at, "device": "cpu"}, **info.perf, **extra)
            fitted[(name, at)] = rung.fit(dataset.train, dataset.validation)
        return fitted[(name, at)]

    return {n: fit(n, seed) for n in names}


def _timed(fn: Callable[[], Any], repeat: int) -> float:
    t0 = _clock()
    for _ in range(repeat):
        fn()
    return (_clock() - t0) / repeat


@dataclass
class Plan:
    """How a case is timed: calls per round and rounds."""

    calls: int
    rounds: int


def plan(fn: Callable[[], Any], round_seconds: float = ROUND_SECONDS, case_seconds: float = CASE_SECONDS) -> Plan:
    """Calls per round so a round lasts about ``round_seconds``; rounds to fill about ``case_seconds``."""
    fn()  # warm-up
    one = max(_timed(fn, 1), 1e-7)
    calls = max(1, math.ceil(round_seconds / one))
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, case_seconds // max(one * calls, 1e-9))))
    return Plan(calls, rounds)


def repeat(fn: Callable[[], Any], calls: int) -> None:
    """Call ``fn`` ``calls`` times (one timed round)."""
    for _ in range(calls):
        fn()


def _spin(seconds: float, clock: Callable[[], float]) -> None:
    end = clock() + seconds
    while clock() < end:
        pass


class Slowed(Rung):
    """Test hook for the gate: ``rung`` taking ``factor`` times as long on every call — it does its prediction,
    then keeps the CPU busy for ``factor - 1`` times as long as that took, by ``clock`` (the gate's timer)."""

    def __init__(self, rung: Rung, factor: float, clock: Callable[[], float] | None = None) -> None:
        self.rung, self.factor, self.clock = rung, factor, clock

    def fit(self, train: Split, validation: Split) -> Slowed:
        return self

    def predict_proba(self, inputs: Sequence[Any]) -> np.ndarray:
        clock = self.clock or _clock
        t0 = clock()
        out = self.rung.predict_proba(inputs)
        _spin((self.factor - 1) * (clock() - t0), clock)
        return out


def parse_slowdowns(text: str | None) -> dict[str, float]:
    """``"tfidf_lr=1.5,majority=2"`` -> ``{"tfidf_lr": 1.5, "majority": 2.0}``."""
    out: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        name, _, factor = item.partition("=")
        out[name.strip()] = float(factor)
    return out


def _ratio(rung_times: Sequence[float], part_times: Mapping[str, Sequence[float]]) -> tuple[float, float]:
    reference = math.exp(sum(math.log(min(v)) for v in part_times.values()) / len(part_times))
    return min(rung_times) / reference, reference


def estimate(rung_times: Sequence[float], part_times: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """A case's ratio from one run's rounds (seconds per call): the rung's fastest round over the geometric mean
    of the reference parts' fastest rounds. ``halves`` is how far the same estimate from the even and from the
    odd rounds lie apart (``|a / b - 1|``): the run's own word on how stable it was."""
    ratio, reference = _ratio(rung_times, part_times)
    halves = float("nan")
    if len(rung_times) >= 4:
        even = _ratio(rung_times[0::2], {n: v[0::2] for n, v in part_times.items()})[0]
        odd = _ratio(rung_times[1::2], {n: v[1::2] for n, v in part_times.items()})[0]
        halves = abs(even / odd - 1)
    return {
        "ratio": ratio,
        "halves": halves,
        "rounds": len(rung_times),
        "seconds_per_call": float(min(rung_times)),
        "reference_seconds": reference,
        "reference_parts": {n: float(min(v)) for n, v in part_times.items()},
    }


def combine_runs(
    runs: Sequence[Mapping[str, Mapping[str, Any]]], upper: bool = True, drifts: Sequence[float] | None = None
) -> dict[str, dict[str, Any]]:
    """Cases of several suite runs (fresh processes): each case's median ratio over the runs in which it appears,
    with the other fields of that run, plus every run's ratio (``run_ratios``) and how far they spread
    (``between``: max / min - 1). For an even count ``upper`` takes the upper median — right for a baseline
    (fewer false alarms later) — and ``upper=False`` the lower one, right for a check (a retry can clear a run).

    ``drifts`` (one per run: the ladder's drift measured in that run, :func:`common_drift`) ranks the runs by
    ratio / drift instead, and the chosen run's drift is kept as the case's ``drift``: a case is then judged
    against the ladder as it ran alongside it, not as it ran in another process minutes earlier."""
    combined: dict[str, dict[str, Any]] = {}
    for key in dict.fromkeys(k for r in runs for k in r):
        found = sorted(
            ((r[key], 1.0 if drifts is None else drifts[i]) for i, r in enumerate(runs) if key in r),
            key=lambda pair: pair[0]["ratio"] / pair[1],
        )
        ratios = [c["ratio"] for c, _ in found]
        middle = len(found) // 2 if upper else (len(found) - 1) // 2
        case, drift = found[middle]
        combined[key] = {**case, "run_ratios": sorted(ratios), "between": max(ratios) / min(ratios) - 1}
        if drifts is not None:
            combined[key]["drift"] = drift
    return combined


def to_retry(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Rungs with a case over its limit: the ones to measure again before failing the gate."""
    return sorted({r["rung"] for r in failed(rows)})


def common_drift(
    current: Mapping[str, Any], baseline: Mapping[str, Any], wrappers: Sequence[str] = ()
) -> tuple[float, int]:
    """The ladder's common change, as a factor: the median of current / baseline ratio over the cases both hold,
    leaving out ``wrappers`` (they repeat their bases' work, so they would weigh one rung twice); and how many
    cases it is the median of. ``(1.0, n)`` when ``n`` is below :data:`COMMON_MIN_CASES`: too few to tell the
    ladder's drift from one rung's change."""
    factors = [
        now["ratio"] / base["ratio"]
        for key, base in baseline["cases"].items()
        if (now := current["cases"].get(key)) is not None and base["rung"] not in wrappers
    ]
    if len(factors) < COMMON_MIN_CASES:
        return 1.0, len(factors)
    return float(np.median(factors)), len(factors)


def compare(
    current: Mapping[str, Any],
    baseline: Mapping[str, Any],
    threshold: float = DEFAULT_THRESHOLD,
    thresholds: Mapping[str, float] | None = None,
    common: float = 1.0,
) -> list[dict[str, Any]]:
    """One row per case in ``baseline["cases"]``: baseline ratio, current ratio, change, change relative to the
    ladder's ``common`` change (:func:`common_drift`; 1.0: none; a case's own ``drift``, from the run it was
    measured in, wins over it) and verdict.

    A case fails (``SLOWER``) when its change relative to the ladder grew by more than its rung's limit
    (``thresholds[rung]``, else ``threshold``); ``faster`` beyond the limit is reported, not failed; a case
    missing now is ``missing``, one the baseline lacks is ``new`` (neither fails: re-save the baseline)."""
    thresholds = thresholds or {}
    rows = []
    for key, base in sorted(baseline["cases"].items()):
        rung = base["rung"]
        limit = float(thresholds.get(rung, threshold))
        now = current["cases"].get(key)
        row: dict[str, Any] = {
            "case": key,
            "rung": rung,
            "batch": base["batch"],
            "baseline": base["ratio"],
            "limit": limit,
            "current": None,
            "change": None,
            "relative": None,
            "verdict": "missing",
        }
        if now is not None:
            change = now["ratio"] / base["ratio"] - 1
            relative = (1 + change) / now.get("drift", common) - 1
            row.update(
                current=now["ratio"],
                change=change,
                relative=relative,
                halves=now.get("halves"),
                between=now.get("between"),
                runs=len(now.get("run_ratios", [now["ratio"]])),
                verdict="SLOWER" if relative > limit else ("faster" if relative < -limit else "ok"),
            )
        rows.append(row)
    for key, now in sorted(current["cases"].items()):
        if key not in baseline["cases"]:
            rows.append(
                {
                    "case": key,
                    "rung": now["rung"],
                    "batch": now["batch"],
                    "baseline": None,
                    "limit": float(thresholds.get(now["rung"], threshold)),
                    "current": now["ratio"],
                    "change": None,
                    "relative": None,
                    "verdict": "new",
                }
            )
    return rows


def failed(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows that make the gate fail: slower beyond the limit."""
    return [r for r in rows if r["verdict"] == "SLOWER"]


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as a plain-text table."""
    from tabulate import tabulate

    def num(value: float | None) -> str:
        return "" if value is None else f"{value:.4g}"

    body = [
        [
            r["rung"],
            r["batch"],
            num(r["baseline"]),
            num(r["current"]),
            _pct(r["change"], signed=True),
            _pct(r.get("relative"), signed=True),
            f"±{r['limit']:.0%}",
            _pct(r.get("halves")),
            r.get("runs", ""),
            _pct(r.get("between")) if r.get("runs", 1) > 1 else "",
            r["verdict"],
        ]
        for r in rows
    ]
    return tabulate(
        body,
        headers=[
            "rung",
            "batch",
            "baseline ratio",
            "current ratio",
            "change",
            "vs ladder",
            "limit",
            "halves",
            "runs",
            "between runs",
            "verdict",
        ],
    )


def stability(cases: Mapping[str, Mapping[str, Any]]) -> str:
    """One line on how stable a measurement was: the halves' disagreement and, over several runs, their spread."""
    halves = sorted(c["halves"] for c in cases.values() if not math.isnan(c["halves"]))
    line = (
        f"{len(cases)} cases; even vs odd rounds disagree by median {np.median(halves):.1%}, worst {halves[-1]:.1%}"
        if halves
        else f"{len(cases)} cases"
    )
    between = sorted(c["between"] for c in cases.values() if len(c.get("run_ratios", ())) > 1)
    if between:
        line += f"; between runs (max/min - 1) median {np.median(between):.1%}, worst {between[-1]:.1%}"
    return line


def machine(threads: int, timer: str = DEFAULT_TIMER) -> dict[str, Any]:
    """What the numbers are measured on; :func:`machine_key` of it says which baseline applies."""
    from bench.environment import cpu_identity, cpu_model, git_commit

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        **cpu_identity(),
        "cpu_count": cpus,
        "threads": threads,
        "timer": timer,
        "arch": platform.machine(),
        "python": platform.python_version(),
        "torch": version("torch"),
        "kernel": platform.release(),
        "packages": {name: _version(name) for name in PACKAGES},
        "commit": git_commit(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# Besides python and torch: the libraries the rungs' prediction runs through. With the kernel they make the
# environment a baseline was measured in; a check under another one says so (:func:`drift`).
PACKAGES = ("numpy", "scipy", "scikit-learn", "transformers", "tokenizers", "safetensors")


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def drift(then: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """How the environment of a check differs from its baseline's (same machine kind): python, torch, kernel
    and :data:`PACKAGES` versions, as ``"kernel 6.1 -> 6.2"``. Measured: six days after a baseline was saved
    (same CPU model, Python and torch), its own commit timed char_cnn@1 +18 to +31 % and the chance rungs +5
    to +23 % — a drift of the environment, not of the code; such a check is worth repeating at the baseline's
    commit (its ``commit`` field) before blaming a change."""
    pairs = [(f, then.get(f), now.get(f)) for f in ("python", "torch", "kernel")]
    old, new = then.get("packages") or {}, now.get("packages") or {}
    pairs += [(name, old.get(name), new.get(name)) for name in sorted(set(old) | set(new))]
    return [f"{name} {a} -> {b}" for name, a, b in pairs if a is not None and a != b]


def machine_key(info: Mapping[str, Any]) -> str:
    """The kind of machine a baseline belongs to, and how it was timed: CPU model (name and family-model-stepping),
    ISA, cores, threads and timer. Software versions are part of what the gate checks, so they are not in it."""
    isa = " ".join(info.get("isa", [])) or "-"
    ident = f" ({info['cpu_id']})" if info.get("cpu_id") else ""
    timer = info.get("timer", DEFAULT_TIMER)
    return f"{info['cpu']}{ident} [{isa}] {info['cpu_count']} cpus, {info['threads']} thread(s), {timer} time"


def read_baseline(path: Path) -> dict[str, Any]:
    """The baseline file: ``{"schema", "default_threshold", "thresholds", "machines": {key: entry}}``."""
    stored = json.loads(Path(path).read_text(encoding="utf-8"))
    if stored.get("schema") != SCHEMA:
        raise BenchError(
            f"{path} is a format-{stored.get('schema')} baseline, this bench reads format {SCHEMA}; "
            "store a new one with `python -m bench perf --save`"
        )
    return stored


def baseline_for(stored: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stored entry for this machine's kind, or None."""
    return stored.get("machines", {}).get(machine_key(info))


def plan_cases(path: str | Path, threads: int, timer: str = DEFAULT_TIMER) -> dict[str, Any] | None:
    """Cases of the baseline entry for this machine (their calls per round and rounds); None when the file has
    no entry for this machine kind."""
    entry = baseline_for(read_baseline(Path(path)), machine(threads, timer))
    return entry["cases"] if entry else None


def write_baseline(
    entry: Mapping[str, Any],
    path: Path,
    thresholds: Mapping[str, float] | None = None,
    default_threshold: float | None = None,
    known_rungs: Sequence[str] | None = None,
) -> Path:
    """Store ``entry`` (``{"machine", "cases"}``) as the baseline of its machine kind. Its cases replace the same
    cases of that kind's stored entry; the entry's other cases (rungs not measured this time) stay unless their
    rung is not in ``known_rungs``. Other kinds' entries, per-rung ``thresholds`` and the default threshold
    stay unless given."""
    path = Path(path)
    stored: dict[str, Any] = {}
    if path.is_file():
        try:
            stored = read_baseline(path)
        except BenchError:  # an older format: its numbers are not comparable, start afresh
            pass
    key = machine_key(entry["machine"])
    kept = stored.get("machines", {}).get(key, {}).get("cases", {})
    if known_rungs is not None:
        kept = {k: c for k, c in kept.items() if c["rung"] in known_rungs}
    payload = {
        "schema": SCHEMA,
        "default_threshold": default_threshold or stored.get("default_threshold", DEFAULT_THRESHOLD),
        "thresholds": {**stored.get("thresholds", {}), **(thresholds or {})},
        "machines": {**stored.get("machines", {}), key: {**entry, "cases": {**kept, **entry["cases"]}}},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
