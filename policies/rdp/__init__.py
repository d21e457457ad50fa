"""RDP (Reactive Diffusion Policy): slow latent diffusion, fast force-reactive decoding."""

from rosmind.registry import POLICIES

from .config import RDPConfig
from .policy import RDPPolicy

POLICIES.register("rdp", config=RDPConfig)(RDPPolicy)

__all__ = ["RDPConfig", "RDPPolicy"]
