r"""Laplacian smoothing and denoising operators on graph signals.

.. math::
    x' = (I - \eta L) x \qquad \text{(one smoothing / gradient step on } \tfrac12 E\text{)},

    \hat x = (I + c L)^{-1} x = \arg\min_z \lVert z - x \rVert^2 + c\, \mathrm{tr}(z^\top L z).

For :math:`0 < \eta \le 2 / \lambda_{\max}` every mode factor satisfies
:math:`|1 - \eta \lambda_k| \le 1`, so the step never raises the drift energy
(see ``docs/theory.md``). These functions do not check ``eta`` themselves,
because the tightness of the bound is part of what the tests exercise; call
:func:`check_step_size` where a user picks ``eta``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .spectrum import lambda_max


def max_step_size(L: Tensor) -> float:
    r"""The largest safe step :math:`2 / \lambda_{\max}` (``inf`` for an edgeless graph)."""
    top = lambda_max(L)
    return 2.0 / top if top > 0 else float("inf")


def check_step_size(L: Tensor, eta: float) -> None:
    r"""Raise ``ValueError`` unless :math:`0 < \eta \le 2 / \lambda_{\max}(L)`.

    Outside this range the top eigenvector is amplified by
    :math:`|1 - \eta \lambda_{\max}| > 1` and smoothing raises the energy.

    Args:
        L: Laplacian (symmetric, or :math:`L_{\mathrm{rw}}`).
        eta: step size to check.

    Shapes:
        L ``(N, N)``.
    """
    bound = max_step_size(L)
    # eigvalsh is accurate to a few ulps of lambda_max, so a step equal to the bound
    # computed in another order must not be rejected.
    slack = 1 + 8 * torch.finfo(L.dtype).eps
    if not 0 < eta <= bound * slack:
        raise ValueError(
            f"eta={eta} is outside (0, 2/lambda_max] = (0, {bound:.4g}]; larger steps "
            f"amplify the top eigenvector instead of smoothing it. Pick 0 < eta <= "
            f"{bound:.4g} (1/lambda_max = {bound / 2:.4g} damps every mode), or use "
            "normalization='sym', for which any 0 < eta <= 1 is safe"
        )


def smooth_step(x: Tensor, L: Tensor, eta: float) -> Tensor:
    r"""One smoothing step :math:`x' = (I - \eta L) x = x - \eta L x`.

    Args:
        x: node features.
        L: Laplacian.
        eta: step size; safe for :math:`0 \le \eta \le 2 / \lambda_{\max}`.

    Shapes:
        x ``(N, F)`` or ``(N,)``, L ``(N, N)`` -> same shape as x.
    """
    return x - eta * (L @ x)


def smooth(x: Tensor, L: Tensor, eta: float, steps: int = 1) -> Tensor:
    r"""``steps`` smoothing steps, :math:`x_K = (I - \eta L)^K x`.

    Cost O(K N^2 F); the power of :math:`I - \eta L` is never formed.

    Args:
        x: node features.
        L: Laplacian.
        eta: step size; safe for :math:`0 \le \eta \le 2 / \lambda_{\max}`.
        steps: number of steps :math:`K \ge 0` (default 1).

    Shapes:
        x ``(N, F)`` or ``(N,)``, L ``(N, N)`` -> same shape as x.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, found {steps!r}")
    for _ in range(steps):
        x = smooth_step(x, L, eta)
    return x


def denoise(x: Tensor, L: Tensor, c: float) -> Tensor:
    r"""Graph denoiser :math:`\hat x = (I + c L)^{-1} x`, via ``torch.linalg.solve``.

    The minimiser of :math:`\lVert z - x \rVert^2 + c\,\mathrm{tr}(z^\top L z)`;
    mode :math:`k` is scaled by :math:`1 / (1 + c \lambda_k) \in (0, 1]`, so the
    drift energy never rises.

    Args:
        x: node features.
        L: Laplacian.
        c: smoothness weight, :math:`c \ge 0` (``c = 0`` returns ``x``).

    Shapes:
        x ``(N, F)`` or ``(N,)``, L ``(N, N)`` -> same shape as x.
    """
    if not c >= 0:
        raise ValueError(f"c={c} must be >= 0: a negative weight rewards roughness")
    eye = torch.eye(L.size(0), dtype=L.dtype, device=L.device)
    return torch.linalg.solve(eye + c * L, x)
