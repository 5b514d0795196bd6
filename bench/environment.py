"""Where a result was produced: versions, CPU/GPU and the git commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "transformers", "scikit-learn", "numpy", "datasets", "baal")


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
