"""An on-disk cache of arrays computed from inputs (embeddings, MC-Dropout samples), keyed by content."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

CACHE_ENV = "BENCH_CACHE_DIR"
_enabled = True


@contextmanager
def disabled() -> Iterator[None]:
    """Compute everything afresh inside this block (timings must not read cached results)."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


def enabled() -> bool:
    """False inside :func:`disabled`: in-memory memos must compute afresh too."""
    return _enabled


def cache_root() -> Path:
    """``$BENCH_CACHE_DIR``, else ``~/.cache/bench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "bench")


def digest(parts: Iterable[str | bytes]) -> str:
    """A short content hash of strings/bytes, in order."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\x1e")
    return h.hexdigest()[:24]


def inputs_digest(inputs: Sequence[str | tuple[str, str]]) -> str:
    """A content hash of model inputs (texts or text pairs), in order."""
    return digest(x if isinstance(x, str) else "\x1f".join(x) for x in inputs)


def cached_array(kind: str, key: str, compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """``compute()``'s result, stored under ``<cache>/<kind>/<key>.npy``; returns (array, was_cached)."""
    if not _enabled:
        return compute(), False
    path = cache_root() / kind / f"{key}.npy"
    if path.is_file():
        try:
            return np.load(path), True
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, value)
    os.replace(tmp, path)
    return value, False
