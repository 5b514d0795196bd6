"""Fine-tuning a pretrained transformer end to end (AutoModelForSequenceClassification, a plain loop)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from bench.data import Input, Split
from bench.data.splits import subsample
from models.batching import Encoded, collate, encode, length_grouped_batches
from models.hf import DEFAULT_MODEL, load_classifier, load_tokenizer
from models.torch_base import TorchClassifier, autocast, read_meta, seed_torch, write_meta
from models.training import Trainer, plan, validation_outputs, warmup_linear


def start_at_prior(module: torch.nn.Module, y: np.ndarray) -> None:
    """Set the output layer's bias to each label's training log-odds, so a multi-label head starts at the
    prior instead of p = 0.5: the first steps then teach which labels, not that labels are rare (that
    lesson, at BCE 0.69, pushes the encoder towards one constant output)."""
    prior = np.clip(y.mean(axis=0), 1e-4, 1 - 1e-4)
    head = [m for m in module.modules() if isinstance(m, torch.nn.Linear) and m.out_features == y.shape[1]][-1]
    with torch.no_grad():
        head.bias.copy_(torch.as_tensor(np.log(prior / (1 - prior)), dtype=head.bias.dtype))


class FineTunedTransformer(TorchClassifier):
    """A pretrained encoder with a fresh classification head, trained end to end with AdamW; dynamic padding and
    length-grouped batches; ``precision`` bf16/fp16 autocasts on CUDA; ``inference="script"`` (default) predicts on
    a CPU through a frozen TorchScript trace and on a GPU replays single inputs as CUDA graphs, ``"eager"`` runs
    the module (:meth:`TorchClassifier._fast`).

    **Budget** (:func:`models.training.step_budget`): at least ``min_epochs`` passes, ``steps_per_class`` steps
    per class and ``min_steps`` steps, at most ``max_epochs`` passes and ``max_steps`` (the profile's cap);
    ``max_train`` caps the training examples (stratified). Warm-up over ``warmup_ratio`` of the budget, then
    linear decay; a fit still improving at the end of its budget is extended (up to that cap, the schedule
    stretched: :class:`models.training.Trainer`). **Early stopping**: every ``eval_every`` steps (default: a
    tenth of the budget) the model is scored on (at most ``max_eval`` examples of) validation — macro-F1 for
    single-label tasks, micro-F1 for multi-label ones (``monitor``) — and training stops as
    :class:`models.training.Stopping` says (``patience`` scores without progress, ``min_delta``); the best
    checkpoint is restored, and ``fit_info`` says whether the score was still improving, beyond validation
    noise, when training ended.

    The default lr (1e-4) suits small encoders such as MiniLM; base-size models usually want 2e-5 to 5e-5
    (``--option finetuned.lr=3e-5``). The head (parameters outside the encoder) learns at ``head_lr_scale`` × lr;
    by default 10 for multi-label (sigmoid outputs get small gradients) and n_classes / 4 clipped to [1, 10]
    otherwise (each row of a fresh head learns mostly from its own class, a shrinking share of every batch). A
    multi-label head starts at the label prior."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        max_length: int = 128,
        min_epochs: float = 1.0,
        max_epochs: float = 20.0,
        steps_per_class: int = 50,
        min_steps: int = 500,
        max_steps: int | None = None,
        batch_size: int = 32,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.06,
        head_lr_scale: float | None = None,
        monitor: str = "auto",
        eval_every: int | None = None,
        patience: int = 3,
        min_delta: float = 0.002,
        max_eval: int | None = 2000,
        max_train: int | None = None,
        eval_batch_size: int = 64,
        precision: str = "fp32",
        trust_remote_code: bool = False,
        seed: int = 0,
        device: str = "cpu",
        inference: str = "script",
    ) -> None:
        self.model = model
        self.max_length = max_length
        self.min_epochs = min_epochs
        self.max_epochs = max_epochs
        self.steps_per_class = steps_per_class
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.head_lr_scale = head_lr_scale
        self.monitor = monitor
        self.eval_every = eval_every
        self.patience = patience
        self.min_delta = min_delta
        self.max_eval = max_eval
        self.max_train = max_train
        self.eval_batch_size = eval_batch_size
        self.precision = precision
        self.trust_remote_code = trust_remote_code
        self.seed = seed
        self.device = device
        self.inference = inference

    # -- encoding / forward used by inference and by wrappers
    def encode_inputs(self, inputs: Sequence[Input]) -> Encoded:
        return encode(self.tokenizer_, inputs, self.max_length)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with autocast(self.device, self.precision):
            return self.module_(**batch).logits

    @property
    def pad_id(self) -> int:  # type: ignore[override]
        return int(self.tokenizer_.pad_token_id or 0)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.spec.multilabel:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y.float())
        return torch.nn.functional.cross_entropy(logits.float(), y)

    def head_lr(self) -> float:
        """The head's learning rate (see the class docstring)."""
        if self.head_lr_scale is not None:
            return self.lr * self.head_lr_scale
        return self.lr * (10.0 if self.spec.multilabel else float(np.clip(self.spec.n_classes / 4, 1.0, 10.0)))

    def _optimizer(self) -> torch.optim.Optimizer:
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        prefix = f"{self.module_.base_model_prefix}."
        groups = [
            {
                "params": [
                    p
                    for n, p in self.module_.named_parameters()
                    if n.endswith(no_decay) == nd and n.startswith(prefix) != head
                ],
                "weight_decay": 0.0 if nd else self.weight_decay,
                "lr": self.head_lr() if head else self.lr,
            }
            for nd in (False, True)
            for head in (False, True)
        ]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=self.lr)

    def fit(self, train: Split, validation: Split) -> Self:
        self.spec = train.spec
        self.reset_inference()
        rng = np.random.default_rng(self.seed)
        seed_torch(self.seed)
        train = subsample(train, self.max_train, self.seed)
        monitored = subsample(validation, self.max_eval, self.seed)
        self.tokenizer_ = load_tokenizer(self.model, self.trust_remote_code)
        self.module_ = load_classifier(
            self.model, self.spec.n_classes, self.spec.multilabel, self.trust_remote_code
        ).to(self.device)
        enc, enc_val = self.encode_inputs(train.inputs), self.encode_inputs(monitored.inputs)
        y = torch.as_tensor(train.y)
        budget, stopping = plan(self, len(train))
        if self.spec.multilabel:
            start_at_prior(self.module_, train.y)
        optimizer = self._optimizer()
        schedule = warmup_linear(optimizer, int(self.warmup_ratio * budget.steps), budget.steps)
        scaler = torch.amp.GradScaler("cuda", enabled=self.device.startswith("cuda") and self.precision == "fp16")

        def step(idx: np.ndarray) -> float:
            batch = collate(enc, idx, self.pad_id, self.device)
            loss = self._loss(self.forward(batch), y[idx].to(self.device))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(self.module_.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            return loss.item()

        trainer = Trainer(self.module_, budget, stopping, "finetuned: training", schedule)
        info = trainer.run(
            lambda: length_grouped_batches(enc.lengths, self.batch_size, rng),
            step,
            lambda: validation_outputs(self.logits_of(enc_val, scripted=False), monitored.y, self.spec.multilabel),
        )
        self.train_info_ = {
            **info,
            "train_examples": len(train),
            "validation_examples": len(monitored),
            "head_lr": self.head_lr(),
            "truncated_train_inputs": enc.truncated,
        }
        return self

    def fit_info(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_length": self.max_length,
            "lr": self.lr,
            "batch_size": self.batch_size,
            **self.train_info_,
        }

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.module_.save_pretrained(folder / "model", safe_serialization=True)
        self.tokenizer_.save_pretrained(folder / "model")
        params = self.get_params()
        write_meta(folder, self.spec, params=params, train_info=self.train_info_)

    @classmethod
    def load(cls, folder: Path) -> Self:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        meta = read_meta(folder)
        rung = cls(**meta["params"])
        rung.spec, rung.train_info_ = meta["spec"], meta["train_info"]
        rung.tokenizer_ = AutoTokenizer.from_pretrained(folder / "model")
        rung.module_ = AutoModelForSequenceClassification.from_pretrained(folder / "model").to(rung.device).eval()
        return rung
