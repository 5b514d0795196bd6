"""Fine-tuning a pretrained transformer end to end (AutoModelForSequenceClassification, a plain loop)."""

from __future__ import annotations

import time
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


def start_at_prior(module: torch.nn.Module, y: np.ndarray) -> None:
    """Set the output layer's bias to each label's training log-odds, so a multi-label head starts at the
    prior instead of p = 0.5: the first steps then teach which labels, not that labels are rare (that
    lesson, at BCE 0.69, pushes the encoder towards one constant output)."""
    prior = np.clip(y.mean(axis=0), 1e-4, 1 - 1e-4)
    head = [m for m in module.modules() if isinstance(m, torch.nn.Linear) and m.out_features == y.shape[1]][-1]
    with torch.no_grad():
        head.bias.copy_(torch.as_tensor(np.log(prior / (1 - prior)), dtype=head.bias.dtype))


class FineTunedTransformer(TorchClassifier):
    """A pretrained encoder with a fresh classification head, trained end to end with AdamW and a linear
    warm-up/decay schedule; dynamic padding and length-grouped batches. ``max_train`` caps the training
    examples (stratified); a small training set is seen for more than ``epochs`` until ``min_steps`` optimiser
    steps are taken (one epoch of 1,400 examples is 45 steps: too few for a fresh head); ``precision`` bf16/fp16
    autocasts on CUDA. The default lr (1e-4) suits small
    encoders such as MiniLM; base-size models usually want 2e-5 to 5e-5 (``--option finetuned.lr=3e-5``). The
    head (parameters outside the encoder) learns at ``head_lr_scale`` × lr (default: 10 for multi-label, whose
    sigmoid outputs get small gradients, else 1); a multi-label head starts at the label prior."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        max_length: int = 128,
        epochs: float = 1.0,
        min_steps: int = 500,
        batch_size: int = 32,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        head_lr_scale: float | None = None,
        max_train: int | None = None,
        eval_batch_size: int = 64,
        precision: str = "fp32",
        trust_remote_code: bool = False,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.model = model
        self.max_length = max_length
        self.epochs = epochs
        self.min_steps = min_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.head_lr_scale = head_lr_scale
        self.max_train = max_train
        self.eval_batch_size = eval_batch_size
        self.precision = precision
        self.trust_remote_code = trust_remote_code
        self.seed = seed
        self.device = device

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

    def fit(self, train: Split, validation: Split) -> Self:
        from tqdm.auto import tqdm
        from transformers import get_linear_schedule_with_warmup

        self.spec = train.spec
        rng = np.random.default_rng(self.seed)
        seed_torch(self.seed)
        train = subsample(train, self.max_train, self.seed)
        self.tokenizer_ = load_tokenizer(self.model, self.trust_remote_code)
        self.module_ = load_classifier(
            self.model, self.spec.n_classes, self.spec.multilabel, self.trust_remote_code
        ).to(self.device)
        enc = self.encode_inputs(train.inputs)
        y = torch.as_tensor(train.y)
        steps_per_epoch = int(np.ceil(len(train) / self.batch_size))
        total = max(1, int(round(steps_per_epoch * self.epochs)), self.min_steps)
        head_lr = self.lr * (
            self.head_lr_scale if self.head_lr_scale is not None else (10.0 if self.spec.multilabel else 1.0)
        )
        if self.spec.multilabel:
            start_at_prior(self.module_, train.y)
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
                "lr": head_lr if head else self.lr,
            }
            for nd in (False, True)
            for head in (False, True)
        ]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=self.lr)
        schedule = get_linear_schedule_with_warmup(optimizer, int(self.warmup_ratio * total), total)
        scaler = torch.amp.GradScaler("cuda", enabled=self.device.startswith("cuda") and self.precision == "fp16")
        self.module_.train()
        losses: list[float] = []
        step, started = 0, time.perf_counter()
        with tqdm(total=total, desc="finetuned: training", unit="step", leave=False, disable=None) as bar:
            while step < total:
                for idx in length_grouped_batches(enc.lengths, self.batch_size, rng):
                    batch = collate(enc, idx, self.pad_id, self.device)
                    loss = self._loss(self.forward(batch), y[idx].to(self.device))
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(self.module_.parameters(), 1.0)
                    scaler.step(optimizer)
                    scaler.update()
                    schedule.step()
                    losses.append(loss.item())
                    step += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
                    if step >= total:
                        break
        self.module_.eval()
        self.train_info_ = {
            "steps": step,
            "train_examples": len(train),
            "epochs": round(step / steps_per_epoch, 2),
            "train_seconds": time.perf_counter() - started,
            "final_train_loss": float(np.mean(losses[-50:])),
            "truncated_train_inputs": enc.truncated,
        }
        probs = self.predict_proba(validation.inputs)
        if self.spec.multilabel:
            self.train_info_["val_micro_accuracy"] = float(((probs >= 0.5) == validation.y).mean())
        else:
            self.train_info_["val_accuracy"] = float((probs.argmax(1) == validation.y).mean())
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
