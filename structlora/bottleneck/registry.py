"""Name -> class registries and a PyG-style resolver for strategies and gates.

Adding an estimator is one class plus one ``@register_bottleneck("name")``.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from ..adapters.gate import Gate, IdentityGate
from .base import Bottleneck


def _normalize(s: str) -> str:
    return s.lower().replace("-", "").replace("_", "").replace(" ", "")


class Registry:
    """Classes of one ``kind`` (e.g. ``"bottleneck"``), all subclasses of ``base``."""

    def __init__(self, kind: str, base: type):
        self.kind, self.base = kind, base
        self.classes: dict[str, type] = {}

    def add(self, name: str, cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"a {self.kind} must be a {self.base.__name__} subclass, got {cls!r}")
        clash = [n for n in self.classes if _normalize(n) == _normalize(name)]
        if clash:
            raise ValueError(
                f"a {self.kind} named {clash[0]!r} is already registered "
                f"({self.classes[clash[0]].__name__}); pick another name for {cls.__name__}"
            )
        self.classes[name] = cls
        return cls

    def choices(self) -> list[str]:
        return sorted(self.classes)

    def lookup(self, query: str) -> type:
        """The class registered as ``query`` (case, '-' and '_' ignored), or named so."""
        q, suffix = _normalize(query), _normalize(self.base.__name__)
        for name, cls in self.classes.items():
            cls_name = _normalize(cls.__name__)
            if q in (_normalize(name), cls_name, cls_name.removesuffix(suffix)):
                return cls
        raise ValueError(
            f"unknown {self.kind} {query!r}; choose one of: {', '.join(self.choices())} "
            f"(or pass a {self.base.__name__} subclass or instance)"
        )

    def resolve(self, query: str | type | Any, **kwargs) -> Any:
        """An instance from a name, a class (built with ``kwargs``) or an instance."""
        if isinstance(query, self.base):
            if kwargs:
                raise ValueError(
                    f"got a {type(query).__name__} instance and keyword arguments {sorted(kwargs)}; "
                    "configure the instance directly or pass its name or class instead"
                )
            return query
        cls = self.lookup(query) if isinstance(query, str) else query
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise ValueError(
                f"cannot resolve a {self.kind} from {query!r}; pass one of "
                f"{', '.join(self.choices())}, a {self.base.__name__} subclass or an instance"
            )
        try:
            inspect.signature(cls).bind(**kwargs)
        except TypeError as err:
            raise ValueError(
                f"{cls.__name__} does not accept {sorted(kwargs)} ({err}); "
                f"its arguments are {inspect.signature(cls)}"
            ) from None
        return cls(**kwargs)


BOTTLENECKS = Registry("bottleneck", Bottleneck)
GATES = Registry("gate", Gate)
GATES.add("identity", IdentityGate)


def register_bottleneck(name: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`Bottleneck` under ``name`` and set ``cls.name``."""
    def decorator(cls: type) -> type:
        BOTTLENECKS.add(name, cls)
        cls.name = name
        return cls
    return decorator


def register_gate(name: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`Gate` subclass under ``name``."""
    return lambda cls: GATES.add(name, cls)


def resolve_bottleneck(query: str | type | Bottleneck, **kwargs) -> Bottleneck:
    """A strategy from a name (``"hsic"``, ``"HSICBottleneck"``, ``"topk_norm"``), class or instance."""
    return BOTTLENECKS.resolve(query, **kwargs)


def resolve_gate(query: str | type | Gate, **kwargs) -> Gate:
    """A gate from a name (``"sigmoid"``, ``"GaussianGate"``), class (with ``r=...``) or instance."""
    return GATES.resolve(query, **kwargs)
