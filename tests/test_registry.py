from __future__ import annotations

import pytest

from bench.errors import UnknownNameError
from bench.rungs.registry import create_rung, get_rung, list_rungs

LADDER = ["random", "stratified", "majority", "rules", "tfidf_lr"]


def test_builtin_rungs_in_ladder_order():
    names = list_rungs()
    assert [n for n in names if n in LADDER] == LADDER
    assert list_rungs("*random*") == ["random"]
    assert list_rungs("tfidf*") == ["tfidf_lr", "tfidf_lr+ts"]
    info = get_rung("majority")
    assert info.family == "chance" and info.description


def test_unknown_rung_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'tfidf_lr'"):
        get_rung("tfidf_rl")


def test_context_passed_only_where_accepted():
    rung = create_rung("random", context={"seed": 7, "device": "cpu"})
    assert rung.seed == 7
    rules = create_rung("rules", context={"seed": 7, "device": "cpu"})  # takes neither
    assert rules.source == "auto"
    with pytest.raises(TypeError):
        create_rung("rules", nonsense=1)
