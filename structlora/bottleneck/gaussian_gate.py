r"""The variational-IB gate with multiplicative Gaussian noise (VIBNet)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..adapters.gate import Gate
from .domain import check_finite, check_open_unit
from .registry import register_gate


@register_gate("gaussian")
class GaussianGate(Gate):
    r"""Multiplicative Gaussian gate of the variational information bottleneck,
    after `Dai et al. (2018) <https://arxiv.org/abs/1802.10399>`_ (VIBNet).

    .. math::
        \tilde z = z \odot (\mu + \sigma \odot \epsilon), \quad
        \epsilon \sim \mathcal N(0, I), \quad \mu = \mathrm{sigmoid}(\phi)

        \bar m_j = \mu_j \, \mathbb 1[\log \alpha_j < \theta], \qquad
        \alpha_j = \sigma_j^2 / \mu_j^2

        \mathrm{KL}_j = \tfrac12 \log\bigl(1 + \mu_j^2 / \sigma_j^2\bigr)
                      = \tfrac12 \, \mathrm{softplus}(-\log \alpha_j)

    :math:`\mathrm{KL}_j` is the closed-form bound on :math:`I(Z_j; X)` that the
    ``vib`` estimator penalises (exposed by :meth:`penalty_inputs` as ``"kl"``).
    The noise must be large enough to matter: with ``log_sigma2_init = -9`` it is
    negligible and the gate behaves as a plain learnable gate (DESIGN.md,
    "Measured before building"), hence the default ``-1``.

    Args:
        r (int): number of rank-one directions.
        init_mean (float, optional): initial :math:`\mu`, in :math:`(0, 1)`. (default: ``0.95``)
        log_sigma2_init (float, optional): initial :math:`\log \sigma^2`. (default: ``-1.0``)
        threshold (float, optional): :math:`\theta`; a direction with
            :math:`\log \alpha \ge \theta` has eval gate 0. The initial
            :math:`\log \alpha` must lie below it. (default: ``3.0``)

    Shapes:
        - input ``z``: :math:`(*, r)`; output: :math:`(*, r)`
        - ``gate_logits`` :math:`\phi` and ``log_sigma2``: :math:`(r,)`
    """

    def __init__(self, r: int, init_mean: float = 0.95, log_sigma2_init: float = -1.0,
                 threshold: float = 3.0):
        super().__init__(r)
        owner = type(self).__name__
        self.init_mean = check_open_unit(owner, "init_mean", init_mean)
        self.log_sigma2_init = check_finite(owner, "log_sigma2_init", log_sigma2_init)
        self.threshold = check_finite(owner, "threshold", threshold)
        log_alpha0 = self.log_sigma2_init - 2.0 * math.log(self.init_mean)
        if log_alpha0 >= self.threshold:
            raise ValueError(
                f"{owner}: init_mean={init_mean!r} with log_sigma2_init={log_sigma2_init!r} gives "
                f"log alpha={log_alpha0:.3g} >= threshold={threshold!r}, so every direction would "
                "start closed at eval; raise init_mean, lower log_sigma2_init or raise threshold"
            )
        self.gate_logits = nn.Parameter(torch.empty(r))
        self.log_sigma2 = nn.Parameter(torch.empty(r))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gate_logits, math.log(self.init_mean / (1.0 - self.init_mean)))
        nn.init.constant_(self.log_sigma2, self.log_sigma2_init)

    def mean(self) -> Tensor:
        r""":math:`\mu = \mathrm{sigmoid}(\phi)`, shape (r,)."""
        return torch.sigmoid(self.gate_logits)

    def log_alpha(self) -> Tensor:
        r""":math:`\log \alpha = \log \sigma^2 - 2 \log \mu`, shape (r,)."""
        return self.log_sigma2 + 2.0 * F.softplus(-self.gate_logits)  # -log sigmoid(φ) = softplus(-φ)

    def kl(self) -> Tensor:
        r""":math:`\tfrac12 \log(1 + \mu^2/\sigma^2) \ge 0`, shape (r,)."""
        return 0.5 * F.softplus(-self.log_alpha())

    def sample(self, z: Tensor) -> Tensor:
        mu = self.mean().to(z.dtype)
        sigma = torch.exp(0.5 * self.log_sigma2).to(z.dtype)
        return z * (mu + sigma * torch.randn_like(z))

    def open_mask(self) -> Tensor:
        mu = self.mean()
        return mu * (self.log_alpha() < self.threshold).to(mu.dtype)

    def penalty_inputs(self) -> dict[str, Tensor]:
        return {"kl": self.kl()}

    def extra_repr(self) -> str:
        return (f"r={self.r}, init_mean={self.init_mean:g}, "
                f"log_sigma2_init={self.log_sigma2_init:g}, threshold={self.threshold:g}")
