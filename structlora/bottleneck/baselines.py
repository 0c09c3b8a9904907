r"""Baseline filters for ablations, with no IB penalty: ``none``, ``random``, ``topk-norm``."""
from __future__ import annotations

import zlib

import torch

from ..adapters.gate import IdentityGate
from ..adapters.layer import GatedLoRALayer
from .base import Bottleneck
from .domain import check_positive_int
from .fixed_mask_gate import FixedMaskGate
from .registry import register_bottleneck


def _rank_budget(owner: str, k: int | None, r: int) -> int:
    """``k`` checked against the rank; None means half the directions (at least 1)."""
    if k is None:
        return max(1, r // 2)
    if k > r:
        raise ValueError(f"{owner}: k={k} exceeds the adapter rank r={r}; use 1 <= k <= r")
    return k


@register_bottleneck("none")
class NoBottleneck(Bottleneck):
    r"""Vanilla LoRA: :math:`m \equiv 1` (an :class:`IdentityGate`), penalty 0."""

    def make_gate(self, r: int, name: str | None = None) -> IdentityGate:
        return IdentityGate(r)


@register_bottleneck("random")
class RandomBottleneck(Bottleneck):
    r"""A fixed random keep-set of size :math:`k` per adapter, penalty 0.

    .. math::
        m_j = \mathbb 1[j \in S], \qquad S \sim \mathrm{Uniform}\binom{[r]}{k}

    The keep-set is drawn once, from a generator seeded with ``seed`` and the
    adapter's module path (or its creation index when no path is given), so
    adapters differ but a run is reproducible.

    Args:
        k (int, optional): directions kept per adapter; half of ``r`` (at least 1)
            when None. (default: ``None``)
        seed (int, optional): base seed. (default: ``0``)
    """

    def __init__(self, k: int | None = None, seed: int = 0):
        self.k = None if k is None else check_positive_int(type(self).__name__, "k", k)
        self.seed = int(seed)
        self._created = 0

    def make_gate(self, r: int, name: str | None = None) -> FixedMaskGate:
        k = _rank_budget(type(self).__name__, self.k, r)
        key = name if name is not None else f"#{self._created}"
        self._created += 1
        # crc32 is stable across processes, unlike the salted hash() of a str
        g = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}/{key}".encode()))
        gate = FixedMaskGate(r)
        gate.keep_only(torch.randperm(r, generator=g)[:k])
        return gate

    def extra_repr(self) -> str:
        return f"k={self.k}, seed={self.seed}"


@register_bottleneck("topk-norm")
class TopKNormBottleneck(Bottleneck):
    r"""Keep the :math:`k` directions of largest factor norm, re-chosen every ``every`` steps.

    .. math::
        m_j = \mathbb 1\bigl[j \in \mathrm{top}_k\ \lVert B_{:j} \rVert \, \lVert A_{j:} \rVert\bigr]

    All directions stay open until the first choice at step ``every``: ``B``
    starts at zero, so earlier norms would not rank anything. Pruned directions
    are never chosen; ties go to the lower index.

    Args:
        k (int, optional): directions kept per adapter; half of ``r`` (at least 1)
            when None. (default: ``None``)
        every (int, optional): re-choosing period in steps. (default: ``50``)
    """

    def __init__(self, k: int | None = None, every: int = 50):
        self.k = None if k is None else check_positive_int(type(self).__name__, "k", k)
        self.every = check_positive_int(type(self).__name__, "every", every)

    def make_gate(self, r: int, name: str | None = None) -> FixedMaskGate:
        _rank_budget(type(self).__name__, self.k, r)
        return FixedMaskGate(r)

    @torch.no_grad()
    def step(self, layers: dict[str, GatedLoRALayer], step: int) -> None:
        if step <= 0 or step % self.every:
            return
        for name, layer in layers.items():
            self.choose(name, layer)

    @torch.no_grad()
    def choose(self, name: str, layer: GatedLoRALayer) -> None:
        """Set ``layer``'s mask to its current top-k directions by factor norm."""
        if not isinstance(layer.gate, FixedMaskGate):
            raise ValueError(
                f"the 'topk-norm' filter needs FixedMaskGate gates, but adapter {name!r} has a "
                f"{type(layer.gate).__name__}; create the gates with TopKNormBottleneck.make_gate(r)"
            )
        score = layer.lora_B.norm(dim=0) * layer.lora_A.norm(dim=1)  # (r,)
        score = score.float().masked_fill(layer.gate.pruned.to(score.device), float("-inf"))
        k = _rank_budget(type(self).__name__, self.k, layer.r)
        layer.gate.keep_only(torch.argsort(score, descending=True, stable=True)[:k].cpu())

    def extra_repr(self) -> str:
        return f"k={self.k}, every={self.every}"
