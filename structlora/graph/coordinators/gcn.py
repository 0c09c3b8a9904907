r"""A learned residual GCN coordinator (DESIGN.md, "Coordinators")."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from .base import Coordinator
from .registry import register_coordinator


@register_coordinator("gcn")
class GCNCoordinator(Coordinator):
    r"""Residual stack of ``GCNConv`` layers (Kipf & Welling, https://arxiv.org/abs/1609.02907):

    .. math::
        \hat x = x + \psi_\theta(x), \qquad
        \psi_\theta = \mathrm{GCN}_L \circ \mathrm{ReLU} \circ \dots \circ \mathrm{GCN}_1

    with edge weights as GCN weights. The last layer (weight and bias) starts
    at zero, so :math:`\hat x = x` at initialisation; it learns through the
    denoising loss.

    Args:
        in_channels (int): node feature size, :math:`k^2` for sketches.
        hidden_channels (int, optional): width of the hidden layers. (default: ``64``)
        num_layers (int, optional): number of ``GCNConv`` layers. (default: ``2``)

    Shapes:
        - input: :math:`(N, F)`, edge_index :math:`(2, E)`, edge_weight :math:`(E)`
        - output: :math:`(N, F)`
    """

    def __init__(self, in_channels: int, hidden_channels: int = 64, num_layers: int = 2):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"GCNCoordinator: num_layers={num_layers!r} is invalid; use an integer >= 1")
        self.in_channels, self.hidden_channels, self.num_layers = in_channels, hidden_channels, num_layers
        sizes = [in_channels] + [hidden_channels] * (num_layers - 1) + [in_channels]
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in zip(sizes, sizes[1:]))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()
        last = self.convs[-1]
        nn.init.zeros_(last.lin.weight)
        nn.init.zeros_(last.bias)

    def coordinate(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None) -> Tensor:
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h, edge_index, edge_weight)
            if i < self.num_layers - 1:
                h = torch.relu(h)
        return x + h

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}, hidden_channels={self.hidden_channels}, "
            f"num_layers={self.num_layers})"
        )
