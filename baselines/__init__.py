"""Classical rungs: chance baselines, rules and TF-IDF + linear. Importing registers them."""

from baselines import chance, rules, tfidf  # noqa: F401
