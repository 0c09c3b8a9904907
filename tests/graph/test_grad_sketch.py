"""Gradient sketches from hooks: exact against autograd on a dense copy, armed-only, EMA, all-reduce."""
import pytest
import torch
from torch import nn

from structlora import StructLoRAConfig, wrap
from structlora.graph import GradientSketcher, Sketcher
from tests.graph.layers import CHAIN, make_layers
from tests.tiny import randomize_adapters, tiny_batch, tiny_bert


class Stack(nn.Module):
    """Applies the layers in order on (n, T, 5) inputs; q (6x5) and v (4x5) read the same input."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleDict({name.replace(".", "_"): layer for name, layer in layers.items()})

    def forward(self, x):
        return sum(layer(x).pow(2).mean() * (i + 1) for i, layer in enumerate(self.layers.values()))


def dense_copy(layer) -> nn.Linear:
    """An nn.Linear holding the effective weight W0 + dW of a gated layer (eval gate)."""
    dense = nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
    with torch.no_grad():
        dense.weight.copy_(layer.base_layer.weight + layer.delta_weight())
        dense.bias.copy_(layer.base_layer.bias)
    return dense


def test_hook_sketch_equals_autograd_on_dense_weight():
    layers = make_layers(CHAIN, r=2)
    model = Stack(layers).eval()  # eval: the gate applies its deterministic mask, as the dense copy does
    sketcher = Sketcher(layers, k=3)
    grads = GradientSketcher(layers, sketcher, ema=0.5)
    grads.armed = True
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    model(x).backward()
    got = grads.update()
    dense = Stack({n: dense_copy(l) for n, l in layers.items()})
    dense(x).backward()
    for i, layer in enumerate(dense.layers.values()):
        P, Q = sketcher.projections(sketcher.shapes[i])
        expected = (P.T @ layer.weight.grad @ Q).flatten()
        # float64; the hook contracts (dH P)^T (X Q) instead of P^T (dH^T X) Q: a few ulps.
        torch.testing.assert_close(got[i], expected, rtol=1e-12, atol=1e-12)


def test_unarmed_hooks_capture_nothing_and_remove_restores():
    layers = make_layers(CHAIN)
    grads = GradientSketcher(layers, Sketcher(layers, k=3))
    Stack(layers)(torch.randn(2, 5, dtype=torch.float64)).backward()
    assert grads._pending == {}
    assert torch.equal(grads.sketches(), torch.zeros(4, 9, dtype=torch.float64))
    grads.remove()
    assert all(not layer._forward_hooks for layer in layers.values())


def test_ema_and_accumulation():
    layers = make_layers(CHAIN)
    model = Stack(layers).eval()
    grads = GradientSketcher(layers, Sketcher(layers, k=3), ema=0.75)
    grads.armed = True
    x = torch.randn(2, 5, dtype=torch.float64)
    model(x).backward()
    first = grads.update().clone()
    model(x).backward()
    model(x).backward()  # two micro-batches before one update: contributions add up
    second = grads.update()
    # the same batch each time, so the new sketch is 2 * first; EMA: 0.75 first + 0.25 (2 first).
    torch.testing.assert_close(second, 1.25 * first, rtol=1e-12, atol=0)  # float64: rounding only
    assert grads.num_updates == 2


def test_update_all_reduces_under_distributed(monkeypatch):
    # A fake 2-rank group where the other rank's sketches are all ones: the update averages.
    layers = make_layers(CHAIN)
    grads = GradientSketcher(layers, Sketcher(layers, k=3))
    grads.armed = True
    Stack(layers).eval()(torch.randn(2, 5, dtype=torch.float64)).backward()
    local = grads._collect()
    grads._pending = {i: row.reshape(3, 3) for i, row in enumerate(local)}
    dist = torch.distributed
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_reduce", lambda t, op=None: t.add_(torch.ones_like(t)))
    torch.testing.assert_close(grads.update(), (local + 1) / 2)


def test_tiny_bert_gradient_sketches():
    model = wrap(tiny_bert(), StructLoRAConfig(r=2, target_modules=["query", "value"]))
    randomize_adapters(model)
    grads = GradientSketcher(model.adapters, Sketcher(model.adapters, k=4))
    grads.armed = True
    model(**tiny_batch("bert")).loss.backward()
    g = grads.update()
    assert g.shape == (4, 16) and (g.abs().sum(dim=1) > 0).all()
    assert repr(grads) == "GradientSketcher(nodes=4, ema=0.9, armed=True)"
    grads.remove()


def test_bad_arguments():
    layers = make_layers(CHAIN)
    sketcher = Sketcher(layers, k=3)
    with pytest.raises(ValueError, match="ema"):
        GradientSketcher(layers, sketcher, ema=1.0)
    with pytest.raises(ValueError, match="same order"):
        GradientSketcher(dict(reversed(list(layers.items()))), sketcher)
