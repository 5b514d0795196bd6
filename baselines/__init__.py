"""Classical rungs: chance baselines, rules and TF-IDF + linear.

Importing this package declares them in the registry; their modules (scikit-learn, lexicons) load on first use.
"""

from bench.rungs.registry import Capabilities, PlotStyle, register_rung

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
)
