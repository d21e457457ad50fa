"""ResiP (Ankile et al., "From Imitation to Refinement"): a per-tick residual on a frozen chunked
imitation policy (issue 16): the composition and its checkpoint (``policy``), its RL env
(``env``, trained by ``rosmind.policies.rl``); the executor is ``policies.executors.ResidualExecutor``."""

from rosmind.registry import POLICIES

from .policy import ResidualPolicy, ResipConfig

POLICIES.register("resip", config=ResipConfig, trainer="rl")(ResidualPolicy)

__all__ = ["ResidualPolicy", "ResipConfig"]
