r"""The Hilbert-Schmidt independence criterion and its normalised (CKA) form.

.. math::
    \mathrm{HSIC}(K, L) = \frac{\mathrm{tr}(K H L H)}{(n-1)^2}, \qquad
    H = I - \tfrac1n \mathbf 1 \mathbf 1^\top

    \mathrm{nHSIC}(K, L) = \frac{\mathrm{HSIC}(K, L)}
                               {\sqrt{\mathrm{HSIC}(K, K)\,\mathrm{HSIC}(L, L)}} \in [0, 1]

(the biased estimator of `Gretton et al. (2005)
<https://doi.org/10.1007/11564089_7>`_, normalised as in CKA, `Kornblith et al.
(2019) <https://arxiv.org/abs/1905.00414>`_). Kernels: Gaussian with the median
heuristic for continuous features, linear for label features. Every function
costs :math:`O(n^2 d)` for :math:`n` examples of dimension :math:`d`.
"""
from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-12  # floor of the bandwidth and of the normaliser: a constant feature gives nHSIC 0, not NaN


def check_batch_size(n: int) -> None:
    if n < 2:
        raise ValueError(
            f"HSIC needs at least 2 examples in a batch, got {n}; use a larger batch "
            "(the estimate improves with n) or an estimator without batch statistics ('vib', 'l0')"
        )


def pairwise_sq_dists(x: Tensor) -> Tensor:
    r""":math:`D_{ab} = \lVert x_a - x_b \rVert^2`, symmetric, exactly 0 on the diagonal.

    Shapes:
        x ``(n, d)`` -> ``(n, n)``.
    """
    sq = x.pow(2).sum(-1)  # (n,)
    # Gram form: O(n^2 d) time, no (n, n, d) tensor; clamp the rounding below 0
    d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)  # (n, n)
    d2 = 0.5 * (d2 + d2.T)  # matmul rounding is not symmetric bit for bit
    return d2 * (1.0 - torch.eye(x.shape[0], dtype=x.dtype, device=x.device))


def median_bandwidth(d2: Tensor) -> Tensor:
    r"""Median heuristic :math:`\sigma^2 = \mathrm{median}_{a \ne b} D_{ab}`, detached, at least ``EPS``."""
    n = d2.shape[0]
    off = d2.detach()[~torch.eye(n, dtype=torch.bool, device=d2.device)]
    return off.median().clamp_min(EPS)


def gaussian_kernel(x: Tensor, sigma2: Tensor | float | None = None) -> Tensor:
    r"""Gaussian kernel :math:`K_{ab} = \exp(-\lVert x_a - x_b \rVert^2 / (2\sigma^2))`.

    Args:
        x: features, one row per example.
        sigma2: bandwidth :math:`\sigma^2`; the median heuristic over the detached
            pairwise squared distances when None (scale-free: ``K(c x) = K(x)``).

    Shapes:
        x ``(n, d)`` -> ``(n, n)``.
    """
    check_batch_size(x.shape[0])
    d2 = pairwise_sq_dists(x)
    if sigma2 is None:
        sigma2 = median_bandwidth(d2)
    return torch.exp(-d2 / (2.0 * sigma2))


def linear_kernel(y: Tensor) -> Tensor:
    r"""Linear kernel :math:`L = Y Y^\top`.

    Shapes:
        y ``(n, c)`` -> ``(n, n)``.
    """
    return y @ y.T


def center(k: Tensor) -> Tensor:
    r""":math:`H K H`: subtract row and column means, add back the grand mean.

    Shapes:
        k ``(n, n)`` -> ``(n, n)``.
    """
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def _check_kernels(k: Tensor, l: Tensor, fn: str) -> None:
    check_batch_size(k.shape[0])
    if l.shape != k.shape:
        raise ValueError(f"{fn}: kernels must have the same shape, got {tuple(k.shape)} and {tuple(l.shape)}")


def _centred_hsic(kc: Tensor, lc: Tensor) -> Tensor:
    """HSIC of two already centred kernels."""
    return (kc * lc).sum() / (kc.shape[0] - 1) ** 2


def hsic(k: Tensor, l: Tensor) -> Tensor:
    r"""Biased HSIC :math:`\mathrm{tr}(KHLH)/(n-1)^2`, computed as
    :math:`\langle HKH, HLH \rangle_F / (n-1)^2` (equal since :math:`H^2 = H`;
    symmetric in ``k``, ``l`` bit for bit, and :math:`\ge 0` for PSD kernels).

    Shapes:
        k, l ``(n, n)`` -> scalar.
    """
    _check_kernels(k, l, "hsic")
    return _centred_hsic(center(k), center(l))


def nhsic(k: Tensor, l: Tensor) -> Tensor:
    r"""Normalised HSIC (CKA), in :math:`[0, 1]` for PSD kernels; 0 if a kernel is constant.

    Shapes:
        k, l ``(n, n)`` -> scalar.
    """
    _check_kernels(k, l, "nhsic")
    kc, lc = center(k), center(l)  # each kernel centred once, not once per HSIC term
    denom = (_centred_hsic(kc, kc) * _centred_hsic(lc, lc)).clamp_min(EPS).sqrt()  # no inf gradient at 0
    return _centred_hsic(kc, lc) / denom
