r"""The variational-IB estimator (closed-form KL bound of the Gaussian gate)."""
from __future__ import annotations

from torch import Tensor

from ..adapters.layer import GatedLoRALayer
from .base import Bottleneck, gate_terms, zero_penalty
from .gaussian_gate import GaussianGate
from .registry import register_bottleneck


@register_bottleneck("vib")
class VIBBottleneck(Bottleneck):
    r"""Variational information bottleneck over LoRA directions (VIBNet-style).

    .. math::
        L_{IB} = \frac{1}{|J|} \sum_{(i, j) \in J} \tfrac12
                 \log\Bigl(1 + \frac{\mu_{ij}^2}{\sigma_{ij}^2}\Bigr)
        \;\ge\; \text{a bound on } I(Z; X) \text{ per direction}

    over the un-pruned directions :math:`J` of all adapters, each with a
    :class:`GaussianGate`. Needs neither batch statistics nor labels; cost
    :math:`O(r)` per adapter. See ``docs/bottleneck/vib.md``.

    Args:
        init_mean (float, optional): initial :math:`\mu`. (default: ``0.95``)
        log_sigma2_init (float, optional): initial :math:`\log\sigma^2`. (default: ``-1.0``)
        threshold (float, optional): :math:`\theta` of the eval gate. (default: ``3.0``)
    """

    def __init__(self, init_mean: float = 0.95, log_sigma2_init: float = -1.0, threshold: float = 3.0):
        GaussianGate(1, init_mean, log_sigma2_init, threshold)  # validates now, not at the first adapter
        self.init_mean, self.log_sigma2_init, self.threshold = init_mean, log_sigma2_init, threshold

    def make_gate(self, r: int, name: str | None = None) -> GaussianGate:
        return GaussianGate(r, self.init_mean, self.log_sigma2_init, self.threshold)

    def penalty(self, layers: dict[str, GatedLoRALayer], labels: Tensor | None = None) -> Tensor:
        kl = gate_terms(self.name, layers, "kl", "a GaussianGate")
        return kl.mean() if kl.numel() else zero_penalty(layers)

    def extra_repr(self) -> str:
        return (f"init_mean={self.init_mean:g}, log_sigma2_init={self.log_sigma2_init:g}, "
                f"threshold={self.threshold:g}")
