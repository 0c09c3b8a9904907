"""Coordinators by name, class or instance (PyG ``resolver.py`` style).

A new coordinator plugs in with one line::

    @register_coordinator("mine")
    class MyCoordinator(Coordinator): ...
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from .base import Coordinator

COORDINATORS: dict[str, type[Coordinator]] = {}


def _normalize(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def register_coordinator(name: str) -> Callable[[type[Coordinator]], type[Coordinator]]:
    """Class decorator registering a :class:`Coordinator` subclass under ``name``."""

    def register(cls: type[Coordinator]) -> type[Coordinator]:
        if not (isinstance(cls, type) and issubclass(cls, Coordinator)):
            raise TypeError(f"register_coordinator({name!r}) needs a Coordinator subclass, found {cls!r}")
        key = _normalize(name)
        if key in COORDINATORS and COORDINATORS[key] is not cls:
            raise ValueError(f"a coordinator named {name!r} is already registered ({COORDINATORS[key].__name__})")
        COORDINATORS[key] = cls
        return cls

    return register


def _lookup(query: str) -> type[Coordinator]:
    key = _normalize(query)
    for name, cls in COORDINATORS.items():
        if key in (name, _normalize(cls.__name__)):
            return cls
    choices = ", ".join(f"{n!r} ({c.__name__})" for n, c in COORDINATORS.items())
    raise ValueError(f"unknown coordinator {query!r}; choose one of {choices}")


def _instantiate(cls: type[Coordinator], kwargs: dict[str, Any]) -> Coordinator:
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not takes_any and "in_channels" not in params:
        kwargs = {k: v for k, v in kwargs.items() if k != "in_channels"}  # parameter-free coordinators
    unknown = [k for k in kwargs if k not in params] if not takes_any else []
    if unknown:
        allowed = [n for n in params if n != "self"]
        raise ValueError(f"{cls.__name__} got unknown argument(s) {unknown}; it accepts {allowed}")
    return cls(**kwargs)


def resolve_coordinator(query: str | type[Coordinator] | Coordinator, **kwargs: Any) -> Coordinator:
    """A coordinator from a name (``"gat"``, ``"GATCoordinator"``, case-insensitive), a class or an instance.

    ``kwargs`` go to the class; ``in_channels`` is dropped for coordinators
    that do not take it, so callers may always pass ``in_channels=k*k``. An
    instance is returned as is.
    """
    if isinstance(query, Coordinator):
        return query
    if isinstance(query, str):
        return _instantiate(_lookup(query), kwargs)
    if isinstance(query, type) and issubclass(query, Coordinator):
        return _instantiate(query, kwargs)
    raise ValueError(
        f"cannot resolve a coordinator from {query!r} of type {type(query).__name__}; "
        f"pass a name ({', '.join(map(repr, COORDINATORS))}), a Coordinator subclass or an instance"
    )
