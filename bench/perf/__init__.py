"""The latency regression gate (``gate``) and the pytest-benchmark suite it runs (``suite``)."""
