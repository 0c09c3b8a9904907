r"""Stage 2 of StructLoRA: sketches, the layer graph (a PyG ``Data``), coordinators
and the losses that couple them to training (DESIGN.md, "Stage 2"; docs/graph.md)."""
from .builder import BLOCK_CONTAINERS, SEMANTIC, STRUCTURAL, LayerGraphBuilder, parse_block
from .coordinators import (
    COORDINATORS,
    Coordinator,
    GATCoordinator,
    GCNCoordinator,
    LaplacianCoordinator,
    NoCoordinator,
    register_coordinator,
    resolve_coordinator,
)
from .coupling import CouplingLosses, coordination_loss, coupling_losses, denoising_loss
from .draw import draw_layer_graph, to_networkx
from .grad_sketch import GradientSketcher
from .laplacian import is_degenerate, sym_laplacian
from .sketch import Sketcher, layer_weight_shape

__all__ = [
    "BLOCK_CONTAINERS",
    "COORDINATORS",
    "Coordinator",
    "CouplingLosses",
    "GATCoordinator",
    "GCNCoordinator",
    "GradientSketcher",
    "LaplacianCoordinator",
    "LayerGraphBuilder",
    "NoCoordinator",
    "SEMANTIC",
    "STRUCTURAL",
    "Sketcher",
    "coordination_loss",
    "coupling_losses",
    "denoising_loss",
    "draw_layer_graph",
    "is_degenerate",
    "layer_weight_shape",
    "parse_block",
    "register_coordinator",
    "resolve_coordinator",
    "sym_laplacian",
    "to_networkx",
]
