r"""Node features of the layer graph: JL sketches of the adapter updates
(DESIGN.md, "Stage 2: Sketches").

A full update :math:`\Delta\tilde W_i \in \mathbb{R}^{d_{out} \times d_{in}}` is
too big to be a node feature. With fixed seeded Gaussian projections
:math:`P \in \mathbb{R}^{d_{out} \times k}`, :math:`Q \in \mathbb{R}^{d_{in} \times k}`
(entries :math:`\mathcal{N}(0, 1/k)`, one pair per weight shape),

.. math::
    x_i = \mathrm{vec}(P^\top \Delta\tilde W_i Q)
        = s_i \cdot \mathrm{vec}\big((P^\top B_i)\, \mathrm{diag}(\bar m_i)\, (A_i Q)\big)
        \in \mathbb{R}^{k^2},
    \qquad \mathbb{E}\,\langle x_i, x_j \rangle = \langle \Delta\tilde W_i, \Delta\tilde W_j \rangle_F .

The right-hand side never forms a :math:`d_{out} \times d_{in}` matrix: cost
:math:`O(k\, r\, (d_{in} + d_{out}))` per node, independent of the batch.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from structlora.theory import jl_projection, sketch_lowrank

Shape = tuple[int, int]  # (d_out, d_in)


def layer_weight_shape(layer: nn.Module) -> Shape:
    """``(d_out, d_in)`` of an adapted layer (duck-typed: ``out_features``, ``in_features``)."""
    return int(layer.out_features), int(layer.in_features)


def projection_seed(seed: int, shape: Shape) -> int:
    """A seed that depends only on ``seed`` and the weight shape.

    So the same shape gets the same (P, Q) whatever other layers are adapted,
    on every rank and across restarts.
    """
    d_out, d_in = shape
    return (seed * 1_000_003 + d_out * 10_007 + d_in) % (2**63 - 1)


class Sketcher(nn.Module):
    r"""JL sketches of the gated LoRA updates, one node per adapted layer.

    .. math::
        x_i = s_i \cdot \mathrm{vec}\big((P^\top B_i)\, \mathrm{diag}(\bar m_i)\,
        (A_i Q)\big), \qquad P_{ab}, Q_{ab} \sim \mathcal{N}(0, 1/k)

    so that :math:`\mathbb{E}\langle x_i, x_j\rangle = \langle \Delta\tilde W_i,
    \Delta\tilde W_j\rangle_F` for layers of the same shape. Differentiable in
    ``lora_A``, ``lora_B`` and the gate parameters (through ``gate.mask()``).

    The layers are only referenced, not registered as submodules, so the
    sketcher adds nothing to a checkpoint; the projections are non-persistent
    buffers regenerated from ``seed``.

    Args:
        layers (Mapping[str, nn.Module]): module path -> adapted layer, in depth
            order; each has ``lora_A`` (r, d_in), ``lora_B`` (d_out, r),
            ``scaling``, ``gate.mask()`` (r,), ``in_features``, ``out_features``.
        k (int, optional): sketch size; node features live in :math:`\mathbb{R}^{k^2}`.
            (default: ``16``)
        seed (int, optional): seeds the projections. (default: ``0``)

    Shapes:
        - :meth:`node_sketches`: :math:`(N, k^2)`
        - ``P`` of shape :math:`(d_{out}, d_{in})`: :math:`(d_{out}, k)`;
          ``Q``: :math:`(d_{in}, k)`
    """

    def __init__(self, layers: Mapping[str, nn.Module], k: int = 16, seed: int = 0):
        super().__init__()
        if not layers:
            raise ValueError("Sketcher needs at least one adapted layer, found none")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"Sketcher: k must be a positive integer, found k={k!r}")
        self.names = list(layers)
        self.layers = list(layers.values())  # a plain list: not submodules, not in state_dict
        self.shapes = [layer_weight_shape(layer) for layer in self.layers]
        self.k = k
        self.seed = seed
        self._keys: dict[Shape, str] = {}
        for shape, layer in zip(self.shapes, self.layers):
            if shape not in self._keys:
                self._keys[shape] = f"{shape[0]}x{shape[1]}"
                like = layer.lora_A
                self.register_buffer(f"P_{self._keys[shape]}", like.new_empty(shape[0], k), persistent=False)
                self.register_buffer(f"Q_{self._keys[shape]}", like.new_empty(shape[1], k), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draw every (P, Q) on the CPU from its shape's seed, so all devices agree."""
        for shape, key in self._keys.items():
            g = torch.Generator().manual_seed(projection_seed(self.seed, shape))
            P, Q = getattr(self, f"P_{key}"), getattr(self, f"Q_{key}")
            P.copy_(jl_projection(shape[0], self.k, g))  # drawn before Q: independent even if square
            Q.copy_(jl_projection(shape[1], self.k, g))

    @property
    def num_nodes(self) -> int:
        return len(self.layers)

    def projections(self, shape: Shape) -> tuple[Tensor, Tensor]:
        """``(P, Q)`` for weights of shape ``(d_out, d_in)``."""
        if shape not in self._keys:
            raise KeyError(f"no projection for weight shape {shape}; known shapes: {list(self._keys)}")
        key = self._keys[shape]
        return getattr(self, f"P_{key}"), getattr(self, f"Q_{key}")

    def sketch(self, index: int) -> Tensor:
        r"""Sketch of node ``index``, :math:`(k^2,)`, computed from the factors."""
        layer = self.layers[index]
        P, Q = self.projections(self.shapes[index])
        A, B = layer.lora_A, layer.lora_B
        m = layer.gate.mask().to(device=A.device, dtype=A.dtype)  # (r,)
        return sketch_lowrank(B, A, P.to(A.dtype), Q.to(A.dtype), layer.scaling, m)

    def node_sketches(self) -> Tensor:
        r"""All node sketches stacked in depth order, :math:`(N, k^2)`.

        Batched per group of layers sharing weight shape, rank, dtype and device:
        one ``P^T [B_1 ... B_n]`` and one ``[A_1; ...; A_n] Q`` GEMM and one
        batched product per group, instead of a few small ops per node (the
        per-node loop dominated the per-step coupling cost at N = 224;
        BENCHMARKS.md, "Cost"). Equal to stacking :meth:`sketch` up to float
        rounding.
        """
        groups: dict[tuple, list[int]] = {}
        for i, (shape, layer) in enumerate(zip(self.shapes, self.layers)):
            A = layer.lora_A
            groups.setdefault((shape, A.shape[0], A.dtype, A.device), []).append(i)
        parts, order = [], []
        for (shape, r, dtype, device), idx in groups.items():
            P, Q = self.projections(shape)
            P, Q = P.to(dtype), Q.to(dtype)
            layers = [self.layers[i] for i in idx]
            n, k = len(idx), self.k
            B = torch.cat([layer.lora_B for layer in layers], dim=1)  # (d_out, n r)
            A = torch.cat([layer.lora_A for layer in layers], dim=0)  # (n r, d_in)
            left = (P.mT @ B).view(k, n, r).transpose(0, 1)  # (n, k, r): P^T B_i
            right = (A @ Q).view(n, r, k)  # (n, r, k): A_i Q
            m = torch.stack([layer.gate.mask().to(device=device, dtype=dtype) * layer.scaling for layer in layers])
            parts.append(torch.bmm(left * m[:, None, :], right).reshape(n, k * k))
            order += idx
        x = torch.cat(parts) if len(parts) > 1 else parts[0]
        if order == sorted(order):
            return x
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return x.index_select(0, inverse.to(x.device))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nodes={self.num_nodes}, shapes={len(self._keys)}, k={self.k}, seed={self.seed})"
