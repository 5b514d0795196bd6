"""Evaluation: metrics (a registry), calibration and thresholds, efficiency measurement, the harness that runs a
rung on a dataset and stores the result, rescoring from stored predictions, and the MC sweep."""
