"""Vectorized velocity-tracking env for quadrupeds on the MuJoCo backend (legged_gym's recipe).

    env = LocomotionEnv(LOCOMOTION_TASKS.get("a1_velocity").factory(num_envs=1024))
    obs = env.reset()                                   # {"policy": [N, H*45], "critic": [N, C]}
    obs, reward, done, info = env.step(actions)         # actions [N, 12] in [-1, 1]-ish units

- 50 Hz policy (the spec's control rate), ``decimation`` physics substeps of 5 ms each, all
  worlds stepped in C per call (``sim/mujoco/batch.py``).
- Action ``a`` -> joint targets ``default_pose + action_scale * a``, through the spec's position,
  velocity and acceleration limits (``rosmind.trajectory.SetpointLimiter``, 0.9 of them: what
  the deployed policy does too, so safety_node never clamps it), then position actuators (PD in C).
- Policy observation, one frame (``proprio_frame``, shared with the deployed policy so that
  ROS and training compute it the same way): base angular velocity (trunk frame) * 0.25,
  projected gravity, command (vx, vy, yaw rate) * (2, 2, 0.25), joint position - default,
  joint velocity * 0.05, previous action: 45 numbers; ``history`` frames are stacked, newest
  last. The critic also gets the base linear velocity, its height above the ground and the
  foot contacts (asymmetric actor-critic).
- Rewards: the terms of ``REWARD_TERMS`` times ``reward_scales`` times dt, summed, clipped at
  zero per step (``only_positive_rewards``, legged_gym's guard against learning to fall).
- Termination: the trunk touches the ground, sinks below ``min_height`` (the walk task's fall
  line), or the body tilts past ``max_tilt``; time-outs at
  ``episode_s`` are reported apart (``info["time_outs"]``) so PPO bootstraps them.
- Domain randomization (seeded, per world): foot/ground friction, added trunk mass, motor
  strength (kp, kv and effort scaled), pushes (base velocity kicks), action latency (the new
  target starts after 0-``latency_substeps`` substeps).

Everything random comes from one ``numpy`` generator seeded by ``seed``: equal seeds give equal
rollouts, whatever the thread count.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import mujoco
import numpy as np

from rosmind.errors import SpecError
from rosmind.registry import Registry
from rosmind.trajectory import SetpointLimiter

from .mujoco.batch import Batch
from .mujoco.models import QUADRUPEDS, build_model, joint_addresses, sensor_slices
from .mujoco.terrain import TERRAIN_KINDS, Terrain, TerrainConfig

LOCOMOTION_TASKS = Registry("locomotion task", ("rosmind.sim.locomotion",))
FRAME_DIM = 45
OBS_SCALES = {"ang_vel": 0.25, "command": (2.0, 2.0, 0.25), "joint_vel": 0.05}
CONTACT_N = 1.0  # touch sensor force (N) that counts as contact
PHYSICS = ("c", "warp")
LIMIT_MARGIN = 0.9  # fraction of the spec's velocity / acceleration limits a setpoint may use

DEFAULT_REWARD_SCALES = {
    "tracking_lin_vel": 1.0, "tracking_ang_vel": 0.5, "lin_vel_z": -2.0, "ang_vel_xy": -0.05,
    "orientation": -0.5, "torques": -2e-4, "dof_acc": -2.5e-7, "action_rate": -0.01,
    "feet_air_time": 1.0, "collision": -1.0, "dof_pos_limits": -10.0,
    # Not in legged_gym's A1 set: without it the first a1_walk learned a low crouch-walk.
    "base_height": -10.0,
}


@dataclass
class LocomotionConfig:
    robot: str = "a1"
    num_envs: int = 1024
    terrain: str = "flat"
    terrain_rows: int = 4
    terrain_cols: int = 5
    episode_s: float = 20.0
    decimation: int = 4  # physics substeps (5 ms) per policy step
    action_scale: float = 0.25
    action_clip: float = 10.0
    history: int = 3
    command_vx: tuple[float, float] = (0.0, 1.0)
    command_vy: tuple[float, float] = (-0.5, 0.5)
    command_yaw: tuple[float, float] = (-1.0, 1.0)
    resample_s: float = 10.0
    still_fraction: float = 0.1  # commands set to zero: standing still is a skill too
    tracking_sigma: float = 0.25
    base_height_target: float = 0.25  # the A1 standing at its stand pose, kp 20
    air_time_target: float = 0.5
    soft_limit: float = 0.9  # fraction of the joint range before dof_pos_limits penalizes
    max_tilt_deg: float = 60.0
    # A trunk this low above the ground ends the episode as a fall: the walk task's own fall
    # line. Without it a policy can learn to crouch-walk on its knees (the first a1_walk did).
    min_height: float = 0.15
    randomize: bool = True
    friction: tuple[float, float] = (0.5, 1.25)
    added_mass: tuple[float, float] = (-1.0, 2.0)  # kg on the trunk
    motor_strength: tuple[float, float] = (0.9, 1.1)
    push_interval_s: float = 8.0
    push_velocity: float = 0.5  # m/s, uniform in +-, x and y
    latency_substeps: int = 2  # up to this many substeps of the old target (0-10 ms)
    reward_scales: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_REWARD_SCALES))
    # legged_gym: a step's total reward is clipped at zero, or penalties outweigh the tracking
    # terms early on and falling quickly (ending the episode) becomes the best policy.
    only_positive_rewards: bool = True
    threads: int = 0  # rollout threads; 0 = one per core
    physics: str = "c"  # "c": mujoco.rollout threads; "warp": mujoco-warp (GPU; CPU for tests)
    warp_device: str = ""  # "" = cuda:0 when there is one, else cpu
    seed: int = 0

    def __post_init__(self):
        if self.terrain not in TERRAIN_KINDS:
            raise SpecError(f"unknown terrain {self.terrain!r}; valid terrains: {', '.join(TERRAIN_KINDS)}")
        QUADRUPEDS.get(self.robot)  # unknown robots raise, listing the valid ones
        unknown = sorted(set(self.reward_scales) - set(REWARD_TERMS))
        if unknown:
            raise SpecError(f"LocomotionConfig.reward_scales: unknown term(s) {unknown}; "
                            f"valid: {', '.join(sorted(REWARD_TERMS))}")
        for name in ("num_envs", "decimation", "history"):
            if getattr(self, name) < 1:
                raise SpecError(f"LocomotionConfig.{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("command_vx", "command_vy", "command_yaw", "friction", "added_mass", "motor_strength"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise SpecError(f"LocomotionConfig.{name}: low {lo} above high {hi}")
        if self.physics not in PHYSICS:
            raise SpecError(f"LocomotionConfig.physics: one of {PHYSICS}, got {self.physics!r}")
        if self.physics == "warp" and self.randomize and any(
                lo != hi for lo, hi in (self.friction, self.added_mass, self.motor_strength)):
            raise SpecError("LocomotionConfig: physics='warp' shares one model across worlds; per-world "
                            "friction / added_mass / motor_strength randomization needs physics='c' "
                            "(or set those ranges to a single value)")
        if not 0 <= self.latency_substeps < self.decimation:
            raise SpecError(f"LocomotionConfig.latency_substeps: in [0, decimation={self.decimation}), "
                            f"got {self.latency_substeps}")
        self.command_vx, self.command_vy, self.command_yaw = (
            tuple(float(v) for v in r) for r in (self.command_vx, self.command_vy, self.command_yaw))

    @property
    def command_ranges(self) -> np.ndarray:
        """[3, 2]: (low, high) of vx, vy, yaw rate."""
        return np.array([self.command_vx, self.command_vy, self.command_yaw])


def register_locomotion_task(name: str, description: str, **fields):
    def factory(**overrides) -> LocomotionConfig:
        return LocomotionConfig(**{**fields, **overrides})

    factory.__doc__ = description
    LOCOMOTION_TASKS.register(name, config=LocomotionConfig, description=description)(factory)


register_locomotion_task("a1_velocity", "A1 velocity tracking on flat ground", robot="a1")
register_locomotion_task("a1_rough", "A1 velocity tracking on rough ground, slopes and stairs",
                         robot="a1", terrain="mixed")
register_locomotion_task("go2_velocity", "Go2 velocity tracking on flat ground", robot="go2",
                         base_height_target=0.30)


def quat_rotate_inverse(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """World vector(s) ``v`` [..., 3] into the frame of MuJoCo quaternion(s) ``q`` [..., 4] (w x y z)."""
    w, xyz = q[..., :1], q[..., 1:]
    t = 2.0 * np.cross(xyz, v)
    return v - w * t + np.cross(xyz, t)


def proprio_frame(ang_vel: np.ndarray, gravity: np.ndarray, command: np.ndarray, joint_pos: np.ndarray,
                  joint_vel: np.ndarray, last_action: np.ndarray, default_pose: np.ndarray) -> np.ndarray:
    """One observation frame [..., 45] from trunk-frame angular velocity and gravity direction,
    the velocity command (vx, vy, yaw rate), joints in spec order and the previous action."""
    return np.concatenate([
        ang_vel * OBS_SCALES["ang_vel"], gravity, command * np.asarray(OBS_SCALES["command"]),
        joint_pos - default_pose, joint_vel * OBS_SCALES["joint_vel"], last_action], axis=-1)


@dataclass
class StepState:
    """What the reward terms read after one policy step (arrays over the N worlds)."""

    lin_vel: np.ndarray  # [N, 3] trunk frame
    ang_vel: np.ndarray  # [N, 3] trunk frame
    gravity: np.ndarray  # [N, 3] projected gravity (trunk frame)
    height: np.ndarray  # [N] trunk above the ground under it
    command: np.ndarray  # [N, 3]
    joint_pos: np.ndarray  # [N, D]
    joint_vel: np.ndarray  # [N, D]
    last_joint_vel: np.ndarray  # [N, D]
    torque: np.ndarray  # [N, D]
    action: np.ndarray  # [N, D]
    last_action: np.ndarray  # [N, D]
    first_contact: np.ndarray  # [N, 4] bool: a foot touched down in this step
    air_time: np.ndarray  # [N, 4] seconds in the air before that touch-down
    collision: np.ndarray  # [N] count of thigh/calf contacts
    soft_lower: np.ndarray  # [D]
    soft_upper: np.ndarray  # [D]
    dt: float
    cfg: LocomotionConfig


REWARD_TERMS = {}


def reward_term(fn):
    REWARD_TERMS[fn.__name__] = fn
    return fn


@reward_term
def tracking_lin_vel(s: StepState) -> np.ndarray:
    err = np.sum((s.command[:, :2] - s.lin_vel[:, :2]) ** 2, axis=1)
    return np.exp(-err / s.cfg.tracking_sigma)


@reward_term
def tracking_ang_vel(s: StepState) -> np.ndarray:
    return np.exp(-((s.command[:, 2] - s.ang_vel[:, 2]) ** 2) / s.cfg.tracking_sigma)


@reward_term
def lin_vel_z(s: StepState) -> np.ndarray:
    return s.lin_vel[:, 2] ** 2


@reward_term
def ang_vel_xy(s: StepState) -> np.ndarray:
    return np.sum(s.ang_vel[:, :2] ** 2, axis=1)


@reward_term
def orientation(s: StepState) -> np.ndarray:
    return np.sum(s.gravity[:, :2] ** 2, axis=1)


@reward_term
def torques(s: StepState) -> np.ndarray:
    return np.sum(s.torque ** 2, axis=1)


@reward_term
def dof_acc(s: StepState) -> np.ndarray:
    return np.sum(((s.joint_vel - s.last_joint_vel) / s.dt) ** 2, axis=1)


@reward_term
def action_rate(s: StepState) -> np.ndarray:
    return np.sum((s.action - s.last_action) ** 2, axis=1)


@reward_term
def feet_air_time(s: StepState) -> np.ndarray:
    """legged_gym: reward steps longer than ``air_time_target`` at touch-down, only when asked to move."""
    r = np.sum((s.air_time - s.cfg.air_time_target) * s.first_contact, axis=1)
    return r * (np.linalg.norm(s.command[:, :2], axis=1) > 0.1)


@reward_term
def collision(s: StepState) -> np.ndarray:
    return s.collision.astype(np.float64)


@reward_term
def dof_pos_limits(s: StepState) -> np.ndarray:
    below = np.clip(s.soft_lower - s.joint_pos, 0.0, None)
    above = np.clip(s.joint_pos - s.soft_upper, 0.0, None)
    return np.sum(below + above, axis=1)


@reward_term
def base_height(s: StepState) -> np.ndarray:
    return (s.height - s.cfg.base_height_target) ** 2


class LocomotionEnv:
    """N worlds of one quadruped on one terrain; numpy in and out (``policies/rl.py`` wraps it
    for rsl-rl with torch tensors)."""

    def __init__(self, config: LocomotionConfig):
        self.cfg = cfg = config
        self.rng = np.random.default_rng(cfg.seed)
        terrain_cfg = TerrainConfig(kind=cfg.terrain, rows=cfg.terrain_rows, cols=cfg.terrain_cols)
        base, self.terrain = build_model(cfg.robot, Terrain.build(terrain_cfg, cfg.seed))
        self.qm = QUADRUPEDS.get(cfg.robot).factory
        self.spec = self.qm.spec()
        self.num_envs = n = cfg.num_envs
        self.num_actions = d = self.spec.dof
        self.dt = base.opt.timestep * cfg.decimation
        if abs(self.dt - self.spec.control_period) > 1e-9:
            raise SpecError(f"LocomotionConfig.decimation {cfg.decimation} x {base.opt.timestep} s is not "
                            f"the {cfg.robot} spec's control period {self.spec.control_period} s")
        self.max_episode_length = int(round(cfg.episode_s / self.dt))
        if cfg.physics == "warp":
            from .mujoco.warp_batch import WarpBatch

            self.batch = WarpBatch(base, n, cfg.warp_device or None)
        else:
            self.batch = Batch(self._randomized_models(base), cfg.threads)
        self.sensors = sensor_slices(base)
        self.qadr, self.vadr = joint_addresses(base, self.spec)
        self.default_pose = np.array(self.qm.stand)
        lower, upper = np.array(self.spec.limits("lower")), np.array(self.spec.limits("upper"))
        mid, half = (lower + upper) / 2, (upper - lower) / 2
        self.soft_lower, self.soft_upper = mid - cfg.soft_limit * half, mid + cfg.soft_limit * half
        self.cos_max_tilt = math.cos(math.radians(cfg.max_tilt_deg))
        self.state = np.zeros((n, self.batch.nstate))
        self.episode_length = np.zeros(n, dtype=np.int64)
        self.command = np.zeros((n, 3))
        self.action = np.zeros((n, d))
        self.target = np.tile(self.default_pose, (n, 1))
        self.limiter = SetpointLimiter(self.spec, LIMIT_MARGIN)
        self.limiter.reset(self.target)
        self.joint_vel = np.zeros((n, d))
        self.air_time = np.zeros((n, 4))
        self.contact = np.zeros((n, 4), dtype=bool)
        self.history = np.zeros((n, cfg.history, FRAME_DIM))
        self.latency = np.zeros(n, dtype=np.int64)
        self.origin = np.zeros((n, 3))
        self.episode_sums = {k: np.zeros(n) for k in cfg.reward_scales}

    def _randomized_models(self, base: mujoco.MjModel) -> list[mujoco.MjModel]:
        cfg = self.cfg
        if not cfg.randomize:
            return [base] * cfg.num_envs
        trunk = base.body(self.qm.trunk).id
        out = []
        for _ in range(cfg.num_envs):
            m = copy.copy(base)
            m.geom_friction[:, 0] = self.rng.uniform(*cfg.friction)
            m.body_mass[trunk] += self.rng.uniform(*cfg.added_mass)
            k = self.rng.uniform(*cfg.motor_strength)
            m.actuator_gainprm[:, 0] *= k
            m.actuator_biasprm[:, 1:3] *= k
            m.actuator_forcerange *= k
            out.append(m)
        return out

    # -- episode bookkeeping -------------------------------------------------------------

    def reset(self) -> dict[str, np.ndarray]:
        self._reset_worlds(np.arange(self.num_envs))
        return self.observations()

    def _reset_worlds(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        k, m = len(ids), self.batch.model
        rows, cols = self.terrain.origins.shape[:2]
        tile = self.terrain.origins[self.rng.integers(0, rows, k), self.rng.integers(0, cols, k)]
        qpos = np.zeros((k, m.nq))
        qpos[:, :2] = tile[:, :2] + self.rng.uniform(-0.5, 0.5, (k, 2))
        qpos[:, 2] = tile[:, 2] + self.qm.stand_height + 0.05
        yaw = self.rng.uniform(-math.pi, math.pi, k)
        qpos[:, 3], qpos[:, 6] = np.cos(yaw / 2), np.sin(yaw / 2)
        qpos[:, self.qadr] = self.default_pose * self.rng.uniform(0.9, 1.1, (k, self.num_actions))
        qvel = np.zeros((k, m.nv))
        qvel[:, :6] = self.rng.uniform(-0.5, 0.5, (k, 6)) * self.cfg.randomize
        self.state[ids] = self.batch.initial_state(qpos, qvel)
        self.origin[ids] = tile
        self.episode_length[ids] = 0
        self.action[ids] = 0.0
        self.target[ids] = qpos[:, self.qadr]
        self.limiter.reset(self.target[ids], ids)
        self.joint_vel[ids] = qvel[:, self.vadr]
        self.air_time[ids] = 0.0
        self.contact[ids] = False
        self.latency[ids] = self.rng.integers(0, self.cfg.latency_substeps + 1, k) if self.cfg.randomize else 0
        self._resample_commands(ids)
        self.history[ids] = 0.0
        self.history[ids] = self._frame(ids)[:, None, :]

    def _resample_commands(self, ids: np.ndarray) -> None:
        r = self.cfg.command_ranges
        cmd = self.rng.uniform(r[:, 0], r[:, 1], (len(ids), 3))
        still = self.rng.random(len(ids)) < self.cfg.still_fraction
        cmd[still] = 0.0
        self.command[ids] = cmd

    # -- physics readout -----------------------------------------------------------------

    def _readout(self, state: np.ndarray) -> dict[str, np.ndarray]:
        qpos, qvel = state[:, self.batch.qpos], state[:, self.batch.qvel]
        quat = qpos[:, 3:7]
        up = np.broadcast_to([0.0, 0.0, -1.0], (len(state), 3))
        return {"pos": qpos[:, :3], "quat": quat, "lin_vel": quat_rotate_inverse(quat, qvel[:, :3]),
                # A free joint's angular velocity is already in the body frame.
                "ang_vel": qvel[:, 3:6].copy(), "gravity": quat_rotate_inverse(quat, up),
                "joint_pos": qpos[:, self.qadr], "joint_vel": qvel[:, self.vadr]}

    def _frame(self, ids: np.ndarray | slice = slice(None)) -> np.ndarray:
        r = self._readout(self.state[ids])
        return proprio_frame(r["ang_vel"], r["gravity"], self.command[ids], r["joint_pos"], r["joint_vel"],
                             self.action[ids], self.default_pose)

    def observations(self) -> dict[str, np.ndarray]:
        policy = self.history.reshape(self.num_envs, -1)
        r = self._readout(self.state)
        height = r["pos"][:, 2] - self.terrain.height_at(r["pos"][:, 0], r["pos"][:, 1])
        extra = np.concatenate([r["lin_vel"] * 2.0, height[:, None], self.contact.astype(np.float64)], axis=1)
        return {"policy": policy.astype(np.float32),
                "critic": np.concatenate([policy, extra], axis=1).astype(np.float32)}

    # -- step ----------------------------------------------------------------------------

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict]:
        cfg, n = self.cfg, self.num_envs
        actions = np.clip(np.asarray(actions, dtype=np.float64), -cfg.action_clip, cfg.action_clip)
        if actions.shape != (n, self.num_actions):
            raise ValueError(f"LocomotionEnv.step: expected actions [{n}, {self.num_actions}], got {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError("LocomotionEnv.step: non-finite actions")
        last_action, last_joint_vel = self.action, self.joint_vel
        target = self.limiter(self.default_pose + cfg.action_scale * actions)
        control = np.repeat(target[:, None, :], cfg.decimation, axis=1)
        late = np.arange(cfg.decimation)[None, :] < self.latency[:, None]
        control[late] = np.repeat(self.target[:, None, :], cfg.decimation, axis=1)[late]
        states, sensors = self.batch.step(self.state, control)
        self.state = states[:, -1].copy()
        self.target, self.action = target, actions
        self.episode_length += 1

        r = self._readout(self.state)
        self.joint_vel = r["joint_vel"]
        s = self.sensors
        feet = (sensors[:, :, s["foot_touch"]] > CONTACT_N).any(axis=1)
        first_contact = feet & ~self.contact
        self.air_time += self.dt
        air_at_touchdown = self.air_time.copy()
        self.air_time[feet] = 0.0
        self.contact = feet
        limbs = np.concatenate([sensors[:, :, s["thigh_touch"]], sensors[:, :, s["calf_touch"]]], axis=2)
        collisions = (limbs > CONTACT_N).any(axis=1).sum(axis=1)
        trunk_hit = (sensors[:, :, s["trunk_touch"]] > CONTACT_N).any(axis=(1, 2))
        height = r["pos"][:, 2] - self.terrain.height_at(r["pos"][:, 0], r["pos"][:, 1])

        st = StepState(lin_vel=r["lin_vel"], ang_vel=r["ang_vel"], gravity=r["gravity"], height=height,
                       command=self.command, joint_pos=r["joint_pos"], joint_vel=r["joint_vel"],
                       last_joint_vel=last_joint_vel, torque=sensors[:, -1, s["actuator_force"]],
                       action=actions, last_action=last_action, first_contact=first_contact,
                       air_time=air_at_touchdown, collision=collisions, soft_lower=self.soft_lower,
                       soft_upper=self.soft_upper, dt=self.dt, cfg=cfg)
        reward = np.zeros(n)
        for name, scale in cfg.reward_scales.items():
            if scale:
                term = REWARD_TERMS[name](st) * scale * self.dt
                self.episode_sums[name] += term
                reward += term

        if cfg.only_positive_rewards:
            reward = np.maximum(reward, 0.0)
        fallen = (trunk_hit | (-r["gravity"][:, 2] < self.cos_max_tilt) | (height < cfg.min_height)
                  | ~np.isfinite(self.state).all(axis=1))
        time_out = self.episode_length >= self.max_episode_length
        done = fallen | time_out
        info = {"time_outs": time_out.copy(), "log": {}}
        ids = np.flatnonzero(done)
        if len(ids):
            for name, sums in self.episode_sums.items():
                info["log"][f"/reward/{name}"] = float(np.mean(sums[ids]) / cfg.episode_s)
                sums[ids] = 0.0
            info["log"]["/episode/fall_rate"] = float(np.mean(fallen[ids]))
        self._reset_worlds(ids)

        live = np.flatnonzero(~done)
        every = int(round(cfg.resample_s / self.dt))
        resample = live[self.episode_length[live] % every == 0]
        self._resample_commands(resample)
        if cfg.randomize and cfg.push_interval_s > 0:
            push = live[self.episode_length[live] % int(round(cfg.push_interval_s / self.dt)) == 0]
            kick = self.rng.uniform(-cfg.push_velocity, cfg.push_velocity, (len(push), 2))
            self.state[push, self.batch.qvel.start:self.batch.qvel.start + 2] += kick

        self.history[:, :-1] = self.history[:, 1:]
        self.history[:, -1] = self._frame()
        return self.observations(), reward, done, info

    def close(self) -> None:
        self.batch.close()
