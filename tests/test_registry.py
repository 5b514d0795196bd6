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


def test_registrations_are_lazy_and_declare_everything():
    import sys

    info = get_rung("finetuned+mc")
    assert info.bases == ("finetuned",) and info.capabilities.stochastic and info.capabilities.device
    assert get_rung("finetuned").options_for("quick")["max_train"] == 2000
    assert get_rung("finetuned+mc").perf == {"passes": 5}
    assert get_rung("tfidf_lr+ts").capabilities.needs == frozenset({"logits"})
    assert get_rung("char_cnn").colour.startswith("#")
    assert isinstance(get_rung("finetuned").factory, str)  # "module:object": nothing imported to list it
    code = "import sys; from bench.rungs.registry import list_rungs; list_rungs(); print('torch' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_fixed_arguments_are_not_options():
    majority = get_rung("majority")
    assert majority.fixed == {"strategy": "majority"} and "strategy" not in majority.options()
    assert create_rung("majority").strategy == "majority"
    assert {"seed", "device", "base", "bases"}.isdisjoint(get_rung("finetuned+ts").options())


def test_class_defaults_are_the_only_defaults():
    """The registered factory is the class: what `bench run` builds has the class's defaults."""
    import inspect

    from models.char_cnn import CharCNN
    from models.finetune import FineTunedTransformer

    assert inspect.signature(CharCNN).parameters["min_steps"].default == 1500
    assert inspect.signature(FineTunedTransformer).parameters["min_steps"].default == 500
    assert create_rung("char_cnn").min_steps == 1500


def test_capabilities_rule_out_datasets():
    from bench.rungs.registry import Capabilities

    only_single = Capabilities(tasks=frozenset({"single-label"}), pairs=False)
    assert only_single.unsupported("single-label", False) is None
    assert "multi-label" in only_single.unsupported("multi-label", False)
    assert "pairs" in only_single.unsupported("single-label", True)


def test_with_bases_and_root():
    from bench.rungs.registry import root_of, with_bases

    assert with_bases(["finetuned+mc+ts"]) == ["finetuned", "finetuned+mc", "finetuned+mc+ts"]
    assert root_of("finetuned+mc+ts") == "finetuned"
