r"""The Laplacian the coordinators and the coupling losses use.

The symmetric normalised Laplacian :math:`L = I - D^{-1/2} W D^{-1/2}` of
:func:`structlora.theory.laplacian`, except on isolated nodes (degree 0),
whose row and column are zero instead of the identity row PyG uses:

.. math::
    L = D^{+1/2} (D - W) D^{+1/2}, \qquad
    \mathrm{tr}(x^\top L x) = \tfrac12 \sum_{(i,j)} w_{ij}
    \Big\lVert \tfrac{x_i}{\sqrt{d_i}} - \tfrac{x_j}{\sqrt{d_j}} \Big\rVert^2 .

An isolated layer has no neighbour to drift from, so it carries no drift
energy and neither smoothing :math:`(I - \eta L)` nor the denoiser shrinks it
(with the identity row, every step would scale it by :math:`1 - \eta`, pulling
the update of a layer without neighbours toward zero).
"""
from __future__ import annotations

import torch
from torch import Tensor

from structlora.theory import dense_adjacency, laplacian


def sym_laplacian(edge_index: Tensor, edge_weight: Tensor | None = None, num_nodes: int | None = None) -> Tensor:
    r"""Dense symmetric normalised Laplacian with zero rows on isolated nodes.

    Args:
        edge_index (Tensor): edges, both directions of each.
        edge_weight (Tensor, optional): positive weights, ``None`` for ones. (default: ``None``)
        num_nodes (int, optional): ``None`` infers from ``edge_index``. (default: ``None``)

    Shapes:
        edge_index :math:`(2, E)`, edge_weight :math:`(E)` -> L :math:`(N, N)`, at least float32
    """
    if edge_weight is not None:  # eigvalsh (for the step-size bound) has no half-precision kernels
        edge_weight = edge_weight.to(torch.promote_types(edge_weight.dtype, torch.float32))
    L = laplacian(edge_index, edge_weight, num_nodes, normalization="sym")
    isolated = dense_adjacency(edge_index, edge_weight, L.size(0)).fill_diagonal_(0).sum(dim=1) == 0
    keep = (~isolated).to(L.dtype)
    return L * keep[:, None] * keep[None, :]


def is_degenerate(num_nodes: int, edge_index: Tensor) -> bool:
    """True for a graph that cannot be coordinated: fewer than 2 nodes or no edges."""
    return num_nodes < 2 or edge_index.numel() == 0
