"""Data: task specs, splits and datasets (``spec``), loading them (``load``), carving splits (``splits``), the hub
(``hub``)."""

from bench.data.load import DATA_DIR_ENV, Columns, available_datasets, load_dataset, resolve_data_dir
from bench.data.spec import SPLITS, Dataset, Input, Split, TaskSpec, TaskType

__all__ = [
    "DATA_DIR_ENV",
    "SPLITS",
    "Columns",
    "Dataset",
    "Input",
    "Split",
    "TaskSpec",
    "TaskType",
    "available_datasets",
    "load_dataset",
    "resolve_data_dir",
]
