"""Small builders shared by the bottleneck tests: one gated layer, a wrapped tiny HF model."""
from __future__ import annotations

from unittest import mock

import torch
from torch import nn

from structlora import StructLoRAConfig, StructLoRAModel, wrap
from structlora.adapters import Gate, GatedLoRALayer
from structlora.bottleneck import Bottleneck
from tests.tiny import BUILDERS, TARGETS


def single_layer(gate: Gate, d_in: int = 8, d_out: int = 4, seed: int = 0) -> GatedLoRALayer:
    """A GatedLoRALayer on a zero nn.Linear, so the output is the adapter's alone."""
    torch.manual_seed(seed)
    base = nn.Linear(d_in, d_out)
    with torch.no_grad():
        base.weight.zero_()
        base.bias.zero_()
    base.requires_grad_(False)
    return GatedLoRALayer(base, r=gate.r, alpha=float(gate.r), gate=gate)


def wrap_with(strategy: Bottleneck, family: str = "bert", r: int = 4, seed: int = 0) -> StructLoRAModel:
    """Wrap a tiny HF model, creating every gate through the ``make_gate`` hook."""
    def make_gate(self, name, r):
        return strategy.make_gate(r, name=name)

    with mock.patch.object(StructLoRAModel, "make_gate", make_gate):
        return wrap(BUILDERS[family](seed=seed), StructLoRAConfig(r=r, alpha=r, target_modules=TARGETS[family]))


def record(model: StructLoRAModel, batch: dict, on: bool = True) -> None:
    """Switch stat recording on the adapters, pooling over the attention mask if any."""
    for layer in model.adapters.values():
        layer.recording = on
        layer.token_mask = batch.get("attention_mask")


def inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k != "labels"}
