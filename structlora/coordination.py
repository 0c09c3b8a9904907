r"""Wiring Stage 2 into training: sketches, refreshes, coordinator and coupling losses.

On every training step the coupling losses of DESIGN.md are computed on the
current layer graph:

.. math::
    L_{coord} = \tfrac1N \lVert x - \mathrm{sg}(\hat x) \rVert^2 \,/\, \nu, \qquad
    L_{den} = \tfrac1N \big(\lVert \hat x - \mathrm{sg}(x) \rVert^2 + c\,\mathrm{tr}(\hat x^\top L \hat x)\big) \,/\, \nu

with :math:`\hat x = \mathrm{coordinator}(\mathrm{sg}(x))` and :math:`\nu = 1`
by default. With ``coord_normalize=True``, :math:`\nu = \mathrm{sg}(\tfrac1N
\lVert x \rVert^2) + \epsilon`; that option is off by default because its
gradient grows like :math:`1/\lVert x \rVert` near the zero start of B and was
measured to hold MiniLM at chance accuracy (BENCHMARKS.md,
``benchmarks/coupling_gradient.py``).

Every ``refresh_every`` steps the gradient sketches are captured during the
next backward pass, folded into their EMA, and the graph's semantic edges
rebuilt; the structural edges never change.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from .config import StructLoRAConfig
from .graph import Coordinator, GradientSketcher, LayerGraphBuilder, Sketcher, coupling_losses

EPS = 1e-12


class GraphCoordination(nn.Module):
    """Owns the sketcher, the gradient sketcher, the graph builder and the coordinator.

    Args:
        adapters (dict): module path -> GatedLoRALayer, in depth order.
        config (StructLoRAConfig): sketch size, refresh period, tau, top-k, lam, c.
        coordinator (Coordinator): the resolved coordinator (a submodule).
    """

    def __init__(self, adapters: dict, config: StructLoRAConfig, coordinator: Coordinator):
        super().__init__()
        self.config = config
        self.sketcher = Sketcher(adapters, k=config.sketch_size, seed=config.seed)
        self.coordinator = coordinator
        self.builder = LayerGraphBuilder.from_layers(
            adapters, tau=config.tau, top_k=config.semantic_top_k, same_block_edges=config.same_block_edges
        )
        self.grad_sketcher = GradientSketcher(adapters, self.sketcher, ema=config.grad_ema)
        self.grad_sketcher.armed = True  # the first backward pass seeds the semantic edges
        with torch.no_grad():
            self.graph = self.builder.build(self.sketcher.node_sketches().detach())
        self.learned = any(True for _ in coordinator.parameters())
        self._last_x: Tensor | None = None  # this step's detached sketches, reused by the refresh

    def losses(self) -> tuple[Tensor, Tensor]:
        """``(L_coord, L_den)`` on the current graph (``L_den`` is 0 for parameter-free coordinators)."""
        x = self.sketcher.node_sketches()  # (N, k*k)
        self._last_x = x.detach()
        ei, ew = self.graph.edge_index, self.graph.edge_weight.to(x.dtype)
        c = self.config.denoise_c if self.learned else 0.0
        out = coupling_losses(x, self.coordinator, ei, ew, c)
        scale = x.detach().pow(2).sum(1).mean() + EPS if self.config.coord_normalize else 1.0
        denoise = out.denoise / scale if self.learned else out.denoise.detach() * 0
        return out.coord / scale, denoise

    @torch.no_grad()
    def after_step(self, step: int) -> bool:
        """Refresh the graph if this step captured gradient sketches; arm the next refresh.

        Returns whether the graph was rebuilt.
        """
        refreshed = False
        if self.grad_sketcher.armed and self.grad_sketcher._pending:
            self.grad_sketcher.update()
            # this step's sketches (before the optimizer step) stand in for the current ones:
            # recomputing all N sketches dominated the refresh cost (BENCHMARKS.md)
            x = self.sketcher.node_sketches() if self._last_x is None else self._last_x
            self.graph = self.builder.build(x, self.grad_sketcher.sketches())
            refreshed = True
        self.grad_sketcher.armed = step % self.config.refresh_every == 0 or (
            self.grad_sketcher.armed and not refreshed
        )
        return refreshed

    @torch.no_grad()
    def current_graph(self) -> Data:
        """The layer graph with the current node sketches and the last semantic edges."""
        grads = self.grad_sketcher.sketches() if self.grad_sketcher.num_updates else None
        return self.builder.build(self.sketcher.node_sketches(), grads)

    def remove_hooks(self) -> None:
        self.grad_sketcher.remove()

    # --- checkpoints (structlora.resume) ---
    def discard_pending(self) -> None:
        """Forget gradient sketches captured by a step that was skipped (non-finite values)."""
        self.grad_sketcher._pending = {}

    def training_state(self) -> tuple[dict[str, Tensor], dict]:
        """``(tensors, meta)``: the layer graph, the gradient-sketch EMA and the refresh schedule."""
        g = self.graph
        tensors = {"graph.x": g.x, "graph.edge_index": g.edge_index, "graph.edge_weight": g.edge_weight,
                   "graph.edge_type": g.edge_type}
        if self.grad_sketcher._state is not None:
            tensors["grad_sketches"] = self.grad_sketcher._state
        meta = {"num_updates": self.grad_sketcher.num_updates, "armed": self.grad_sketcher.armed}
        return tensors, meta

    @torch.no_grad()
    def load_training_state(self, tensors: dict[str, Tensor], meta: dict) -> None:
        """Restore what :meth:`training_state` returned (tensors moved to the sketches' device)."""
        device = next(iter(self.sketcher.buffers())).device
        graph = self.builder.build(tensors["graph.x"].to(device))  # names, block, shape
        for key in ("edge_index", "edge_weight", "edge_type"):
            graph[key] = tensors[f"graph.{key}"].to(device)
        self.graph = graph
        ema = tensors.get("grad_sketches")
        self.grad_sketcher._state = None if ema is None else ema.to(device, self.grad_sketcher.dtype).clone()
        self.grad_sketcher.num_updates = int(meta["num_updates"])
        self.grad_sketcher.armed = bool(meta["armed"])
        self.grad_sketcher._pending = {}
