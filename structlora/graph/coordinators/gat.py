r"""A learned residual GAT coordinator (DESIGN.md, "Coordinators")."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv

from .base import Coordinator
from .registry import register_coordinator


@register_coordinator("gat")
class GATCoordinator(Coordinator):
    r"""Residual stack of ``GATConv`` layers (Veličković et al., https://arxiv.org/abs/1710.10903):

    .. math::
        \hat x = x + \psi_\theta(x), \qquad
        \psi_\theta = \mathrm{GAT}_L \circ \mathrm{ELU} \circ \dots \circ \mathrm{GAT}_1

    Edge weights enter the attention scores as a 1-d edge feature
    (``edge_dim=1``). Hidden layers concatenate their ``heads``; the last one
    averages them and starts at zero (weight and bias), so :math:`\hat x = x`
    at initialisation.

    Args:
        in_channels (int): node feature size, :math:`k^2` for sketches.
        hidden_channels (int, optional): width per head of the hidden layers. (default: ``64``)
        num_layers (int, optional): number of ``GATConv`` layers. (default: ``2``)
        heads (int, optional): attention heads per layer. (default: ``1``)

    Shapes:
        - input: :math:`(N, F)`, edge_index :math:`(2, E)`, edge_weight :math:`(E)`
        - output: :math:`(N, F)`
    """

    def __init__(self, in_channels: int, hidden_channels: int = 64, num_layers: int = 2, heads: int = 1):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"GATCoordinator: num_layers={num_layers!r} is invalid; use an integer >= 1")
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.num_layers, self.heads = num_layers, heads
        sizes = [in_channels] + [hidden_channels * heads] * (num_layers - 1)
        self.convs = nn.ModuleList(GATConv(a, hidden_channels, heads=heads, edge_dim=1) for a in sizes[:-1])
        self.convs.append(GATConv(sizes[-1], in_channels, heads=heads, concat=False, edge_dim=1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()
        last = self.convs[-1]
        nn.init.zeros_(last.lin.weight)
        nn.init.zeros_(last.bias)

    def coordinate(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None) -> Tensor:
        if edge_weight is None:
            edge_weight = x.new_ones(edge_index.size(1))
        edge_attr = edge_weight.to(x.dtype).view(-1, 1)  # (E, 1)
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h, edge_index, edge_attr)
            if i < self.num_layers - 1:
                h = torch.nn.functional.elu(h)
        return x + h

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}, hidden_channels={self.hidden_channels}, "
            f"num_layers={self.num_layers}, heads={self.heads})"
        )
