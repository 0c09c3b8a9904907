r"""Spectra of graph Laplacians and the contraction factor of one smoothing step.

For a symmetric Laplacian with eigen-decomposition :math:`L = U \Lambda U^\top`,
:math:`0 = \lambda_1 \le \lambda_2 \le \dots \le \lambda_N = \lambda_{\max}`, the
step :math:`x \mapsto (I - \eta L) x` scales the coefficient of mode :math:`k`
by :math:`1 - \eta \lambda_k`. Everything about smoothing follows from that.

:math:`L_{\mathrm{rw}} = I - D^{-1} W` is not symmetric but is similar to
:math:`L_{\mathrm{sym}}` (:math:`L_{\mathrm{rw}} = D^{-1/2} L_{\mathrm{sym}}
D^{1/2}` on non-isolated nodes), so its spectrum is taken from the symmetric
matrix with off-diagonal entries :math:`\mathrm{sign}(L_{ij}) \sqrt{L_{ij} L_{ji}}`,
which is exactly :math:`L_{\mathrm{sym}}` (and :math:`L` itself when :math:`L`
is symmetric).
"""
from __future__ import annotations

import torch
from torch import Tensor


def symmetric_form(L: Tensor) -> Tensor:
    r"""A symmetric matrix with the spectrum of ``L``.

    ``L`` itself if symmetric; for :math:`L_{\mathrm{rw}}` of an undirected
    graph, :math:`S_{ij} = \mathrm{sign}(L_{ij})\sqrt{L_{ij} L_{ji}}` (off the
    diagonal), which equals :math:`L_{\mathrm{sym}}`.

    Shapes:
        L ``(N, N)`` -> S ``(N, N)``.
    """
    if L.dim() != 2 or L.size(0) != L.size(1):
        raise ValueError(f"L must be a square (N, N) matrix, found shape {tuple(L.shape)}")
    if torch.equal(L, L.mT):
        return L
    product = L * L.mT
    if bool((product < 0).any()) or not torch.equal(L != 0, L.mT != 0):
        raise ValueError(
            "L is neither symmetric nor the random-walk Laplacian I - D^-1 W of an "
            "undirected graph; build it with structlora.theory.laplacian from an "
            "edge_index holding both directions of every edge"
        )
    magnitude = torch.where(product > 0, product, 1.0).sqrt() * (product > 0)
    off_diagonal = torch.sign(L) * magnitude
    return off_diagonal - torch.diag_embed(torch.diagonal(off_diagonal)) + torch.diag_embed(
        torch.diagonal(L)
    )


def eigenvalues(L: Tensor) -> Tensor:
    r"""Eigenvalues of a Laplacian, ascending, via ``torch.linalg.eigvalsh``.

    Args:
        L: symmetric Laplacian, or :math:`L_{\mathrm{rw}}` (see :func:`symmetric_form`).

    Shapes:
        L ``(N, N)`` -> ``(N,)``.
    """
    return torch.linalg.eigvalsh(symmetric_form(L))


def kernel_tolerance(evals: Tensor) -> float:
    """Eigenvalues at or below this are numerically zero.

    ``eigvalsh`` is backward stable, so each eigenvalue is off by about
    ``eps * ||L||_2``; ``16 N eps lambda_max`` leaves a wide margin.
    """
    if evals.numel() == 0:
        return 0.0
    eps = torch.finfo(evals.dtype).eps
    return 16 * evals.numel() * eps * float(evals.abs().max())


def lambda_max(L: Tensor) -> float:
    r""":math:`\lambda_{\max}`, the largest Laplacian eigenvalue.

    Shapes:
        L ``(N, N)`` with ``N >= 1`` -> float.
    """
    if L.numel() == 0:
        raise ValueError("lambda_max needs a graph with at least one node, found L of shape (0, 0)")
    return float(eigenvalues(L)[-1])


def fiedler_value(L: Tensor) -> float:
    r"""The algebraic connectivity :math:`\lambda_2`.

    Positive iff the graph is connected (for ``"comb"``, and for ``"sym"`` /
    ``"rw"`` without isolated nodes); it sets the slowest decay rate
    :math:`|1 - \eta \lambda_2|` of smoothing.

    Shapes:
        L ``(N, N)`` with ``N >= 2`` -> float.
    """
    if L.dim() != 2 or L.size(0) < 2:
        raise ValueError(
            f"fiedler_value needs at least 2 nodes, found L of shape {tuple(L.shape)}"
        )
    return float(eigenvalues(L)[1])


def contraction_factor(L: Tensor, eta: float) -> float:
    r"""Energy contraction factor of one step :math:`x \mapsto (I - \eta L) x`.

    .. math::
        \rho(\eta) = \max_{k:\ \lambda_k > 0} |1 - \eta \lambda_k|,
        \qquad E((I - \eta L) x) \le \rho(\eta)^2 E(x).

    On a connected graph only :math:`\lambda_1 = 0` is zero, so this is
    :math:`\max_{k \ge 2} |1 - \eta \lambda_k|`. On a disconnected graph every
    component adds a zero eigenvalue; all of them are excluded here, not only
    :math:`\lambda_1`. Kernel modes (constant on each component) carry no
    energy, so excluding them keeps the bound valid and makes it informative:
    the literal :math:`\max_{k \ge 2}` would be :math:`\ge 1` on every
    disconnected graph. The same :math:`\rho` bounds how fast
    :math:`(I - \eta L)^K x` approaches its projection onto the kernel (the
    per-component means for ``"comb"``). An edgeless graph has no positive
    eigenvalue and :math:`\rho = 0` (its energy is identically zero).

    Args:
        L: Laplacian (symmetric, or :math:`L_{\mathrm{rw}}`).
        eta: step size.

    Shapes:
        L ``(N, N)`` -> float.
    """
    evals = eigenvalues(L)
    positive = evals[evals > kernel_tolerance(evals)]
    if positive.numel() == 0:
        return 0.0
    return float((1 - eta * positive).abs().max())
