r"""A learnable, deterministic sigmoid gate over LoRA directions."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..adapters.gate import Gate
from .domain import check_open_unit
from .registry import register_gate


@register_gate("sigmoid")
class SigmoidGate(Gate):
    r"""A deterministic learnable gate (the gate of the ``hsic`` estimator).

    .. math::
        m = \mathrm{sigmoid}(\phi), \qquad
        \phi_0 = \mathrm{logit}(\mathrm{init}) \ \text{so that}\ m_0 = \mathrm{init}

    Training and eval use the same mask :math:`m \in (0, 1)^r`.

    Args:
        r (int): number of rank-one directions.
        init (float, optional): initial gate value, in :math:`(0, 1)`. (default: ``0.95``)

    Shapes:
        - input ``z``: :math:`(*, r)`; output: :math:`(*, r)`
        - ``gate_logits`` :math:`\phi`: :math:`(r,)`
    """

    def __init__(self, r: int, init: float = 0.95):
        super().__init__(r)
        self.init = check_open_unit(type(self).__name__, "init", init)
        self.gate_logits = nn.Parameter(torch.empty(r))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gate_logits, math.log(self.init / (1.0 - self.init)))

    def open_mask(self) -> Tensor:
        return torch.sigmoid(self.gate_logits)

    def extra_repr(self) -> str:
        return f"r={self.r}, init={self.init:g}"
