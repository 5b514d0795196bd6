"""Lexicon scorers for the rule-based rung: VADER sentiment, the NRC emotion lexicon, keyword/alias tags."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import numpy as np
from nltk.stem import PorterStemmer
from nltk.tokenize import RegexpTokenizer

_TOKENIZER = RegexpTokenizer(r"[a-z0-9]+(?:'[a-z]+)?")
SENTIMENT_LABELS = {"negative", "positive", "neutral"}
#: dataset labels with no NRC affect of the same name, and the affect standing in for them
NRC_ALIASES = {
    "love": "trust",
    "happiness": "joy",
    "happy": "joy",
    "sad": "sadness",
    "angry": "anger",
    "scared": "fear",
}


@lru_cache(maxsize=1)
def _stemmer() -> PorterStemmer:
    return PorterStemmer()


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (regex tokenizer: needs no NLTK data download)."""
    return _TOKENIZER.tokenize(text.lower())


def stem_phrase(text: str) -> str:
    """Porter-stemmed tokens of ``text`` joined by single spaces; hyphens and punctuation split words."""
    stem = _stemmer().stem
    return " ".join(stem(t) for t in tokens(text.replace("-", " ")))


class VaderScorer:
    """Sentiment from the VADER lexicon (vaderSentiment package): compound score → P(positive)."""

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def scores(self, texts: Sequence[str], labels: Sequence[str], prior: np.ndarray) -> np.ndarray:
        """``[N, C]`` probabilities; a text with no lexicon evidence (compound 0) gets the prior."""
        index = {name.lower(): i for i, name in enumerate(labels)}
        out = np.tile(prior, (len(texts), 1)).astype(np.float64)
        for r, text in enumerate(texts):
            s = self._analyzer.polarity_scores(text)
            if "neutral" in index:  # three-way: VADER's own neg/neu/pos proportions
                row = np.zeros(len(labels))
                row[index["negative"]], row[index["neutral"]], row[index["positive"]] = s["neg"], s["neu"], s["pos"]
                if row.sum() > 0:
                    out[r] = row / row.sum()
            elif s["compound"] != 0:
                p = (1.0 + s["compound"]) / 2.0
                out[r] = 0.0
                out[r, index["positive"]], out[r, index["negative"]] = p, 1.0 - p
        return out


@lru_cache(maxsize=1)
def nrc_lexicon() -> dict[str, frozenset[str]]:
    """The NRC emotion lexicon shipped by the nrclex package (read directly: its loader needs NLTK data)."""
    data = json.loads(files("nrclex").joinpath("data/nrc_en.json").read_text(encoding="utf-8"))
    return {word: frozenset(affects) for word, affects in data.items()}


def nrc_affect(label: str) -> str | None:
    """The NRC affect a dataset label maps to, if any."""
    affects = {a for v in nrc_lexicon().values() for a in v}
    label = label.lower()
    return label if label in affects else NRC_ALIASES.get(label)


class NrcScorer:
    """Emotion from NRC affect counts: P(c) ∝ hits of c's affect + the class prior (no hits → prior)."""

    def __init__(self, labels: Sequence[str]) -> None:
        lexicon = nrc_lexicon()
        stem = _stemmer().stem
        self._affects = [nrc_affect(label) for label in labels]
        self._words = lexicon
        stems: dict[str, set[str]] = {}
        for word, affects in lexicon.items():
            stems.setdefault(stem(word), set()).update(affects)
        self._stems = {k: frozenset(v) for k, v in stems.items()}

    def scores(self, texts: Sequence[str], prior: np.ndarray) -> np.ndarray:
        stem = _stemmer().stem
        out = np.empty((len(texts), len(self._affects)))
        for r, text in enumerate(texts):
            counts = np.zeros(len(self._affects))
            for tok in tokens(text):
                affects = self._words.get(tok) or self._stems.get(stem(tok))
                if affects:
                    counts += [a in affects for a in self._affects]
            row = counts + prior
            out[r] = row / row.sum()
        return out


class KeywordTagger:
    """Tags from aliases, as in the Made With ML rule-based baseline: a tag fires when its name or one of
    its aliases occurs in the stemmed text; the parents of every fired tag are added."""

    def __init__(self, rules_path: Path, labels: Sequence[str]) -> None:
        rules = json.loads(Path(rules_path).read_text(encoding="utf-8"))
        if isinstance(rules, dict):  # also accept {tag: {"aliases": [...], "parents": [...]}}
            rules = [{"tag": tag, **spec} for tag, spec in rules.items()]
        self.labels = list(labels)
        self._parents = {r["tag"]: list(r.get("parents", [])) for r in rules}
        patterns: dict[str, str] = {}
        for r in rules:
            for phrase in (r["tag"], *r.get("aliases", [])):
                stemmed = stem_phrase(phrase)
                if stemmed:
                    patterns.setdefault(f" {stemmed} ", r["tag"])
        self._patterns = list(patterns.items())  # (" stemmed phrase ", tag): whole-word substring tests
        self.n_rules = len(rules)

    def _with_parents(self, tags: set[str]) -> set[str]:
        todo, seen = list(tags), set(tags)
        while todo:
            for parent in self._parents.get(todo.pop(), []):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    def tags(self, text: str) -> set[str]:
        """Tags (of any kind, with parents) that fire on ``text``."""
        stemmed = f" {stem_phrase(text)} "
        return self._with_parents({tag for phrase, tag in self._patterns if phrase in stemmed})

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """``[N, L]`` 0/1: the rules' decisions for the dataset's labels."""
        index = {name: j for j, name in enumerate(self.labels)}
        out = np.zeros((len(texts), len(self.labels)))
        for r, text in enumerate(texts):
            for tag in self.tags(text):
                if tag in index:
                    out[r, index[tag]] = 1.0
        return out
