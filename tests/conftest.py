"""Shared pytest configuration: Hypothesis profiles and tiny-model fixtures.

Profiles: ``ci`` (default, fast, deterministic) and ``dev`` (deeper search).
Select with ``HYPOTHESIS_PROFILE=dev pytest``.
"""
import os

import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

torch.set_num_threads(min(2, torch.get_num_threads()))
