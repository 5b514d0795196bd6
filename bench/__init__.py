"""bench: a baseline ladder of text classifiers through one harness.

The flow reads off the sub-packages: ``data`` → ``rungs`` → ``evaluate`` (metrics, efficiency, the harness) →
``store`` → ``report`` (leaderboards, HTML) and ``perf`` (the latency gate); ``execute`` runs the grid of cells
(locally or on Ray) and ``cli`` drives them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# name -> "module:object", imported on first access so that `import bench` stays light (`bench list` is fast)
_EXPORTS = {
    "BenchError": "bench.errors:BenchError",
    "NotApplicable": "bench.errors:NotApplicable",
    "Rung": "bench.rungs.protocol:Rung",
    "Wrapper": "bench.rungs.wrapper:Wrapper",
    "Capabilities": "bench.rungs.registry:Capabilities",
    "PlotStyle": "bench.rungs.registry:PlotStyle",
    "Resources": "bench.rungs.registry:Resources",
    "create_rung": "bench.rungs.registry:create_rung",
    "list_rungs": "bench.rungs.registry:list_rungs",
    "register_rung": "bench.rungs.registry:register_rung",
    "Predictions": "bench.evaluate.metrics:Predictions",
    "register_metric": "bench.evaluate.metrics:register_metric",
    "list_metrics": "bench.evaluate.metrics:list_metrics",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    import importlib

    module, _, attr = _EXPORTS[name].partition(":")
    return getattr(importlib.import_module(module), attr)
