r"""Dense graph Laplacians of weighted undirected graphs.

The three normalizations follow :func:`torch_geometric.utils.get_laplacian`:

.. math::
    L_{\mathrm{comb}} = D - W, \qquad
    L_{\mathrm{sym}} = I - D^{-1/2} W D^{-1/2}, \qquad
    L_{\mathrm{rw}} = I - D^{-1} W,

with :math:`D = \mathrm{diag}(W \mathbf{1})`. Self-loops are dropped first (they
carry no drift, and PyG drops them too). An isolated node (degree 0) gets
:math:`D^{-1/2}_{ii} = D^{-1}_{ii} = 0`, so its row of :math:`L_{\mathrm{sym}}`
and :math:`L_{\mathrm{rw}}` is the identity row and its row of
:math:`L_{\mathrm{comb}}` is zero: no NaN, no inf.

Graphs are small here (one node per adapted layer), so dense ``(N, N)``
matrices keep every spectral statement a one-liner.
"""
from __future__ import annotations

import torch
from torch import Tensor

NORMALIZATIONS = ("comb", "sym", "rw")


def check_normalization(normalization: str) -> None:
    """Raise ``ValueError`` unless ``normalization`` is one of :data:`NORMALIZATIONS`."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization={normalization!r} is not one of {NORMALIZATIONS}; use "
            "'comb' (L = D - W), 'sym' (I - D^-1/2 W D^-1/2) or 'rw' (I - D^-1 W)"
        )


def infer_num_nodes(edge_index: Tensor, num_nodes: int | None = None) -> int:
    """``num_nodes`` if given, else ``edge_index.max() + 1`` (0 for no edges)."""
    if num_nodes is not None:
        return int(num_nodes)
    return int(edge_index.max()) + 1 if edge_index.numel() > 0 else 0


def _check_edges(edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int) -> None:
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(
            f"edge_index must have shape (2, E), found {tuple(edge_index.shape)}; "
            "stack source and target rows as torch_geometric does"
        )
    if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
        raise ValueError(f"edge_index must hold integer node ids, found dtype {edge_index.dtype}")
    if edge_weight is not None and edge_weight.shape != (edge_index.size(1),):
        raise ValueError(
            f"edge_weight must have shape (E,) = ({edge_index.size(1)},), "
            f"found {tuple(edge_weight.shape)}"
        )
    if edge_index.numel() > 0 and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
        raise ValueError(
            f"edge_index holds node ids in [{int(edge_index.min())}, {int(edge_index.max())}] "
            f"but num_nodes={num_nodes}; pass num_nodes > every node id"
        )


def dense_adjacency(
    edge_index: Tensor, edge_weight: Tensor | None = None, num_nodes: int | None = None
) -> Tensor:
    r"""Dense weighted adjacency :math:`W_{ij} = \sum_{e = (i, j)} w_e`.

    Duplicate edges add up. The graph is taken as given: for an undirected
    graph ``edge_index`` must hold both directions, as in PyG.

    Args:
        edge_index: edge list, row 0 sources, row 1 targets.
        edge_weight: positive edge weights; ``None`` means all ones
            (default ``None``).
        num_nodes: number of nodes; ``None`` infers ``edge_index.max() + 1``
            (default ``None``).

    Shapes:
        edge_index ``(2, E)``, edge_weight ``(E,)`` -> W ``(N, N)``.
    """
    num_nodes = infer_num_nodes(edge_index, num_nodes)
    _check_edges(edge_index, edge_weight, num_nodes)
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), device=edge_index.device)
    W = torch.zeros(num_nodes, num_nodes, dtype=edge_weight.dtype, device=edge_weight.device)
    return W.index_put((edge_index[0], edge_index[1]), edge_weight, accumulate=True)


def _safe_inverse_power(deg: Tensor, power: float) -> Tensor:
    # deg ** power with 0 where deg == 0; the inner where keeps the gradient finite.
    positive = deg > 0
    return torch.where(positive, torch.where(positive, deg, 1.0).pow(power), 0.0)


def laplacian_from_adjacency(W: Tensor, normalization: str = "sym") -> Tensor:
    r"""Laplacian of a dense symmetric non-negative adjacency matrix.

    .. math::
        L_{\mathrm{comb}} = D - W, \quad
        L_{\mathrm{sym}} = I - D^{-1/2} W D^{-1/2}, \quad
        L_{\mathrm{rw}} = I - D^{-1} W

    The diagonal of ``W`` (self-loops) is ignored.

    Args:
        W: adjacency matrix, symmetric with non-negative entries.
        normalization: ``"comb"``, ``"sym"`` or ``"rw"`` (default ``"sym"``).

    Shapes:
        W ``(N, N)`` -> L ``(N, N)``.
    """
    check_normalization(normalization)
    if W.dim() != 2 or W.size(0) != W.size(1):
        raise ValueError(f"W must be a square (N, N) matrix, found shape {tuple(W.shape)}")
    if bool((W < 0).any()):
        raise ValueError(
            f"W has negative weights (min {float(W.min()):.3g}); drift energy needs "
            "w_ij >= 0, so clamp or drop negative edges first"
        )
    if not torch.allclose(W, W.mT):
        raise ValueError(
            "W is not symmetric: the graph is directed. Pass both directions of every "
            "edge with equal weights, e.g. torch_geometric.utils.to_undirected"
        )
    W = W - torch.diag_embed(torch.diagonal(W))
    deg = W.sum(dim=1)
    if normalization == "comb":
        return torch.diag_embed(deg) - W
    eye = torch.eye(W.size(0), dtype=W.dtype, device=W.device)
    if normalization == "sym":
        d_inv_sqrt = _safe_inverse_power(deg, -0.5)
        # The outer product first keeps L exactly symmetric (a*b == b*a in floating point).
        return eye - W * (d_inv_sqrt[:, None] * d_inv_sqrt[None, :])
    return eye - _safe_inverse_power(deg, -1.0)[:, None] * W


def laplacian(
    edge_index: Tensor,
    edge_weight: Tensor | None = None,
    num_nodes: int | None = None,
    normalization: str = "sym",
) -> Tensor:
    r"""Dense graph Laplacian from a PyG edge list.

    Agrees with ``to_dense_adj(*get_laplacian(edge_index, edge_weight,
    normalization))`` for the three normalizations (``None`` in PyG is
    ``"comb"`` here), isolated nodes included.

    .. math::
        L_{\mathrm{comb}} = D - W, \quad
        L_{\mathrm{sym}} = I - D^{-1/2} W D^{-1/2}, \quad
        L_{\mathrm{rw}} = I - D^{-1} W

    Args:
        edge_index: edge list holding both directions of every edge.
        edge_weight: positive edge weights, ``None`` for all ones (default ``None``).
        num_nodes: number of nodes, ``None`` to infer (default ``None``).
        normalization: ``"comb"``, ``"sym"`` or ``"rw"`` (default ``"sym"``).

    Shapes:
        edge_index ``(2, E)``, edge_weight ``(E,)`` -> L ``(N, N)``.
    """
    check_normalization(normalization)
    W = dense_adjacency(edge_index, edge_weight, num_nodes)
    return laplacian_from_adjacency(W, normalization)
