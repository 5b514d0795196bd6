"""The rule-based rung: lexicons for sentiment (VADER) and emotion (NRC), alias rules for tags."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from baselines.lexicons import SENTIMENT_LABELS, KeywordTagger, NrcScorer, VaderScorer, nrc_affect
from bench.data import Input, Split, TaskSpec
from bench.errors import NotApplicable
from bench.rungs.protocol import Rung

Source = Literal["auto", "keywords", "vader", "nrc"]
RULES_FILE = "rules.json"
MIN_NRC_COVERAGE = 0.5  # share of labels that must map to an NRC affect


def choose_source(spec: TaskSpec) -> Source:
    """The rule source that fits a dataset: its rules.json, else VADER for sentiment labels, else NRC
    for emotion labels; raises :class:`NotApplicable` when none does."""
    if spec.pair:
        raise NotApplicable("rules do not apply to sentence pairs")
    if spec.resource(RULES_FILE):
        return "keywords"
    labels = {label.lower() for label in spec.labels}
    if not spec.multilabel and {"negative", "positive"} <= labels <= SENTIMENT_LABELS:
        return "vader"
    mapped = [nrc_affect(label) for label in spec.labels]
    if not spec.multilabel and sum(m is not None for m in mapped) >= MIN_NRC_COVERAGE * len(mapped):
        return "nrc"
    raise NotApplicable(
        f"no rules for {spec.name!r}: no {RULES_FILE}, and its labels are neither sentiment nor NRC emotions"
    )


class RuleClassifier(Rung):
    """Hand-written knowledge, no learning beyond the class prior used where the rules are silent.

    ``keywords``: alias rules from the dataset's rules.json, matched on Porter-stemmed text, parents
    added; probabilities are the rules' 0/1 decisions. ``vader``: P(positive) = (1 + compound) / 2.
    ``nrc``: P(class) ∝ NRC affect hits + prior (``love`` is read from NRC's ``trust``).
    """

    def __init__(self, source: Source = "auto") -> None:
        self.source = source

    def fit(self, train: Split, validation: Split) -> Self:
        self.spec = train.spec
        self.source_ = choose_source(self.spec) if self.source == "auto" else self.source
        self.prior_ = train.class_counts() / len(train)
        path = self.spec.resource(RULES_FILE) if self.source_ == "keywords" else None
        if self.source_ == "keywords" and path is None:
            raise NotApplicable(f"{self.spec.name!r} has no {RULES_FILE}")
        self._scorer = self._build_scorer(path)
        return self

    def _build_scorer(self, rules: Path | None) -> Any:
        if self.source_ == "keywords":
            return KeywordTagger(rules, self.spec.labels)
        return VaderScorer() if self.source_ == "vader" else NrcScorer(self.spec.labels)

    # The lexicons ship with their packages, so a saved rule classifier keeps what it chose and learned (source,
    # prior) and the dataset's rules.json, and rebuilds its scorer on load: in skops, NRC's lexicon alone would take
    # 22 MB of JSON nodes (0.35 MB pickled), reported as the rung's size.
    def save(self, folder: Path) -> None:
        scorer, self._scorer = self._scorer, None
        try:
            super().save(folder)
        finally:
            self._scorer = scorer
        if self.source_ == "keywords":
            shutil.copyfile(self.spec.resource(RULES_FILE), Path(folder) / RULES_FILE)

    @classmethod
    def load(cls, folder: Path) -> Self:
        rung = super().load(folder)
        rung._scorer = rung._build_scorer(Path(folder) / RULES_FILE if rung.source_ == "keywords" else None)
        return rung

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        texts = [x if isinstance(x, str) else " ".join(x) for x in inputs]
        if self.source_ == "keywords":
            return self._scorer.scores(texts)
        if self.source_ == "vader":
            return self._scorer.scores(texts, self.spec.labels, self.prior_)
        return self._scorer.scores(texts, self.prior_)

    def fit_info(self) -> dict[str, Any]:
        return {"source": self.source_}
