"""Hand-made gated LoRA layers for the graph tests (small shapes, float64, a learnable gate)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from structlora.adapters.gate import Gate
from structlora.adapters.layer import GatedLoRALayer


class LogitGate(Gate):
    """m = sigmoid(logits): a differentiable gate with its own parameters."""

    def __init__(self, r: int):
        super().__init__(r)
        self.logits = nn.Parameter(torch.linspace(-1.0, 2.0, r, dtype=torch.float64))

    def open_mask(self) -> Tensor:
        return torch.sigmoid(self.logits)


def make_layers(spec: dict[str, tuple[int, int]], r: int = 2, seed: int = 0) -> dict[str, GatedLoRALayer]:
    """``{name: (d_out, d_in)}`` -> float64 gated layers with random non-zero A and B."""
    g = torch.Generator().manual_seed(seed)
    layers = {}
    for name, (d_out, d_in) in spec.items():
        layer = GatedLoRALayer(nn.Linear(d_in, d_out, dtype=torch.float64), r, alpha=2 * r, gate=LogitGate(r))
        with torch.no_grad():
            layer.lora_A.copy_(torch.randn(r, d_in, generator=g, dtype=torch.float64))
            layer.lora_B.copy_(torch.randn(d_out, r, generator=g, dtype=torch.float64))
        layers[name] = layer
    return layers


# Two blocks of a toy transformer: consecutive-block pairs q-q, v-v; q is 6x5, v is 4x5.
CHAIN = {
    "blocks.0.attn.q": (6, 5),
    "blocks.0.attn.v": (4, 5),
    "blocks.1.attn.q": (6, 5),
    "blocks.1.attn.v": (4, 5),
}
