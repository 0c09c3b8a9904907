"""The shared strategies produce what they promise (checked with networkx / numpy)."""
import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import MAX_WEIGHT, MIN_WEIGHT, graph_signals, graphs, step_sizes


def _nx_graph(graph):
    g = nx.Graph()
    g.add_nodes_from(range(graph.num_nodes))
    g.add_edges_from(graph.edge_index.t().tolist())
    return g


def _dense(graph):
    W = np.zeros((graph.num_nodes, graph.num_nodes))
    for (i, j), w in zip(graph.edge_index.t().tolist(), graph.edge_weight.tolist()):
        W[i, j] += w
    return W


@given(graphs())
def test_graphs_are_undirected_with_positive_weights_and_no_self_loops(graph):
    W = _dense(graph)
    assert np.array_equal(W, W.T)
    assert graph.edge_index.shape == (2, graph.edge_weight.numel())
    assert graph.edge_weight.dtype == torch.float64
    assert ((graph.edge_weight >= MIN_WEIGHT) & (graph.edge_weight <= MAX_WEIGHT)).all()
    assert not (graph.edge_index[0] == graph.edge_index[1]).any()
    pairs = graph.edge_index.t().tolist()
    assert len(pairs) == len({tuple(p) for p in pairs}), "no duplicate edges"
    assert pairs == sorted(pairs)


@given(graphs())
def test_component_labels_are_the_connected_components(graph):
    truth = {frozenset(c) for c in nx.connected_components(_nx_graph(graph))}
    labels = graph.component.tolist()
    drawn = {frozenset(i for i in range(graph.num_nodes) if labels[i] == c)
             for c in range(graph.num_components)}
    assert drawn == truth


@pytest.mark.parametrize("connected", [True, False])
@given(data=st.data())
def test_connected_flag_is_respected(connected, data):
    graph = data.draw(graphs(connected=connected))
    assert nx.is_connected(_nx_graph(graph)) == connected
    assert (graph.num_components == 1) == connected


@given(graph_signals(num_features=3))
def test_node_features_match_the_graph(sample):
    graph, x = sample
    assert x.shape == (graph.num_nodes, 3)
    assert x.dtype == torch.float64
    assert torch.isfinite(x).all() and x.abs().max() <= 10


@pytest.mark.parametrize("strict", [False, True])
@given(data=st.data())
def test_step_sizes_lie_in_the_stable_range(strict, data):
    graph = data.draw(graphs(min_nodes=2))
    W = _dense(graph)
    L = torch.from_numpy(np.diag(W.sum(1)) - W)
    eta = data.draw(step_sizes(L, strict=strict))
    top = np.linalg.eigvalsh(L.numpy())[-1]
    bound = 2 / top if top > 0 else 1.0
    assert eta > 0
    # 1e-12 relative: torch and numpy eigvalsh differ by a few ulps.
    assert eta <= bound * (1 + 1e-12)
    if strict:
        assert eta < bound * (1 + 1e-12)


@given(data=st.data())
def test_step_sizes_reject_a_non_symmetric_laplacian(data):
    L_rw = torch.tensor([[1.0, -1.0], [-0.5, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="symmetric L; for 'rw' pass the 'sym' Laplacian"):
        data.draw(step_sizes(L_rw))
