"""Drift energy: the edge sum and the quadratic form agree; E >= 0; E = 0 exactly
on signals constant on each connected component."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from structlora.theory import (
    dense_adjacency,
    drift_energy,
    drift_energy_edges,
    laplacian,
    layer_drift_energy,
)
from tests.strategies import graph_signals


def energy_atol(L, x):
    # float64 tr(x^T L x) is off by about N * eps * ||L|| * ||x||^2 <= 2e-15 * scale
    # for N <= 9; 1e-12 * scale leaves a 500x margin.
    return 1e-12 * float(L.abs().sum(1).max()) * float(x.pow(2).sum()) + 1e-300


def _laplacian(graph, normalization):
    return laplacian(graph.edge_index, graph.edge_weight, graph.num_nodes, normalization)


@given(graph_signals())
def test_edge_sum_equals_combinatorial_quadratic_form(sample):
    graph, x = sample
    L = _laplacian(graph, "comb")
    by_edges = drift_energy_edges(x, graph.edge_index, graph.edge_weight)
    assert abs(float(by_edges - drift_energy(x, L))) <= energy_atol(L, x)


@pytest.mark.parametrize("normalization", ["comb", "sym"])
@given(sample=graph_signals())
def test_energy_is_non_negative(normalization, sample):
    graph, x = sample
    L = _laplacian(graph, normalization)
    assert float(drift_energy(x, L)) >= -energy_atol(L, x)


@given(graph_signals())
def test_symmetric_energy_is_the_degree_scaled_edge_sum(sample):
    graph, x = sample
    # E_sym(x) = 1/2 sum w_ij |x_i/sqrt(d_i) - x_j/sqrt(d_j)|^2 + sum_{isolated} |x_i|^2,
    # because PyG's L_sym keeps L_ii = 1 on isolated nodes.
    L = _laplacian(graph, "sym")
    deg = dense_adjacency(graph.edge_index, graph.edge_weight, graph.num_nodes).sum(1)
    isolated = deg == 0
    scaled = x / deg.clamp_min(1e-300).sqrt()[:, None]
    expected = drift_energy_edges(scaled, graph.edge_index, graph.edge_weight)
    expected = expected + x[isolated].pow(2).sum()
    assert abs(float(drift_energy(x, L) - expected)) <= energy_atol(L, x)


@given(sample=graph_signals(), data=st.data())
def test_energy_vanishes_exactly_on_componentwise_constant_signals(sample, data):
    graph, x = sample
    per_component = x[: graph.num_components]
    constant = per_component[graph.component]  # (N, F), constant on each component
    L = _laplacian(graph, "comb")
    assert float(drift_energy_edges(constant, graph.edge_index, graph.edge_weight)) == 0.0
    assert abs(float(drift_energy(constant, L))) <= energy_atol(L, constant)
    # Move one node off its component's value by delta: E = deg(v) * |delta|^2 > 0.
    v = data.draw(st.integers(0, graph.num_nodes - 1))
    delta = data.draw(st.floats(0.1, 1.0)) * torch.ones(x.size(1), dtype=x.dtype)
    bumped = constant.clone()
    bumped[v] += delta
    deg_v = float(graph.edge_weight[graph.edge_index[0] == v].sum())
    energy = float(drift_energy(bumped, L))
    # Exact up to rounding of the same sum in another order: 1e-12 relative.
    assert energy == pytest.approx(deg_v * float(delta.pow(2).sum()), rel=1e-12, abs=energy_atol(L, bumped))
    if deg_v > 0:
        assert energy > 0


@given(graph_signals(num_features=1))
def test_vector_signal_is_one_feature_column(sample):
    graph, x = sample
    L = _laplacian(graph, "comb")
    assert torch.equal(drift_energy(x[:, 0], L), drift_energy(x, L))


@given(graph_signals())
def test_layer_drift_energy(sample):
    graph, x = sample
    comb = layer_drift_energy(x, graph.edge_index, graph.edge_weight)
    sym = layer_drift_energy(x, graph.edge_index, graph.edge_weight, normalization="sym")
    assert isinstance(comb, float) and isinstance(sym, float)
    assert comb == float(drift_energy_edges(x, graph.edge_index, graph.edge_weight))
    assert sym == float(drift_energy(x, _laplacian(graph, "sym")))


def test_layer_drift_energy_rejects_random_walk():
    with pytest.raises(ValueError, match="normalization='rw'.*use normalization='comb'"):
        layer_drift_energy(torch.ones(2, 3), torch.tensor([[0, 1], [1, 0]]), normalization="rw")


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match=r"L must be \(N, N\) = \(3, 3\).*found \(2, 2\)"):
        drift_energy(torch.ones(3, 2), torch.eye(2))
