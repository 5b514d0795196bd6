"""User-facing errors: each one is printed as a single line by the CLI, with a non-zero exit."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """An error caused by the user's input or environment, reported as one clear line."""


class DataError(BenchError):
    """A dataset that cannot be loaded or is malformed."""


class UnknownNameError(BenchError):
    """An unknown rung or dataset name; the message suggests close names."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})")


class NotApplicable(Exception):
    """Raised by a rung that cannot handle a dataset (e.g. rules without a lexicon); stored, not a failure."""
