"""A residual on a frozen base policy (ResiP): every control tick the command is

    a = a_base + scale * mu(obs_t, a_base),    scale_j = action_scale * v_max_j * control period

then held inside the robot's velocity and acceleration limits (``limit_margin`` of them,
``rosmind.trajectory.SetpointLimiter``, from the last command sent), as safety_node would hold
it: training, direct evaluation and the ROS graph then apply the same command. A correction of
exactly zero sends the base's row as it is. ``a_base`` is the base policy's row for the tick (its
chunk, executed as the base's own executor does) and ``mu`` an MLP (``hidden_dims``, ELU) over
the newest step of the non-image observation keys and the base action, both normalized (buffers
``obs_mean``/``obs_std``). A unit of ``mu`` moves a joint ``action_scale`` of what its velocity
limit allows in one tick (the paper scales a residual in normalized action space by 0.1; joint
targets in radians and finger widths in metres need a per-joint unit). The MLP's last layer starts at zero, so an untrained
residual returns every base action exactly.

The base is another checkpoint, named by ``base`` (a folder; relative paths are from the
current directory, then from the repository root) and pinned by ``base_sha256``, the hash of its
weights file: a changed or missing base is refused. Only the residual's weights are stored.
``policies.executors.ResidualExecutor`` runs the composition; its ``enabled`` switch turns the
residual off and on at run time (policy_node's ``residual`` parameter).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rosmind.errors import CheckpointError, SpecError
from rosmind.policy import PolicyConfig

ROOT = Path(__file__).resolve().parents[2]


def weights_sha256(checkpoint: str | Path) -> str:
    from rosmind.checkpoint import WEIGHTS

    h = hashlib.sha256()
    with open(Path(checkpoint) / WEIGHTS, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_base(base: str) -> Path:
    p = Path(base)
    for cand in (p, ROOT / p):
        if (cand / "manifest.json").is_file():
            return cand
    raise CheckpointError(f"ResipConfig.base: no checkpoint at {base!r} (nor at {ROOT / p})")


RESIDUAL_SPACES = ("joint", "ee")
DLS_DAMPING = 0.01  # of the "ee" space's Jacobian inverse: bounded joint moves near a singularity
GOAL_FRAME_KEYS = ("ee_pose", "goal_pose")
GOAL_FRAME_DIM = 4
TILT_DIM = 2


def heading(q: np.ndarray) -> float:
    """The yaw of a frame's x axis, from its quaternion (x, y, z, w); q and -q give the same."""
    x, y, z, w = q
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def tool_axis(q: np.ndarray) -> np.ndarray:
    """The z axis of a frame [3] (a column of its rotation), from its quaternion (x, y, z, w):
    q and -q give the same."""
    x, y, z, w = q
    return np.array([2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y)])


def goal_frame_features(ee: np.ndarray, goal: np.ndarray, yaw_period: float, tilt: bool = False) -> np.ndarray:
    """``ee`` [7] in the frame of ``goal`` [7] turned about z by the goal's yaw: dx, dy, dz and
    the yaw between them wrapped into [-period/2, period/2); with ``tilt`` also the x and y of
    the hand's z axis in that frame (0, 0 for a hand square to the goal's plane: a held tool's
    tip is off the hand's xy by its length times these)."""
    yaw = heading(goal[3:])
    c, s = math.cos(yaw), math.sin(yaw)
    d = ee[:3] - goal[:3]
    dyaw = (heading(ee[3:]) - yaw + yaw_period / 2) % yaw_period - yaw_period / 2
    out = [c * d[0] + s * d[1], -s * d[0] + c * d[1], d[2], dyaw]
    if tilt:
        z = tool_axis(ee[3:])
        out += [c * z[0] + s * z[1], -s * z[0] + c * z[1]]
    return np.array(out)


@dataclass
class ResipConfig(PolicyConfig):
    base: str = "checkpoints/diffusion_pick_place"
    base_sha256: str = ""  # "" when built for training: filled in from the base
    residual_keys: tuple[str, ...] = ()  # "" = the base's non-image keys
    hidden_dims: tuple[int, ...] = (256, 256)
    action_scale: float = 0.1
    limit_margin: float = 1.0  # of the spec's velocity/acceleration limits; 1: exactly safety_node's
    # Add the end-effector's pose in the goal's frame to the residual's input: x, y, z of
    # ``ee_pose`` minus ``goal_pose`` turned by the goal's yaw, and the yaw between them modulo
    # ``goal_yaw_period`` (a square peg: pi/2). ``ee_pose`` is subscribed even where the base
    # does not read it. Raw quaternions are not fed in: a hand pointing down sits where q and -q
    # swap, and a base that read ``ee_pose`` raw was thrown off by it (11/100).
    goal_frame: bool = False
    goal_yaw_period: float = math.pi / 2
    # With ``goal_frame``: the hand's tilt in the goal's frame as well (``goal_frame_features``).
    goal_tilt: bool = False
    # What a unit of ``mu`` moves. "joint": each joint, as above. "ee": the paper's space (its
    # actions are end-effector pose deltas): mu's first six are a twist of the end effector (base
    # frame), a unit ``action_scale * ee_speed`` m/s and ``action_scale * ee_rate`` rad/s for one
    # tick, turned into arm joint moves through the damped least-squares inverse of the arm's
    # Jacobian at the measured joints; the rest (the gripper) move as in "joint".
    residual_space: str = "joint"
    ee_speed: float = 1.0  # m/s
    ee_rate: float = 2.0  # rad/s
    residual_dim: int = 0  # mu's size: filled in
    obs_dim: int = 0  # filled in from the base
    action_dim: int = 0
    obs_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # the base's

    def __post_init__(self):
        super().__post_init__()
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        self.residual_keys = tuple(self.residual_keys)
        if not self.base:
            raise SpecError("ResipConfig.base: the base checkpoint folder is required")
        if not (0.0 < self.action_scale <= 1.0):
            raise SpecError(f"ResipConfig.action_scale: in (0, 1], got {self.action_scale}")
        if not (0.0 < self.limit_margin <= 1.0):
            raise SpecError(f"ResipConfig.limit_margin: in (0, 1], got {self.limit_margin}")
        if self.goal_tilt and not self.goal_frame:
            raise SpecError("ResipConfig.goal_tilt: needs goal_frame (the tilt is taken in the goal's frame)")
        if self.residual_space not in RESIDUAL_SPACES:
            raise SpecError(f"ResipConfig.residual_space: {self.residual_space!r} is not one of {list(RESIDUAL_SPACES)}")
        if not (self.ee_speed > 0 and self.ee_rate > 0):
            raise SpecError(f"ResipConfig.ee_speed/ee_rate: must be > 0, got {self.ee_speed}, {self.ee_rate}")
        if not self.goal_yaw_period > 0:
            raise SpecError(f"ResipConfig.goal_yaw_period: must be > 0, got {self.goal_yaw_period}")


class ResidualPolicy(nn.Module):
    """The base (frozen, loaded from ``config.base``) and the residual MLP."""

    def __init__(self, config: ResipConfig):
        super().__init__()
        from rosmind.checkpoint import load_checkpoint, read_manifest

        path = resolve_base(config.base)
        digest = weights_sha256(path)
        if config.base_sha256 and config.base_sha256 != digest:
            raise CheckpointError(f"ResipConfig.base: the weights of {path} changed since this residual was "
                                  f"trained (sha256 {digest[:12]}..., the residual expects {config.base_sha256[:12]}...)")
        manifest = read_manifest(path)
        if "n_action_steps" not in manifest or manifest["family"] in ("resip", "ppo_locomotion", "expert"):
            raise CheckpointError(f"ResipConfig.base: {path} is a {manifest['family']!r} checkpoint, not a chunked "
                                  "imitation policy")
        base = load_checkpoint(path)
        bc = base.config
        if bc.robot != config.robot:
            raise CheckpointError(f"ResipConfig.base: {path} was trained for robot {bc.robot!r}, not {config.robot!r}")
        for p in base.parameters() if isinstance(base, nn.Module) else ():
            p.requires_grad_(False)
        object.__setattr__(self, "base", base)  # not a submodule: its weights stay in its own checkpoint
        config.base_sha256 = digest
        config.obs_keys = tuple(bc.obs_keys)
        config.n_obs_steps, config.horizon, config.n_action_steps = bc.n_obs_steps, bc.horizon, bc.n_action_steps
        shapes = getattr(bc, "obs_shapes", {})
        config.obs_shapes = dict(shapes)
        keys = config.residual_keys or tuple(k for k in bc.obs_keys if not k.startswith("camera/"))
        missing = [k for k in keys if k not in shapes]
        if missing:
            raise SpecError(f"ResipConfig.residual_keys: {missing} are not among the base's observations {list(shapes)}")
        config.residual_keys = keys
        self._sizes = [int(np.prod(shapes[k])) for k in keys]
        if config.goal_frame:
            for k in GOAL_FRAME_KEYS:
                if k not in config.obs_keys:
                    config.obs_keys += (k,)
                    config.obs_shapes[k] = (7,)
        config.action_dim = int(getattr(bc, "action_dim", 0))
        config.obs_dim = sum(self._sizes) + (GOAL_FRAME_DIM if config.goal_frame else 0) \
            + (TILT_DIM if config.goal_tilt else 0) + config.action_dim
        self.config = config
        from rosmind.policies.locomotion import build_mlp

        self._kin, self._n_arm = None, config.action_dim
        self.ee_unit: np.ndarray | None = None  # "ee": the hand's twist a residual unit asks for per tick (m, rad) [6]
        from rosmind.spec import load_spec

        self.spec = spec = load_spec(config.robot)
        if config.residual_space == "ee":
            from rosmind.teleop import make_kinematics

            object.__setattr__(self, "_kin", make_kinematics(spec))
            self._n_arm = int(self._kin.jacobian(np.zeros(config.action_dim)).shape[1])
            self.ee_unit = config.action_scale * spec.control_period * np.repeat([config.ee_speed, config.ee_rate], 3)
        config.residual_dim = config.action_dim - self._n_arm + (6 if config.residual_space == "ee" else self._n_arm)
        self.mlp = build_mlp(config.obs_dim, config.hidden_dims, config.residual_dim, "elu")
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("obs_mean", torch.zeros(config.obs_dim))
        self.register_buffer("obs_std", torch.ones(config.obs_dim))
        vmax = np.array(spec.limits("velocity"), dtype=np.float64)[:config.action_dim]
        self.scale = config.action_scale * vmax * spec.control_period  # [action_dim], per unit of mu

    def limiter(self):
        """A fresh ``SetpointLimiter`` for the composed command (one robot, or a batch)."""
        from rosmind.trajectory import SetpointLimiter

        return SetpointLimiter(self.spec, self.config.limit_margin)

    # the base's side: planning, as its own executor asks
    def reset(self) -> None:
        self.base.reset()

    def infer(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.base.infer(obs)

    def reseed(self, seed: int | None = None) -> None:
        from rosmind.policy import reseed

        reseed(self.base, seed)

    def features(self, obs: dict[str, np.ndarray], base_action: np.ndarray) -> np.ndarray:
        """The residual's input for one tick: the newest step of each residual key, the base action."""
        parts = [np.asarray(obs[k], dtype=np.float64).reshape(-1, n)[-1] for k, n in
                 zip(self.config.residual_keys, self._sizes, strict=True)]
        if self.config.goal_frame:
            ee, goal = (np.asarray(obs[k], dtype=np.float64).reshape(-1, 7)[-1] for k in GOAL_FRAME_KEYS)
            parts.append(goal_frame_features(ee, goal, self.config.goal_yaw_period, self.config.goal_tilt))
        return np.concatenate([*parts, np.asarray(base_action, dtype=np.float64).reshape(-1)])

    @torch.no_grad()
    def residual(self, obs: dict[str, np.ndarray], base_action: np.ndarray) -> np.ndarray:
        """``scale * mu``: what is added to ``base_action`` at this tick."""
        x = torch.as_tensor(self.features(obs, base_action), dtype=torch.float32)
        x = (x - self.obs_mean) / self.obs_std
        return self.to_joint(self.mlp(x).double().numpy(), obs["joint_pos"])

    def to_joint(self, mu: np.ndarray, joint_pos: np.ndarray) -> np.ndarray:
        """The joint correction [action_dim] for residual units ``mu`` [residual_dim] with the
        arm at ``joint_pos`` (its newest row): zero units give exactly zero."""
        mu = np.asarray(mu, dtype=np.float64)
        if self._kin is None:
            return self.scale * mu
        n = self._n_arm
        jac = self._kin.jacobian(np.asarray(joint_pos, dtype=np.float64).reshape(-1, self.config.action_dim)[-1, :n])
        twist = self.ee_unit * mu[:6]
        arm = jac.T @ np.linalg.solve(jac @ jac.T + DLS_DAMPING ** 2 * np.eye(6), twist)
        return np.concatenate([arm, self.scale[n:] * mu[6:]])
