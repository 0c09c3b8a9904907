r"""Parameter-free Laplacian smoothing of the node sketches (DESIGN.md, "Coordinators")."""
from __future__ import annotations

from torch import Tensor

from structlora.theory import check_step_size, smooth

from ..laplacian import sym_laplacian
from .base import Coordinator
from .registry import register_coordinator


@register_coordinator("laplacian")
class LaplacianCoordinator(Coordinator):
    r"""``steps`` Laplacian smoothing steps,

    .. math::
        \hat x = (I - \eta L)^K x, \qquad L = I - D^{-1/2} W D^{-1/2}

    (isolated nodes: zero rows, see :mod:`structlora.graph.laplacian`). For
    :math:`0 < \eta \le 2/\lambda_{\max}(L)` the drift energy never rises;
    :math:`\lambda_{\max} \le 2` here, so :math:`0 < \eta \le 1` is always
    safe. ``eta`` is checked against the bound of each graph it is given.

    Args:
        eta (float, optional): step size :math:`\eta`. (default: ``0.5``)
        steps (int, optional): number of steps :math:`K \ge 1`. (default: ``1``)

    Shapes:
        - input: :math:`(N, F)`, edge_index :math:`(2, E)`, edge_weight :math:`(E)`
        - output: :math:`(N, F)`
    """

    def __init__(self, eta: float = 0.5, steps: int = 1):
        super().__init__()
        if not eta > 0:
            raise ValueError(
                f"LaplacianCoordinator: eta={eta!r} is outside (0, 2/lambda_max]; "
                "use 0 < eta <= 1, always safe for the symmetric normalised Laplacian"
            )
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"LaplacianCoordinator: steps={steps!r} is invalid; use an integer >= 1")
        self.eta = float(eta)
        self.steps = steps
        self._graph: tuple[Tensor, Tensor | None, int] | None = None
        self._L: Tensor | None = None

    def laplacian(self, edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int) -> Tensor:
        """The checked Laplacian of the graph; cached while the same graph tensors come in."""
        graph = self._graph
        if graph is None or graph[0] is not edge_index or graph[1] is not edge_weight or graph[2] != num_nodes:
            L = sym_laplacian(edge_index, edge_weight, num_nodes)
            check_step_size(L, self.eta)
            self._graph, self._L = (edge_index, edge_weight, num_nodes), L
        return self._L

    def coordinate(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None) -> Tensor:
        L = self.laplacian(edge_index, edge_weight, x.size(0)).to(x.dtype)
        return smooth(x, L, self.eta, self.steps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eta={self.eta:g}, steps={self.steps})"
