"""The rule-based rung: lexicons for sentiment (VADER) and emotion (NRC), alias rules for tags."""

from __future__ import annotations

from collections.abc import Sequence
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

    trusted_types = (  # the scorers a fitted rule classifier holds (skops rebuilds them from their saved state)
        "baselines.lexicons.KeywordTagger",
        "baselines.lexicons.NrcScorer",
        "baselines.lexicons.VaderScorer",
        "vaderSentiment.vaderSentiment.SentimentIntensityAnalyzer",
    )

    def __init__(self, source: Source = "auto") -> None:
        self.source = source

    def fit(self, train: Split, validation: Split) -> Self:
        self.spec = train.spec
        self.source_ = choose_source(self.spec) if self.source == "auto" else self.source
        self.prior_ = train.class_counts() / len(train)
        if self.source_ == "keywords":
            path = self.spec.resource(RULES_FILE)
            if path is None:
                raise NotApplicable(f"{self.spec.name!r} has no {RULES_FILE}")
            self._scorer: Any = KeywordTagger(path, self.spec.labels)
        elif self.source_ == "vader":
            self._scorer = VaderScorer()
        else:
            self._scorer = NrcScorer(self.spec.labels)
        return self

    def predict_proba(self, inputs: Sequence[Input]) -> np.ndarray:
        texts = [x if isinstance(x, str) else " ".join(x) for x in inputs]
        if self.source_ == "keywords":
            return self._scorer.scores(texts)
        if self.source_ == "vader":
            return self._scorer.scores(texts, self.spec.labels, self.prior_)
        return self._scorer.scores(texts, self.prior_)

    def fit_info(self) -> dict[str, Any]:
        return {"source": self.source_}
