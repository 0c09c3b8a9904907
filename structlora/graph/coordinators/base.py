r"""The coordinator interface: a residual map of node sketches over the layer graph.

.. math::
    \hat x = x + \psi_\theta(x, \mathcal{G})

A coordinator never touches the model's forward pass; it only produces the
target :math:`\hat x` of the coupling losses (:mod:`structlora.graph.coupling`).
"""
from __future__ import annotations

import warnings

from torch import Tensor, nn

from ..laplacian import is_degenerate


class Coordinator(nn.Module):
    r"""Base class of coordinators.

    Subclasses implement :meth:`coordinate` on a graph with at least two nodes
    and one edge. On a graph with a single node or no edges :meth:`forward`
    skips coordination (warning once per instance) and returns ``x``.

    Shapes:
        - input: node sketches :math:`(N, F)`, edge_index :math:`(2, E)`,
          edge_weight :math:`(E)` or ``None``
        - output: :math:`(N, F)`
    """

    def __init__(self):
        super().__init__()
        self._warned = False

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        if is_degenerate(x.size(0), edge_index):
            if not self._warned:
                warnings.warn(
                    f"{type(self).__name__}: the layer graph has {x.size(0)} node(s) and "
                    f"{edge_index.size(1) if edge_index.dim() == 2 else 0} edge(s), so coordination is "
                    "skipped (x_hat = x). Adapt more modules, or enable same_block_edges / semantic edges.",
                    stacklevel=2,
                )
                self._warned = True
            return x
        return self.coordinate(x, edge_index, edge_weight)

    def coordinate(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement coordinate(x, edge_index, edge_weight)")

    def reset_parameters(self) -> None:
        """Parameter-free by default."""
