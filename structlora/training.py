"""A plain PyTorch training loop for users without the HF Trainer.

One step is exactly the public recipe::

    out = model(**batch)
    loss = model.loss(out.loss, batch)   # task + beta*IB + lambda*coord (+ denoise)
    loss.backward(); opt.step(); model.step(); opt.zero_grad()
"""
from __future__ import annotations

import os
import warnings
from typing import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from .distributed import all_ranks_agree, is_main_process, sync_coordinator_grads, unwrap
from .resume import CheckpointManager, LoopState, load_checkpoint, rng_state, set_rng_state


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
                max_length: int = 64, shuffle: bool = False, seed: int = 0, rank: int = 0,
                world_size: int = 1) -> DataLoader:
    """Batches of ``(text, label)``; with ``world_size > 1``, this rank's shard of every epoch.

    One process shuffles with a generator seeded by ``seed``. Several use a
    ``DistributedSampler`` (epoch ``e``'s order is a function of ``(seed, e)``;
    :func:`fit` calls ``set_epoch``): together the ranks see the batches that one
    process with such a sampler and ``world_size * batch_size`` would see.
    """
    items = list(zip(texts, labels))
    g = torch.Generator().manual_seed(seed)  # also keeps the global RNG out of the loader
    collate = TextClassificationCollator(tokenizer, max_length)
    if world_size == 1:
        return DataLoader(items, batch_size=batch_size, shuffle=shuffle, generator=g, collate_fn=collate)
    sampler = DistributedSampler(items, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
    return DataLoader(items, batch_size=batch_size, sampler=sampler, generator=g, collate_fn=collate)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[dict], progress: bool = False) -> dict[str, float]:
    """Accuracy and mean task loss of a classifier; restores the previous train/eval mode."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    device = _device(model)
    correct = total = 0
    loss_sum = 0.0
    for batch in tqdm(loader, desc="eval", disable=not (progress and is_main_process()), leave=False):
        batch = _to(batch, device)
        out = model(**batch)
        pred = out.logits.argmax(-1)
        correct += int((pred == batch["labels"]).sum())
        total += len(pred)
        loss_sum += float(out.loss) * len(pred)
    model.train(was_training)
    return {"accuracy": correct / max(total, 1), "loss": loss_sum / max(total, 1)}


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, train_loader: Iterable[dict], epochs: int = 1,
        scheduler=None, progress: bool = True, on_step: Callable[[dict], None] | None = None,
        max_steps: int | None = None, max_bad_steps: int = 10, checkpoints: CheckpointManager | None = None,
        resume: str | os.PathLike | None = None) -> list[dict]:
    """Train ``model`` (a StructLoRAModel, or one in ``DistributedDataParallel``); one record per step.

    A step whose loss or gradients are not finite (on any rank) is skipped: no
    optimizer, scheduler or ``model.step()``, a warning, ``"skipped": 1`` in its
    record; ``max_bad_steps`` such steps in a row raise ``FloatingPointError``.
    ``checkpoints`` saves the run every few steps; ``resume`` (a checkpoint
    directory) restores model, optimizer, scheduler, data position and RNG states
    first, so the run continues exactly as if it had never stopped. ``on_step(record)``
    is called after each step (and its checkpoint).
    """
    if isinstance(max_bad_steps, bool) or not isinstance(max_bad_steps, int) or max_bad_steps < 1:
        raise ValueError(f"fit: max_bad_steps={max_bad_steps!r} is invalid; use an integer >= 1")
    inner = unwrap(model)
    state = LoopState() if resume is None else load_checkpoint(resume, inner, optimizer, scheduler)
    model.train()
    total = epochs * len(train_loader) if hasattr(train_loader, "__len__") else None
    if max_steps is not None:
        total = min(total or max_steps, max_steps)
    bar = tqdm(total=total, initial=state.step, desc="train", disable=not (progress and is_main_process()))
    for epoch in range(state.epoch, epochs):
        if max_steps is not None and state.step >= max_steps:
            break
        for batch in _start_epoch(train_loader, epoch, state):
            record = _train_step(model, inner, optimizer, scheduler, batch, state, max_bad_steps)
            state.step, state.batch = state.step + 1, state.batch + 1
            record = {"step": state.step, **record}
            state.history.append(record)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in inner.loss_terms.items()})
            if checkpoints is not None and checkpoints.due(state.step):
                checkpoints.save(inner, optimizer, scheduler, state, train_loader)
            if on_step is not None:
                on_step(record)
            if max_steps is not None and state.step >= max_steps:
                break
        else:
            state.batch = 0
    bar.close()
    return state.history


def _start_epoch(loader: Iterable[dict], epoch: int, state: LoopState) -> Iterator[dict]:
    """``epoch``'s batches from ``state.batch`` on, with every RNG where an uninterrupted run has it.

    Samplers may draw from any RNG when iterated, so a resumed run restores the
    RNG states of the epoch's start, replays the epoch up to the saved batch, and
    only then restores the states saved with the checkpoint.
    """
    resumed = state.rng is not None
    if not resumed:
        state.epoch_rng = rng_state(loader)
    elif state.epoch_rng is not None:
        set_rng_state(state.epoch_rng, loader)
    state.epoch = epoch
    batches = _epoch_batches(loader, epoch, state.batch)
    if resumed:
        set_rng_state(state.rng, loader)
        state.rng = None
    return batches


def _epoch_batches(loader: Iterable[dict], epoch: int, skip: int) -> Iterator[dict]:
    """An iterator over ``epoch``'s batches, the first ``skip`` already consumed."""
    for obj in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
    batches = iter(loader)
    for _ in range(skip):
        next(batches)
    return batches


def _train_step(model, inner, optimizer, scheduler, batch: dict, state: LoopState, max_bad_steps: int) -> dict:
    """One guarded optimizer step; returns the record of loss terms (and step info)."""
    batch = _to(batch, _device(inner))
    out = model(**batch)
    loss = inner.loss(out.loss, batch)
    finite = all_ranks_agree(bool(torch.isfinite(loss.detach())))
    if finite:
        loss.backward()
        sync_coordinator_grads(inner)
        finite = all_ranks_agree(_grads_finite(optimizer))
    if not finite:
        optimizer.zero_grad(set_to_none=True)
        inner.discard_step()
        _count_bad_step(inner, state, max_bad_steps)
        return {**inner.loss_terms, "skipped": 1.0}
    state.bad_in_a_row = 0
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    info = inner.step()
    optimizer.zero_grad(set_to_none=True)
    return {**inner.loss_terms, **info}


def _grads_finite(optimizer: torch.optim.Optimizer) -> bool:
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    return not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def _count_bad_step(inner, state: LoopState, max_bad_steps: int) -> None:
    state.bad_in_a_row += 1
    state.skipped += 1
    terms = ", ".join(f"{k}={v:.4g}" for k, v in inner.loss_terms.items())
    if state.bad_in_a_row >= max_bad_steps:
        raise FloatingPointError(
            f"{state.bad_in_a_row} steps in a row had a non-finite loss or gradient (last: step "
            f"{state.step + 1}, {terms}); stopping. Lower the learning rate, check the data for "
            "empty or corrupt examples, or use float32; the last checkpoint holds only finite values"
        )
    if is_main_process():
        warnings.warn(
            f"step {state.step + 1}: non-finite loss or gradient ({terms}); step skipped "
            f"({state.bad_in_a_row} in a row, {state.skipped} in all, abort at {max_bad_steps} in a row)",
            RuntimeWarning, stacklevel=4,
        )
