"""The scripted experts (pick-and-place; ``wipe_expert``, force control) behind the policy contract (``rosmind.policy``).

    policy = POLICIES.get("expert").factory(ExpertConfig())
    policy.reset()
    policy.infer({"joint_pos": [1, 8], "ee_pose": [1, 7],
                  "object_poses": [1, N, 7], "goal_pose": [1, 7]})["action"]   # [horizon, 8]

It reads the newest step of each key; row 0 is the command for that tick. No learning, no
torch: it is the demonstrator for data collection and the reference in evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rosmind.errors import SpecError
from rosmind.policy import PolicyConfig
from rosmind.registry import POLICIES
from rosmind.sim.experts import PickPlaceExpert, PickPlaceExpertConfig
from rosmind.sim.experts_contact import WipeExpert, WipeExpertConfig
from rosmind.sim.experts_peg import PegInsertExpert, PegInsertExpertConfig
from rosmind.spec import load_spec


@dataclass
class ExpertConfig(PolicyConfig):
    """``expert`` holds the state machine's own knobs (speeds, heights, tolerances)."""

    robot: str = "panda"
    obs_keys: tuple[str, ...] = ("joint_pos", "ee_pose", "object_poses", "goal_pose")
    n_obs_steps: int = 1
    horizon: int = 8
    n_action_steps: int = 4
    expert: PickPlaceExpertConfig | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.robot != "panda":
            raise SpecError(f"ExpertConfig.robot: the pick_place expert drives the panda, got {self.robot!r}")
        if self.expert is None:
            self.expert = PickPlaceExpertConfig(horizon=self.horizon)
        elif self.expert.horizon != self.horizon:
            raise SpecError(f"ExpertConfig: expert.horizon {self.expert.horizon} differs from "
                            f"horizon {self.horizon}")


@POLICIES.register("expert", config=ExpertConfig)
class ExpertPolicy:
    """``infer(obs: {key: [To, ...]}) -> {"action": [horizon, 8], "phase": str}``."""

    def __init__(self, config: ExpertConfig | None = None):
        self.config = config or ExpertConfig()
        self.expert = PickPlaceExpert(load_spec(self.config.robot), self.config.expert)

    def reset(self) -> None:
        self.expert.reset()

    def infer(self, obs: dict[str, np.ndarray]) -> dict:
        missing = [k for k in self.config.obs_keys if k not in obs]
        if missing:
            raise SpecError(f"expert policy: observation lacks key(s) {missing}; it has {sorted(obs)}")
        newest = {k: np.asarray(obs[k])[-1] for k in self.config.obs_keys}
        bad = [k for k, v in newest.items() if not np.all(np.isfinite(v))]
        if bad:
            raise SpecError(f"expert policy: non-finite values in observation key(s) {bad}")
        action = self.expert.act(newest, n_executed=self.config.n_action_steps)
        return {"action": action, "phase": self.expert.phase}

    def take_over(self, obs: dict[str, np.ndarray], last_cmd: np.ndarray | None = None,
                  last_step: np.ndarray | None = None) -> str:
        """Continue an episode another policy began (``obs``: one tick, no history); see
        ``PickPlaceExpert.take_over``. Experts that cannot say so."""
        if not hasattr(self.expert, "take_over"):
            raise SpecError(f"{type(self.expert).__name__}: cannot take over an episode another policy began")
        return self.expert.take_over({k: np.asarray(obs[k]) for k in self.config.obs_keys}, last_cmd, last_step)

    def close(self) -> None:
        self.expert.close()


@dataclass
class WipeExpertPolicyConfig(PolicyConfig):
    """``wipe_expert``: the force-control demonstrator of the ``wipe`` task. It plans every tick
    (``n_action_steps=1``): its height follows the newest force reading."""

    robot: str = "panda"
    obs_keys: tuple[str, ...] = ("joint_pos", "ee_pose", "wrench", "goal_pose")
    n_obs_steps: int = 1
    horizon: int = 8
    n_action_steps: int = 1
    expert: WipeExpertConfig | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.robot != "panda":
            raise SpecError(f"WipeExpertPolicyConfig.robot: the wipe expert drives the panda, got {self.robot!r}")
        if self.expert is None:
            self.expert = WipeExpertConfig(horizon=self.horizon)
        elif self.expert.horizon != self.horizon:
            raise SpecError(f"WipeExpertPolicyConfig: expert.horizon {self.expert.horizon} differs from "
                            f"horizon {self.horizon}")


@POLICIES.register("wipe_expert", config=WipeExpertPolicyConfig)
class WipeExpertPolicy(ExpertPolicy):
    """``infer(obs: {key: [To, ...]}) -> {"action": [horizon, 8], "phase": str}``."""

    def __init__(self, config: WipeExpertPolicyConfig | None = None):
        self.config = config or WipeExpertPolicyConfig()
        self.expert = WipeExpert(load_spec(self.config.robot), self.config.expert)


@dataclass
class PegExpertPolicyConfig(PolicyConfig):
    """``peg_expert``: the demonstrator of ``peg_insert`` (noisy hole estimate, spiral search on a
    jam). It plans every tick (``n_action_steps=1``): a jam shows in the newest force reading."""

    robot: str = "panda"
    obs_keys: tuple[str, ...] = ("joint_pos", "ee_pose", "wrench", "goal_pose")
    n_obs_steps: int = 1
    horizon: int = 8
    n_action_steps: int = 1
    expert: PegInsertExpertConfig | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.robot != "panda":
            raise SpecError(f"PegExpertPolicyConfig.robot: the peg expert drives the panda, got {self.robot!r}")
        if self.expert is None:
            self.expert = PegInsertExpertConfig(horizon=self.horizon)
        elif self.expert.horizon != self.horizon:
            raise SpecError(f"PegExpertPolicyConfig: expert.horizon {self.expert.horizon} differs from "
                            f"horizon {self.horizon}")


@POLICIES.register("peg_expert", config=PegExpertPolicyConfig)
class PegExpertPolicy(ExpertPolicy):
    """``infer(obs: {key: [To, ...]}) -> {"action": [horizon, 8], "phase": str}``."""

    def __init__(self, config: PegExpertPolicyConfig | None = None):
        self.config = config or PegExpertPolicyConfig()
        self.expert = PegInsertExpert(load_spec(self.config.robot), self.config.expert)
