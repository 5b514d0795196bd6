"""Classical rungs: chance baselines, rules and TF-IDF + linear.

Importing this package declares them in the registry; their modules (scikit-learn, lexicons) load on first use.
"""

from typing import Any

from bench.errors import BenchError
from bench.rungs.registry import Capabilities, PlotStyle, register_rung


def check_tfidf_options(options: dict[str, Any]) -> None:
    """What ``tfidf_lr``'s options must be beyond their types (checked against the defaults by the registry)."""
    for key in ("word_ngrams", "char_ngrams"):
        value = options.get(key)
        if value is not None and not (
            len(value) == 2 and all(isinstance(n, int) for n in value) and 1 <= value[0] <= value[1]
        ):
            raise BenchError(f"--option tfidf_lr.{key}: expects [min, max] with 1 <= min <= max, not {value!r}")
    for key in ("min_df", "max_iter", "max_features", "char_max_chars"):
        value = options.get(key)
        if value is not None and value < 1:
            raise BenchError(f"--option tfidf_lr.{key}: must be at least 1, not {value!r}")
    if options.get("pair_features", "combined") not in ("joined", "combined"):
        raise BenchError(f"--option tfidf_lr.pair_features: 'joined' or 'combined', not {options['pair_features']!r}")


CHANCE = PlotStyle("#9e9e9e")
for _name, _strategy, _seeded, _description in (
    ("random", "uniform", True, "Uniformly random class (probabilities 1/C): the floor of the ladder."),
    ("stratified", "stratified", True, "Random class drawn from the training prior, predicted with full confidence."),
    ("majority", "majority", False, "Always the most frequent training class; the class prior as probabilities."),
):
    register_rung(
        _name,
        "baselines.chance:ChanceClassifier",
        family="chance",
        description=_description,
        fixed={"strategy": _strategy},
        style=CHANCE,
        capabilities=Capabilities(informative=False, seeded=_seeded),
    )

register_rung(
    "rules",
    "baselines.rules:RuleClassifier",
    family="rules",
    description="Rule-based: VADER lexicon (sentiment), NRC lexicon (emotion) or alias rules with Porter "
    "stemming (rules.json).",
    style=PlotStyle("#8d6e63"),
    capabilities=Capabilities(seeded=False),
)

register_rung(
    "tfidf_lr",
    "baselines.tfidf:TfidfLogisticRegression",
    family="linear",
    description="Word 1-2 + char 2-5 n-gram TF-IDF with logistic regression; C chosen on validation.",
    style=PlotStyle("#1f77b4"),
    check=check_tfidf_options,
)
