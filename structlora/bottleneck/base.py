r"""The strategy interface every IB estimator and baseline filter implements.

A strategy decides which gate each adapter gets (:meth:`Bottleneck.make_gate`),
what penalty joins the task loss (:meth:`Bottleneck.penalty`, the
:math:`\beta \cdot L_{IB}` term of DESIGN.md) and what periodic work it does
(:meth:`Bottleneck.step`). The task cross-entropy is the label term
:math:`-I(Z; Y)`, so a strategy only supplies the compression side.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..adapters.gate import Gate, IdentityGate
from ..adapters.layer import GatedLoRALayer


class Bottleneck:
    r"""Base class of IB estimators and baseline filters.

    Attributes:
        name (str): the registry name (set by ``@register_bottleneck``).
        needs_stats (bool): the adapters must record their pooled ``z`` / ``x``
            (``layer.recording = True``, forward in training mode) before :meth:`penalty`.
        needs_labels (bool): :meth:`penalty` needs the batch labels.
    """

    name: str = ""
    needs_stats: bool = False
    needs_labels: bool = False

    def make_gate(self, r: int, name: str | None = None) -> Gate:
        """The gate of an adapter of rank ``r`` at module path ``name`` (plain LoRA by default)."""
        return IdentityGate(r)

    def penalty(self, layers: dict[str, GatedLoRALayer], labels: Tensor | None = None) -> Tensor:
        """The scalar IB penalty; a 0-dim zero for strategies without one."""
        return zero_penalty(layers)

    def step(self, layers: dict[str, GatedLoRALayer], step: int) -> None:
        """Periodic work after an optimizer step (default: none)."""

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def zero_penalty(layers: dict[str, GatedLoRALayer]) -> Tensor:
    """A 0-dim zero on the adapters' device."""
    device = next(iter(layers.values())).lora_A.device if layers else None
    return torch.zeros((), device=device)


def gate_terms(owner: str, layers: dict[str, GatedLoRALayer], key: str, gate_hint: str) -> Tensor:
    """Concatenate the per-direction ``key`` term of every gate, pruned directions left out.

    Pruned directions are fixed at 0 and carry no information, so they do not
    count in the average. Raises if a gate does not provide ``key``.
    """
    terms = []
    for name, layer in layers.items():
        inputs = layer.gate.penalty_inputs()
        if key not in inputs:
            raise ValueError(
                f"the {owner!r} estimator needs gates that provide a {key!r} term ({gate_hint}), "
                f"but adapter {name!r} has a {type(layer.gate).__name__}; create the gates "
                f"with the estimator's make_gate(r)"
            )
        terms.append(inputs[key][~layer.gate.pruned])
    return torch.cat(terms) if terms else torch.zeros(0)
