"""Coupling losses: where the gradients go, and the Laplacian identity grad L_coord = (2 eta / N) L x."""
import pytest
import torch

from structlora.graph import (
    GCNCoordinator,
    LaplacianCoordinator,
    LayerGraphBuilder,
    Sketcher,
    coordination_loss,
    coupling_losses,
    denoising_loss,
    sym_laplacian,
)
from structlora.theory import drift_energy
from tests.graph.layers import make_layers

SPEC = {f"blocks.{b}.attn.{m}": (6, 5) if m == "q" else (4, 5) for b in range(3) for m in ("q", "v")}


def setup(coordinator_cls=LaplacianCoordinator, **kwargs):
    layers = make_layers(SPEC, r=2)
    sketcher = Sketcher(layers, k=3)
    graph = LayerGraphBuilder.from_layers(layers).build(sketcher.node_sketches().detach())
    coordinator = coordinator_cls(**kwargs).double()
    return layers, sketcher, graph, coordinator


def adapter_params(layers):
    return [p for l in layers.values() for p in (l.lora_A, l.lora_B, l.gate.logits)]


def test_laplacian_coupling_gradient_is_drift_energy_descent():
    layers, sketcher, graph, coordinator = setup(eta=0.5)
    x = sketcher.node_sketches().detach().requires_grad_()
    losses = coupling_losses(x, coordinator, graph.edge_index, graph.edge_weight)
    losses.coord.backward()
    L = sym_laplacian(graph.edge_index, graph.edge_weight, x.size(0)).double()
    # float64, the same products in another order: a few ulps.
    torch.testing.assert_close(x.grad, 2 * 0.5 / x.size(0) * L @ x.detach(), rtol=1e-12, atol=1e-12)


def test_coord_loss_reaches_adapters_not_coordinator():
    layers, sketcher, graph, coordinator = setup(GCNCoordinator, in_channels=9, hidden_channels=4)
    with torch.no_grad():
        coordinator.convs[-1].lin.weight.normal_()  # at init x_hat = x and L_coord has zero gradient
    losses = coupling_losses(sketcher.node_sketches(), coordinator, graph.edge_index, graph.edge_weight)
    losses.coord.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter_params(layers))
    assert all(p.grad is None for p in coordinator.parameters())


def test_laplacian_coord_loss_reaches_factors_and_gate():
    layers, sketcher, graph, coordinator = setup(eta=0.5)
    coupling_losses(sketcher.node_sketches(), coordinator, graph.edge_index, graph.edge_weight).coord.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter_params(layers))


def test_denoising_loss_reaches_coordinator_not_adapters():
    layers, sketcher, graph, coordinator = setup(GCNCoordinator, in_channels=9, hidden_channels=4)
    losses = coupling_losses(sketcher.node_sketches(), coordinator, graph.edge_index, graph.edge_weight)
    losses.denoise.backward()
    assert coordinator.convs[-1].lin.weight.grad.abs().sum() > 0  # the smoothness term moves it off 0
    assert all(p.grad is None for p in adapter_params(layers))


def test_loss_values():
    x = torch.randn(4, 3, dtype=torch.float64)
    x_hat = torch.randn(4, 3, dtype=torch.float64)
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # path 0-1-2, node 3 isolated
    L = sym_laplacian(edge_index, num_nodes=4).double()
    torch.testing.assert_close(coordination_loss(x, x_hat), ((x - x_hat) ** 2).sum() / 4)
    expected = (((x_hat - x) ** 2).sum() + 2.0 * drift_energy(x_hat, L)) / 4
    torch.testing.assert_close(denoising_loss(x, x_hat, edge_index, c=2.0), expected)
    torch.testing.assert_close(denoising_loss(x, x_hat, edge_index, c=0.0), ((x - x_hat) ** 2).sum() / 4)
    with pytest.raises(ValueError, match="c=-1"):
        denoising_loss(x, x_hat, edge_index, c=-1)
