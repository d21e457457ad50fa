"""A zero-compute policy: hold the current joint positions (for transport benchmarks).

``infer({"joint_pos": [To, D]}) -> {"action": [1, D]}``, the newest joint positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rosmind.errors import SpecError
from rosmind.policy import PolicyConfig
from rosmind.registry import POLICIES


@dataclass
class InstantConfig(PolicyConfig):
    obs_keys: tuple[str, ...] = ("joint_pos",)
    n_obs_steps: int = 1
    horizon: int = 1
    n_action_steps: int = 1


@POLICIES.register("instant", config=InstantConfig)
class InstantPolicy:
    def __init__(self, config: InstantConfig | None = None):
        self.config = config or InstantConfig()

    def reset(self) -> None:
        pass

    def infer(self, obs: dict[str, np.ndarray]) -> dict:
        if "joint_pos" not in obs:
            raise SpecError(f"instant policy: observation lacks 'joint_pos'; it has {sorted(obs)}")
        q = np.asarray(obs["joint_pos"], dtype=np.float64)
        return {"action": q.reshape(-1, q.shape[-1])[-1:].copy()}
