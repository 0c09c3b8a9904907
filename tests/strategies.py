"""Shared Hypothesis strategies: small weighted undirected graphs, node features,
step sizes. Tested themselves in ``tests/theory/test_strategies.py``.

Domains are narrowed on purpose (weights in [0.1, 10], features in [-10, 10],
at most 9 nodes) so that tests can keep tight float64 tolerances.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from hypothesis import strategies as st
from torch import Tensor

MIN_WEIGHT, MAX_WEIGHT = 0.1, 10.0
MAX_ABS_FEATURE = 10.0


class Graph(NamedTuple):
    """A weighted undirected graph in PyG form, plus its ground-truth components.

    ``edge_index`` (2, E) holds both directions of every edge (equal weights),
    sorted by (source, target); ``component`` (N,) labels each node's connected
    component with 0..C-1 (an isolated node is its own component).
    """

    edge_index: Tensor
    edge_weight: Tensor
    num_nodes: int
    component: Tensor

    @property
    def num_components(self) -> int:
        return int(self.component.max()) + 1 if self.num_nodes > 0 else 0


def _component_sizes(draw, num_nodes: int, connected: bool | None) -> list[int]:
    if connected:
        num_components = 1
    elif connected is None:
        num_components = draw(st.integers(1, num_nodes))
    else:
        num_components = draw(st.integers(2, num_nodes))
    if num_components == 1:
        return [num_nodes]
    # Cut points split range(num_nodes) into num_components non-empty runs.
    cuts = draw(st.sets(st.integers(1, num_nodes - 1),
                        min_size=num_components - 1, max_size=num_components - 1))
    bounds = [0, *sorted(cuts), num_nodes]
    return [b - a for a, b in zip(bounds, bounds[1:])]


def _component_edges(draw, first: int, size: int) -> set[tuple[int, int]]:
    """A random spanning tree on first..first+size-1 plus random extra edges."""
    edges = {(first + draw(st.integers(0, i - 1)), first + i) for i in range(1, size)}
    if size >= 3:
        pairs = [(first + i, first + j) for i in range(size) for j in range(i + 1, size)]
        edges |= set(draw(st.lists(st.sampled_from(pairs), max_size=len(pairs))))
    return edges


@st.composite
def graphs(
    draw,
    min_nodes: int = 1,
    max_nodes: int = 9,
    connected: bool | None = None,
    dtype: torch.dtype = torch.float64,
) -> Graph:
    """Random weighted undirected graphs without self-loops.

    Args:
        min_nodes, max_nodes: node-count range (defaults 1 and 9).
        connected: ``True`` one component, ``False`` at least two (so at least
            two nodes), ``None`` either (isolated nodes included).
        dtype: dtype of ``edge_weight`` (default float64).
    """
    if connected is False:
        min_nodes = max(min_nodes, 2)
    num_nodes = draw(st.integers(min_nodes, max_nodes))
    sizes = _component_sizes(draw, num_nodes, connected)
    undirected: set[tuple[int, int]] = set()
    component = []
    for label, size in enumerate(sizes):
        undirected |= _component_edges(draw, len(component), size)
        component += [label] * size
    # Relabel nodes so components are not contiguous id ranges.
    perm = draw(st.permutations(range(num_nodes)))
    undirected_list = sorted((min(perm[i], perm[j]), max(perm[i], perm[j])) for i, j in undirected)
    weights = draw(st.lists(st.floats(MIN_WEIGHT, MAX_WEIGHT), min_size=len(undirected_list),
                            max_size=len(undirected_list)))
    labels = [0] * num_nodes
    for node, label in enumerate(component):
        labels[perm[node]] = label
    directed = sorted([(i, j, w) for (i, j), w in zip(undirected_list, weights)]
                      + [(j, i, w) for (i, j), w in zip(undirected_list, weights)])
    edge_index = torch.tensor([[i for i, _, _ in directed], [j for _, j, _ in directed]],
                              dtype=torch.long).reshape(2, -1)
    edge_weight = torch.tensor([w for _, _, w in directed], dtype=dtype)
    return Graph(edge_index, edge_weight, num_nodes, torch.tensor(labels, dtype=torch.long))


@st.composite
def node_features(
    draw,
    num_nodes: int,
    num_features: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Node features ``(num_nodes, F)`` in [-10, 10]; ``F`` drawn from 1..4 unless given."""
    if num_features is None:
        num_features = draw(st.integers(1, 4))
    values = draw(st.lists(st.floats(-MAX_ABS_FEATURE, MAX_ABS_FEATURE),
                           min_size=num_nodes * num_features, max_size=num_nodes * num_features))
    return torch.tensor(values, dtype=dtype).reshape(num_nodes, num_features)


@st.composite
def graph_signals(
    draw,
    connected: bool | None = None,
    min_nodes: int = 1,
    max_nodes: int = 9,
    num_features: int | None = None,
) -> tuple[Graph, Tensor]:
    """A graph from :func:`graphs` and float64 features on its nodes."""
    graph = draw(graphs(min_nodes=min_nodes, max_nodes=max_nodes, connected=connected))
    return graph, draw(node_features(graph.num_nodes, num_features))


@st.composite
def step_sizes(draw, L: Tensor, strict: bool = False) -> float:
    """A step size ``eta`` in [1e-6, 1] * 2/lambda_max, the upper end excluded if ``strict``.

    ``L`` must be symmetric. For the random-walk Laplacian pass ``L_sym``, which
    has the same spectrum: a general eigensolver on ``L_rw`` can fail to
    converge on graphs with repeated eigenvalues. The fraction of the bound is
    drawn, so the endpoint 2/lambda_max itself is a likely example. An edgeless
    graph (lambda_max = 0) gets eta in [1e-6, 1].
    """
    # Near-symmetric up to rounding is fine: eigvalsh reads one triangle.
    if not torch.allclose(L, L.mT, rtol=1e-12, atol=1e-12):
        raise ValueError("step_sizes needs a symmetric L; for 'rw' pass the 'sym' Laplacian")
    # At least 1e-6 of the bound: subnormal fractions would round eta to 0.
    fraction = draw(st.floats(1e-6, 1.0, exclude_max=strict))
    top = float(torch.linalg.eigvalsh(L.to(torch.float64))[-1]) if L.numel() else 0.0
    return fraction * 2.0 / top if top > 0 else fraction
