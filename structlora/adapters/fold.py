r"""Folding the eval gate into the LoRA factors.

.. math::
    A' = \mathrm{diag}(\bar m)_{K} A_{K,:}, \qquad B' = B_{:,K}, \qquad
    K = \{j : \bar m_j > 0\}

so that :math:`s\,B'A' = s\,B\,\mathrm{diag}(\bar m)\,A` exactly, with rank
:math:`|K|`. The scaling :math:`s` is kept; an exporter that recomputes it as
``alpha / r'`` must use ``alpha' = s * r'`` (``s * sqrt(r')`` under rsLoRA).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .layer import GatedLoRALayer


@dataclass
class FoldedFactors:
    """Gate-free factors of one adapter: ``delta = scaling * lora_B @ lora_A``."""

    lora_A: Tensor  # (r', d_in)
    lora_B: Tensor  # (d_out, r')
    scaling: float
    use_rslora: bool

    @property
    def rank(self) -> int:
        return self.lora_A.shape[0]

    @property
    def alpha(self) -> float:
        """The alpha that reproduces ``scaling`` at rank ``r'``."""
        return self.scaling * (math.sqrt(self.rank) if self.use_rslora else self.rank)


@torch.no_grad()
def fold(layer: GatedLoRALayer) -> FoldedFactors:
    """Fold ``layer``'s eval mask into its factors and drop directions with mask 0."""
    m = layer.gate.mask().to(device=layer.lora_A.device, dtype=layer.lora_A.dtype)
    keep = m > 0
    lora_A = (layer.lora_A * m[:, None])[keep].detach().clone()
    lora_B = layer.lora_B[:, keep].detach().clone()
    return FoldedFactors(lora_A, lora_B, layer.scaling, layer.use_rslora)


def folded_rank_report(layers: dict[str, GatedLoRALayer]) -> dict[str, int]:
    """Effective rank (directions with a non-zero eval gate) per adapted module."""
    return {name: layer.gate.effective_rank() for name, layer in layers.items()}
