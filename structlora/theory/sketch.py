r"""Johnson–Lindenstrauss sketches of weight updates.

A full update :math:`\Delta W \in \mathbb{R}^{d_{out} \times d_{in}}` is far too
big to be a node feature. With independent Gaussian :math:`P \in
\mathbb{R}^{d_{out} \times k}`, :math:`Q \in \mathbb{R}^{d_{in} \times k}`,
entries :math:`\mathcal{N}(0, 1/k)`, the sketch

.. math::
    s(\Delta W) = \mathrm{vec}(P^\top \Delta W Q) \in \mathbb{R}^{k^2}

preserves Frobenius inner products in expectation:

.. math::
    \mathbb{E}\,\langle s(A), s(B) \rangle
    = \mathbb{E}\,\mathrm{tr}(A^\top P P^\top B Q Q^\top)
    = \mathrm{tr}(A^\top\, \mathbb{E}[P P^\top]\, B\, \mathbb{E}[Q Q^\top])
    = \langle A, B \rangle_F,

because :math:`P` and :math:`Q` are independent and
:math:`\mathbb{E}[P P^\top] = k \cdot \tfrac1k I = I`. No further scaling is
needed. The sketch is linear, so it also preserves drift energy in
expectation, and its relative error falls like :math:`1/\sqrt{k}` (variance
:math:`a/k + b/k^2`; see ``docs/theory.md``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def jl_projection(
    d: int,
    k: int,
    generator: torch.Generator,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Gaussian projection with i.i.d. :math:`\mathcal{N}(0, 1/k)` entries.

    .. math::
        P_{ab} \sim \mathcal{N}(0, 1/k), \qquad \mathbb{E}[P P^\top] = I_d

    Args:
        d: input dimension (``d_out`` for :math:`P`, ``d_in`` for :math:`Q`).
        k: sketch dimension.
        generator: seeded generator; the same seed gives the same matrix.
        dtype: floating dtype, ``None`` for the default dtype (default ``None``).
        device: ``None`` for the generator's device (default ``None``).

    Shapes:
        -> P ``(d, k)``.
    """
    if d < 1 or k < 1:
        raise ValueError(f"jl_projection needs d >= 1 and k >= 1, found d={d}, k={k}")
    device = generator.device if device is None else device
    P = torch.randn((d, k), generator=generator, dtype=dtype, device=device)
    return P / math.sqrt(k)


def _check_projections(d_out: int, d_in: int, P: Tensor, Q: Tensor) -> None:
    if P.dim() < 2 or P.size(-2) != d_out or Q.dim() < 2 or Q.size(-2) != d_in:
        raise ValueError(
            f"an update of shape (d_out, d_in) = ({d_out}, {d_in}) needs P of shape "
            f"({d_out}, k) and Q of shape ({d_in}, k), found P {tuple(P.shape)} and "
            f"Q {tuple(Q.shape)}; use one (P, Q) pair per weight shape"
        )


def sketch_dense(delta: Tensor, P: Tensor, Q: Tensor) -> Tensor:
    r"""Sketch of a dense update, :math:`\mathrm{vec}(P^\top \Delta W Q)`.

    .. math::
        \mathbb{E}\,\langle s(\Delta W_i), s(\Delta W_j) \rangle
        = \langle \Delta W_i, \Delta W_j \rangle_F

    Leading batch dimensions broadcast, as in ``torch.matmul``: a stack of
    updates (one per node) with one ``(P, Q)``, or one update with a stack of
    independent ``(P, Q)`` draws.

    Args:
        delta: update :math:`\Delta W`.
        P: projection of the output side, from :func:`jl_projection`.
        Q: projection of the input side, from :func:`jl_projection`.

    Shapes:
        delta ``(..., d_out, d_in)``, P ``(..., d_out, k)``, Q ``(..., d_in, k)``
        -> ``(..., k*k)``.
    """
    if delta.dim() < 2:
        raise ValueError(f"delta must be (..., d_out, d_in), found shape {tuple(delta.shape)}")
    _check_projections(delta.size(-2), delta.size(-1), P, Q)
    return (P.mT @ delta @ Q).flatten(-2)


def sketch_lowrank(
    lora_B: Tensor,
    lora_A: Tensor,
    P: Tensor,
    Q: Tensor,
    scaling: float = 1.0,
    gate: Tensor | None = None,
) -> Tensor:
    r"""Sketch of a low-rank update, exact and never forming :math:`\Delta W`.

    .. math::
        s = \mathrm{vec}\big((P^\top B)\, \mathrm{diag}(m)\, (A Q)\big) \cdot s_{\mathrm{lora}}
          = \mathrm{vec}(P^\top \Delta W Q), \qquad
        \Delta W = s_{\mathrm{lora}}\, B\, \mathrm{diag}(m)\, A

    Cost O(k r (d_in + d_out)).

    Args:
        lora_B: :math:`B`.
        lora_A: :math:`A`.
        P: output-side projection.
        Q: input-side projection.
        scaling: LoRA scaling :math:`\alpha / r` (default 1.0).
        gate: per-direction gate :math:`m`, ``None`` for all ones (default ``None``).

    Shapes:
        lora_B ``(d_out, r)``, lora_A ``(r, d_in)``, gate ``(r,)``,
        P ``(d_out, k)``, Q ``(d_in, k)`` -> ``(k*k,)``.
    """
    if lora_B.dim() != 2 or lora_A.dim() != 2 or lora_B.size(1) != lora_A.size(0):
        raise ValueError(
            f"lora_B (d_out, r) and lora_A (r, d_in) must share r, found "
            f"{tuple(lora_B.shape)} and {tuple(lora_A.shape)}"
        )
    _check_projections(lora_B.size(0), lora_A.size(1), P, Q)
    left = P.mT @ lora_B  # (k, r)
    if gate is not None:
        left = left * gate
    return (left @ (lora_A @ Q)).flatten() * scaling
