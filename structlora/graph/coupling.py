r"""Coupling the coordinator to training (DESIGN.md, "Coupling to training").

With node sketches :math:`x` (:math:`N \times k^2`, a function of the adapters)
and the coordinator's output :math:`\hat x`,

.. math::
    L_{coord} = \tfrac1N \lVert x - \mathrm{sg}(\hat x) \rVert^2
    \qquad \text{(gradient into the adapters only)}

    L_{den} = \tfrac1N \big( \lVert \hat x - \mathrm{sg}(x) \rVert^2
              + c\, \mathrm{tr}(\hat x^\top L \hat x) \big)
    \qquad \text{(gradient into the coordinator } \theta \text{ only)}

where :math:`\mathrm{sg}` is stop-gradient and :math:`L` the symmetric
normalised Laplacian of :func:`~structlora.graph.sym_laplacian`. For
:math:`L_{den}` to reach only :math:`\theta`, :math:`\hat x` must be computed
from :math:`\mathrm{sg}(x)`; :func:`coupling_losses` does exactly that.

For the Laplacian coordinator (one step), :math:`\hat x = (I - \eta L) x` is a
constant for the gradient, so

.. math::
    \nabla_x L_{coord} = \tfrac2N (x - \hat x) = \tfrac{2\eta}{N} L x ,

which is :math:`\tfrac{\eta}{N} \nabla_x \mathrm{tr}(x^\top L x)`: gradient
descent on the drift energy. With :math:`K` steps it is
:math:`\tfrac2N (I - (I - \eta L)^K) x \approx \tfrac{2K\eta}{N} L x` for small
:math:`\eta`. The minimiser of :math:`L_{den}` over :math:`\hat x` is
:math:`(I + cL)^{-1} x`, whose drift energy never exceeds that of :math:`x`.
"""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from structlora.theory import drift_energy

from .coordinators import Coordinator
from .laplacian import sym_laplacian


def coordination_loss(x: Tensor, x_hat: Tensor) -> Tensor:
    r""":math:`L_{coord} = \tfrac1N \lVert x - \mathrm{sg}(\hat x) \rVert^2`.

    Shapes:
        x :math:`(N, F)`, x_hat :math:`(N, F)` -> scalar
    """
    return (x - x_hat.detach()).pow(2).sum() / x.size(0)


def denoising_loss(
    x: Tensor, x_hat: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None, c: float = 1.0
) -> Tensor:
    r""":math:`L_{den} = \tfrac1N (\lVert \hat x - \mathrm{sg}(x) \rVert^2 + c\,\mathrm{tr}(\hat x^\top L \hat x))`.

    Pass ``x_hat = coordinator(x.detach(), ...)`` so that the gradient reaches
    only the coordinator.

    Args:
        x (Tensor): node sketches.
        x_hat (Tensor): coordinated sketches.
        edge_index (Tensor): layer-graph edges.
        edge_weight (Tensor, optional): edge weights. (default: ``None``)
        c (float, optional): weight of the smoothness term, :math:`c \ge 0`. (default: ``1.0``)

    Shapes:
        x, x_hat :math:`(N, F)`, edge_index :math:`(2, E)`, edge_weight :math:`(E)` -> scalar
    """
    if not c >= 0:
        raise ValueError(f"denoising_loss: c={c!r} is invalid; use c >= 0 (a negative weight rewards roughness)")
    fit = (x_hat - x.detach()).pow(2).sum()
    if c == 0 or edge_index.numel() == 0:
        return fit / x.size(0)
    L = sym_laplacian(edge_index, edge_weight, x.size(0)).to(x_hat.dtype)
    return (fit + c * drift_energy(x_hat, L)) / x.size(0)


class CouplingLosses(NamedTuple):
    coord: Tensor  # L_coord: gradient into the adapters
    denoise: Tensor  # L_den: gradient into the coordinator
    x_hat: Tensor  # coordinated sketches, computed from sg(x)


def coupling_losses(
    x: Tensor,
    coordinator: Coordinator,
    edge_index: Tensor,
    edge_weight: Tensor | None = None,
    c: float = 1.0,
) -> CouplingLosses:
    r"""Both losses with the stop-gradients wired: :math:`\hat x = \mathrm{coordinator}(\mathrm{sg}(x))`.

    Shapes:
        x :math:`(N, F)`, edge_index :math:`(2, E)`, edge_weight :math:`(E)`
    """
    x_hat = coordinator(x.detach(), edge_index, edge_weight)
    return CouplingLosses(
        coordination_loss(x, x_hat), denoising_loss(x, x_hat, edge_index, edge_weight, c), x_hat
    )
