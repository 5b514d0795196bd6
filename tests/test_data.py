"""The data layer: loading, task types, splitting, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.data import Columns, load_dataset
from bench.data.hub import HUB_DATASETS, convert
from bench.errors import DataError, UnknownNameError
from tests.conftest import sentiment_rows, write_dataset

CARD = {"task": "single-label", "text_fields": ["text"], "labels": ["negative", "positive"]}


def test_loads_task_types(toy_data):
    sent = load_dataset("toy_sentiment", data_dir=toy_data)
    assert sent.spec.task_type == "single-label" and sent.spec.labels == ("negative", "positive")
    assert [len(sent.train), len(sent.validation), len(sent.test)] == [80, 20, 30]
    assert sent.train.y.dtype == np.int64 and set(sent.train.y) == {0, 1}

    pairs = load_dataset("toy_pairs", data_dir=toy_data)
    assert pairs.spec.task_type == "sentence-pair" and pairs.spec.pair
    assert isinstance(pairs.test.inputs[0], tuple) and len(pairs.test.inputs[0]) == 2

    tags = load_dataset("toy_tags", data_dir=toy_data)
    assert tags.spec.multilabel and tags.train.y.shape[1] == 5
    assert tags.spec.resource("rules.json") is not None


def test_multilabel_ignores_tags_outside_the_card(toy_data):
    tags = load_dataset("toy_tags", data_dir=toy_data)
    rows = [r for s in tags.splits.values() for r in zip(s.texts, s.y)]
    vision_torch = [y for t, y in rows if t.startswith("Vision transformers")]
    assert vision_torch and all(y.tolist() == [1, 0, 0, 1, 0] for y in vision_torch)  # 'unlisted-tag' dropped
    assert any(y.sum() == 0 for _, y in rows)  # an empty tag list is a valid row


def test_all_split_is_70_15_15_deterministic_and_stratified(toy_data):
    a = load_dataset("toy_tags", data_dir=toy_data)
    b = load_dataset("toy_tags", data_dir=toy_data)
    sizes = [len(a.train), len(a.validation), len(a.test)]
    assert sum(sizes) == 100 and all(
        abs(got - want) <= 2 for got, want in zip(sizes, [70, 15, 15])
    )  # iterative stratification is approximate
    assert a.train.texts == b.train.texts and a.test.texts == b.test.texts
    assert not set(a.train.texts) & set(a.test.texts) and not set(a.validation.texts) & set(a.test.texts)
    whole = np.concatenate([s.y for s in a.splits.values()]).mean(0)
    assert np.abs(a.train.y.mean(0) - whole).max() < 0.05
    assert np.abs(a.test.y.mean(0) - whole).max() < 0.1


def test_missing_validation_is_carved_stratified(toy_data):
    ds = load_dataset("toy_topics", data_dir=toy_data)
    assert len(ds.validation) == 6 and len(ds.train) == 54
    assert np.bincount(ds.validation.y).tolist() == [2, 2, 2]
    assert any("carved" in note for note in ds.notes)
    assert load_dataset("toy_topics", data_dir=toy_data).fingerprint == ds.fingerprint


def test_fingerprint_changes_with_content(toy_data, tmp_path):
    fp = load_dataset("toy_sentiment", data_dir=toy_data).fingerprint
    rows = sentiment_rows(80)
    rows[0]["text"] += " changed"
    write_dataset(
        tmp_path / "d",
        "toy_sentiment",
        CARD,
        {"train": rows, "validation": sentiment_rows(20, 80), "test": sentiment_rows(30, 100)},
    )
    assert load_dataset("toy_sentiment", data_dir=tmp_path / "d").fingerprint != fp


def test_byo_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "reviews.csv"
    lines = ["review,stars"] + [f'"{r["text"]}",{r["label"]}' for r in sentiment_rows(60)]
    csv_path.write_text("\n".join(lines) + "\n")
    ds = load_dataset(path=csv_path, columns=Columns(text="review", label="stars"))
    assert ds.name == "reviews" and ds.spec.labels == ("negative", "positive")
    assert len(ds.train) + len(ds.validation) + len(ds.test) == 60

    jl = tmp_path / "tags.jsonl"
    jl.write_text(
        "".join(json.dumps({"text": f"t {i}", "labels": ["a"] if i % 2 else ["b", "a"]}) + "\n" for i in range(40))
    )
    ml = load_dataset(path=jl)
    assert ml.spec.multilabel and ml.spec.labels == ("a", "b")


def test_hub_conversion_maps_columns_and_label_names():
    import datasets

    features = datasets.Features(
        {
            "sentence1": datasets.Value("string"),
            "sentence2": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["not_equivalent", "equivalent"]),
        }
    )
    ds = datasets.Dataset.from_dict(
        {"sentence1": ["a b", "c d"], "sentence2": ["a b!", "e f"], "label": [1, 0]}, features=features
    )
    spec, splits = convert("mrpc", HUB_DATASETS["mrpc"], {"train": ds, "test": ds})
    assert spec.pair and spec.labels == ("not_equivalent", "equivalent")
    assert splits["train"].inputs[0] == ("a b", "a b!") and splits["train"].y.tolist() == [1, 0]


# ------------------------------------------------------------------------------------ bad input


def _bad(tmp_path: Path, rows: list[dict], card: dict = CARD, split: str = "train") -> Path:
    splits = {"train": sentiment_rows(20), "validation": sentiment_rows(6), "test": sentiment_rows(6)}
    splits[split] = rows
    write_dataset(tmp_path, "bad", card, splits)
    return tmp_path


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"label": "positive"}, "missing text field 'text'"),
        ({"text": "   ", "label": "positive"}, "text field 'text' is empty"),
        ({"text": 42, "label": "positive"}, "not a string"),
        ({"text": "fine", "label": "neutral"}, "label 'neutral' is not one of the labels"),
        ({"text": "fine"}, "missing or invalid label"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    root = _bad(tmp_path, sentiment_rows(5) + [row])
    with pytest.raises(DataError, match=message) as err:
        load_dataset("bad", data_dir=root)
    assert "train.jsonl" in str(err.value) and "\n" not in str(err.value)


def test_single_class_train(tmp_path):
    rows = [{"text": f"good {i}", "label": "positive"} for i in range(10)]
    with pytest.raises(DataError, match="single class"):
        load_dataset("bad", data_dir=_bad(tmp_path, rows))


def test_empty_split(tmp_path):
    with pytest.raises(DataError, match="'test' .* is empty"):
        load_dataset("bad", data_dir=_bad(tmp_path, [], split="test"))


def test_non_utf8_file(tmp_path):
    root = _bad(tmp_path, sentiment_rows(5))
    (root / "bad" / "test.jsonl").write_bytes(b'{"text": "caf\xe9", "label": "positive"}\n')
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_dataset("bad", data_dir=root)


def test_csv_without_named_columns(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("body,label\nhello,a\nbye,b\n")
    with pytest.raises(DataError, match="no column 'text'"):
        load_dataset(path=path, columns=Columns())


def test_unknown_dataset_suggests_close_names(toy_data):
    with pytest.raises(UnknownNameError, match="did you mean 'toy_sentiment'"):
        load_dataset("toy_sentimnet", data_dir=toy_data)


def test_missing_data_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("sst2", data_dir=tmp_path / "nowhere")


def test_invalid_json_line(tmp_path):
    root = _bad(tmp_path, sentiment_rows(5))
    with (root / "bad" / "train.jsonl").open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(DataError, match=r"train.jsonl:6: invalid JSON"):
        load_dataset("bad", data_dir=root)


def test_labels_are_stripped_and_spelling_variants_refused(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(
        "".join(json.dumps({"text": f"t {i}", "label": ["pos", "pos ", " neg"][i % 3]}) + "\n" for i in range(30))
    )
    ds = load_dataset(path=path)
    assert ds.spec.labels == ("neg", "pos") and any("whitespace" in n for n in ds.notes)
    path.write_text("".join(json.dumps({"text": f"t {i}", "label": ["1", "0", "1.0"][i % 3]}) + "\n" for i in range(9)))
    with pytest.raises(DataError, match=r"'1' \(.*x.jsonl:1\) and '1.0' \(.*x.jsonl:3\) differ only in number format"):
        load_dataset(path=path)


def test_split_warnings_name_missing_classes_repeats_and_test_only_labels(tmp_path):
    card = {**CARD, "labels": ["negative", "neutral", "positive"]}
    test = sentiment_rows(4, 50) + sentiment_rows(2) + [{"text": "so so", "label": "neutral"}]
    ds = load_dataset(
        "bad", data_dir=_bad(tmp_path, sentiment_rows(20), card=card) and _bad(tmp_path, test, card, "test")
    )
    warnings = [n for n in ds.notes if n.startswith("warning: ")]
    assert any("train split: 1 of 3" in w and "'neutral'" in w for w in warnings)
    assert any("only in the test split" in w for w in warnings)
    assert any("2 of 7 test row(s) repeat" in w for w in warnings)


def test_a_cap_with_fewer_rows_left_over_than_classes_keeps_every_class():
    from bench.data.spec import Split, TaskSpec
    from bench.data.splits import cap_split

    spec = TaskSpec("many", "single-label", tuple(f"c{i}" for i in range(151)))
    y = np.arange(3100) % 151
    split = Split("validation", spec, tuple(f"t{i}" for i in range(3100)), y)
    capped, note, lost = cap_split(split, 3000)
    assert len(capped) == 3000 and lost == 0 and np.count_nonzero(capped.class_counts()) == 151
    assert "proportional sample" in note
    small, _, lost = cap_split(split, 100)  # fewer rows than classes: no crash, and it says how many lost all
    assert len(small) == 100 and lost == 51
