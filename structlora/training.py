"""A plain PyTorch training loop for users without the HF Trainer.

One step is exactly the public recipe::

    out = model(**batch)
    loss = model.loss(out.loss, batch)   # task + beta*IB + lambda*coord (+ denoise)
    loss.backward(); opt.step(); model.step(); opt.zero_grad()
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


def make_optimizer(model: nn.Module, lr: float = 2e-3, gate_lr: float | None = None,
                   coord_lr: float | None = None, weight_decay: float = 0.0) -> torch.optim.AdamW:
    """AdamW with one group each for LoRA factors (+ saved modules), gates and the coordinator.

    Defaults: gates and coordinator use ``lr`` unless given; no weight decay on gates.
    """
    groups = model.param_groups(lr=lr, gate_lr=gate_lr, coord_lr=coord_lr, weight_decay=weight_decay)
    return torch.optim.AdamW(groups, lr=lr)


class TextClassificationCollator:
    """Tokenises (text, label) pairs into a padded batch with ``labels``."""

    def __init__(self, tokenizer, max_length: int = 64):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, items: list[tuple[str, int]]) -> dict[str, Tensor]:
        texts, labels = zip(*items)
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
        batch["labels"] = torch.tensor(labels)
        return batch


def text_loader(tokenizer, texts: list[str], labels: list[int], batch_size: int = 16,
                max_length: int = 64, shuffle: bool = False, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(list(zip(texts, labels)), batch_size=batch_size, shuffle=shuffle, generator=g,
                      collate_fn=TextClassificationCollator(tokenizer, max_length))


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[dict], progress: bool = False) -> dict[str, float]:
    """Accuracy and mean task loss of a classifier; restores the previous train/eval mode."""
    was_training = model.training
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    for batch in tqdm(loader, desc="eval", disable=not progress, leave=False):
        out = model(**batch)
        pred = out.logits.argmax(-1)
        correct += int((pred == batch["labels"]).sum())
        total += len(pred)
        loss_sum += float(out.loss) * len(pred)
    model.train(was_training)
    return {"accuracy": correct / max(total, 1), "loss": loss_sum / max(total, 1)}


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, train_loader: Iterable[dict], epochs: int = 1,
        scheduler=None, progress: bool = True, on_step: Callable[[dict], None] | None = None,
        max_steps: int | None = None) -> list[dict]:
    """Train ``model`` (a StructLoRAModel); returns one record of loss terms per step.

    ``on_step(record)`` is called after each step (for logging / checkpointing).
    """
    model.train()
    history: list[dict] = []
    total = epochs * len(train_loader) if hasattr(train_loader, "__len__") else None
    if max_steps is not None:
        total = min(total or max_steps, max_steps)
    bar = tqdm(total=total, desc="train", disable=not progress)
    for _ in range(epochs):
        for batch in train_loader:
            out = model(**batch)
            loss = model.loss(out.loss, batch)
            if not math.isfinite(float(loss)):
                raise FloatingPointError(f"non-finite loss at step {len(history)}: {model.loss_terms}")
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            record = {"step": len(history) + 1, **model.loss_terms, **model.step()}
            optimizer.zero_grad(set_to_none=True)
            history.append(record)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in model.loss_terms.items()})
            if on_step is not None:
                on_step(record)
            if max_steps is not None and len(history) >= max_steps:
                bar.close()
                return history
    bar.close()
    return history
