"""Loading datasets from our folder layout, a CSV/JSONL file or the hub.

Folder layout (see the data README): ``<name>/dataset.json`` (the card), ``train.jsonl``,
``validation.jsonl`` (optional), ``test.jsonl``, or a single ``all.jsonl``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import sys
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import hub
from bench.data import splits as splitting
from bench.data.ood import hold_out
from bench.data.spec import SPLITS, Dataset, Split, TaskSpec, TaskType, fingerprint
from bench.data.splits import split_warnings
from bench.errors import DataError, UnknownNameError

DATA_DIR_ENV = "BENCH_DATA_DIR"
#: label spellings read as a missing value unless the dataset card lists them as a class
MISSING_LABELS = frozenset({"nan", "none", "null"})
#: a CSV cell may be this long (the csv module's default limit is 128 KiB)
CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)
_SAFE_NAME = re.compile(r"\w(?:[\w.+ -]*[\w+-])?")
log = logging.getLogger("bench")


def safe_name(name: Any, what: str) -> str:
    """``name`` when it is safe as one folder name under ``--output`` (letters, digits, ``_ . + -`` and inner
    spaces; no path separator, no leading dot), else a :class:`DataError` naming ``what``."""
    if not isinstance(name, str) or len(name) > 100 or not _SAFE_NAME.fullmatch(name):
        raise DataError(
            f"{what}: dataset name {name!r} is not a safe folder name (use letters, digits, '_', '.', '+', '-'; "
            "no path separators, no leading dot, at most 100 characters)"
        )
    return name


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        with path.open("r", encoding="utf-8-sig") as fh:
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
    """Rows of a CSV file as ``(line, {column: cell})``; a byte-order mark is skipped, the header's names are
    stripped and must be distinct, a row may not have more cells than the header (fewer: the rest are missing)."""
    limit = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            twice = sorted({h for h in header if header.count(h) > 1})
            if twice:
                raise DataError(f"{path}: CSV header names column {twice[0]!r} more than once; rename one")
            missing = [c for c in required if c not in header]
            if header and missing:
                raise DataError(
                    f"{path}: CSV has no column {', '.join(repr(c) for c in missing)} "
                    f"(columns: {', '.join(header) or 'none'}); name them with --text-column/--label-column"
                )
            start = reader.line_num + 1
            for row in reader:
                if row:
                    if len(row) > len(header):
                        raise DataError(
                            f"{path}:{start}: {len(row)} cells but the header has {len(header)} (an unquoted comma?)"
                        )
                    yield start, dict(zip(header, row))
                start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: unreadable CSV ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 (byte {exc.start}: {exc.reason})") from None
    finally:
        csv.field_size_limit(limit)


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


def _label(value: Any, col: str, where: str, known: frozenset[str] | None) -> str:
    """One label as its stripped string; null, NaN, empty and (unless the card lists it) a missing-value spelling
    such as "NaN" are refused."""
    if value is None or isinstance(value, (list, dict)):
        kind = "missing" if value is None else f"a {type(value).__name__}, not one label"
        raise DataError(f"{where}: missing or invalid label field {col!r} ({kind})")
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"{where}: label field {col!r} is {value} (not a class)")
    text = str(value).strip()
    if not text:
        raise DataError(f"{where}: label field {col!r} is empty")
    if text.casefold() in MISSING_LABELS and (known is None or text not in known):
        raise DataError(
            f"{where}: label {text!r} reads as a missing value; fill it in, or list it in the dataset card's labels "
            "if it is a class"
        )
    return text


@dataclass
class _Rows:
    """One file's parsed rows: texts, second texts, labels (stripped strings; multi-label: tuples of them), the
    line of each row, where each label spelling first occurs, and where a label lost surrounding whitespace."""

    path: Path
    texts: list[str] = field(default_factory=list)
    pairs: list[str] | None = None
    labels: list[Any] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    first: dict[str, str] = field(default_factory=dict)
    stripped: list[str] = field(default_factory=list)


def _parse_rows(
    rows: Iterable[tuple[int, Any]], path: Path, cols: Columns, multilabel: bool, known: frozenset[str] | None = None
) -> _Rows:
    out = _Rows(path, pairs=[] if cols.text_pair else None)
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        out.texts.append(_text_field(row, cols.text, where))
        if out.pairs is not None and cols.text_pair:
            out.pairs.append(_text_field(row, cols.text_pair, where))
        value = row.get(cols.label) if isinstance(row, dict) else None
        if multilabel:
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                got = "missing" if value is None else type(value).__name__
                raise DataError(f"{where}: field {cols.label!r} must be a list of tag strings (got {got})")
            labels = [t.strip() for t in value]
            if not all(labels):
                raise DataError(f"{where}: field {cols.label!r} holds an empty tag")
            raw = value
        else:
            labels = [_label(value, cols.label, where, known)]
            raw = [value]
        for label, given in zip(labels, raw):
            out.first.setdefault(label, where)
            if isinstance(given, str) and given != label:
                out.stripped.append(f"{given!r} at {where}")
        out.labels.append(tuple(labels) if multilabel else labels[0])
        out.lines.append(lineno)
    return out


def _canonical(label: str) -> tuple[str, Any]:
    """What two spellings of one class share: the number a numeric label denotes, else the case-folded text."""
    try:
        number = float(label)
    except ValueError:
        return "text", label.casefold()
    return ("number", number) if math.isfinite(number) else ("text", label.casefold())


def _check_spellings(first: dict[str, str], card: Collection[str] | None = None) -> None:
    """Refuse labels that differ only in case or number format (``NEG``/``neg``, ``1``/``1.0``); with a card,
    only clashes that involve one of its labels (tags outside it are ignored anyway)."""
    groups: dict[tuple[str, Any], list[str]] = {}
    for label in first:
        groups.setdefault(_canonical(label), []).append(label)
    for (kind, _), spellings in groups.items():
        if len(spellings) > 1 and (card is None or any(s in card for s in spellings)):
            a, b = spellings[:2]  # in order of appearance: a card's own spelling first
            what = "number format" if kind == "number" else "case"
            raise DataError(
                f"labels {a!r} ({first[a]}) and {b!r} ({first[b]}) differ only in {what}; spell each class one way"
            )


def _label_list(labels: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(repr(x) for x in labels[:most])
    return f"[{shown}{f', … {len(labels) - most} more' if len(labels) > most else ''}]"


def _encode_labels(rows: _Rows, labels: tuple[str, ...], multilabel: bool) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    if multilabel:
        y = np.zeros((len(rows.labels), len(labels)), dtype=np.int8)
        for r, tags in enumerate(rows.labels):
            for tag in tags:  # tags outside the card's label list are not classes: ignored
                if tag in index:
                    y[r, index[tag]] = 1
        return y
    y = np.empty(len(rows.labels), dtype=np.int64)
    for r, label in enumerate(rows.labels):
        if label not in index:
            raise DataError(
                f"{rows.path}:{rows.lines[r]}: label {label!r} is not one of the labels {_label_list(labels)}"
            )
        y[r] = index[label]
    return y


def _split(name: str, spec: TaskSpec, rows: _Rows) -> Split:
    pairs = None if rows.pairs is None else tuple(rows.pairs)
    return Split(name, spec, tuple(rows.texts), _encode_labels(rows, spec.labels, spec.multilabel), pairs)


def _label_warnings(parsed: Iterable[_Rows]) -> list[str]:
    stripped = [w for rows in parsed for w in rows.stripped]
    if not stripped:
        return []
    return [f"{len(stripped)} label(s) had surrounding whitespace, stripped (first: {stripped[0]})"]


# ------------------------------------------------------------------------------------------ loaders


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The data directory: the argument, else ``$BENCH_DATA_DIR``, else ``./data``."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or "data")


def available_datasets(data_dir: Path) -> list[str]:
    """Names of the dataset folders under ``data_dir``."""
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir() if p.is_dir() and _split_files(p))


def _split_files(folder: Path) -> dict[str, list[Path]]:
    """The data files of each split found in ``folder`` (normally one each)."""
    files: dict[str, list[Path]] = {}
    for name in (*SPLITS, "all"):
        for ext in (".jsonl", ".csv"):
            if (folder / f"{name}{ext}").is_file():
                files.setdefault(name, []).append(folder / f"{name}{ext}")
    return files


def _one_file_per_split(folder: Path) -> dict[str, Path]:
    """Each split's one data file; two files for one split, or ``all`` beside other splits, are refused."""
    found = _split_files(folder)
    if not found:
        raise DataError(f"{folder}: no train/validation/test/all .jsonl or .csv file")
    for split, paths in found.items():
        if len(paths) > 1:
            raise DataError(f"{folder}: both {paths[0].name} and {paths[1].name} hold the {split} split; keep one")
    if "all" in found and len(found) > 1:
        others = ", ".join(p[0].name for s, p in found.items() if s != "all")
        raise DataError(f"{folder}: {found['all'][0].name} and {others} both hold rows; keep an all file or splits")
    return {split: paths[0] for split, paths in found.items()}


def _json_type(value: Any) -> str:
    return {list: "list", dict: "object", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _card_spec(folder: Path, card: Any) -> TaskSpec:
    where = str(folder / "dataset.json")
    if not isinstance(card, dict):
        raise DataError(f"{where}: the card must be a JSON object, not a {_json_type(card)}")
    name = safe_name(card.get("name", folder.name), f"{where}: 'name'")
    fields = card.get("text_fields", ["text"])
    if (
        not isinstance(fields, list)
        or len(fields) not in (1, 2)
        or not all(isinstance(f, str) and f.strip() for f in fields)
        or len(set(fields)) != len(fields)
    ):
        raise DataError(f'{where}: text_fields must name one or two distinct fields, e.g. ["text"], not {fields!r}')
    task = card.get("task", "single-label")
    if task not in ("single-label", "multi-label", "sentence-pair"):
        raise DataError(f"{where}: unknown task {task!r} (tasks: single-label, multi-label, sentence-pair)")
    if task == "sentence-pair" and len(fields) != 2:
        raise DataError(f"{where}: a sentence-pair task names two text_fields, not {fields!r}")
    if task == "single-label" and len(fields) == 2:
        task = "sentence-pair"
    labels = card.get("labels")
    if not isinstance(labels, list) or not labels:
        raise DataError(f"{where}: 'labels' must be a non-empty list of label names, not {labels!r}")
    bad = [x for x in labels if not isinstance(x, str) or not x.strip()]
    if bad:
        raise DataError(f"{where}: 'labels' must hold non-empty strings, not {bad[0]!r}")
    labels = [x.strip() for x in labels]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise DataError(f"{where}: 'labels' lists {twice[0]!r} more than once")
    _check_spellings({x: f"{where}: 'labels'" for x in labels})
    return TaskSpec(name, task, tuple(labels), tuple(fields), folder, card)


def _read_card(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: unreadable card ({exc})") from None


def load_folder(
    folder: Path, name: str | None = None, columns: Columns | None = None, warnings: list[str] | None = None
) -> tuple[TaskSpec, dict[str, Split]]:
    """Load a dataset folder in our layout; without ``dataset.json`` the task and labels are inferred. What is
    legal but suspicious (labels with surrounding whitespace) is appended to ``warnings``."""
    files = _one_file_per_split(folder)
    card_path = folder / "dataset.json"
    if card_path.is_file():
        spec = _card_spec(folder, _read_card(card_path))
        cols = columns or Columns(
            spec.text_fields[0], spec.text_fields[1] if spec.pair else None, "labels" if spec.multilabel else "label"
        )
        known = frozenset(spec.labels)
        parsed = {s: _parse_rows(_iter_file(p, cols), p, cols, spec.multilabel, known) for s, p in files.items()}
        _check_spellings(_first_spellings(parsed.values(), {x: "the card" for x in spec.labels}), known)
    else:
        parsed, spec = _load_inferred(files, columns or Columns(), name or folder.resolve().name, folder)
    if warnings is not None:
        warnings += _label_warnings(parsed.values())
    return spec, {s: _split(s, spec, rows) for s, rows in parsed.items()}


def _first_spellings(parsed: Iterable[_Rows], start: dict[str, str] | None = None) -> dict[str, str]:
    first = dict(start or {})
    for rows in parsed:
        for label, where in rows.first.items():
            first.setdefault(label, where)
    return first


def _iter_file(path: Path, cols: Columns) -> Iterator[tuple[int, Any]]:
    if path.suffix == ".csv":
        required = [c for c in (cols.text, cols.text_pair, cols.label) if c]
        return _read_csv(path, required)
    return _read_jsonl(path)


def _load_inferred(
    files: dict[str, Path], cols: Columns, name: str, folder: Path | None
) -> tuple[dict[str, _Rows], TaskSpec]:
    name = safe_name(name, str(folder or next(iter(files.values()))))
    if len({cols.text, cols.text_pair, cols.label} - {None}) < (3 if cols.text_pair else 2):
        raise DataError(f"the text, second text and label columns must differ (got {cols})")
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
    parsed = {s: _parse_rows(_iter_file(p, cols), p, cols, multilabel) for s, p in files.items()}
    first_spelling = _first_spellings(parsed.values())
    _check_spellings(first_spelling)
    labels = tuple(sorted(first_spelling))
    task: TaskType = "multi-label" if multilabel else ("sentence-pair" if cols.text_pair else "single-label")
    fields = (cols.text, cols.text_pair) if cols.text_pair else (cols.text,)
    return parsed, TaskSpec(name, task, labels, fields, folder)


def load_file(path: Path, columns: Columns, warnings: list[str] | None = None) -> tuple[TaskSpec, dict[str, Split]]:
    """Load one CSV or JSONL file as a single ``all`` split (labels inferred, sorted)."""
    if path.suffix not in (".csv", ".jsonl", ".json"):
        raise DataError(f"{path}: expected a .csv or .jsonl file, or a dataset folder")
    parsed, spec = _load_inferred({"all": path}, columns, path.stem, None)
    if warnings is not None:
        warnings += _label_warnings(parsed.values())
    return spec, {"all": _split("all", spec, parsed["all"])}


def load_dataset(
    name: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    columns: Columns | None = None,
) -> Dataset:
    """Load a dataset by name (data directory first, then the Hugging Face hub) or from ``path``.

    Returns train/validation/test splits; a missing validation split is carved from train and a
    single ``all`` split is divided 70/15/15, seeded and stratified (see :mod:`bench.data.splits`). What is legal
    but suspicious (a class missing from a split, test rows repeating train rows, ...) is logged as a warning and
    kept in the dataset's notes as ``warning: ...``.
    """
    warnings: list[str] = []
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise DataError(f"{p}: no such file or folder")
        if p.is_dir():
            spec, raw = load_folder(p, columns=columns, warnings=warnings)
        else:
            spec, raw = load_file(p, columns or Columns(), warnings)
        source = str(p.resolve())
    else:
        assert name is not None
        safe_name(name, "--datasets")
        root = resolve_data_dir(data_dir)
        folder = root / name
        if folder.is_dir():
            spec, raw = load_folder(folder, warnings=warnings)
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
    warnings += split_warnings(final)
    for warning in warnings:
        log.warning("%s: %s", spec.name, warning)
    notes += [f"warning: {w}" for w in warnings]
    dataset = Dataset(spec, final, source, fingerprint(final), tuple(notes))
    out_of_scope = spec.card.get("out_of_scope")
    if out_of_scope is not None:  # the card's own out-of-scope label: OOD examples, not a class
        if not isinstance(out_of_scope, str) or out_of_scope not in spec.labels:
            raise DataError(f"{spec.name}: the card's out_of_scope {out_of_scope!r} is not one of its labels")
        dataset = hold_out(dataset, [out_of_scope], rename=False)
    return dataset
