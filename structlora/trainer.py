"""Hugging Face ``Trainer`` integration.

A ``TrainerCallback`` can observe training but cannot change the loss, and the
IB and coordination terms must enter the loss that is back-propagated. So the
integration is a ``Trainer`` subclass, :class:`StructLoRATrainer`, that

- adds ``model.loss(task_loss, batch)``'s extra terms in ``compute_loss``,
- calls ``model.step()`` after every optimizer step (through
  :class:`StructLoRACallback`, added automatically),
- logs each loss term (averaged since the last log) next to ``loss``,
- reads the column / label names from the wrapped base model, so
  ``remove_unused_columns`` and evaluation work as with the plain model.

Swap ``Trainer`` for ``StructLoRATrainer`` and pass the wrapped model; nothing
else in a training script changes.
"""
from __future__ import annotations

import inspect
from collections import defaultdict

from transformers import Trainer, TrainerCallback
from transformers.utils import find_labels

from .distributed import broadcast_coordinator, sync_coordinator_grads


def _unwrap(model):
    from .model import StructLoRAModel

    inner = getattr(model, "module", model)  # DDP
    if not isinstance(inner, StructLoRAModel):
        raise TypeError(
            f"StructLoRATrainer needs a model returned by structlora.wrap(), got {type(inner).__name__}"
        )
    return inner


class StructLoRACallback(TrainerCallback):
    """Calls ``model.step()`` (graph refresh, pruning, schedules) after each optimizer step.

    Under ``torch.distributed`` it also keeps the coordinator, which DDP leaves
    alone (its loss is computed outside ``forward``), identical on every rank.
    """

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None:
            broadcast_coordinator(model)
        return control

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if model is not None:
            sync_coordinator_grads(model)
        return control

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            _unwrap(model).step()
        return control


class StructLoRATrainer(Trainer):
    """``transformers.Trainer`` that trains a :class:`structlora.StructLoRAModel`."""

    def __init__(self, model=None, args=None, *pos, callbacks=None, **kwargs):
        wrapped = _unwrap(model)
        callbacks = list(callbacks or []) + [StructLoRACallback()]
        super().__init__(model, args, *pos, callbacks=callbacks, **kwargs)
        base_cls = wrapped.base_model.__class__
        if self.args.label_names is None:
            self.label_names = find_labels(base_cls) or ["labels"]
        # The task loss is a per-batch mean, like the IB and coupling terms added to it. Letting
        # the Trainer pass num_items_in_batch would make it rescale the sum by the number of
        # processes, which sequence classifiers ignore: the task term would outweigh the others.
        self.model_accepts_loss_kwargs = False
        self.can_return_loss = True
        self._term_sums: dict[str, float] = defaultdict(float)
        self._term_count = 0

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            base = _unwrap(self.model).base_model
            self._signature_columns = list(inspect.signature(base.forward).parameters)
            self._signature_columns += list({"label", "label_ids", *self.label_names})

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        task_loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                  num_items_in_batch=num_items_in_batch)
        wrapped = _unwrap(model)
        if not wrapped.training:
            return (task_loss, outputs) if return_outputs else task_loss
        loss = wrapped.loss(task_loss, inputs)
        for key, value in wrapped.loss_terms.items():
            self._term_sums[key] += value
        self._term_count += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self._term_count and "loss" in logs:
            for key, total in self._term_sums.items():
                logs[f"structlora/{key}"] = total / self._term_count
            self._term_sums.clear()
            self._term_count = 0
        super().log(logs, *args, **kwargs)
