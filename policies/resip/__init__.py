"""ResiP (Ankile et al., "From Imitation to Refinement"): a per-tick residual on a frozen chunked
imitation policy (issue 16). The composition, its checkpoint and its executor live here; the
PPO training of the residual is not written yet."""

from rosmind.registry import POLICIES

from .policy import ResidualPolicy, ResipConfig

POLICIES.register("resip", config=ResipConfig)(ResidualPolicy)

__all__ = ["ResidualPolicy", "ResipConfig"]
