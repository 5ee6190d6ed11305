"""Test-wide settings that make mistakes loud.

* strict dtype promotion: mixing float32 and bfloat16 (or int and float) without an explicit
  cast raises instead of silently promoting;
* rank promotion raises: a ``[hidden]`` vector added to ``[batch, hidden]`` must be broadcast
  on purpose;
* warnings are errors (pyproject's filterwarnings), with named exceptions for third-party noise;
* hypothesis: no deadline (first calls compile), few examples by default, more under the
  ``slow`` profile (``HYPOTHESIS_PROFILE=thorough``).
"""

from __future__ import annotations

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "default",
    deadline=None,
    max_examples=15,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def x64():
    """Runs a test with 64-bit floats enabled (for finite-difference gradient checks)."""
    with jax.enable_x64(True):
        yield
