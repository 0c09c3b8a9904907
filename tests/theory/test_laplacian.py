"""Laplacians agree with torch_geometric.utils.get_laplacian and reject bad input."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch_geometric.utils import get_laplacian, to_dense_adj

from structlora.theory import dense_adjacency, laplacian, laplacian_from_adjacency
from tests.strategies import graphs

NORMALIZATIONS = ["comb", "sym", "rw"]


def _pyg_laplacian(graph, normalization):
    pyg_norm = None if normalization == "comb" else normalization
    index, weight = get_laplacian(graph.edge_index, graph.edge_weight, pyg_norm,
                                  num_nodes=graph.num_nodes)
    return to_dense_adj(index, edge_attr=weight, max_num_nodes=graph.num_nodes)[0]


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@given(graph=graphs())
def test_laplacian_matches_pyg(normalization, graph):
    # Isolated nodes included: graphs() draws disconnected graphs with singletons.
    L = laplacian(graph.edge_index, graph.edge_weight, graph.num_nodes, normalization)
    expected = _pyg_laplacian(graph, normalization)
    assert torch.isfinite(L).all()
    if normalization != "rw":
        assert torch.equal(L, L.mT), "exactly symmetric, so eigvalsh sees the whole matrix"
    # Same float64 operations in a different order: agreement to a few ulps.
    torch.testing.assert_close(L, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@given(graph=graphs())
def test_laplacian_from_adjacency_is_laplacian(normalization, graph):
    W = dense_adjacency(graph.edge_index, graph.edge_weight, graph.num_nodes)
    torch.testing.assert_close(
        laplacian_from_adjacency(W, normalization),
        laplacian(graph.edge_index, graph.edge_weight, graph.num_nodes, normalization),
        rtol=0, atol=0,
    )


@given(graph=graphs())
def test_rows_of_combinatorial_laplacian_sum_to_zero(graph):
    L = laplacian(graph.edge_index, graph.edge_weight, graph.num_nodes, "comb")
    # Row sums cancel degree against weights: error ~ N * eps * max degree <= 1e-12.
    torch.testing.assert_close(L.sum(1), torch.zeros(graph.num_nodes, dtype=L.dtype),
                               rtol=0, atol=1e-12)


def test_hand_made_path_graph():
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    edge_weight = torch.tensor([1.0, 1.0, 2.0, 2.0], dtype=torch.float64)
    L = laplacian(edge_index, edge_weight, normalization="comb")
    expected = torch.tensor([[1.0, -1, 0], [-1, 3, -2], [0, -2, 2]], dtype=torch.float64)
    torch.testing.assert_close(L, expected, rtol=0, atol=0)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_self_loops_are_ignored_like_pyg(normalization):
    edge_index = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 1]])
    edge_weight = torch.tensor([5.0, 2.0, 2.0, 3.0], dtype=torch.float64)
    with_loops = laplacian(edge_index, edge_weight, 2, normalization)
    without = laplacian(edge_index[:, 1:3], edge_weight[1:3], 2, normalization)
    torch.testing.assert_close(with_loops, without, rtol=0, atol=0)


def test_edgeless_graph_has_no_nan():
    edge_index = torch.empty(2, 0, dtype=torch.long)
    weight = torch.empty(0, dtype=torch.float64)
    assert torch.equal(laplacian(edge_index, weight, 3, "comb"), torch.zeros(3, 3, dtype=torch.float64))
    assert torch.equal(laplacian(edge_index, weight, 3, "sym"), torch.eye(3, dtype=torch.float64))
    assert torch.equal(laplacian(edge_index, weight, 3, "rw"), torch.eye(3, dtype=torch.float64))


def test_gradient_is_finite_with_isolated_nodes():
    weight = torch.tensor([2.0, 2.0], dtype=torch.float64, requires_grad=True)
    L = laplacian(torch.tensor([[0, 1], [1, 0]]), weight, num_nodes=3, normalization="sym")
    L.sum().backward()
    assert torch.isfinite(weight.grad).all()


def test_unknown_normalization_names_the_choices():
    with pytest.raises(ValueError, match=r"normalization='symmetric' is not one of .*'comb', 'sym', 'rw'"):
        laplacian(torch.tensor([[0, 1], [1, 0]]), normalization="symmetric")


def test_directed_graph_is_rejected():
    with pytest.raises(ValueError, match="not symmetric.*to_undirected"):
        laplacian(torch.tensor([[0], [1]]), num_nodes=2)


def test_negative_weights_are_rejected():
    with pytest.raises(ValueError, match="negative weights"):
        laplacian(torch.tensor([[0, 1], [1, 0]]), torch.tensor([-1.0, -1.0]))


@given(bad=st.sampled_from(["shape", "weight", "ids"]))
def test_malformed_edges_are_rejected(bad):
    edge_index, weight, n = torch.tensor([[0, 1], [1, 0]]), torch.ones(2), 2
    if bad == "shape":
        edge_index, match = edge_index.t().reshape(4, 1), r"edge_index must have shape \(2, E\)"
    elif bad == "weight":
        weight, match = torch.ones(3), r"edge_weight must have shape \(E,\) = \(2,\)"
    else:
        n, match = 1, "num_nodes=1"
    with pytest.raises(ValueError, match=match):
        dense_adjacency(edge_index, weight, n)
