"""The policy contract shared by every family.

    policy.reset()
    out = policy.infer(obs)      # obs: {key: [To, *shape]} -> out["action"]: [Ta, Da]

``obs`` holds the last ``n_obs_steps`` observations per key (oldest first), with the keys
of ``rosmind.robot`` (``joint_pos``, ``ee_pose``, ``object_poses``, ...) and camera frames as
``camera/<name>/rgb`` ``[To, H, W, 3] uint8``. ``action`` rows are absolute joint position
targets in the robot spec's joint order, one per control period; row 0 is the command for
the control tick of the newest observation (applied right after it was observed). A policy may return more (RDP's latent, a value).

``reset()`` marks the start of an episode (clear histories, latents, filters). It does not
restart random sampling: each episode draws fresh noise, as it would on a robot. Sampling
policies also have ``reseed(seed=None)``, which restarts their generator (``config.seed`` by
default) so that a run of episodes, or one call in a test, is reproducible; ``reseed(policy)``
below calls it where it exists.

Noise per episode (``noise="episode"`` in ``rosmind eval`` and ``policy_node``): the noise of the
chunk planned at tick ``k`` of the episode with seed ``s`` is the policy's generator reseeded
at ``chunk_seed(s, k)`` (``infer_seeded``). It no longer depends on what ran before, on how
episodes were batched, or on the process, so any ROS-mode episode replays in direct mode.

Each family has a config dataclass (its single source of truth), registers with
``@POLICIES.register(name, config=Config)``, and keeps its normalizer inside itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from rosmind.errors import SpecError

ACTION_ANCHORS = ("measured", "command")


@dataclass
class PolicyConfig:
    """Fields every family has. ``obs_keys`` name the observation keys the policy reads."""

    robot: str = "panda"
    obs_keys: tuple[str, ...] = ("joint_pos",)
    n_obs_steps: int = 1
    horizon: int = 16
    n_action_steps: int = 8
    extra: dict = field(default_factory=dict)
    # What a relative chunk is added to when it runs (``ChunkExecutor``): "measured", the newest
    # joint_pos reading it was planned from; or "command", the setpoint the arm's controller is
    # tracking (the previous tick's command) for arm/leg joints: a noisy encoder reading then no
    # longer passes into every command of the chunk (the gripper, force-limited around an
    # object, keeps the measured anchor). Needs ``relative_actions``.
    action_anchor: str = "measured"

    def __post_init__(self):
        self.obs_keys = tuple(self.obs_keys)
        if self.action_anchor not in ACTION_ANCHORS:
            raise SpecError(f"{type(self).__name__}.action_anchor: expected one of {ACTION_ANCHORS}, "
                            f"got {self.action_anchor!r}")
        if self.n_obs_steps < 1:
            raise SpecError(f"{type(self).__name__}.n_obs_steps: must be >= 1, got {self.n_obs_steps}")
        if not 1 <= self.n_action_steps <= self.horizon:
            raise SpecError(f"{type(self).__name__}.n_action_steps: must be in [1, horizon={self.horizon}], "
                            f"got {self.n_action_steps}")


@runtime_checkable
class Policy(Protocol):
    config: PolicyConfig

    def reset(self) -> None: ...

    def infer(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def input_keys(config) -> tuple[str, ...]:
    """Every observation key a policy reads: ``obs_keys`` plus a slow-fast policy's ``fast_keys``."""
    return tuple(dict.fromkeys((*config.obs_keys, *getattr(config, "fast_keys", ()))))


NOISE_MODES = ("stream", "episode")


def chunk_seed(episode_seed: int, tick: int) -> int:
    """The generator seed of the chunk planned at ``tick`` (from the episode's start) of the
    episode seeded ``episode_seed`` (SeedSequence mixing: nearby pairs give unrelated seeds)."""
    return int(np.random.SeedSequence([int(episode_seed) & 0xFFFFFFFF, int(tick)]).generate_state(1)[0])


def infer_seeded(policy, obs: dict[str, np.ndarray], episode_seed: int | None, tick: int) -> dict:
    """``policy.infer(obs)``, first reseeding it at ``chunk_seed(episode_seed, tick)`` unless
    ``episode_seed`` is None (then the policy's noise stream simply goes on)."""
    if episode_seed is not None:
        reseed(policy, chunk_seed(episode_seed, tick))
    return policy.infer(obs)


def reseed(policy, seed: int | None = None) -> None:
    """Restart a sampling policy's noise (``config.seed`` by default); no-op for deterministic ones."""
    fn = getattr(policy, "reseed", None)
    if fn is not None:
        fn(seed)
