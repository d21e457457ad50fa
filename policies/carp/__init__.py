"""CARP family (registered as ``"carp"``): multi-scale action tokenizer + coarse-to-fine
autoregressive transformer; see ``policy.py``."""

from rosmind.registry import POLICIES

from .config import CarpConfig
from .policy import CarpPolicy

POLICIES.register("carp", config=CarpConfig)(CarpPolicy)

__all__ = ["CarpConfig", "CarpPolicy"]
