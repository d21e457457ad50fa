"""Diffusion Policy family (registered as ``"diffusion"``): see ``policy.py``."""

from rosmind.registry import POLICIES

from .config import DiffusionConfig
from .policy import DiffusionPolicy

POLICIES.register("diffusion", config=DiffusionConfig)(DiffusionPolicy)

__all__ = ["DiffusionConfig", "DiffusionPolicy"]
