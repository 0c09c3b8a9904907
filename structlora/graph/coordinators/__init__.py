"""Coordinators of the layer graph and their registry."""
# Import order is registration order, which is the order error messages list the choices.
from .base import Coordinator
from .none import NoCoordinator
from .laplacian import LaplacianCoordinator
from .gcn import GCNCoordinator
from .gat import GATCoordinator
from .registry import COORDINATORS, register_coordinator, resolve_coordinator

__all__ = [
    "COORDINATORS",
    "Coordinator",
    "GATCoordinator",
    "GCNCoordinator",
    "LaplacianCoordinator",
    "NoCoordinator",
    "register_coordinator",
    "resolve_coordinator",
]
