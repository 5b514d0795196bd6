"""bench: a baseline ladder of text classifiers through one harness."""

__version__ = "0.1.0"

from bench.errors import BenchError, NotApplicable  # noqa: E402
from bench.protocol import Rung  # noqa: E402
from bench.registry import create_rung, list_rungs, register_rung  # noqa: E402

__all__ = ["BenchError", "NotApplicable", "Rung", "create_rung", "list_rungs", "register_rung", "__version__"]
