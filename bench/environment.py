"""Where a result was produced: versions, CPU/GPU and the git commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "transformers", "scikit-learn", "numpy", "datasets", "baal")
# ISA extensions that pick torch's and numpy's kernels: machines that differ in them time differently.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "avx_vnni", "sve", "asimd")


def _version(pkg: str) -> str | None:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The CUDA device's name if torch sees one."""
    if "torch" not in sys.modules:
        return None
    torch = sys.modules["torch"]
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The project's commit, suffixed ``-dirty`` when tracked files changed."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    """A snapshot of the software and hardware a run used."""
    return {
        "python": platform.python_version(),
        **{pkg.replace("-", "_"): _version(pkg) for pkg in PACKAGES},
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "gpu": gpu_name(),
        "git_commit": git_commit(),
    }


def cpu_identity() -> dict[str, Any]:
    """The CPU's ISA extensions from :data:`ISA_FLAGS` and its family / model / stepping (Linux /proc/cpuinfo;
    empty elsewhere). Cloud machines often name every Xeon generation alike; these tell them apart."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"isa": [], "cpu_id": ""}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
        if not line.strip():
            break  # the first processor is enough
    have = set((fields.get("flags") or fields.get("Features") or "").split())
    ident = "-".join(fields[f] for f in ("cpu family", "model", "stepping") if fields.get(f))
    return {"isa": [f for f in ISA_FLAGS if f in have], "cpu_id": ident}


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def timing_machine(threads: int, device: str) -> dict[str, Any]:
    """What latency, throughput and memory are measured on: the CPU (name, family-model-stepping, ISA), the CPUs and
    threads used, the GPU, and the libraries that do the work. ``key`` tells two machines apart: figures timed on
    another key are re-measured, never shown as this machine's."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        **cpu_identity(),
        "cpu_count": cpu_count(),
        "threads": threads,
        "device": device,
        "gpu": gpu_name(),
        "python": platform.python_version(),
        **{pkg.replace("-", "_"): _version(pkg) for pkg in ("torch", "numpy", "scikit-learn")},
    }
    info["key"] = machine_key(info)
    return info


def machine_key(info: dict[str, Any]) -> str:
    """A short label of a timing machine: CPU model and id, CPUs, threads, device (and GPU), library versions."""
    ident = f" ({info['cpu_id']})" if info.get("cpu_id") else ""
    device = info.get("device", "cpu") + (f" {info['gpu']}" if info.get("gpu") and info.get("device") != "cpu" else "")
    libs = ", ".join(f"{k} {info.get(k)}" for k in ("python", "torch", "numpy", "scikit_learn") if info.get(k))
    return f"{info.get('cpu')}{ident}, {info.get('cpu_count')} cpus, {info.get('threads')} threads, {device}; {libs}"


@contextmanager
def thread_budget(threads: int) -> Iterator[None]:
    """Hold every compute library to ``threads`` threads for a block: the OpenMP/BLAS variables (read by libraries
    loaded inside it), the pools already loaded (threadpoolctl) and torch's intra-op pool; restored after."""
    from threadpoolctl import threadpool_limits

    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    os.environ.update(dict.fromkeys(names, str(threads)))
    try:
        with threadpool_limits(threads):
            if torch is not None:
                torch.set_num_threads(threads)
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        torch = sys.modules.get("torch")  # perhaps loaded inside the block
        if torch is not None:
            torch.set_num_threads(torch_threads or cpu_count())
