"""Bad input, case by case: each gives one ``bench: error:`` line and exit 2 before anything is written, or, where
it is legal but suspicious, runs correctly with a warning. No case may show a traceback."""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.cli import main
from bench.data import load_dataset
from bench.profiles import PROFILES, apply_profile
from tests.conftest import sentiment_rows, write_dataset

CARD = {"task": "single-label", "text_fields": ["text"], "labels": ["negative", "positive"]}
PAIR_CARD = {"task": "single-label", "text_fields": ["text", "text_pair"], "labels": ["no", "yes"]}


# ------------------------------------------------------------------------------------------ inputs


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def labelled(labels: list[Any], offset: int = 0) -> list[dict]:
    """One row per label, texts that differ (numbered from ``offset``)."""
    return [{"text": f"text number {i + offset} about {str(v)[:10]}", "label": v} for i, v in enumerate(labels, offset)]


def file(tmp: Path, name: str, content: str | bytes) -> list[str]:
    """``--data`` pointing at a file written with ``content``."""
    path = tmp / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return ["--data", str(path)]


def folder(
    tmp: Path,
    card: Any = CARD,
    *,
    train: list | None = None,
    validation: list | None = None,
    test: list | None = None,
    files: dict[str, str | bytes] | None = None,
    raw_card: str | None = None,
) -> list[str]:
    """``--datasets ds --data-dir DIR`` with a folder dataset (defaults: a good sentiment dataset) in DIR."""
    splits = {
        "train": sentiment_rows(40) if train is None else train,
        "validation": sentiment_rows(10, 40) if validation is None else validation,
        "test": sentiment_rows(12, 50) if test is None else test,
    }
    path = write_dataset(tmp / "data", "ds", None, {k: v for k, v in splits.items() if v != "skip"})
    if raw_card is not None or card is not None:
        (path / "dataset.json").write_text(raw_card if raw_card is not None else json.dumps(card))
    for name, content in (files or {}).items():
        (path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return ["--datasets", "ds", "--data-dir", str(tmp / "data")]


def good(tmp: Path) -> list[str]:
    return folder(tmp)


def balanced(labels: list[str], n: int) -> list[Any]:
    return [labels[i % len(labels)] for i in range(n)]


def csv_text(header: str, rows: list[str]) -> str:
    return header + "\n" + "".join(r + "\n" for r in rows)


SENTIMENT_CSV = [f'"{r["text"]}",{r["label"]}' for r in sentiment_rows(30)]


# ------------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Case:
    """``make(tmp)`` gives the arguments after ``run``; ``kind`` is ``error`` (exit 2, one line naming each of
    ``expect``), ``warn`` (exit 0, a warning naming them) or ``ok`` (exit 0, no warning); ``check`` looks at the
    stored result of a run."""

    id: str
    make: Callable[[Path], list[str]]
    kind: str
    expect: tuple[str, ...]
    check: Callable[[dict[str, Any]], None] | None = None


def error(id: str, make: Callable[[Path], list[str]], *expect: str) -> Case:
    return Case(id, make, "error", expect)


def warn(id: str, make: Callable[[Path], list[str]], *expect: str, check=None) -> Case:
    return Case(id, make, "warn", expect, check)


def ok(id: str, make: Callable[[Path], list[str]], check=None) -> Case:
    return Case(id, make, "ok", (), check)


def args(*extra: str) -> Callable[[Path], list[str]]:
    """A good dataset plus ``extra`` arguments."""
    return lambda tmp: [*good(tmp), *extra]


def _macro_over_present(result: dict[str, Any]) -> None:
    # majority predicts 'negative' for all 12 test rows (6 negative, 6 positive): F1 2/3 and 0 over the two
    # classes present; the card's unused 'neutral' is left out (counted as 0 it would give 2/9)
    metrics = result["metrics"]
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["f1_macro"] == pytest.approx(1 / 3)
    assert metrics["per_class"]["neutral"]["support"] == 0


def _two_labels(result: dict[str, Any]) -> None:
    assert result["data"]["labels"] == ["neg", "pos"]


def _labels(*names: str) -> Callable[[dict[str, Any]], None]:
    def check(result: dict[str, Any]) -> None:
        assert result["data"]["labels"] == list(names)

    return check


def _rows(n: int) -> Callable[[dict[str, Any]], None]:
    def check(result: dict[str, Any]) -> None:
        assert result["data"]["train"] + result["data"]["validation"] + result["data"]["test"] == n

    return check


def _has_params(result: dict[str, Any]) -> None:
    assert result["status"] == "ok" and result["efficiency"]["params"] > 0


PAIRS = [{"text": f"first {i}", "text_pair": f"second {i}", "label": "yes" if i % 2 else "no"} for i in range(24)]
TAGS = ["vision", "torch", "nlp"]
TAG_ROWS = [{"text": f"about {TAGS[i % 2]} number {i}", "labels": [TAGS[i % 2]]} for i in range(40)]
MANY = [f"class{i:03d}" for i in range(150)]

CASES = [
    # ---- files that hold nothing, or not what they claim
    error("empty-jsonl", lambda t: file(t, "in.jsonl", ""), "no rows"),
    error("blank-lines-jsonl", lambda t: file(t, "in.jsonl", "\n  \n\n"), "no rows"),
    error("header-only-csv", lambda t: file(t, "in.csv", "text,label\n"), "no rows"),
    error("empty-csv", lambda t: file(t, "in.csv", ""), "no rows"),
    error(
        "jsonl-trailing-garbage",
        lambda t: file(t, "in.jsonl", jsonl(sentiment_rows(20)) + "}garbage{\n"),
        "in.jsonl:21",
        "invalid JSON",
    ),
    error(
        "json-array-not-lines",
        lambda t: file(t, "in.json", json.dumps(sentiment_rows(5), indent=1)),
        "in.json:1",
        "invalid JSON",
    ),
    error("row-is-a-list", lambda t: file(t, "in.jsonl", jsonl([["a", "b"]] * 3)), "not a JSON object"),
    error("non-utf8", lambda t: file(t, "in.jsonl", b'{"text": "caf\xe9", "label": "a"}\n'), "not valid UTF-8"),
    error("utf16", lambda t: file(t, "in.jsonl", jsonl(sentiment_rows(6)).encode("utf-16")), "not valid UTF-8"),
    error("txt-extension", lambda t: file(t, "in.txt", "hello\n"), "expected a .csv or .jsonl"),
    error("data-missing", lambda t: ["--data", str(t / "nowhere.csv")], "no such file"),
    error("too-few-rows", lambda t: file(t, "in.jsonl", jsonl(sentiment_rows(2))), "at least 3"),
    # ---- texts
    error(
        "text-not-string",
        lambda t: file(t, "in.jsonl", jsonl(sentiment_rows(5) + [{"text": 42, "label": "positive"}])),
        "in.jsonl:6",
        "not a string",
    ),
    error(
        "text-empty",
        lambda t: file(t, "in.jsonl", jsonl(sentiment_rows(5) + [{"text": " ", "label": "positive"}])),
        "in.jsonl:6",
        "is empty",
    ),
    error(
        "text-column-missing",
        lambda t: [*file(t, "in.jsonl", jsonl(sentiment_rows(9))), "--text-column", "body"],
        "missing text field 'body'",
    ),
    error(
        "pair-column-missing",
        lambda t: [*file(t, "in.jsonl", jsonl(sentiment_rows(9))), "--text-pair-column", "second"],
        "missing text field 'second'",
    ),
    error(
        "pair-side-empty",
        lambda t: folder(t, PAIR_CARD, train=PAIRS[:5] + [{"text": "a", "text_pair": "", "label": "no"}] + PAIRS[5:]),
        "train.jsonl:6",
        "'text_pair' is empty",
    ),
    error(
        "text-column-is-label-column",
        lambda t: [*file(t, "in.jsonl", jsonl(sentiment_rows(9))), "--text-column", "label"],
        "must differ",
    ),
    # ---- labels
    error(
        "label-missing-in-a-row",
        lambda t: file(t, "in.jsonl", jsonl(sentiment_rows(6) + [{"text": "no label here"}] + sentiment_rows(3))),
        "in.jsonl:7",
        "label",
    ),
    error(
        "label-null",
        lambda t: file(t, "in.jsonl", jsonl(labelled(["a", "b", None, "a"]))),
        "in.jsonl:3",
        "missing",
    ),
    error("label-nan-number", lambda t: file(t, "in.jsonl", '{"text": "x", "label": NaN}\n' * 3), "nan"),
    error(
        "label-nan-string",
        lambda t: file(t, "in.jsonl", jsonl(labelled(["a", "b", "NaN", "a", "b"]))),
        "'NaN'",
        "missing value",
    ),
    error("label-empty", lambda t: file(t, "in.jsonl", jsonl(labelled(["a", "b", "", "a"]))), ":3", "is empty"),
    error("label-blank", lambda t: file(t, "in.jsonl", jsonl(labelled(["a", "b", "   ", "a"]))), ":3", "is empty"),
    error(
        "label-case-variants",
        lambda t: file(t, "in.jsonl", jsonl(labelled(["neg", "pos", "NEG", "pos", "neg"]))),
        "'NEG'",
        "'neg'",
        "case",
    ),
    error(
        "label-number-format",
        lambda t: file(t, "in.jsonl", jsonl(labelled([1, 0, 1.0, 0, 1]))),
        "'1'",
        "'1.0'",
        "number format",
    ),
    error(
        "label-number-format-csv",
        lambda t: file(t, "in.csv", csv_text("text,label", [f"row {i},{v}" for i, v in enumerate(["1", "01", "0"])])),
        "'1'",
        "'01'",
    ),
    error(
        "label-is-a-list-on-single-label",
        lambda t: file(t, "in.jsonl", jsonl(labelled(["a", "b", ["a", "b"], "a"]))),
        "in.jsonl:3",
        "not one label",
    ),
    error(
        "label-not-in-card",
        lambda t: folder(t, train=sentiment_rows(10) + [{"text": "meh", "label": "neutral"}]),
        "train.jsonl:11",
        "'neutral' is not one of the labels",
    ),
    error(
        "label-case-differs-from-card",
        lambda t: folder(t, test=sentiment_rows(6) + [{"text": "fine", "label": "Positive"}]),
        "'positive'",
        "'Positive'",
        "case",
    ),
    error(
        "multilabel-tags-not-a-list",
        lambda t: file(t, "in.jsonl", jsonl(TAG_ROWS[:4] + [{"text": "x", "labels": "vision"}])),
        "in.jsonl:5",
        "list of tag strings",
    ),
    error(
        "multilabel-tag-not-string",
        lambda t: file(t, "in.jsonl", jsonl(TAG_ROWS[:4] + [{"text": "x", "labels": ["vision", 3]}])),
        "in.jsonl:5",
        "list of tag strings",
    ),
    error(
        "multilabel-empty-tag",
        lambda t: file(t, "in.jsonl", jsonl(TAG_ROWS[:4] + [{"text": "x", "labels": [""]}])),
        "in.jsonl:5",
        "empty tag",
    ),
    error(
        "multilabel-tag-case-variants",
        lambda t: file(t, "in.jsonl", jsonl(TAG_ROWS[:4] + [{"text": "x", "labels": ["Vision"]}])),
        "'Vision'",
        "'vision'",
    ),
    # ---- CSV
    error(
        "csv-duplicate-columns",
        lambda t: file(t, "in.csv", csv_text("text,label,text", [f"{r},x" for r in SENTIMENT_CSV])),
        "'text' more than once",
    ),
    error(
        "csv-no-label-column", lambda t: file(t, "in.csv", "text,stars\nhello,a\nbye,b\nyo,a\n"), "no column 'label'"
    ),
    error(
        "csv-extra-cells",
        lambda t: file(t, "in.csv", csv_text("text,label", [*SENTIMENT_CSV[:4], "a, b, c,positive", *SENTIMENT_CSV])),
        "in.csv:6",
        "4 cells",
    ),
    error(
        "csv-empty-label-cell",
        lambda t: file(t, "in.csv", csv_text("text,label", [*SENTIMENT_CSV[:4], "some text,", *SENTIMENT_CSV])),
        "in.csv:6",
        "is empty",
    ),
    # ---- folders and cards
    error("folder-without-data", lambda t: folder(t, train="skip", validation="skip", test="skip"), "no train"),
    error(
        "data-dir-without-card-or-data",
        lambda t: (t / "empty").mkdir() or ["--data", str(t / "empty")],
        "no train/validation/test/all",
    ),
    error(
        "two-files-one-split", lambda t: folder(t, files={"train.csv": "text,label\na,b\n"}), "train.jsonl", "train.csv"
    ),
    error("all-beside-splits", lambda t: folder(t, files={"all.jsonl": jsonl(sentiment_rows(9))}), "all.jsonl"),
    error("train-without-test", lambda t: folder(t, test="skip"), "no test split"),
    error("test-without-train", lambda t: folder(t, train="skip"), "needs train and test"),
    error("empty-test-split", lambda t: folder(t, test=[]), "'test'", "is empty"),
    error(
        "single-class-train",
        lambda t: folder(t, train=[{"text": f"good {i}", "label": "positive"} for i in range(9)]),
        "single class",
    ),
    error("card-is-a-list", lambda t: folder(t, raw_card='["negative", "positive"]'), "JSON object, not a list"),
    error("card-invalid-json", lambda t: folder(t, raw_card='{"labels": ['), "unreadable card"),
    error("card-unknown-task", lambda t: folder(t, {**CARD, "task": "regression"}), "unknown task 'regression'"),
    error("card-duplicate-labels", lambda t: folder(t, {**CARD, "labels": ["a", "b", "a"]}), "'a' more than once"),
    error("card-empty-labels", lambda t: folder(t, {**CARD, "labels": []}), "'labels'"),
    error("card-labels-a-string", lambda t: folder(t, {**CARD, "labels": "negative,positive"}), "'labels'"),
    error("card-labels-numbers", lambda t: folder(t, {**CARD, "labels": [0, 1]}), "non-empty strings"),
    error("card-labels-case-clash", lambda t: folder(t, {**CARD, "labels": ["pos", "POS"]}), "'pos'", "'POS'"),
    error("card-name-traversal", lambda t: folder(t, {**CARD, "name": "../../x"}), "'../../x'", "safe folder name"),
    error("card-name-absolute", lambda t: folder(t, {**CARD, "name": "/tmp/x"}), "'/tmp/x'", "safe folder name"),
    error("card-name-empty", lambda t: folder(t, {**CARD, "name": ""}), "safe folder name"),
    error("card-name-not-string", lambda t: folder(t, {**CARD, "name": 7}), "safe folder name"),
    error("card-three-text-fields", lambda t: folder(t, {**CARD, "text_fields": ["a", "b", "c"]}), "text_fields"),
    error("card-text-fields-string", lambda t: folder(t, {**CARD, "text_fields": "text"}), "text_fields"),
    error(
        "card-pair-task-one-field",
        lambda t: folder(t, {**CARD, "task": "sentence-pair"}),
        "sentence-pair task names two text_fields",
    ),
    # ---- dataset selection
    error("datasets-traversal", lambda t: [*good(t)[2:], "--datasets", "../data/ds"], "safe folder name"),
    error("datasets-empty-item", lambda t: [*good(t)[2:], "--datasets", "ds,,ds"], "empty item"),
    error("datasets-empty", lambda t: [*good(t)[2:], "--datasets", ""], "empty item"),
    error("datasets-unknown", lambda t: [*good(t)[2:], "--datasets", "dss"], "unknown dataset 'dss'", "'ds'"),
    error("data-dir-missing", lambda t: ["--datasets", "ds", "--data-dir", str(t / "nowhere")], "does not exist"),
    error("data-and-datasets", lambda t: [*good(t), "--data", str(t / "data" / "ds")], "not both"),
    error(
        "two-data-files-same-stem",
        lambda t: (
            (t / "a").mkdir()
            or (t / "b").mkdir()
            or [
                *file(t / "a", "x.jsonl", jsonl(sentiment_rows(20))),
                *file(t / "b", "x.jsonl", jsonl(sentiment_rows(30))),
            ]
        ),
        "both named 'x'",
    ),
    error("column-flag-with-datasets", args("--text-column", "body"), "--text-column applies to --data only"),
    # ---- settings
    error("unknown-profile", args("--profile", "fast"), "unknown profile 'fast'"),
    error("empty-profile", args("--profile", ""), "unknown profile ''"),
    error("device-tpu", args("--device", "tpu"), "unknown device 'tpu'"),
    error("device-cuda-garbage", args("--device", "cuda:x"), "unknown device 'cuda:x'"),
    error("models-empty", lambda t: [*good(t), "--models", ""], "choose the rungs"),
    error("models-empty-item", lambda t: [*good(t), "--models", "majority,,tfidf_lr"], "empty item"),
    error("models-unknown", lambda t: [*good(t), "--models", "majorty"], "unknown rung 'majorty'"),
    error("models-and-all", lambda t: [*good(t), "--all", "--models", "majority"], "choose the rungs"),
    error("seed-negative", args("--seed", "-1"), "--seed -1"),
    error("seed-too-large", args("--seed", str(2**32)), "4294967296"),
    error("seeds-repeated", args("--seeds", "0,0"), "distinct"),
    error("seeds-not-integers", args("--seeds", "a,b"), "comma-separated integers"),
    error("seeds-empty", args("--seeds", ""), "empty item"),
    error("seeds-negative", args("--seeds", "1,-2"), "-2"),
    error("seed-and-seeds", args("--seed", "1", "--seeds", "1,2"), "not both"),
    error("ece-bins-zero", args("--ece-bins", "0"), "--ece-bins 0"),
    error("ece-bins-huge", args("--ece-bins", "1000000000"), "--ece-bins 1000000000"),
    # ---- rung options
    error("option-broken-json", args("--option", "tfidf_lr.c_grid=[1,"), "'[1,'", "not valid JSON"),
    error("option-broken-object", args("--option", 'tfidf_lr.pair_features={"a"'), "not valid JSON"),
    error("option-empty-grid", args("--option", "tfidf_lr.c_grid=[]"), "tfidf_lr.c_grid", "empty"),
    error("option-negative-grid", args("--option", "tfidf_lr.c_grid=[-1, 2]"), "tfidf_lr.c_grid", "positive"),
    error("option-grid-not-list", args("--option", "tfidf_lr.c_grid=5"), "tfidf_lr.c_grid", "list"),
    error("option-grid-nan", args("--option", "tfidf_lr.c_grid=[1, NaN]"), "tfidf_lr.c_grid", "finite"),
    error("option-grid-strings", args("--option", 'tfidf_lr.c_grid=["a"]'), "tfidf_lr.c_grid", "numbers"),
    error("option-zero-iterations", args("--option", "tfidf_lr.max_iter=0"), "tfidf_lr.max_iter", "at least 1"),
    error("option-float-for-integer", args("--option", "tfidf_lr.max_iter=1e3"), "tfidf_lr.max_iter", "integer"),
    error("option-ngrams-reversed", args("--option", "tfidf_lr.word_ngrams=[2, 1]"), "tfidf_lr.word_ngrams"),
    error("option-bad-choice", args("--option", "tfidf_lr.pair_features=nope"), "tfidf_lr.pair_features", "nope"),
    error("option-negative", args("--option", "tfidf_lr.min_df=-1"), "tfidf_lr.min_df", "negative"),
    error("option-null", args("--option", "tfidf_lr.max_iter=null"), "tfidf_lr.max_iter", "null"),
    error("option-unknown-key", args("--option", "tfidf_lr.nonsense=1"), "no option 'nonsense'"),
    error("option-unknown-rung", args("--option", "nope.x=1"), "unknown rung 'nope'"),
    error("option-twice", args("--option", "tfidf_lr.min_df=1", "--option", "tfidf_lr.min_df=2"), "given twice"),
    error("option-no-key", args("--option", "tfidf_lr=1"), "expected RUNG.KEY=VALUE"),
    # ---- output
    error(
        "output-is-a-file", lambda t: (t / "out").write_text("x") and [*good(t), "--output", str(t / "out")], "a file"
    ),
    error(
        "output-under-a-file",
        lambda t: (t / "f").write_text("x") and [*good(t), "--output", str(t / "f" / "out")],
        "is a file",
    ),
    error("output-unwritable", lambda t: [*good(t), "--output", "/proc/bench-results"], "cannot write"),
    # ---- legal but suspicious: runs, says so, scores right
    warn(
        "card-lists-unused-label",
        lambda t: folder(t, {**CARD, "labels": ["negative", "neutral", "positive"]}),
        "test split",
        "'neutral'",
        check=_macro_over_present,
    ),
    warn(
        "labels-with-whitespace",
        lambda t: file(t, "in.jsonl", jsonl(labelled(balanced(["pos", "pos ", " pos", "neg", "neg\t"], 40)))),
        "whitespace",
        check=_two_labels,
    ),
    warn(
        "class-missing-from-validation",
        lambda t: folder(t, validation=[r for r in sentiment_rows(10, 40) if r["label"] == "positive"]),
        "validation split",
        "'negative'",
    ),
    warn(
        "test-repeats-train",
        lambda t: folder(t, test=sentiment_rows(9, 50) + sentiment_rows(3)),
        "3 of 12 test row(s)",
    ),
    warn(
        "label-only-in-test",
        lambda t: folder(t, None, test=sentiment_rows(10, 50) + [{"text": "so so", "label": "neutral"}] * 2),
        "only in the test split",
        "'neutral'",
    ),
    warn(
        "150-classes-3-rows",
        lambda t: file(t, "many.jsonl", jsonl(labelled(balanced(MANY, 450)))),
        "test split",
        "without an example",
        check=_rows(450),
    ),
    warn(
        "multilabel-tag-never-positive-in-train",
        lambda t: [
            *folder(
                t,
                {"task": "multi-label", "labels": TAGS},
                train=TAG_ROWS[:30],
                validation=TAG_ROWS[30:],
                test=[*TAG_ROWS[:6], {"text": "about nlp", "labels": ["nlp"]}],
            ),
            "--models",
            "tfidf_lr",
            "--option",
            "tfidf_lr.min_df=1",
        ],
        "train split",
        "never positive",
        "'nlp'",
        check=_has_params,
    ),
    # ---- legal: runs as it should
    ok(
        "csv-bom-header",
        lambda t: file(t, "in.csv", "\ufeff" + csv_text("text,label", SENTIMENT_CSV)),
        check=_labels("negative", "positive"),
    ),
    ok(
        "jsonl-bom",
        lambda t: file(t, "in.jsonl", "\ufeff" + jsonl(sentiment_rows(30))),
        check=_labels("negative", "positive"),
    ),
    ok(
        "csv-cell-over-128-kib",
        lambda t: file(t, "in.csv", csv_text("text,label", [f"{'word ' * 40_000},positive", *SENTIMENT_CSV])),
        check=_rows(31),
    ),
    ok("csv-header-spaces", lambda t: file(t, "in.csv", csv_text("text , label", SENTIMENT_CSV)), check=_rows(30)),
    ok("numeric-labels", lambda t: file(t, "in.jsonl", jsonl(labelled(balanced([0, 1], 30)))), check=_labels("0", "1")),
    ok(
        "missing-value-spelling-listed-in-card",
        lambda t: folder(
            t,
            {**CARD, "labels": ["none", "some"]},
            train=labelled(balanced(["none", "some"], 20)),
            validation=labelled(balanced(["none", "some"], 6), 100),
            test=labelled(balanced(["none", "some"], 6), 200),
        ),
        check=_labels("none", "some"),
    ),
    ok(
        "same-file-twice",
        lambda t: [*file(t, "in.jsonl", jsonl(sentiment_rows(30))), "--data", str(t / "." / "in.jsonl")],
        check=_rows(30),
    ),
    ok("same-dataset-twice", lambda t: [*good(t)[2:], "--datasets", "ds,ds"], check=_rows(62)),
]


def _run(tmp_path: Path, extra: list[str]) -> tuple[int, Path]:
    out = tmp_path / "out"
    if "--output" in extra:
        out = Path(extra[extra.index("--output") + 1])
    argv = ["run", "--profile", "quick", "--no-html"]
    if "--models" not in extra and "--all" not in extra:
        argv += ["--models", "majority"]
    if "--output" not in extra:
        argv += ["--output", str(out)]
    return main([*argv, *extra]), out


def test_the_table_is_big_enough():
    assert len({c.id for c in CASES}) == len(CASES)
    assert sum(c.kind in ("error", "warn") for c in CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys, caplog):
    caplog.set_level(logging.WARNING, logger="bench")
    extra = case.make(tmp_path)
    existed = "--output" in extra and Path(extra[extra.index("--output") + 1]).exists()
    code, out = _run(tmp_path, extra)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out + caplog.text
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "timed while the machine was busy" not in r.getMessage()
    ]  # about the machine, not the input: a busy CI host must not fail an input test
    if case.kind == "error":
        lines = captured.err.strip().splitlines()
        assert code == 2, captured.err
        assert len(lines) == 1 and lines[0].startswith("bench: error: "), lines
        for part in case.expect:
            assert part in lines[0]
        assert out.exists() == existed  # nothing written
        return
    assert code == 0, captured.err
    if case.kind == "warn":
        assert any(all(part in w for part in case.expect) for w in warnings), warnings
    else:
        assert not warnings
    results = sorted(out.glob("*/*/seed-0/result.json"))
    assert results
    for path in results:
        result = json.loads(path.read_text())
        assert result["status"] == "ok", result.get("error")
        if case.kind == "warn":
            assert any(all(part in n for part in case.expect) for n in result["data"]["notes"])
        if case.check:
            case.check(result)


# ------------------------------------------------------------------------------------------ beyond the table


def test_a_full_disk_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1024, 1024))
    code, out = _run(tmp_path, good(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("bench: error: ") and "MiB free" in err and "\n" not in err
    assert not out.exists()


def test_a_disk_that_fills_up_while_writing_gives_one_line(tmp_path, capsys, monkeypatch):
    from bench.store.results import ResultStore

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out"))

    monkeypatch.setattr(ResultStore, "write", full)
    code, _ = _run(tmp_path, good(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("bench: error: ") and "No space left on device" in err and "\n" not in err


def _many_classes(root: Path, n_classes: int = 151) -> Path:
    """A dataset of ``n_classes`` classes whose validation split (3,100 rows) exceeds the default profile's cap
    (3,000) by fewer rows than there are classes, and whose test split (600) exceeds quick's (500) likewise."""
    labels = [f"intent_{i:03d}" for i in range(n_classes)]

    def rows(n: int, offset: int) -> list[dict]:
        return [
            {
                "text": f"please do {labels[(i + offset) % n_classes]} now {i + offset}",
                "label": labels[(i + offset) % n_classes],
            }
            for i in range(n)
        ]

    write_dataset(
        root,
        "intents",
        {"task": "single-label", "text_fields": ["text"], "labels": labels},
        {"train": rows(2 * n_classes, 0), "validation": rows(3100, 10_000), "test": rows(600, 20_000)},
    )
    return root


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory) -> Path:
    return _many_classes(tmp_path_factory.mktemp("many"))


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_151_classes_cap_under_every_profile(many_classes, profile):
    ds = load_dataset("intents", data_dir=many_classes)
    capped = apply_profile(ds, PROFILES[profile])
    caps = PROFILES[profile]
    for name, cap in (("train", caps.max_train), ("validation", caps.max_validation), ("test", caps.max_test)):
        split = capped.splits[name]
        assert len(split) == min(len(ds.splits[name]), cap or len(ds.splits[name]))
        assert np.count_nonzero(split.class_counts()) == 151  # every class keeps a row
    if profile == "default":
        assert any("validation capped at 3000" in note for note in capped.notes)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_151_classes_run_end_to_end(many_classes, tmp_path, profile):
    out = tmp_path / "out"
    argv = ["run", "--models", "majority", "--datasets", "intents", "--data-dir", str(many_classes)]
    assert main([*argv, "--profile", profile, "--no-html", "--output", str(out)]) == 0
    result = json.loads((out / "intents" / "majority" / "seed-0" / "result.json").read_text())
    assert result["status"] == "ok" and len(result["metrics"]["per_class"]) == 151
    assert result["data"]["validation"] == {"quick": 500, "default": 3000, "full": 3100}[profile]
