r"""Drift energy: how far a graph signal is from being constant along edges.

For node features :math:`x \in \mathbb{R}^{N \times F}` (one row per node, e.g.
one update sketch per adapted layer) and a symmetric Laplacian :math:`L`,

.. math::
    E(x) = \mathrm{tr}(x^\top L x),

which for the combinatorial Laplacian :math:`L = D - W` is the edge sum

.. math::
    E(x) = \tfrac12 \sum_{(i, j)} w_{ij} \lVert x_i - x_j \rVert^2

over the directed edge list (both directions present, hence the :math:`\tfrac12`).
"""
from __future__ import annotations

from torch import Tensor

from .laplacian import check_normalization, laplacian


def _as_columns(x: Tensor) -> Tensor:
    # A graph signal of shape (N,) is one feature column.
    return x.unsqueeze(-1) if x.dim() == 1 else x


def _check_signal(x: Tensor, L: Tensor) -> None:
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N,) or (N, F), found {tuple(x.shape)}")
    if L.dim() != 2 or L.shape != (x.size(0), x.size(0)):
        raise ValueError(
            f"L must be (N, N) = ({x.size(0)}, {x.size(0)}) to match x of shape "
            f"{tuple(x.shape)}, found {tuple(L.shape)}"
        )


def drift_energy(x: Tensor, L: Tensor) -> Tensor:
    r"""Drift energy :math:`E(x) = \mathrm{tr}(x^\top L x)`.

    Non-negative for a symmetric positive semi-definite ``L`` (``"comb"`` or
    ``"sym"``). The random-walk Laplacian is not symmetric; its energy in the
    degree inner product is :math:`x^\top D L_{\mathrm{rw}} x = x^\top
    L_{\mathrm{comb}} x`, so measure it with ``"comb"``.

    Args:
        x: node features.
        L: Laplacian of the graph.

    Shapes:
        x ``(N, F)`` or ``(N,)``, L ``(N, N)`` -> scalar.
    """
    x = _as_columns(x)
    _check_signal(x, L)
    return (x * (L @ x)).sum()


def drift_energy_edges(
    x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None
) -> Tensor:
    r"""Drift energy as an edge sum, without forming :math:`L`.

    .. math::
        E(x) = \tfrac12 \sum_{(i, j) \in \mathcal{E}} w_{ij} \lVert x_i - x_j \rVert^2

    Equals ``drift_energy(x, laplacian(..., normalization="comb"))`` when
    ``edge_index`` holds both directions of every edge. Cost O(E F).

    Args:
        x: node features.
        edge_index: edge list holding both directions of every edge.
        edge_weight: non-negative weights, ``None`` for all ones (default ``None``).

    Shapes:
        x ``(N, F)`` or ``(N,)``, edge_index ``(2, E)``, edge_weight ``(E,)`` -> scalar.
    """
    x = _as_columns(x)
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape (2, E), found {tuple(edge_index.shape)}")
    squared_gaps = (x[edge_index[0]] - x[edge_index[1]]).pow(2).sum(dim=-1)  # (E,)
    if edge_weight is not None:
        squared_gaps = edge_weight * squared_gaps
    return 0.5 * squared_gaps.sum()


def layer_drift_energy(
    sketches: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor | None = None,
    normalization: str = "comb",
) -> float:
    r"""Drift energy of per-layer update sketches across the layer graph.

    .. math::
        E = \mathrm{tr}(X^\top L X), \qquad X_i = \mathrm{vec}(P^\top \Delta W_i Q)

    With ``"comb"`` this is an unbiased estimate of
    :math:`\tfrac12 \sum w_{ij} \lVert \Delta W_i - \Delta W_j \rVert_F^2`
    (see :func:`structlora.theory.sketch_dense`). Used by the benchmarks to
    compare LoRA and StructLoRA; returns a detached Python float.

    Args:
        sketches: one sketch per node (layer).
        edge_index: layer-graph edges, both directions.
        edge_weight: non-negative weights, ``None`` for all ones (default ``None``).
        normalization: ``"comb"`` or ``"sym"`` (default ``"comb"``); ``"rw"``
            is rejected because its energy in the degree inner product is the
            ``"comb"`` energy.

    Shapes:
        sketches ``(N, F)``, edge_index ``(2, E)``, edge_weight ``(E,)`` -> float.
    """
    check_normalization(normalization)
    if normalization == "rw":
        raise ValueError(
            "normalization='rw' has no symmetric energy of its own: x^T D L_rw x equals "
            "the 'comb' energy; use normalization='comb' (or 'sym' for degree-scaled)"
        )
    sketches = sketches.detach()
    if normalization == "comb":
        return float(drift_energy_edges(sketches, edge_index, edge_weight))
    L = laplacian(edge_index, edge_weight, sketches.size(0), normalization)
    return float(drift_energy(sketches, L))
