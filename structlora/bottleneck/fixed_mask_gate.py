r"""A non-learnable 0/1 gate for the random and top-k baselines."""
from __future__ import annotations

import torch
from torch import Tensor

from ..adapters.gate import Gate
from .domain import check_mask
from .registry import register_gate


@register_gate("fixed-mask")
class FixedMaskGate(Gate):
    r"""A fixed mask that only its filter (or the user) re-sets; it has no parameters.

    .. math::
        \tilde z = m \odot z, \qquad m \in [0, 1]^r \ \text{fixed (usually } \{0, 1\}^r)

    Args:
        r (int): number of rank-one directions.
        keep (Tensor or list[float], optional): the mask, shape :math:`(r,)`, values
            in :math:`[0, 1]`; all ones (vanilla LoRA) when None. (default: ``None``)

    Shapes:
        - input ``z``: :math:`(*, r)`; output: :math:`(*, r)`
        - ``fixed_mask``: :math:`(r,)` buffer (saved with checkpoints)
    """

    def __init__(self, r: int, keep: Tensor | list[float] | None = None):
        super().__init__(r)
        self.register_buffer("fixed_mask", torch.ones(r))
        if keep is not None:
            self.set_mask(keep)

    @torch.no_grad()
    def set_mask(self, keep: Tensor | list[float]) -> None:
        """Replace the mask; raises ``ValueError`` for a wrong shape or a value outside [0, 1]."""
        m = check_mask(type(self).__name__, keep, self.r)
        self.fixed_mask.copy_(m.to(self.fixed_mask.device))

    @torch.no_grad()
    def keep_only(self, directions: Tensor | list[int]) -> None:
        """Mask 1 on ``directions`` (indices), 0 elsewhere."""
        idx = torch.as_tensor(directions, dtype=torch.long)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.r):
            raise ValueError(
                f"{type(self).__name__}.keep_only: direction indices must lie in [0, {self.r}), "
                f"got {idx.tolist()}"
            )
        m = torch.zeros(self.r)
        m[idx] = 1.0
        self.set_mask(m)

    def open_mask(self) -> Tensor:
        return self.fixed_mask

    def extra_repr(self) -> str:
        return f"r={self.r}, kept={int((self.fixed_mask > 0).sum())}"
