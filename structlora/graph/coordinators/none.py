r"""The identity coordinator: coordination switched off."""
from __future__ import annotations

from torch import Tensor

from .base import Coordinator
from .registry import register_coordinator


@register_coordinator("none")
class NoCoordinator(Coordinator):
    r"""No coordination, :math:`\hat x = x`, so :math:`L_{coord} = 0`: vanilla LoRA.

    Shapes:
        - input: :math:`(N, F)` -> output: :math:`(N, F)`
    """

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return x  # no warning for degenerate graphs: there is nothing to skip

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
