r"""Pruning directions whose eval gate stays low, with an optional rank budget.

A pruned direction is fixed at 0 for good (``gate.prune``): it stays 0 through
further training, and export drops it because it folds ``gate.mask()``, so
pruned ranks carry into the PEFT adapter automatically.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..adapters.layer import GatedLoRALayer


def _check(cond: bool, name: str, value, allowed: str) -> None:
    if not cond:
        raise ValueError(f"Pruner.{name}={value!r} is invalid: {allowed}")


@dataclass
class Pruner:
    r"""Prune directions whose eval gate :math:`\bar m_{ij}` falls below a threshold.

    .. math::
        \text{prune } (i, j) \iff \bar m_{ij} < \max(t, t_i^{\mathrm{budget}})

    At every due step (``step >= after`` and ``(step - after) % every == 0``) a
    direction is pruned if its eval gate is below ``threshold``, or if it falls
    outside the budget: the top ``target_rank`` per adapter, or the top
    ``round(keep_ratio * sum_i r_i)`` over all adapters (ties go to the
    earlier adapter and lower index). The budget is applied in full at the first
    due step. Unless ``allow_empty``, an adapter never loses its last un-pruned
    direction (the one with the largest eval gate is spared, so a global budget
    may be exceeded by at most one direction per adapter): an adapter with rank
    0 silently disappears from the export, which should be asked for.

    Args:
        after (int, optional): warm-up; no pruning before this step. (default: ``0``)
        every (int, optional): period in steps once ``after`` is reached. (default: ``50``)
        threshold (float, optional): eval gates strictly below it are pruned, in
            :math:`[0, 1]`. (default: ``0.05``)
        target_rank (int, optional): keep at most this many directions per adapter. (default: ``None``)
        keep_ratio (float, optional): keep at most this fraction of all directions,
            in :math:`(0, 1]`. (default: ``None``)
        allow_empty (bool, optional): allow pruning an adapter's last direction. (default: ``False``)
    """

    after: int = 0  # warm-up: no pruning before this step
    every: int = 50  # pruning period (steps) once `after` is reached
    threshold: float = 0.05  # eval gates below this are pruned
    target_rank: int | None = None  # per-adapter budget: keep at most this many directions
    keep_ratio: float | None = None  # global budget: keep this fraction of all directions
    allow_empty: bool = False  # may an adapter lose its last direction (and vanish from the export)?

    def __post_init__(self) -> None:
        _check(isinstance(self.after, int) and self.after >= 0, "after", self.after, "use an integer >= 0")
        _check(isinstance(self.every, int) and self.every >= 1, "every", self.every, "use an integer >= 1")
        _check(0.0 <= self.threshold <= 1.0, "threshold", self.threshold, "use a value in [0, 1]")
        _check(self.target_rank is None or (isinstance(self.target_rank, int) and self.target_rank >= 1),
               "target_rank", self.target_rank, "use None or an integer >= 1")
        _check(self.keep_ratio is None or 0.0 < self.keep_ratio <= 1.0, "keep_ratio", self.keep_ratio,
               "use None or a value in (0, 1]")

    def due(self, step: int) -> bool:
        return step >= self.after and (step - self.after) % self.every == 0

    @torch.no_grad()
    def step(self, layers: dict[str, GatedLoRALayer], step: int) -> dict[str, int] | None:
        """Prune if ``step`` is due; return the effective rank per adapter, else None."""
        if not self.due(step):
            return None
        masks = {name: layer.gate.mask().detach().float().cpu() for name, layer in layers.items()}
        drop = {name: m < self.threshold for name, m in masks.items()}
        if self.target_rank is not None:
            for name, m in masks.items():
                drop[name][_ranked(m)[self.target_rank:]] = True
        if self.keep_ratio is not None:
            self._global_budget(masks, drop)
        for name, layer in layers.items():
            self._prune(layer, masks[name], drop[name])
        return {name: layer.gate.effective_rank() for name, layer in layers.items()}

    def _global_budget(self, masks: dict[str, Tensor], drop: dict[str, Tensor]) -> None:
        names = list(masks)
        flat = torch.cat([masks[n] for n in names])  # (sum_i r_i,)
        keep = max(1, round(self.keep_ratio * flat.numel()))
        beyond = torch.zeros(flat.numel(), dtype=torch.bool)
        beyond[_ranked(flat)[keep:]] = True
        for name, part in zip(names, beyond.split([masks[n].numel() for n in names])):
            drop[name] |= part

    def _prune(self, layer: GatedLoRALayer, m: Tensor, drop: Tensor) -> None:
        pruned = layer.gate.pruned.cpu()
        drop = drop & ~pruned
        if not self.allow_empty and bool(drop.any()) and bool((pruned | drop).all()):
            drop[int(m.masked_fill(pruned, float("-inf")).argmax())] = False  # spare the best survivor
        if bool(drop.any()):
            layer.gate.prune(drop.to(layer.gate.pruned.device))


def _ranked(m: Tensor) -> Tensor:
    """Indices of ``m`` from the largest value down; ties keep index order."""
    return torch.argsort(m, descending=True, stable=True)
