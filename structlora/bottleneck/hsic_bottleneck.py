r"""The HSIC-bottleneck estimator on pooled per-adapter batch statistics."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..adapters.layer import GatedLoRALayer
from .base import Bottleneck, zero_penalty
from .domain import check_open_unit
from .hsic import check_batch_size, gaussian_kernel, linear_kernel, nhsic
from .labels import label_features
from .registry import register_bottleneck
from .sigmoid_gate import SigmoidGate


@register_bottleneck("hsic")
class HSICBottleneck(Bottleneck):
    r"""HSIC bottleneck per adapter, after `Ma et al. (2020)
    <https://arxiv.org/abs/1908.01580>`_, with CKA-normalised HSIC.

    .. math::
        L_{IB} = \frac1N \sum_{i=1}^{N} \Bigl[
            \mathrm{nHSIC}(K_{Z_i}, K_{X_i}) - \gamma\, \mathrm{nHSIC}(K_{Z_i}, L_Y) \Bigr]

    :math:`Z_i` (token-mean of the gated activations :math:`m \odot A_i x`) and
    :math:`X_i` (token-mean of the input, detached) are what adapter :math:`i`
    recorded in its last training forward; :math:`K` are Gaussian kernels with
    the median heuristic, :math:`L_Y = YY^\top` is linear on
    :func:`~structlora.bottleneck.labels.label_features`. Cost
    :math:`O(n^2 (r + d_{in}))` per adapter for a batch of :math:`n`. The
    gradient reaches the gate and ``lora_A``, not ``lora_B`` (it acts before
    :math:`B`). See ``docs/bottleneck/hsic.md``.

    Args:
        gamma (float, optional): weight :math:`\gamma \ge 0` of the label term. (default: ``1.0``)
        init (float, optional): initial value of the :class:`SigmoidGate`. (default: ``0.95``)

    Shapes:
        - ``labels``: :math:`(n,)` class ids or targets, or :math:`(n, T)` token ids
          with ``-100`` ignored
        - recorded ``z``: :math:`(n, r)`, ``x``: :math:`(n, d_{in})`
    """

    needs_stats = True
    needs_labels = True

    def __init__(self, gamma: float = 1.0, init: float = 0.95):
        if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"HSICBottleneck: gamma={gamma!r} is invalid; use a finite number >= 0")
        self.gamma = float(gamma)
        self.init = check_open_unit(type(self).__name__, "init", init)

    def make_gate(self, r: int, name: str | None = None) -> SigmoidGate:
        return SigmoidGate(r, self.init)

    def penalty(self, layers: dict[str, GatedLoRALayer], labels: Tensor | None = None) -> Tensor:
        if labels is None:
            raise ValueError(
                f"the {self.name!r} estimator needs labels: call penalty(layers, labels) with the "
                "batch labels (class ids (n,) or token ids (n, T)), or pick an estimator without "
                "labels such as 'vib'"
            )
        check_batch_size(labels.shape[0])
        if not layers:
            return zero_penalty(layers)
        device = next(iter(layers.values())).lora_A.device
        label_kernel = linear_kernel(label_features(labels.to(device)).float())  # (n, n)
        terms = [self.adapter_penalty(name, layer, label_kernel) for name, layer in layers.items()]
        return torch.stack(terms).mean()

    def adapter_penalty(self, name: str, layer: GatedLoRALayer, label_kernel: Tensor) -> Tensor:
        r""":math:`\mathrm{nHSIC}(Z, X) - \gamma\,\mathrm{nHSIC}(Z, Y)` for one adapter."""
        z, x = self._recorded(name, layer, label_kernel.shape[0])
        k_z = gaussian_kernel(z.float())  # (n, n)
        k_x = gaussian_kernel(x.float())  # (n, n)
        return nhsic(k_z, k_x) - self.gamma * nhsic(k_z, label_kernel)

    def _recorded(self, name: str, layer: GatedLoRALayer, n: int) -> tuple[Tensor, Tensor]:
        if not layer.training:
            raise ValueError(
                f"the {self.name!r} estimator is a training-time penalty, but adapter {name!r} is in "
                "eval mode, so it recorded nothing for this batch; call penalty() after a forward "
                "in training mode (model.train()), and skip it in evaluation"
            )
        stats = layer.recorded
        if "z" not in stats or "x" not in stats:
            raise ValueError(
                f"the {self.name!r} estimator found no recorded statistics on adapter {name!r}: set "
                "layer.recording = True on every adapter and run the forward pass in training mode "
                "(model.train()) before calling penalty()"
            )
        if stats["z"].shape[0] != n:
            raise ValueError(
                f"the {self.name!r} estimator got labels for {n} examples but adapter {name!r} "
                f"recorded {stats['z'].shape[0]}; pass the labels of the batch of the last forward"
            )
        return stats["z"], stats["x"]

    def extra_repr(self) -> str:
        return f"gamma={self.gamma:g}, init={self.init:g}"
