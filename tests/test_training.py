"""Training that adapts to the data: step budgets, warm-up/decay, early stopping with the best checkpoint kept,
the under-trained flag, and the sanity checks the leaderboard prints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.data import TaskSpec, load_dataset
from bench.evaluate.compare import Comparison, Entry, worse_than_below
from bench.evaluate.harness import RunSettings
from bench.evaluate.metrics import Predictions, score
from bench.pipeline import run, summary_line
from bench.profiles import get_profile
from bench.report.leaderboard import build, same_recipe_seeds, sanity_checks, write_leaderboard
from bench.rungs.protocol import under_trained
from bench.store.results import ResultStore
from models.finetune import FineTunedTransformer
from models.training import (
    Budget,
    Outputs,
    Stopping,
    Trainer,
    extend,
    step_budget,
    validation_outputs,
    warmup_linear,
)
from tests.conftest import write_dataset

BUDGET = {"min_epochs": 1.0, "max_epochs": 20.0, "steps_per_class": 40, "min_steps": 500, "max_steps": 1000}


@pytest.mark.parametrize(
    ("n_train", "n_classes", "overrides", "steps", "rule"),
    [
        (20000, 2, {}, 625, "min_epochs"),  # sst2 at the default cap: one pass
        (3668, 2, {}, 500, "min_steps"),  # mrpc: a small set gets min_steps
        (10183, 20, {}, 800, "steps_per_class"),  # 20newsgroups: 40 steps per class
        (10003, 77, {}, 1000, "max_steps"),  # 77 intents: the profile's cap
        (1422, 41, {"max_steps": None}, 900, "max_epochs"),  # a tiny multi-label set: at most 20 passes
    ],
)
def test_step_budget_follows_size_and_classes(n_train, n_classes, overrides, steps, rule):
    budget = step_budget(n_train, n_classes, 32, **{**BUDGET, **overrides})
    assert (budget.steps, budget.rule) == (steps, rule)
    assert budget.steps_per_epoch == -(-n_train // 32)
    # the cap is how far a fit still improving may be extended
    cap = min(20 * budget.steps_per_epoch, overrides.get("max_steps", 1000) or np.inf)
    assert budget.limit == cap and budget.limit >= budget.steps


def test_warmup_then_linear_decay():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule, lrs = warmup_linear(opt, warmup=4, total=20), []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] == pytest.approx(1 / 16)
    # stretched at its end to 36 steps: the rate a 36-step plan has at step 20, then down to 0 at 36
    extend(schedule, 36)
    for _ in range(16):
        opt.step()
        schedule.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[20] == pytest.approx(15 / 32) and lrs[-1] == pytest.approx(0.0)


def test_validation_scores_agree_with_scikit_learn():
    from sklearn.metrics import f1_score, log_loss

    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(300, 7)), rng.integers(0, 6, 300)  # class 6 never true
    out = validation_outputs(logits, y, multilabel=False)
    assert out.score("macro_f1") == pytest.approx(
        f1_score(y, logits.argmax(1), average="macro", labels=range(7), zero_division=0)
    )
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert out.score("loss") == pytest.approx(log_loss(y, probs, labels=range(7)))
    tags = (rng.random((300, 5)) < 0.3).astype(int)
    multi = validation_outputs(logits[:, :5], tags, multilabel=True)
    assert multi.score("micro_f1") == pytest.approx(f1_score(tags, logits[:, :5] >= 0, average="micro"))
    rows = rng.integers(0, 300, 300)
    assert out.score("macro_f1", rows) == pytest.approx(
        f1_score(y[rows], logits[rows].argmax(1), average="macro", labels=range(7), zero_division=0)
    )


N_VAL = 1000


def _outputs(correct: float, loss: float) -> Outputs:
    """A binary validation pass right on the first ``correct`` share of examples, each with loss ``loss``."""
    y = np.arange(N_VAL) % 2
    decisions = np.where(np.arange(N_VAL) < correct * N_VAL, y, 1 - y)
    return Outputs(np.full(N_VAL, loss), decisions, y, 2)


def _scripted(passes: list[Outputs], monitor: str = "macro_f1", every: int = 10, steps: int = 100, limit: int = 0):
    """A trainer over a one-weight module whose weight counts the steps taken; validation replays ``passes``."""
    module = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(module.weight)
    replay = iter(passes)

    def step(_: int) -> float:
        with torch.no_grad():
            module.weight += 1
        return 0.0

    trainer = Trainer(module, Budget(steps, 10, "test", limit, "cap"), Stopping(monitor, every, 3, 0.002), "test")
    info = trainer.run(lambda: range(10), step, lambda: next(replay))
    return module, info


def test_early_stopping_keeps_the_best_checkpoint():
    losses = [0.9, 0.5, 0.3, 0.31, 0.3, 0.299, 0.31, 0.4, 0.5, 0.6]
    module, info = _scripted([_outputs(0.5, v) for v in losses], monitor="loss")
    # no stop before half the budget; then 3 validations without progress after the best (step 30)
    assert info["stopped"] == "early" and info["steps"] == 60 and info["best_step"] == 30
    assert module.weight.item() == 30  # the state of step 30 was restored
    assert info["converged"] and not under_trained(info) and info["final_gain"] is None
    assert [p["step"] for p in info["curve"]] == [10, 20, 30, 40, 50, 60]


def test_a_falling_loss_is_progress_and_only_a_significant_late_gain_is_under_training():
    # F1 flat while the loss keeps falling by 5%: no early stop, and no gain at the end
    _, info = _scripted([_outputs(0.8, 2.0 * 0.95**i) for i in range(10)])
    assert info["stopped"] == "budget" and info["steps"] == 100 and info["converged"]
    assert info["final_gain"]["delta"] == 0
    # still rising by 5 points a validation at the end: under-trained
    module, info = _scripted([_outputs(0.5 + 0.05 * i, 1.0 - 0.05 * i) for i in range(10)])
    assert info["stopped"] == "budget" and info["still_improving"] and not info["converged"]
    assert module.weight.item() == 100 and info["best_step"] == 100
    assert info["final_gain"]["low"] > 0 and (info["final_gain"]["step"], info["final_gain"]["versus_step"]) == (
        100,
        70,
    )
    assert under_trained(info) and under_trained({"temperature": 1.2, "base": info})  # a wrapper inherits it
    # a last gain of 0.3 points on 1,000 examples is within validation noise: not called under-trained
    _, info = _scripted([_outputs(0.5 + 0.01 * i, 1.0 - 0.1 * i) for i in range(7)] + [_outputs(0.563, 0.3)] * 3)
    assert 0.002 < info["final_gain"]["delta"] < 0.004 and info["final_gain"]["low"] <= 0 and info["converged"]


def test_a_fit_still_improving_is_extended_up_to_its_limit():
    rising = [_outputs(0.5 + 0.02 * i, 1.0 - 0.05 * i) for i in range(20)]
    # planned 100 steps, may go to 250: extended by 100 at step 100, to the limit at 200 (still rising there)
    module, info = _scripted(rising + rising[-1:] * 5, limit=250)
    assert [(e["at_step"], e["to_steps"]) for e in info["extensions"]] == [(100, 200), (200, 250)]
    assert info["extensions"][0]["gain"]["low"] > 0
    assert (info["planned_steps"], info["budget_steps"], info["limit_steps"]) == (100, 250, 250)
    # flat after step 200: stopped 3 validations later, the state of step 200 kept
    assert info["stopped"] == "early" and info["steps"] == 230 and info["converged"]
    assert module.weight.item() == 200 and info["best_step"] == 200
    # still rising at the limit: under-trained
    _, info = _scripted([_outputs(0.3 + 0.02 * i, 1.0 - 0.03 * i) for i in range(25)], limit=250)
    assert info["steps"] == 250 and info["stopped"] == "budget" and info["still_improving"]
    # the rise ends at step 130: the extended fit stops early and converged
    plateau = rising[:13] + [rising[12]] * 20
    _, info = _scripted(plateau, limit=1000)
    assert info["stopped"] == "early" and info["steps"] == 160 and info["best_step"] == 130 and info["converged"]
    assert [e["at_step"] for e in info["extensions"]] == [100]
    # no extension without room: the plan is the cap
    _, info = _scripted(rising)
    assert info["extensions"] == [] and info["still_improving"] and info["steps"] == 100


def _intents(n_classes: int, per_class: int, seed: int, keywords: list[str], filler: list[str]) -> list[dict]:
    """Rows of a synthetic intent task: four filler words and one keyword naming the class, in random order."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_classes * per_class):
        words = list(rng.choice(filler, 4))
        words.insert(int(rng.integers(0, 5)), keywords[i % n_classes])
        rows.append({"text": " ".join(words), "label": f"intent_{i % n_classes:02d}"})
    return rows


def test_budget_and_early_stopping_learn_50_classes_where_one_epoch_does_not(tiny_bert, tmp_path):
    from transformers import AutoTokenizer

    vocab = sorted(w for w in AutoTokenizer.from_pretrained(tiny_bert).vocab if w.isascii() and w.isalpha())
    words = list(np.random.default_rng(0).choice([w for w in vocab if len(w) >= 5], 90, replace=False))
    keywords, filler, n = words[:50], words[50:], 50
    splits = {
        name: _intents(n, k, seed, keywords, filler)
        for name, k, seed in [("train", 20, 1), ("validation", 5, 2), ("test", 5, 3)]
    }
    card = {"task": "single-label", "text_fields": ["text"], "labels": [f"intent_{c:02d}" for c in range(n)]}
    write_dataset(tmp_path, "intents", card, splits)
    ds = load_dataset("intents", data_dir=tmp_path)
    common = {"model": tiny_bert, "lr": 1e-3, "batch_size": 32, "max_length": 16, "min_steps": 0}

    def accuracy(rung: FineTunedTransformer) -> float:
        return float((rung.predict_proba(ds.test.inputs).argmax(1) == ds.test.y).mean())

    # the old recipe: one fixed epoch (32 steps), no early stopping
    one_epoch = FineTunedTransformer(**common, min_epochs=1, max_epochs=1, steps_per_class=0, patience=10**6)
    one_epoch.fit(ds.train, ds.validation)
    adaptive = FineTunedTransformer(**common, steps_per_class=16, max_epochs=40).fit(ds.train, ds.validation)
    info = adaptive.fit_info()
    assert info["budget_steps"] == 800 and info["budget_rule"] == "steps_per_class"  # 16 steps × 50 classes
    assert accuracy(one_epoch) < 0.2 and one_epoch.fit_info()["steps"] == 32
    assert accuracy(adaptive) >= 0.9 and info["best_val_macro_f1"] >= 0.9
    # it plateaued before the budget ran out, and the checkpoint kept is the first at the best score
    assert info["converged"] and not info["still_improving"]
    assert info["best_step"] < info["steps"] and info["curve"][-1]["macro_f1"] <= info["best_val_macro_f1"]
    assert info["head_lr"] == pytest.approx(1e-2)  # 50 classes: the head learns at 10 × lr
    json.dumps(info)  # fit_info goes into result.json


def _entry(name: str, correct: np.ndarray) -> Entry:
    spec = TaskSpec("toy", "single-label", ("no", "yes"))
    y = np.ones(len(correct), dtype=int)
    p_yes = np.where(correct, 0.8, 0.2)
    predictions = Predictions(spec, np.column_stack([1 - p_yes, p_yes]), y)
    return Entry(name, predictions, score(predictions))


def test_a_rung_worse_than_a_simpler_one_is_called_out():
    rng = np.random.default_rng(0)
    good, bad = rng.random(500) < 0.9, rng.random(500) < 0.6
    cmp = Comparison(
        {"features": _entry("features", good), "fine": _entry("fine", bad), "linear": _entry("linear", good)},
        ["f1_macro"],
    )
    rows = worse_than_below(cmp, ["linear", "features", "fine"], {"features": "transformer", "fine": "transformer"})
    assert {(r["rung"], r["versus"], r["same_family"]) for r in rows} == {
        ("fine", "linear", False),
        ("fine", "features", True),
    }
    assert all(r["significant"] and r["high"] < 0 for r in rows)
    assert worse_than_below(cmp, ["fine", "features", "linear"], {}) == []  # nothing below is better


def test_the_leaderboard_says_under_trained_and_worse_than_below(toy_data, tmp_path):
    ds = load_dataset("toy_sentiment", data_dir=toy_data)
    run([ds], ["majority", "tfidf_lr", "tfidf_lr+ts"], RunSettings(profile=get_profile("quick")), tmp_path)
    store = ResultStore(tmp_path)
    result = store.read(ds.name, "tfidf_lr", 0)
    result["fit_info"] = {
        "converged": False,
        "monitor": "macro_f1",
        "steps": 80,
        "epochs": 2.5,
        "limit_rule": "max_epochs",
    }
    store.rewrite(result)
    assert summary_line(result).endswith("(under-trained)")
    wrapper = store.read(ds.name, "tfidf_lr+ts", 0)
    wrapper["fit_info"]["base"] = result["fit_info"]  # what a wrapper over an under-trained base stores
    store.rewrite(wrapper)
    write_leaderboard(store, ds.name)
    md = (tmp_path / ds.name / "leaderboard.md").read_text()
    checks = md.split("## Sanity checks\n\n")[1].split("\n\n")[0]
    assert checks.startswith(
        "- tfidf_lr is under-trained: its validation macro_f1 was still improving when it reached its limit of "
        "80 steps (2.5 epochs, set by max_epochs)"
    )
    assert "raise tfidf_lr.max_epochs (--option)" in checks
    assert "tfidf_lr+ts" not in checks  # said once, of the rung that trained
    frame = build(store, ds.name).frame.set_index("rung")
    assert frame.loc["tfidf_lr", "note"] == "under-trained" and frame.loc["tfidf_lr+ts", "note"] == "under-trained"
    # a comparison where the fitted rung is significantly worse than one below it
    rng = np.random.default_rng(1)
    cmp = Comparison(
        {"majority": _entry("majority", rng.random(400) < 0.95), "tfidf_lr": _entry("tfidf_lr", rng.random(400) < 0.5)},
        ["f1_macro"],
    )
    lines = sanity_checks([{"rung": "majority", "family": "chance"}, {"rung": "tfidf_lr", "family": "linear"}], cmp)
    assert len(lines) == 1 and lines[0].startswith("tfidf_lr is significantly worse than majority, a rung below it")


def test_seeds_of_an_older_recipe_are_not_averaged_in():
    def result(rung: str, seed: int, options: dict, bases: list[str] = ()) -> dict:
        return {"rung": rung, "bases": list(bases), "config": {"options": options, "seed": seed, "bases": [f"h{seed}"]}}

    seeds = {
        "fine": [
            result("fine", 0, {"max_steps": 1000}),
            result("fine", 1, {"epochs": 1}),
            result("fine", 2, {"max_steps": 1000}),
        ],
        "fine+ts": [result("fine+ts", s, {}, ["fine"]) for s in (0, 1, 2)],
        "linear": [result("linear", s, {}) for s in (0, 1)],
    }
    assert same_recipe_seeds(seeds) == {"fine": {0, 2}, "fine+ts": {0, 2}, "linear": {0, 1}}
