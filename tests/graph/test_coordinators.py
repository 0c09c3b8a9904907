"""Coordinators: residual identity at init, drift energy, the registry, degenerate graphs."""
import warnings

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from structlora.graph import (
    COORDINATORS,
    Coordinator,
    GATCoordinator,
    GCNCoordinator,
    LaplacianCoordinator,
    NoCoordinator,
    register_coordinator,
    resolve_coordinator,
    sym_laplacian,
)
from structlora.theory import drift_energy
from tests.strategies import graph_signals, step_sizes

# A path 0-1-2-3 plus an isolated node 4, both directions, unit weights.
EDGE_INDEX = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
EDGE_WEIGHT = torch.tensor([1.0, 1.0, 0.5, 0.5, 2.0, 2.0])


def features(n=5, f=9, seed=0):
    return torch.randn(n, f, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cls", [GCNCoordinator, GATCoordinator])
def test_learned_coordinators_are_identity_at_init(cls):
    x = features()
    coordinator = cls(9, hidden_channels=8)
    assert torch.equal(coordinator(x, EDGE_INDEX, EDGE_WEIGHT), x)  # last layer exactly 0
    with torch.no_grad():
        for p in coordinator.parameters():
            p.add_(0.1)
    assert not torch.equal(coordinator(x, EDGE_INDEX, EDGE_WEIGHT), x)
    coordinator.reset_parameters()
    assert torch.equal(coordinator(x, EDGE_INDEX, EDGE_WEIGHT), x)


def test_gat_uses_edge_weights():
    x = features()
    gat = GATCoordinator(9, hidden_channels=8, heads=2)
    with torch.no_grad():
        gat.convs[-1].lin.weight.normal_()
    assert not torch.allclose(gat(x, EDGE_INDEX, EDGE_WEIGHT), gat(x, EDGE_INDEX, 3 * EDGE_WEIGHT))


def test_laplacian_coordinator_is_smoothing():
    x = features()
    L = sym_laplacian(EDGE_INDEX, EDGE_WEIGHT, 5)
    out = LaplacianCoordinator(eta=0.5, steps=2)(x, EDGE_INDEX, EDGE_WEIGHT)
    torch.testing.assert_close(out, x - 0.5 * L @ x - 0.5 * L @ (x - 0.5 * L @ x))
    assert torch.equal(out[4], x[4])  # isolated node: zero Laplacian row, untouched
    assert torch.equal(NoCoordinator()(x, EDGE_INDEX, EDGE_WEIGHT), x)


@given(data=st.data(), signal=graph_signals(min_nodes=2))
def test_laplacian_coordinator_never_increases_drift_energy(data, signal):
    graph, x = signal
    assume(graph.edge_index.numel() > 0)
    L = sym_laplacian(graph.edge_index, graph.edge_weight, graph.num_nodes)
    eta = data.draw(step_sizes(L))  # (0, 2/lambda_max], the endpoint included
    steps = data.draw(st.integers(1, 3))
    out = LaplacianCoordinator(eta, steps)(x, graph.edge_index, graph.edge_weight)
    before, after = drift_energy(x, L), drift_energy(out, L)
    # float64 with |x| <= 10 and N <= 9: rounding of the energy sums is far below 1e-9 relative.
    assert after <= before * (1 + 1e-9) + 1e-9


def test_laplacian_step_size_outside_bound():
    # A single edge: L_sym has lambda_max = 2, so the bound is 2/lambda_max = 1.
    edge_index = torch.tensor([[0, 1], [1, 0]])
    coordinator = LaplacianCoordinator(eta=1.5)
    with pytest.raises(ValueError, match=r"outside \(0, 2/lambda_max\] = \(0, 1\]"):
        coordinator(features(2), edge_index)
    for eta in (0.0, -0.5):
        with pytest.raises(ValueError, match=r"outside \(0, 2/lambda_max\]"):
            LaplacianCoordinator(eta=eta)
    with pytest.raises(ValueError, match="steps"):
        LaplacianCoordinator(steps=0)


@pytest.mark.parametrize("name", ["laplacian", "gcn", "gat"])
def test_degenerate_graphs_are_skipped_with_one_warning(name):
    coordinator = resolve_coordinator(name, in_channels=9)
    x = features(1)
    with pytest.warns(UserWarning, match="1 node.*coordination is skipped"):
        assert coordinator(x, torch.empty(2, 0, dtype=torch.long)) is x
    x = features(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once already: a second warning would raise here
        assert coordinator(x, torch.empty(2, 0, dtype=torch.long)) is x


def test_edgeless_graph_warns():
    with pytest.warns(UserWarning, match="3 node.*0 edge"):
        LaplacianCoordinator()(features(3), torch.empty(2, 0, dtype=torch.long))


def test_reprs():
    assert repr(NoCoordinator()) == "NoCoordinator()"
    assert repr(LaplacianCoordinator()) == "LaplacianCoordinator(eta=0.5, steps=1)"
    assert repr(GCNCoordinator(256)) == "GCNCoordinator(256, hidden_channels=64, num_layers=2)"
    assert repr(GATCoordinator(256, heads=2)) == "GATCoordinator(256, hidden_channels=64, num_layers=2, heads=2)"


@pytest.mark.parametrize("query,cls", [
    ("none", NoCoordinator), ("laplacian", LaplacianCoordinator), ("gcn", GCNCoordinator),
    ("gat", GATCoordinator), ("GATCoordinator", GATCoordinator), ("GAT", GATCoordinator),
    ("gcn_coordinator", GCNCoordinator), (LaplacianCoordinator, LaplacianCoordinator),
])
def test_resolver_accepts_names_and_classes(query, cls):
    coordinator = resolve_coordinator(query, in_channels=16)  # in_channels dropped where unused
    assert type(coordinator) is cls
    assert list(COORDINATORS)[:4] == ["none", "laplacian", "gcn", "gat"]


def test_resolver_passes_kwargs_and_instances():
    assert resolve_coordinator("laplacian", eta=0.25, in_channels=16).eta == 0.25
    assert resolve_coordinator("gat", in_channels=16, heads=3).heads == 3
    instance = GCNCoordinator(4)
    assert resolve_coordinator(instance) is instance


def test_resolver_errors():
    with pytest.raises(ValueError, match=r"unknown coordinator 'gin'.*'none'.*'laplacian'.*'gcn'.*'gat'"):
        resolve_coordinator("gin")
    with pytest.raises(ValueError, match=r"GCNCoordinator got unknown argument\(s\) \['hiden_channels'\]"):
        resolve_coordinator("gcn", in_channels=4, hiden_channels=8)
    with pytest.raises(ValueError, match="cannot resolve a coordinator from 3"):
        resolve_coordinator(3)


def test_register_a_coordinator_in_one_line():
    @register_coordinator("mean-field")
    class MeanField(Coordinator):
        def coordinate(self, x, edge_index, edge_weight):
            return x.mean(dim=0, keepdim=True).expand_as(x)

    try:
        out = resolve_coordinator("MeanField")(features(), EDGE_INDEX)
        assert torch.allclose(out, features().mean(0, keepdim=True).expand(5, 9))
        assert type(resolve_coordinator("mean_field")) is MeanField
        with pytest.raises(TypeError, match="Coordinator subclass"):
            register_coordinator("bad")(torch.nn.Linear)
    finally:
        COORDINATORS.pop("meanfield")
