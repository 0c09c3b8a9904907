r"""The hard-concrete (L0) gate of Louizos et al. (2018)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..adapters.gate import Gate
from .domain import check_finite, check_open_unit
from .registry import register_gate


@register_gate("hard-concrete")
class HardConcreteGate(Gate):
    r"""Stochastic hard-concrete gate for :math:`L_0` regularisation,
    after `Louizos et al. (2018) <https://arxiv.org/abs/1712.01312>`_.

    .. math::
        s = \mathrm{sigmoid}\bigl((\log u - \log(1-u) + \log a) / \beta\bigr),
        \quad u \sim \mathcal U(0, 1)

        m = \min\bigl(1, \max(0, s (\zeta - \gamma) + \gamma)\bigr)

        \bar m = \min\bigl(1, \max(0, \mathrm{sigmoid}(\log a)(\zeta - \gamma) + \gamma)\bigr)

        P(m_j \neq 0) = \mathrm{sigmoid}\bigl(\log a_j - \beta \log(-\gamma / \zeta)\bigr)

    The stretch :math:`(\gamma, \zeta)` lets the sampled gate hit exactly 0 and 1.
    :math:`P(m_j \ne 0)` is the expected :math:`L_0` norm that the ``l0``
    estimator penalises (exposed by :meth:`penalty_inputs` as ``"l0"``).

    Args:
        r (int): number of rank-one directions.
        init (float, optional): initial eval gate :math:`\bar m`, in :math:`(0, 1)`. (default: ``0.95``)
        temperature (float, optional): :math:`\beta > 0`. (default: ``2/3``)
        limits (tuple[float, float], optional): stretch :math:`(\gamma, \zeta)` with
            :math:`\gamma < 0` and :math:`\zeta > 1`. (default: ``(-0.1, 1.1)``)

    Shapes:
        - input ``z``: :math:`(*, r)`; output: :math:`(*, r)`
        - ``log_alpha`` :math:`\log a`: :math:`(r,)`
    """

    def __init__(self, r: int, init: float = 0.95, temperature: float = 2.0 / 3.0,
                 limits: tuple[float, float] = (-0.1, 1.1)):
        super().__init__(r)
        owner = type(self).__name__
        self.init = check_open_unit(owner, "init", init)
        self.temperature = check_finite(owner, "temperature", temperature)
        gamma, zeta = (check_finite(owner, "limits", v) for v in limits)
        if self.temperature <= 0 or not gamma < 0 < 1 < zeta:
            raise ValueError(
                f"{owner}: temperature={temperature!r}, limits={tuple(limits)!r} are invalid; "
                "use temperature > 0 and limits (gamma, zeta) with gamma < 0 and zeta > 1"
            )
        self.gamma, self.zeta = gamma, zeta
        self.log_alpha = nn.Parameter(torch.empty(r))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        p = (self.init - self.gamma) / (self.zeta - self.gamma)  # sigmoid(log a) giving m̄ = init
        nn.init.constant_(self.log_alpha, math.log(p / (1.0 - p)))

    def _stretch(self, s: Tensor) -> Tensor:
        return (s * (self.zeta - self.gamma) + self.gamma).clamp(0.0, 1.0)

    def sample(self, z: Tensor) -> Tensor:
        eps = torch.finfo(z.dtype).eps  # keeps log u and log(1-u) finite
        u = torch.rand_like(z).clamp(eps, 1.0 - eps)
        s = torch.sigmoid((u.log() - (-u).log1p() + self.log_alpha.to(z.dtype)) / self.temperature)
        return z * self._stretch(s)

    def open_mask(self) -> Tensor:
        return self._stretch(torch.sigmoid(self.log_alpha))

    def prob_nonzero(self) -> Tensor:
        r""":math:`P(m_j \neq 0)`, shape (r,)."""
        return torch.sigmoid(self.log_alpha - self.temperature * math.log(-self.gamma / self.zeta))

    def penalty_inputs(self) -> dict[str, Tensor]:
        return {"l0": self.prob_nonzero()}

    def extra_repr(self) -> str:
        return (f"r={self.r}, init={self.init:g}, temperature={self.temperature:g}, "
                f"limits=({self.gamma:g}, {self.zeta:g})")
