"""TF-IDF (word and character n-grams) + logistic regression, regularisation chosen on validation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from baselines.linear import class_logits, class_probabilities, fit_logistic_regression, num_coefficients
from bench.data import Input, Split
from bench.rungs.protocol import Rung

PAIR_SEPARATOR = " ||| "
VOCABULARY_FILE = "vocabulary.json"
PairFeatures = Literal["joined", "combined"]


def join_inputs(inputs: Sequence[Input], separator: str = PAIR_SEPARATOR) -> list[str]:
    """Texts for a bag-of-n-grams model: sentence pairs joined by ``separator``."""
    return [x if isinstance(x, str) else separator.join(x) for x in inputs]


def combine_pair(a: sp.csr_matrix, b: sp.csr_matrix, blocks: Sequence[slice]) -> sp.csr_matrix:
    """Symmetric pair features from the two texts' TF-IDF rows: ``|a - b|`` (what differs), ``a * b``
    (what is shared) and, per block of the union (word, char), the cosine of the two texts."""
    cosines = [
        np.asarray(a[:, blk].multiply(b[:, blk]).sum(axis=1)) for blk in blocks
    ]  # rows are L2-normalised per block
    return sp.hstack([abs(a - b), a.multiply(b), *cosines], format="csr", dtype=np.float32)


def char_text(text: str, max_chars: int | None) -> str:
    """Lower-cased text for character n-grams, cut at ``max_chars`` (long posts cost much, add little)."""
    return text[:max_chars].lower() if max_chars else text.lower()


class TfidfLogisticRegression(Rung):
    """Word (1-2) and character (2-5, within word boundaries) TF-IDF features with sublinear tf, fed to
    logistic regression (one-vs-rest for multi-label). ``C`` is chosen from ``c_grid`` by validation
    macro-F1 (ties: lower validation log-loss). Sentence pairs: ``combined`` vectorises each text and feeds
    :func:`combine_pair` features; ``joined`` vectorises the two texts joined by a separator."""

    has_logits = True
    trusted_types = ("baselines.tfidf.char_text", "functools.partial")

    def __init__(
        self,
        c_grid: Sequence[float] = (0.5, 2.0, 8.0, 32.0),
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (2, 5),
        min_df: int = 2,
        max_features: int | None = 300_000,
        max_iter: int = 2000,
        char_max_chars: int | None = 3000,
        pair_features: PairFeatures = "combined",
        seed: int = 0,
    ) -> None:
        self.c_grid = tuple(c_grid)
        self.word_ngrams = tuple(word_ngrams)
        self.char_ngrams = tuple(char_ngrams)
        self.min_df = min_df
        self.max_features = max_features
        self.max_iter = max_iter
        self.char_max_chars = char_max_chars
        self.pair_features = pair_features
        self.seed = seed

    def _vectorizer(self) -> FeatureUnion:
        common = dict(sublinear_tf=True, min_df=self.min_df, max_features=self.max_features, dtype=np.float32)
        return FeatureUnion(
            [
                (
                    "word",
                    TfidfVectorizer(
                        analyzer="word", ngram_range=self.word_ngrams, token_pattern=r"(?u)\b\w+\b", **common
                    ),
                ),
                (
                    "char",
                    TfidfVectorizer(
                        analyzer="char_wb",
                        ngram_range=self.char_ngrams,
                        preprocessor=partial(char_text, max_chars=self.char_max_chars),  # a bound method: not savable
                        **common,
                    ),
                ),
            ]
        )

    def _features(self, inputs: Sequence[Input]) -> Any:
        if not self._combined:
            return self.vectorizer_.transform(join_inputs(inputs))
        first = self.vectorizer_.transform([x[0] for x in inputs])
        second = self.vectorizer_.transform([x[1] for x in inputs])
        return combine_pair(first, second, self.blocks_)

    @property
    def _combined(self) -> bool:
        return self.spec.pair and self.pair_features == "combined"

    def fit(self, train: Split, validation: Split) -> Self:
        if self.pair_features not in ("joined", "combined"):
            raise ValueError(f"pair_features must be 'joined' or 'combined', not {self.pair_features!r}")
        self.spec = train.spec
        self.vectorizer_ = self._vectorizer()
        if self._combined:  # one vocabulary over both sides of every pair
            self.vectorizer_.fit([t for x in train.inputs for t in x])
            sizes = np.cumsum([0, *(len(v.vocabulary_) for _, v in self.vectorizer_.transformer_list)])
            self.blocks_ = [slice(int(lo), int(hi)) for lo, hi in zip(sizes[:-1], sizes[1:])]
            x_train = self._features(train.inputs)
        else:
            x_train = self.vectorizer_.fit_transform(join_inputs(train.inputs))
        x_val = self._features(validation.inputs)
        self.clf_, self.c_, self.grid_ = fit_logistic_regression(
            self.spec, x_train, train.y, x_val, validation.y, self.c_grid, self.max_iter, self.seed, "tfidf_lr: C grid"
        )
        self.n_features_ = int(x_train.shape[1])
        return self

    def predict_logits(self, inputs: Sequence[Input]) -> np.ndarray:
        return class_logits(self.spec, self.clf_, self._features(inputs))

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        return class_probabilities(self.spec, self.clf_, self._features(inputs))

    def num_parameters(self) -> int:
        return num_coefficients(self.spec, self.clf_)

    def fit_info(self) -> dict[str, Any]:
        info = {"C": self.c_, "n_features": self.n_features_, "grid": self.grid_}
        return {**info, "pair_features": self.pair_features} if self.spec.pair else info

    # skops writes a dict one node per entry, in time that grows with its square (measured on sst2's 111k n-grams:
    # 196 s and 109 MB, against 0.06 s and 1.3 MB as a JSON list), so the vocabularies are saved beside it as JSON.
    def save(self, folder: Path) -> None:
        vectorizers = [v for _, v in self.vectorizer_.transformer_list]
        vocabularies = [v.vocabulary_ for v in vectorizers]
        try:
            for v in vectorizers:
                v.vocabulary_ = None
            super().save(folder)
        finally:
            for v, vocabulary in zip(vectorizers, vocabularies):
                v.vocabulary_ = vocabulary
        terms = [sorted(vocabulary, key=vocabulary.__getitem__) for vocabulary in vocabularies]
        (Path(folder) / VOCABULARY_FILE).write_text(json.dumps(terms), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Self:
        rung = super().load(folder)
        terms = json.loads((Path(folder) / VOCABULARY_FILE).read_text(encoding="utf-8"))
        for (_, v), words in zip(rung.vectorizer_.transformer_list, terms, strict=True):
            v.vocabulary_ = {word: i for i, word in enumerate(words)}
        return rung
