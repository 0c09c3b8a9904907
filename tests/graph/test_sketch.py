"""Node sketches: exact from the factors, unbiased for Frobenius inner products, differentiable."""
import math

import pytest
import torch

from structlora.graph import Sketcher
from structlora.theory import sketch_dense
from tests.graph.layers import CHAIN, make_layers
from tests.tiny import randomize_adapters, tiny_bert


def test_sketch_equals_dense_projection():
    layers = make_layers(CHAIN, r=3)
    sketcher = Sketcher(layers, k=4, seed=1)
    x = sketcher.node_sketches()
    assert x.shape == (4, 16)
    for i, layer in enumerate(layers.values()):
        P, Q = sketcher.projections(sketcher.shapes[i])
        expected = sketch_dense(layer.delta_weight().detach(), P, Q)
        # float64, the same products in another association order: a few ulps.
        torch.testing.assert_close(x[i].detach(), expected, rtol=1e-12, atol=1e-12)


def test_one_projection_pair_per_shape_and_seeded():
    layers = make_layers(CHAIN)
    a, b = Sketcher(layers, k=4, seed=3), Sketcher(layers, k=4, seed=3)
    assert len(list(a.buffers())) == 4  # (P, Q) for 6x5 and for 4x5
    assert torch.equal(a.node_sketches(), b.node_sketches())
    assert not torch.equal(a.node_sketches(), Sketcher(layers, k=4, seed=4).node_sketches())
    # The pair of a shape does not depend on which other shapes are adapted.
    alone = Sketcher({"blocks.0.attn.q": layers["blocks.0.attn.q"]}, k=4, seed=3)
    assert torch.equal(alone.projections((6, 5))[0], a.projections((6, 5))[0])
    assert a.state_dict() == {}  # regenerated from the seed, never checkpointed


def _inner_products(sketcher):
    """<x_0, x_1> and <x_0, x_0> of one seed's sketches."""
    x = sketcher.node_sketches().detach()
    return torch.stack([x[0] @ x[1], x[0] @ x[0]])


def test_sketch_inner_products_are_unbiased():
    # Two correlated updates of one shape: <dW_0, dW_1>_F != 0.
    layers = make_layers({"a": (7, 6), "b": (7, 6)}, r=3, seed=5)
    with torch.no_grad():
        layers["b"].lora_B.add_(layers["a"].lora_B)
        layers["b"].lora_A.copy_(layers["a"].lora_A)
    dW = [layer.delta_weight().detach() for layer in layers.values()]
    k, n = 8, 400
    estimates = torch.stack([_inner_products(Sketcher(layers, k=k, seed=s)) for s in range(n)])  # (n, 2)
    exact = torch.stack([(dW[0] * dW[1]).sum(), (dW[0] * dW[0]).sum()])
    # Var<s(A), s(B)> <= 4 (1 + 1/k) / k * |A|^2 |B|^2 (P-side quadratic form variance
    # <= 2|AQ|^2|BQ|^2/k, averaged over Q, plus the Q-side term <= 2|A|^2|B|^2/k); the mean
    # of n seeds is then within 5 standard deviations with overwhelming probability.
    sigma = 2 * math.sqrt((1 + 1 / k) / k) * torch.stack([dW[0].norm() * dW[1].norm(), dW[0].norm() ** 2])
    assert ((estimates.mean(0) - exact).abs() <= 5 * sigma / math.sqrt(n)).all()


def test_sketch_is_differentiable_in_factors_and_gate():
    layers = make_layers(CHAIN)
    Sketcher(layers, k=3).node_sketches().pow(2).sum().backward()
    for layer in layers.values():
        for p in (layer.lora_A, layer.lora_B, layer.gate.logits):
            assert p.grad is not None and p.grad.abs().sum() > 0


def test_sketch_of_a_tiny_model_and_repr():
    from structlora import StructLoRAConfig, wrap

    model = wrap(tiny_bert(), StructLoRAConfig(r=2, target_modules=["query", "value"]))
    sketcher = Sketcher(model.adapters, k=4)
    assert torch.equal(sketcher.node_sketches(), torch.zeros(4, 16))  # B = 0 at init: no update yet
    randomize_adapters(model)
    assert sketcher.node_sketches().abs().sum() > 0
    assert repr(sketcher) == "Sketcher(nodes=4, shapes=1, k=4, seed=0)"


@pytest.mark.parametrize("k", [0, -1, 2.5])
def test_bad_k(k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        Sketcher(make_layers(CHAIN), k=k)


def test_batched_sketches_equal_the_per_node_loop_with_gradients():
    """node_sketches batches layers by (shape, rank); values and gradients equal the per-node sketch."""
    layers = make_layers(CHAIN, r=3) | make_layers({"blocks.2.attn.q": (6, 5)}, r=2, seed=1)  # a second rank
    sketcher = Sketcher(layers, k=4, seed=2)
    weights = torch.randn(5, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    params = [p for layer in layers.values() for p in (layer.lora_A, layer.lora_B, layer.gate.logits)]

    def grads(x):
        return torch.autograd.grad((x * weights).sum(), params)

    batched = sketcher.node_sketches()
    looped = torch.stack([sketcher.sketch(i) for i in range(sketcher.num_nodes)])
    torch.testing.assert_close(batched, looped, rtol=1e-12, atol=1e-12)  # depth order kept across groups
    for gb, gl in zip(grads(batched), grads(looped)):
        torch.testing.assert_close(gb, gl, rtol=1e-12, atol=1e-12)
