"""Domain checks shared by the gates: each error names the gate, the value and the range."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def check_open_unit(owner: str, name: str, value: float) -> float:
    """``value`` must lie in the open interval (0, 1) (a gate value a logit can reach)."""
    if not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
        raise ValueError(
            f"{owner}: {name}={value!r} is outside the allowed range (0, 1); "
            "a sigmoid-parametrised gate can only start strictly between 0 and 1"
        )
    return float(value)


def check_finite(owner: str, name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{owner}: {name}={value!r} must be a finite number")
    return float(value)


def check_positive_int(owner: str, name: str, value: int) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"{owner}: {name}={value!r} must be an integer >= 1")
    return value


def check_mask(owner: str, values: Tensor | list[float], r: int) -> Tensor:
    """A user-given mask: shape (r,), finite, every value in [0, 1]; returned as float."""
    m = torch.as_tensor(values).detach().to(torch.get_default_dtype())
    if m.shape != (r,):
        raise ValueError(f"{owner}: the mask must have shape ({r},), got {tuple(m.shape)}")
    bad = ~(torch.isfinite(m) & (m >= 0) & (m <= 1))
    if bool(bad.any()):
        j = int(bad.nonzero()[0])
        raise ValueError(
            f"{owner}: mask value {float(m[j])!r} at direction {j} is outside the allowed "
            "range [0, 1]; use 1 to keep a direction, 0 to drop it, or a fraction in between"
        )
    return m
