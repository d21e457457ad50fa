"""``ppo_locomotion``: the walking policy PPO trains (``policies/rl.py``), as policy_node hosts it.

    policy = load_checkpoint("checkpoints/a1_walk")
    policy.reset()
    out = policy.infer(obs)   # obs: {joint_pos [1, 12], joint_vel [1, 12], imu_orientation [1, 4]
                              #       (x y z w), imu_angular_velocity [1, 3], cmd_vel [1, 3]}
                              # -> out["action"]: [1, 12] absolute joint targets (spec order)

An MLP actor over ``history`` stacked frames of ``rosmind.sim.locomotion.proprio_frame``, with
the observation normalizer PPO fitted (mean / variance buffers) inside. The frame is computed by
the same function the env uses, from the same quantities a real robot publishes (IMU
orientation and gyro, joint states) plus the velocity command (``cmd_vel``, vx vy yaw rate).
The policy keeps its own frame history and previous action; ``reset()`` clears them.

Joint targets go through the same ``SetpointLimiter`` as in training (0.9 of the spec's
velocity and acceleration limits, from the measured pose at the episode's first tick), so
safety_node passes them unchanged and a ROS lockstep episode equals the direct one.

A command beyond the trained ranges is clamped to them; ``last_clamped`` says so (policy_node
reports it on /diagnostics).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from rosmind.errors import SpecError
from rosmind.policy import PolicyConfig
from rosmind.registry import POLICIES

LOCOMOTION_OBS_KEYS = ("joint_pos", "joint_vel", "imu_orientation", "imu_angular_velocity", "cmd_vel")
FRAME_DIM = 45


@dataclass
class LocomotionPolicyConfig(PolicyConfig):
    robot: str = "a1"
    obs_keys: tuple[str, ...] = LOCOMOTION_OBS_KEYS
    n_obs_steps: int = 1
    horizon: int = 1
    n_action_steps: int = 1
    history: int = 3
    hidden_dims: tuple[int, ...] = (256, 128, 64)
    activation: str = "elu"
    action_scale: float = 0.25
    action_clip: float = 10.0
    default_pose: tuple[float, ...] = ()
    command_ranges: tuple[tuple[float, float], ...] = ((0.0, 1.0), (-0.5, 0.5), (-1.0, 1.0))
    obs_shapes: dict[str, tuple[int, ...]] = field(default_factory=lambda: {
        "joint_pos": (12,), "joint_vel": (12,), "imu_orientation": (4,), "imu_angular_velocity": (3,),
        "cmd_vel": (3,)})
    obs_eps: float = 1e-2  # (x - mean) / (std + eps), as rsl-rl's EmpiricalNormalization
    task: str = ""  # the locomotion task it was trained on (manifest information)

    def __post_init__(self):
        super().__post_init__()
        name = type(self).__name__
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        self.default_pose = tuple(float(q) for q in self.default_pose)
        self.command_ranges = tuple((float(lo), float(hi)) for lo, hi in self.command_ranges)
        if tuple(self.obs_keys) != LOCOMOTION_OBS_KEYS:
            raise SpecError(f"{name}.obs_keys: must be {list(LOCOMOTION_OBS_KEYS)}, got {list(self.obs_keys)}")
        if self.history < 1:
            raise SpecError(f"{name}.history: must be >= 1, got {self.history}")
        if len(self.command_ranges) != 3 or any(lo > hi for lo, hi in self.command_ranges):
            raise SpecError(f"{name}.command_ranges: three (low, high) pairs, got {self.command_ranges}")
        if self.activation not in ACTIVATIONS:
            raise SpecError(f"{name}.activation: one of {sorted(ACTIVATIONS)}, got {self.activation!r}")

    @property
    def obs_dim(self) -> int:
        return self.history * FRAME_DIM


ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}


def build_mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str) -> nn.Sequential:
    """rsl-rl's MLP layout (Linear, act, ..., Linear), so its state dict loads as it is."""
    layers: list[nn.Module] = []
    dims = (in_dim, *hidden)
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


def quat_xyzw_gravity(q: np.ndarray) -> np.ndarray:
    """Gravity direction (0, 0, -1) in the frame of quaternion(s) ``q`` [..., 4] (x y z w)."""
    from rosmind.sim.locomotion import quat_rotate_inverse

    wxyz = np.concatenate([q[..., 3:4], q[..., :3]], axis=-1)
    return quat_rotate_inverse(wxyz, np.broadcast_to([0.0, 0.0, -1.0], q.shape[:-1] + (3,)))


@POLICIES.register("ppo_locomotion", config=LocomotionPolicyConfig, trainer="rl")
class LocomotionPolicy(nn.Module):
    def __init__(self, config: LocomotionPolicyConfig | None = None):
        super().__init__()
        self.config = cfg = config or LocomotionPolicyConfig()
        from rosmind.spec import load_spec

        spec = load_spec(cfg.robot)
        self.dof = spec.dof
        if not cfg.default_pose:
            from rosmind.sim.mujoco.models import QUADRUPEDS

            cfg.default_pose = tuple(QUADRUPEDS.get(cfg.robot).factory.stand)
        if len(cfg.default_pose) != self.dof:
            raise SpecError(f"LocomotionPolicyConfig.default_pose: {self.dof} values for {cfg.robot}, "
                            f"got {len(cfg.default_pose)}")
        self.mlp = build_mlp(cfg.obs_dim, cfg.hidden_dims, self.dof, cfg.activation)
        self.register_buffer("obs_mean", torch.zeros(cfg.obs_dim))
        self.register_buffer("obs_std", torch.ones(cfg.obs_dim))
        self._default = np.asarray(cfg.default_pose)
        self._ranges = np.asarray(cfg.command_ranges)
        from rosmind.sim.locomotion import LIMIT_MARGIN
        from rosmind.trajectory import SetpointLimiter

        self.limiter = SetpointLimiter(spec, LIMIT_MARGIN)
        self.last_clamped = False
        self.reset()

    def reset(self) -> None:
        self._history: np.ndarray | None = None
        self._last_action = np.zeros(self.dof)
        self.limiter.prev = None
        self.last_clamped = False

    def normalization_stats(self) -> dict:
        return {"obs_mean": self.obs_mean.tolist()[:FRAME_DIM], "note": "first frame of the actor input"}

    def clamp_command(self, cmd: np.ndarray) -> np.ndarray:
        out = np.clip(cmd, self._ranges[:, 0], self._ranges[:, 1])
        self.last_clamped = bool(np.any(out != cmd))
        return out

    def frame(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        from rosmind.sim.locomotion import proprio_frame

        new = {k: np.asarray(obs[k], dtype=np.float64)[-1] for k in self.config.obs_keys}
        for k, v in new.items():
            if not np.all(np.isfinite(v)):
                raise ValueError(f"ppo_locomotion: non-finite observation {k!r}")
        cmd = self.clamp_command(new["cmd_vel"])
        return proprio_frame(new["imu_angular_velocity"], quat_xyzw_gravity(new["imu_orientation"]), cmd,
                             new["joint_pos"], new["joint_vel"], self._last_action, self._default)

    @torch.no_grad()
    def act_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """Raw actions [B, D] from stacked frames [B, obs_dim] (what PPO's actor outputs as its mean)."""
        z = (x - self.obs_mean) / (self.obs_std + self.config.obs_eps)
        return self.mlp(z)

    def infer(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``obs``: {key: [To, *shape]} (the newest row is used) -> ``action`` [1, D] joint targets."""
        f = self.frame(obs)
        if self.limiter.prev is None:
            self.limiter.reset(np.asarray(obs["joint_pos"], dtype=np.float64)[-1])
        if self._history is None:
            self._history = np.repeat(f[None], self.config.history, axis=0)
        else:
            self._history = np.concatenate([self._history[1:], f[None]], axis=0)
        x = torch.as_tensor(self._history.reshape(1, -1), dtype=torch.float32)
        a = self.act_normalized(x)[0].double().numpy()
        a = np.clip(a, -self.config.action_clip, self.config.action_clip)
        self._last_action = a
        return {"action": self.limiter(self._default + self.config.action_scale * a)[None, :],
                "command_clamped": np.array(self.last_clamped)}
