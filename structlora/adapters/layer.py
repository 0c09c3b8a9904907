r"""The gated LoRA layer (DESIGN.md, "Notation").

.. math::
    h = W_0 x + s \, B \, \mathrm{diag}(m) \, A x, \qquad s = \alpha / r

It wraps a ``base_layer`` (``nn.Linear`` or GPT-2's ``Conv1D``) instead of
subclassing it, and has a single :meth:`GatedLoRALayer.delta_weight` feeding
merge, unmerge, fold and export.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from transformers.pytorch_utils import Conv1D

from .gate import Gate, IdentityGate

SUPPORTED_LAYERS = (nn.Linear, Conv1D)


def layer_shape(base_layer: nn.Module) -> tuple[int, int]:
    """(d_in, d_out) of a supported base layer; raises for anything else."""
    if isinstance(base_layer, nn.Linear):
        return base_layer.in_features, base_layer.out_features
    if isinstance(base_layer, Conv1D):
        d_in, d_out = base_layer.weight.shape  # Conv1D stores W transposed: (d_in, d_out)
        return d_in, d_out
    raise TypeError(
        f"structlora cannot adapt a layer of type {type(base_layer).__name__}; "
        f"supported: {', '.join(t.__name__ for t in SUPPORTED_LAYERS)}. "
        "Exclude it with exclude_modules or pick other target_modules."
    )


class GatedLoRALayer(nn.Module):
    r"""LoRA with a gate over its rank-one directions.

    .. math::
        h = W_0 x + s \, B \, g(A\,\mathrm{dropout}(x)), \qquad
        \Delta\tilde W = s \, B \, \mathrm{diag}(\bar m) \, A

    where :math:`g` is the gate (training mask possibly sampled) and
    :math:`\bar m` its deterministic eval mask.

    Args:
        base_layer (nn.Module): the frozen ``nn.Linear`` or ``Conv1D`` to adapt.
        r (int): rank, ``1 <= r <= min(d_in, d_out)``.
        alpha (float): scaling numerator (default ``2 * r`` when None).
        dropout (float, optional): dropout on the adapter input. (default: ``0.0``)
        use_rslora (bool, optional): scale by ``alpha / sqrt(r)``. (default: ``False``)
        gate (Gate, optional): the gate; :class:`IdentityGate` (plain LoRA) if None.

    Shapes:
        - input: :math:`(*, d_{in})`
        - output: :math:`(*, d_{out})`
        - ``lora_A``: :math:`(r, d_{in})`, ``lora_B``: :math:`(d_{out}, r)`
    """

    def __init__(
        self,
        base_layer: nn.Module,
        r: int,
        alpha: float | None = None,
        dropout: float = 0.0,
        use_rslora: bool = False,
        gate: Gate | None = None,
    ):
        super().__init__()
        if isinstance(base_layer, GatedLoRALayer):
            raise ValueError("this layer is already a GatedLoRALayer; wrap the base model only once")
        self.in_features, self.out_features = layer_shape(base_layer)
        if not 1 <= r <= min(self.in_features, self.out_features):
            raise ValueError(
                f"r={r} is invalid for a layer of shape d_in={self.in_features}, "
                f"d_out={self.out_features}: use 1 <= r <= {min(self.in_features, self.out_features)}"
            )
        self.base_layer = base_layer
        self.fan_in_fan_out = isinstance(base_layer, Conv1D)
        self.r = r
        self.alpha = float(2 * r if alpha is None else alpha)
        self.use_rslora = use_rslora
        self.scaling = self.alpha / (math.sqrt(r) if use_rslora else r)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        w = base_layer.weight
        self.lora_A = nn.Parameter(torch.empty(r, self.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.empty(self.out_features, r, dtype=w.dtype, device=w.device))
        self.gate = gate if gate is not None else IdentityGate(r)
        if self.gate.r != r:
            raise ValueError(f"gate has r={self.gate.r} but the layer has r={r}")
        self.merged = False
        self.recording = False
        self.token_mask: Tensor | None = None
        self.recorded: dict[str, Tensor] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # As PEFT / loralib: A Kaiming-uniform, B zero, so the update starts at 0.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    @property
    def weight(self) -> Tensor:
        """The base weight, so code reading ``module.weight`` keeps working."""
        return self.base_layer.weight

    def delta_weight(self, mask: Tensor | None = None) -> Tensor:
        r""":math:`\Delta\tilde W = s B \mathrm{diag}(\bar m) A`, shape (d_out, d_in).

        Uses the gate's eval mask unless ``mask`` (shape (r,)) is given.
        """
        m = self.gate.mask() if mask is None else mask
        m = m.to(device=self.lora_A.device, dtype=self.lora_A.dtype)
        return self.scaling * (self.lora_B * m) @ self.lora_A  # (d_out, r) @ (r, d_in)

    def _base_weight_view(self) -> Tensor:
        """Base weight as (d_out, d_in) regardless of Conv1D's transposed storage."""
        w = self.base_layer.weight.data
        return w.T if self.fan_in_fan_out else w

    @torch.no_grad()
    def merge(self, safe: bool = True) -> None:
        """Add the eval-mask update into the base weight (explicit, never on ``.eval()``)."""
        if self.merged:
            return
        delta = self.delta_weight().to(self.base_layer.weight.dtype)
        if safe:
            merged = self._base_weight_view() + delta
            if not torch.isfinite(merged).all():
                raise ValueError(
                    "refusing to merge: the merged weight would contain NaN or inf; "
                    "check lora_A / lora_B for non-finite values (the base weight is unchanged)"
                )
        self._base_weight_view().add_(delta)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update merged by :meth:`merge`."""
        if not self.merged:
            return
        self._base_weight_view().sub_(self.delta_weight().to(self.base_layer.weight.dtype))
        self.merged = False

    def forward(self, x: Tensor) -> Tensor:
        result = self.base_layer(x)
        if self.merged:
            return result
        z = self.lora_dropout(x).to(self.lora_A.dtype) @ self.lora_A.T  # (*, r)
        gated = self.gate(z)  # (*, r)
        if self.recording and self.training:
            self._record(x, gated)
        return result + (gated @ self.lora_B.T * self.scaling).to(result.dtype)

    def _record(self, x: Tensor, gated: Tensor) -> None:
        """Token-pooled statistics for IB estimators: z (n, r) and x (n, d_in), detached x."""
        self.recorded = {"z": _token_mean(gated, self.token_mask), "x": _token_mean(x.detach(), self.token_mask)}

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
            f"scaling={self.scaling:g}, merged={self.merged}"
        )


def _token_mean(t: Tensor, token_mask: Tensor | None) -> Tensor:
    """Mean over token positions: (n, T, d) -> (n, d); (n, d) is returned as is."""
    if t.dim() == 2:
        return t
    t = t.reshape(t.shape[0], -1, t.shape[-1])  # (n, T, d)
    if token_mask is None or token_mask.shape[:2] != t.shape[:2]:
        return t.mean(dim=1)
    w = token_mask.to(t.dtype)  # (n, T)
    # a batched product: (t * w) would materialise an (n, T, d) copy of every adapted layer's input
    return torch.einsum("ntd,nt->nd", t, w) / w.sum(dim=1, keepdim=True).clamp_min(1.0)
