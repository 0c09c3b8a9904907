r"""The layer graph: one node per adapted layer, structural and semantic edges
(DESIGN.md, "Stage 2: The layer graph").

Nodes are the adapted modules in depth (module) order. Each node's **block**
is read from its module path: the first integer path component that follows a
container name in :data:`BLOCK_CONTAINERS` (``encoder.layer.3.attention.self.query``
is block 3). The part of the path before the container is the node's **stack**
(``encoder.layer``; it keeps an encoder and a decoder apart) and the part after
the index its **type** (``attention.self.query``; the whole in-block path, not
only the last component, so BERT's ``attention.output.dense`` and
``output.dense`` are different types). Rules for modules outside any block:

- if no adapted module sits in a block (a plain MLP, a single-block model),
  every node is in block 0: there are no depth-chain edges, only same-block
  and semantic ones;
- otherwise a module outside any block (BERT's ``pooler.dense``) gets block
  ``-1`` and no structural edge; it can still get semantic edges.

Edges (undirected, both directions stored, never between different weight
shapes, never self-loops):

- **structural** (type 0, weight 1): the same stack and type in consecutive
  blocks (the depth chain); with ``same_block_edges``, also between
  same-shape modules of one block;
- **semantic** (type 1, weight = cosine): between same-shape nodes whose
  gradient sketches have cosine :math:`\ge \tau`; each node proposes its
  ``top_k`` best partners and the proposals are symmetrised by union (as
  ``knn_graph`` + ``to_undirected``), so a node's semantic degree can exceed
  ``top_k``. Only positive cosines make edges: drift energy needs
  :math:`w_{ij} \ge 0`, so :math:`\tau \le 0` means "every positively aligned pair".

A pair that is both structural and semantic keeps one edge, the structural one
(type 0, weight 1): structure is fixed between refreshes, and a cosine is at
most 1, so the pair loses no weight.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from .sketch import Shape, layer_weight_shape

BLOCK_CONTAINERS = ("layer", "layers", "h", "block", "blocks")
STRUCTURAL, SEMANTIC = 0, 1


def parse_block(name: str, containers: Sequence[str] = BLOCK_CONTAINERS) -> tuple[str, int, str] | None:
    """``(stack, block, type)`` of a module path, or ``None`` outside any block.

    ``"model.layers.2.self_attn.q_proj"`` -> ``("model.layers", 2, "self_attn.q_proj")``.
    """
    parts = name.split(".")
    for i in range(1, len(parts)):
        if parts[i].isdigit() and parts[i - 1] in containers:
            return ".".join(parts[:i]), int(parts[i]), ".".join(parts[i + 1:]) or parts[i - 1]
    return None


class LayerGraphBuilder:
    r"""Builds the layer graph as a ``torch_geometric.data.Data``.

    .. math::
        w_{ij} = \begin{cases}
            1 & \text{structural (consecutive blocks, same stack and type)} \\
            \cos(g_i, g_j) & \text{semantic, if } \cos(g_i, g_j) \ge \tau
                \text{ and } j \in \mathrm{top}_k(i) \text{ or } i \in \mathrm{top}_k(j)
        \end{cases}

    for nodes :math:`i \ne j` of the same weight shape (:math:`g`: gradient
    sketches). Structural edges are computed once here; :meth:`build` adds the
    semantic ones of the current gradient sketches.

    Args:
        names (Sequence[str]): module paths of the adapted layers, in depth order.
        shapes (Sequence[tuple[int, int]]): their weight shapes ``(d_out, d_in)``.
        tau (float, optional): cosine threshold of semantic edges, in [-1, 1].
            (default: ``0.3``)
        top_k (int, optional): semantic partners proposed per node; 0 disables
            semantic edges. (default: ``2``)
        same_block_edges (bool, optional): add structural edges between
            same-shape modules of one block. (default: ``False``)
        block_containers (Sequence[str], optional): path components whose next
            component is a block index. (default: :data:`BLOCK_CONTAINERS`)

    Shapes:
        - :meth:`build` input: node sketches :math:`(N, F)`, gradient sketches
          :math:`(N, F')` or ``None``
        - output ``Data``: ``x`` :math:`(N, F)`, ``edge_index`` :math:`(2, E)`,
          ``edge_weight`` :math:`(E)`, ``edge_type`` :math:`(E)`, ``block``
          :math:`(N)`, ``shape`` :math:`(N, 2)`, ``names`` (list of N str)
    """

    def __init__(
        self,
        names: Sequence[str],
        shapes: Sequence[Shape],
        tau: float = 0.3,
        top_k: int = 2,
        same_block_edges: bool = False,
        block_containers: Sequence[str] = BLOCK_CONTAINERS,
    ):
        if len(names) != len(shapes):
            raise ValueError(f"LayerGraphBuilder: {len(names)} names but {len(shapes)} shapes; pass one shape per name")
        if not -1.0 <= tau <= 1.0:
            raise ValueError(f"LayerGraphBuilder: tau={tau!r} is invalid; a cosine threshold must lie in [-1, 1]")
        if not isinstance(top_k, int) or top_k < 0:
            raise ValueError(f"LayerGraphBuilder: top_k={top_k!r} is invalid; use an integer >= 0")
        self.names = list(names)
        self.shapes = [tuple(int(d) for d in s) for s in shapes]
        self.tau = float(tau)
        self.top_k = top_k
        self.same_block_edges = same_block_edges
        parsed = [parse_block(n, block_containers) for n in self.names]
        if all(p is None for p in parsed):
            parsed = [("", 0, n) for n in self.names]
        self._parsed = parsed
        self.block = torch.tensor([-1 if p is None else p[1] for p in parsed], dtype=torch.long)
        self.structural_pairs = self._structural_pairs()
        self._shape_mask = self._same_shape()  # fixed for the builder's life: computed once

    @classmethod
    def from_layers(cls, layers: Mapping[str, nn.Module], **kwargs) -> "LayerGraphBuilder":
        """A builder for ``{module path: adapted layer}`` (shapes from ``out_features``, ``in_features``)."""
        return cls(list(layers), [layer_weight_shape(l) for l in layers.values()], **kwargs)

    @property
    def num_nodes(self) -> int:
        return len(self.names)

    def _structural_pairs(self) -> set[tuple[int, int]]:
        """Undirected pairs ``(i, j)``, ``i < j``, of the structural edges."""
        where = {(p[0], p[1], p[2]): i for i, p in enumerate(self._parsed) if p is not None}
        pairs = set()
        for (stack, block, kind), i in where.items():
            j = where.get((stack, block + 1, kind))
            if j is not None and self.shapes[i] == self.shapes[j]:
                pairs.add((min(i, j), max(i, j)))
        if self.same_block_edges:
            for i in range(self.num_nodes):
                for j in range(i + 1, self.num_nodes):
                    if self._same_block(i, j) and self.shapes[i] == self.shapes[j]:
                        pairs.add((i, j))
        return pairs

    def _same_block(self, i: int, j: int) -> bool:
        p, q = self._parsed[i], self._parsed[j]
        return p is not None and q is not None and p[:2] == q[:2]

    def _same_shape(self) -> Tensor:
        """(N, N) bool: distinct nodes of one weight shape, the only pairs an edge may join."""
        ids = {s: n for n, s in enumerate(dict.fromkeys(self.shapes))}
        shape_ids = torch.tensor([ids[s] for s in self.shapes])
        return (shape_ids[:, None] == shape_ids[None, :]) & ~torch.eye(self.num_nodes, dtype=torch.bool)

    def semantic_pairs(self, grad_sketches: Tensor) -> dict[tuple[int, int], float]:
        """Undirected semantic pairs ``(i, j)``, ``i < j`` -> cosine of their gradient sketches."""
        if grad_sketches.dim() != 2 or grad_sketches.shape[0] != self.num_nodes:
            raise ValueError(
                f"grad_sketches must have shape (N, F) with N={self.num_nodes}, found {tuple(grad_sketches.shape)}"
            )
        k = min(self.top_k, self.num_nodes - 1)
        if k == 0:
            return {}
        g = F.normalize(grad_sketches.detach().double().cpu(), dim=1)  # a zero sketch has cosine 0 with all
        cos = (g @ g.T).clamp(-1.0, 1.0)  # (N, N)
        allowed = self._shape_mask & (cos >= self.tau) & (cos > 0)
        top = cos.masked_fill(~allowed, float("-inf")).topk(k, dim=1)
        keep = torch.isfinite(top.values)  # row-major, as a loop over rows then columns would visit them
        rows = torch.arange(self.num_nodes)[:, None].expand_as(top.indices)[keep].tolist()
        pairs = {}
        for i, j, value in zip(rows, top.indices[keep].tolist(), top.values[keep].tolist()):
            pairs[(min(i, j), max(i, j))] = value
        return pairs

    def build(self, x: Tensor, grad_sketches: Tensor | None = None) -> Data:
        r"""The layer graph for node sketches ``x`` :math:`(N, F)` and gradient sketches (optional).

        Without gradient sketches the graph has structural edges only.
        """
        if x.dim() != 2 or x.shape[0] != self.num_nodes:
            raise ValueError(f"x must have shape (N, F) with N={self.num_nodes}, found {tuple(x.shape)}")
        edges = {pair: (1.0, STRUCTURAL) for pair in self.structural_pairs}
        if grad_sketches is not None:
            for pair, cos in self.semantic_pairs(grad_sketches).items():
                edges.setdefault(pair, (cos, SEMANTIC))  # a structural pair stays structural
        directed = sorted([(i, j, w, t) for (i, j), (w, t) in edges.items()]
                          + [(j, i, w, t) for (i, j), (w, t) in edges.items()])
        device = x.device
        return Data(
            x=x,
            edge_index=torch.tensor([[e[0] for e in directed], [e[1] for e in directed]],
                                    dtype=torch.long, device=device).reshape(2, -1),
            edge_weight=torch.tensor([e[2] for e in directed], dtype=x.dtype, device=device),
            edge_type=torch.tensor([e[3] for e in directed], dtype=torch.long, device=device),
            names=list(self.names),
            block=self.block.to(device),
            shape=torch.tensor(self.shapes, dtype=torch.long, device=device).reshape(-1, 2),
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(nodes={self.num_nodes}, tau={self.tau}, top_k={self.top_k}, "
            f"same_block_edges={self.same_block_edges})"
        )
