"""Resolving the two strategy slots of a StructLoRAConfig (bottleneck, coordinator)."""
from __future__ import annotations

from .config import StructLoRAConfig


def resolve_strategies(config: StructLoRAConfig):
    """``(bottleneck, coordinator)`` objects for ``config``; unknown names raise ``ValueError``.

    The coordinator gets ``in_channels = sketch_size**2`` when it needs it.
    """
    from .bottleneck import resolve_bottleneck
    from .graph import resolve_coordinator

    bottleneck = resolve_bottleneck(config.bottleneck, **config.bottleneck_kwargs)
    kwargs = dict(config.coordinator_kwargs)
    coordinator = resolve_coordinator(config.coordinator, in_channels=config.sketch_size**2, **kwargs)
    return bottleneck, coordinator


def strategy_name(strategy) -> str:
    """The registry name of a strategy given as a name, class or instance."""
    if isinstance(strategy, str):
        return strategy
    return getattr(strategy, "name", None) or getattr(strategy, "__name__", type(strategy).__name__)
