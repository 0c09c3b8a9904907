r"""The gate slot of a gated LoRA layer.

A gate maps the ``r`` per-direction activations :math:`z = A x` to gated ones
:math:`\tilde z = m \odot z` with :math:`m \in [0,1]^r`. During training the
mask may be sampled; :meth:`Gate.mask` is the deterministic eval mask
:math:`\bar m` that feeds merge, fold and export.

The adapter layer relies only on this contract, so any ``nn.Module``
subclassing :class:`Gate` fits the slot. Directions fixed by :meth:`prune`
must stay exactly zero in both the training and the eval path.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class Gate(nn.Module):
    r"""Base class of direction gates.

    Subclasses implement :meth:`open_mask` (the eval mask before pruning) and,
    if the training mask differs from it, :meth:`sample`.

    Args:
        r (int): number of rank-one directions.

    Shapes:
        - input ``z``: :math:`(*, r)`
        - output: :math:`(*, r)`
    """

    def __init__(self, r: int):
        super().__init__()
        if r <= 0:
            raise ValueError(f"{type(self).__name__}: r must be a positive integer, got r={r}")
        self.r = r
        self.register_buffer("pruned", torch.zeros(r, dtype=torch.bool))

    def open_mask(self) -> Tensor:
        """The deterministic mask before pruning, shape (r,), values in [0, 1]."""
        raise NotImplementedError(f"{type(self).__name__} must implement open_mask()")

    def sample(self, z: Tensor) -> Tensor:
        """Training-time gating of ``z``; defaults to the deterministic mask."""
        return z * self.open_mask().to(z.dtype)

    def keep(self) -> Tensor:
        """A (r,) float mask that is 0 on pruned directions and 1 elsewhere."""
        return (~self.pruned).to(torch.get_default_dtype())

    def mask(self) -> Tensor:
        r"""The eval mask :math:`\bar m \in [0,1]^r`, pruned directions at 0."""
        m = self.open_mask()
        return torch.where(self.pruned.to(m.device), torch.zeros_like(m), m)

    def forward(self, z: Tensor) -> Tensor:
        gated = self.sample(z) if self.training else z * self.open_mask().to(z.dtype)
        # multiplying always is cheaper than asking pruned.any(): that forces a device sync per layer
        return gated * (~self.pruned).to(gated.dtype)

    @torch.no_grad()
    def prune(self, directions: Tensor | list[int]) -> None:
        """Fix ``directions`` (indices or a boolean mask of shape (r,)) to 0 for good."""
        idx = torch.as_tensor(directions, device=self.pruned.device)
        if idx.dtype == torch.bool:
            if idx.shape != (self.r,):
                raise ValueError(
                    f"{type(self).__name__}.prune: boolean mask must have shape ({self.r},), "
                    f"got {tuple(idx.shape)}"
                )
            self.pruned |= idx
            return
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.r):
            raise ValueError(
                f"{type(self).__name__}.prune: direction indices must lie in [0, {self.r}), "
                f"got {idx.tolist()}"
            )
        self.pruned[idx.long()] = True

    def effective_rank(self) -> int:
        """Number of directions whose eval mask is non-zero."""
        return int((self.mask() > 0).sum())

    def penalty_inputs(self) -> dict[str, Tensor]:
        """Tensors an IB estimator may need from this gate (none by default)."""
        return {}

    def extra_repr(self) -> str:
        return f"r={self.r}"


class IdentityGate(Gate):
    r"""The trivial gate :math:`m \equiv 1`: the layer is vanilla LoRA."""

    def open_mask(self) -> Tensor:
        return torch.ones(self.r, device=self.pruned.device)

    def forward(self, z: Tensor) -> Tensor:
        return z * (~self.pruned).to(z.dtype)  # exact: 1.0 * z == z
