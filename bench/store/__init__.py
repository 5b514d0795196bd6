"""The results store: one folder per (dataset, rung) holding result.json, predictions.npz and the fitted artifact."""

from bench.store.results import ARTIFACT_DIR, PREDICTIONS_FILE, RESULT_FILE, ResultStore, seed_of, to_json

__all__ = ["ARTIFACT_DIR", "PREDICTIONS_FILE", "RESULT_FILE", "ResultStore", "seed_of", "to_json"]
