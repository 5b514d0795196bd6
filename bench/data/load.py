"""Loading datasets from our folder layout, a CSV/JSONL file or the hub.

Folder layout (see the data README): ``<name>/dataset.json`` (the card), ``train.jsonl``,
``validation.jsonl`` (optional), ``test.jsonl``, or a single ``all.jsonl``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import hub
from bench.data import splits as splitting
from bench.data.spec import SPLITS, Dataset, Split, TaskSpec, TaskType
from bench.errors import DataError, UnknownNameError

DATA_DIR_ENV = "BENCH_DATA_DIR"


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        with path.open("r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 (byte {exc.start}: {exc.reason})") from None


def _read_csv(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open("r", encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(
                    f"{path}: CSV has no column {', '.join(repr(c) for c in missing)} "
                    f"(columns: {', '.join(header) or 'none'}); name them with --text-column/--label-column"
                )
            for row in reader:
                yield reader.line_num, row
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 (byte {exc.start}: {exc.reason})") from None


@dataclass(frozen=True)
class Columns:
    """Which fields of a row hold the text, the optional second text and the label(s)."""

    text: str = "text"
    text_pair: str | None = None
    label: str = "label"


def _text_field(row: Any, key: str, where: str) -> str:
    if not isinstance(row, dict):
        raise DataError(f"{where}: row is not a JSON object")
    if key not in row or row[key] is None:
        raise DataError(f"{where}: missing text field {key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: text field {key!r} is not a string (got {type(value).__name__})")
    if not value.strip():
        raise DataError(f"{where}: text field {key!r} is empty")
    return value


def _parse_rows(
    rows: Iterable[tuple[int, Any]], path: Path, cols: Columns, multilabel: bool
) -> tuple[list[str], list[str] | None, list[Any]]:
    texts: list[str] = []
    pairs: list[str] | None = [] if cols.text_pair else None
    raw_labels: list[Any] = []
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        texts.append(_text_field(row, cols.text, where))
        if pairs is not None and cols.text_pair:
            pairs.append(_text_field(row, cols.text_pair, where))
        label = row.get(cols.label) if isinstance(row, dict) else None
        if multilabel:
            if not isinstance(label, list) or not all(isinstance(t, str) for t in label):
                raise DataError(f"{where}: field {cols.label!r} must be a list of tag strings")
        elif label is None or (isinstance(label, str) and not label.strip()) or isinstance(label, (list, dict)):
            raise DataError(f"{where}: missing or invalid label field {cols.label!r}")
        raw_labels.append(label)
    return texts, pairs, raw_labels


def _encode_labels(raw: list[Any], labels: tuple[str, ...], multilabel: bool, path: Path) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    if multilabel:
        y = np.zeros((len(raw), len(labels)), dtype=np.int8)
        for r, tags in enumerate(raw):
            for tag in tags:  # tags outside the card's label list are not classes: ignored
                if tag in index:
                    y[r, index[tag]] = 1
        return y
    y = np.empty(len(raw), dtype=np.int64)
    for r, label in enumerate(raw):
        key = str(label)
        if key not in index:
            raise DataError(f"{path}: row {r + 1}: label {key!r} is not one of the labels {list(labels)}")
        y[r] = index[key]
    return y


def _fingerprint(splits: dict[str, Split]) -> str:
    h = hashlib.sha256()
    for name in sorted(splits):
        s = splits[name]
        h.update(f"<{name}:{len(s)}>".encode())
        for i, text in enumerate(s.texts):
            h.update(text.encode())
            h.update(b"\x1f")
            if s.pairs is not None:
                h.update(s.pairs[i].encode())
            h.update(b"\x1e")
        h.update(np.ascontiguousarray(s.y).tobytes())
    for label in next(iter(splits.values())).spec.labels:
        h.update(label.encode() + b"\x1d")
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------ loaders


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The data directory: the argument, else ``$BENCH_DATA_DIR``, else ``./data``."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or "data")


def available_datasets(data_dir: Path) -> list[str]:
    """Names of the dataset folders under ``data_dir``."""
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir() if p.is_dir() and _split_files(p))


def _split_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for name in (*SPLITS, "all"):
        for ext in (".jsonl", ".csv"):
            if (folder / f"{name}{ext}").is_file():
                files[name] = folder / f"{name}{ext}"
    return files


def _card_spec(folder: Path, card: dict[str, Any]) -> TaskSpec:
    fields = tuple(card.get("text_fields") or ("text",))
    if len(fields) not in (1, 2):
        raise DataError(f"{folder / 'dataset.json'}: text_fields must name one or two fields")
    task = card.get("task", "single-label")
    if task not in ("single-label", "multi-label", "sentence-pair"):
        raise DataError(f"{folder / 'dataset.json'}: unknown task {task!r}")
    if task == "single-label" and len(fields) == 2:
        task = "sentence-pair"
    labels = card.get("labels")
    if not labels or not all(isinstance(x, str) for x in labels) or len(set(labels)) != len(labels):
        raise DataError(f"{folder / 'dataset.json'}: 'labels' must be a list of distinct strings")
    return TaskSpec(card.get("name", folder.name), task, tuple(labels), fields, folder, card)


def _infer_labels(raw: list[Any], multilabel: bool) -> tuple[str, ...]:
    if multilabel:
        return tuple(sorted({t for tags in raw for t in tags}))
    return tuple(sorted({str(x) for x in raw}))


def load_folder(
    folder: Path, name: str | None = None, columns: Columns | None = None
) -> tuple[TaskSpec, dict[str, Split]]:
    """Load a dataset folder in our layout; without ``dataset.json`` the task and labels are inferred."""
    files = _split_files(folder)
    if not files:
        raise DataError(f"{folder}: no train/validation/test/all .jsonl or .csv file")
    card_path = folder / "dataset.json"
    card: dict[str, Any] | None = None
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{card_path}: unreadable card ({exc})") from None
    if card is not None:
        spec = _card_spec(folder, card)
        cols = columns or Columns(
            spec.text_fields[0], spec.text_fields[1] if spec.pair else None, "labels" if spec.multilabel else "label"
        )
        raw = {s: _parse_rows(_iter_file(p, cols), p, cols, spec.multilabel) for s, p in files.items()}
    else:
        cols = columns or Columns()
        raw, spec = _load_inferred(files, cols, name or folder.name, folder)
    splits = {
        s: Split(
            s,
            spec,
            tuple(t),
            _encode_labels(lab, spec.labels, spec.multilabel, files[s]),
            None if p is None else tuple(p),
        )
        for s, (t, p, lab) in raw.items()
    }
    return spec, splits


def _iter_file(path: Path, cols: Columns) -> Iterator[tuple[int, Any]]:
    if path.suffix == ".csv":
        required = [c for c in (cols.text, cols.text_pair, cols.label) if c]
        return _read_csv(path, required)
    return _read_jsonl(path)


def _load_inferred(files: dict[str, Path], cols: Columns, name: str, folder: Path | None):
    first_path = next(iter(files.values()))
    first = next(iter(_iter_file(first_path, cols)), None)
    if first is None:
        raise DataError(f"{first_path}: the file has no rows")
    multilabel = isinstance(first[1], dict) and isinstance(first[1].get(cols.label), list)
    if (
        not multilabel
        and isinstance(first[1], dict)
        and cols.label == "label"
        and isinstance(first[1].get("labels"), list)
    ):
        cols, multilabel = Columns(cols.text, cols.text_pair, "labels"), True
    raw = {s: _parse_rows(_iter_file(p, cols), p, cols, multilabel) for s, p in files.items()}
    labels = _infer_labels([lab for _, _, labs in raw.values() for lab in labs], multilabel)
    task: TaskType = "multi-label" if multilabel else ("sentence-pair" if cols.text_pair else "single-label")
    fields = (cols.text, cols.text_pair) if cols.text_pair else (cols.text,)
    return raw, TaskSpec(name, task, labels, fields, folder)


def load_file(path: Path, columns: Columns) -> tuple[TaskSpec, dict[str, Split]]:
    """Load one CSV or JSONL file as a single ``all`` split (labels inferred, sorted)."""
    if path.suffix not in (".csv", ".jsonl", ".json"):
        raise DataError(f"{path}: expected a .csv or .jsonl file, or a dataset folder")
    raw, spec = _load_inferred({"all": path}, columns, path.stem, None)
    t, p, lab = raw["all"]
    split = Split(
        "all", spec, tuple(t), _encode_labels(lab, spec.labels, spec.multilabel, path), None if p is None else tuple(p)
    )
    return spec, {"all": split}


def load_dataset(
    name: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    columns: Columns | None = None,
) -> Dataset:
    """Load a dataset by name (data directory first, then the Hugging Face hub) or from ``path``.

    Returns train/validation/test splits; a missing validation split is carved from train and a
    single ``all`` split is divided 70/15/15, seeded and stratified (see :mod:`bench.data.splits`).
    """
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise DataError(f"{p}: no such file or folder")
        spec, raw = load_folder(p, columns=columns) if p.is_dir() else load_file(p, columns or Columns())
        source = str(p.resolve())
    else:
        assert name is not None
        root = resolve_data_dir(data_dir)
        folder = root / name
        if folder.is_dir():
            spec, raw = load_folder(folder)
            source = str(folder.resolve())
        elif name in hub.HUB_DATASETS and not hub.offline():
            spec, raw = hub.load(name)
            source = f"hf://{hub.HUB_DATASETS[name].path}"
        elif not root.is_dir():
            raise DataError(
                f"data directory {str(root)!r} does not exist; pass --data-dir or set {DATA_DIR_ENV}"
                + (" (the hub is offline: HF_HUB_OFFLINE=1)" if name in hub.HUB_DATASETS else "")
            )
        else:
            raise UnknownNameError("dataset", name, set(available_datasets(root)) | set(hub.HUB_DATASETS))
    final, notes = splitting.finalize_splits(raw)
    spec = final["train"].spec
    return Dataset(spec, final, source, _fingerprint(final), tuple(notes))
