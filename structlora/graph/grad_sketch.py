r"""Gradient sketches of the adapted layers, for semantic edges
(DESIGN.md, "Stage 2: Gradient sketches").

For a linear layer :math:`H = X W^\top` (tokens flattened: :math:`X \in
\mathbb{R}^{T \times d_{in}}`, :math:`H, \delta H \in \mathbb{R}^{T \times d_{out}}`,
:math:`\delta H = \partial L / \partial H`) the weight gradient is
:math:`\partial L / \partial W = \delta H^\top X`, so its sketch is exact and
never forms a :math:`d_{out} \times d_{in}` matrix:

.. math::
    g_i = \mathrm{vec}\big(P^\top (\partial L / \partial W_i)\, Q\big)
        = \mathrm{vec}\big((\delta H P)^\top (X Q)\big) \in \mathbb{R}^{k^2}.

:math:`W` is the effective weight :math:`W_0 + \Delta\tilde W` of the adapted
layer and :math:`X` its input (before the adapter's dropout). The sketch uses
the :class:`~structlora.graph.Sketcher`'s (P, Q), so it lives in the same space
as the node sketches. Cost :math:`O(T k (d_{in} + d_{out}))` per layer, and only
on refresh steps.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .sketch import Sketcher


class GradientSketcher:
    r"""Exponential moving average of per-layer gradient sketches, from hooks.

    .. math::
        g_i \leftarrow \mathrm{ema} \cdot g_i + (1 - \mathrm{ema}) \cdot
        \mathrm{vec}\big((\delta H_i P)^\top (X_i Q)\big)

    (the first :meth:`update` sets :math:`g_i` directly, so the average is not
    biased toward zero). While :attr:`armed`, a forward hook on every adapted
    layer stores :math:`X Q` and hooks the output to receive :math:`\delta H`;
    contributions of several forward passes (gradient accumulation) add up
    until :meth:`update`. Unarmed, the hook returns at once: no cost.

    Under ``torch.distributed`` the new sketches are averaged over ranks
    before the EMA, so every rank builds the same graph.

    Args:
        layers (Mapping[str, nn.Module]): module path -> adapted layer, the
            same layers (and order) as the ``sketcher``'s.
        sketcher (Sketcher): supplies the projections (P, Q) per weight shape.
        ema (float, optional): EMA factor in [0, 1). (default: ``0.9``)

    Shapes:
        - :meth:`sketches`: :math:`(N, k^2)`, in the layers' dtype but at least float32
    """

    def __init__(self, layers: Mapping[str, nn.Module], sketcher: Sketcher, ema: float = 0.9):
        if list(layers) != sketcher.names:
            raise ValueError(
                "GradientSketcher: layers must be the sketcher's layers in the same order; "
                f"found {len(layers)} layers vs {sketcher.num_nodes} in the sketcher"
            )
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"GradientSketcher: ema={ema!r} is invalid; use 0 <= ema < 1")
        self.sketcher = sketcher
        self.ema = ema
        self.armed = False
        self.num_updates = 0
        self._state: Tensor | None = None  # (N, k*k) EMA, created on first update
        self._pending: dict[int, Tensor] = {}  # node -> (k, k) sum since the last update
        self._handles = [
            layer.register_forward_hook(self._forward_hook(i)) for i, layer in enumerate(layers.values())
        ]

    def _forward_hook(self, index: int):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            if not self.armed or not isinstance(output, Tensor) or not output.requires_grad:
                return
            P, Q = (t.to(self.dtype) for t in self.sketcher.projections(self.sketcher.shapes[index]))
            X = inputs[0].detach()
            XQ = X.reshape(-1, X.shape[-1]).to(self.dtype) @ Q  # (T, k): X itself is not kept

            def on_grad(dH: Tensor) -> None:
                dHP = dH.reshape(-1, dH.shape[-1]).to(self.dtype) @ P  # (T, k)
                self._accumulate(index, dHP.T @ XQ)  # (k, k)

            output.register_hook(on_grad)

        return hook

    @property
    def dtype(self) -> torch.dtype:
        """The layers' dtype, at least float32: half-precision sums over many tokens lose small gradients."""
        return torch.promote_types(next(iter(self.sketcher.buffers())).dtype, torch.float32)

    def _accumulate(self, index: int, g: Tensor) -> None:
        self._pending[index] = self._pending[index] + g if index in self._pending else g

    def _collect(self) -> Tensor:
        k = self.sketcher.k
        like = next(iter(self.sketcher.buffers()))
        new = torch.zeros(self.sketcher.num_nodes, k * k, device=like.device, dtype=self.dtype)
        if self._pending:  # one stack + index_copy_, not N indexed writes (the refresh's largest cost at N = 224)
            index = torch.tensor(list(self._pending), device=new.device)
            rows = torch.stack([g.reshape(-1) for g in self._pending.values()]).to(new.device, new.dtype)
            new.index_copy_(0, index, rows)
        self._pending = {}
        return new

    @torch.no_grad()
    def update(self) -> Tensor:
        """Fold the sketches captured since the last update into the EMA; returns it.

        Call after ``loss.backward()`` on a refresh step. Layers that saw no
        gradient contribute zeros.
        """
        new = self._collect()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(new, op=dist.ReduceOp.SUM)
            new /= dist.get_world_size()
        if self._state is None:
            self._state = new
        else:
            self._state.mul_(self.ema).add_(new, alpha=1.0 - self.ema)
        self.num_updates += 1
        return self._state

    def sketches(self) -> Tensor:
        r"""The EMA of the gradient sketches, :math:`(N, k^2)` (zeros before any update)."""
        if self._state is None:
            like = next(iter(self.sketcher.buffers()))
            return torch.zeros(self.sketcher.num_nodes, self.sketcher.k**2, device=like.device, dtype=self.dtype)
        return self._state

    def remove(self) -> None:
        """Remove the forward hooks; the layers are left as they were."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.armed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nodes={self.sketcher.num_nodes}, ema={self.ema}, armed={self.armed})"
