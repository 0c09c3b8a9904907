r"""The :math:`L_0` estimator: expected number of open hard-concrete gates."""
from __future__ import annotations

from torch import Tensor

from ..adapters.layer import GatedLoRALayer
from .base import Bottleneck, gate_terms, zero_penalty
from .hard_concrete_gate import HardConcreteGate
from .registry import register_bottleneck


@register_bottleneck("l0")
class L0Bottleneck(Bottleneck):
    r"""Expected :math:`L_0` norm of the gates (Louizos et al. 2018), a sparsity
    prior rather than an information bound, kept as a comparison for ``vib``.

    .. math::
        L_{IB} = \frac{1}{|J|} \sum_{(i, j) \in J}
                 \mathrm{sigmoid}\bigl(\log a_{ij} - \beta \log(-\gamma/\zeta)\bigr)

    over the un-pruned directions :math:`J`, each with a :class:`HardConcreteGate`.
    Needs neither batch statistics nor labels; cost :math:`O(r)` per adapter.

    Args:
        init (float, optional): initial eval gate. (default: ``0.95``)
        temperature (float, optional): :math:`\beta`. (default: ``2/3``)
        limits (tuple[float, float], optional): :math:`(\gamma, \zeta)`. (default: ``(-0.1, 1.1)``)
    """

    def __init__(self, init: float = 0.95, temperature: float = 2.0 / 3.0,
                 limits: tuple[float, float] = (-0.1, 1.1)):
        HardConcreteGate(1, init, temperature, limits)  # validates now, not at the first adapter
        self.init, self.temperature, self.limits = init, temperature, tuple(limits)

    def make_gate(self, r: int, name: str | None = None) -> HardConcreteGate:
        return HardConcreteGate(r, self.init, self.temperature, self.limits)

    def penalty(self, layers: dict[str, GatedLoRALayer], labels: Tensor | None = None) -> Tensor:
        l0 = gate_terms(self.name, layers, "l0", "a HardConcreteGate")
        return l0.mean() if l0.numel() else zero_penalty(layers)

    def extra_repr(self) -> str:
        return f"init={self.init:g}, temperature={self.temperature:g}, limits={self.limits}"
