"""Teleoperation core (no ROS): device command -> end-effector delta -> IK -> joint command.

One control tick (``TeleopController.step(cmd, q_measured) -> q_cmd | None``)::

    cmd.twist [6] in [-1, 1] (vx vy vz wx wy wz, base frame; deadband applied)
      * (max_linear_mps, max_angular_rps) * dt        -> EE delta (metres, radians)
    target pose += delta (position clipped to the spec's workspace box, rotation applied in the
      base frame: q_target <- exp(w dt) * q_target)
    IK(target, seed = last command)                   -> arm joints [n_arm]
    per-joint step limited to ``limit_margin`` * velocity limit * dt
    gripper state in [0, 1] (0 open, 1 closed)        -> finger joint, rate-limited the same way
      -> joint command [D] in spec order

Deadman (one semantic, documented here and in teleop_node): while ``cmd.deadman`` is false (or
there is no command at all: the device is gone), ``step`` returns ``None`` and teleop sends
**nothing**. The robot's safety layer then holds the last setpoint and, after its watchdog
timeout, stops at the measured position; no teleop code decides what "hold" means. When the
deadman is pressed again the target re-anchors at the *measured* joints (not the last command),
so the first command is within the safety node's re-arm tolerance and nothing jumps.

Why PyBullet IK (``rosmind.sim.experts.PandaKinematics``): it solves on the very URDF the sim
runs, with joint limits and a null-space rest pose, and pybullet is already a dependency. ikpy
(4.2.1 on PyPI) installs here, but it is a general chain solver without null-space rest poses,
adds scipy and sympy, and would need the URDF parsed into its chain model separately; a
maintained Panda-specific solver (e.g. one shipping with franka/ROS packages) does not install
from pip wheels. A robot with no kinematics model here raises ``SpecError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rosmind.errors import SpecError
from rosmind.spec import RobotSpec

GRIPPER_BUTTONS = ("gripper_toggle", "gripper_open", "gripper_close")


@dataclass(frozen=True)
class TeleopCommand:
    """One device sample.

    twist: [6] (vx, vy, vz, wx, wy, wz) normalized to [-1, 1], base frame.
    gripper: absolute gripper closure in [0, 1] (0 open, 1 closed), or None = unchanged.
    deadman: the operator's enable; without it the robot is not commanded.
    buttons: named edge events since the last poll, e.g. ``gripper_toggle``.
    joints: absolute joint positions [D] in the robot's spec order (a leader arm), or None.
        When given, the controller follows them joint by joint (no kinematics, no twist).
    """

    twist: np.ndarray = field(default_factory=lambda: np.zeros(6))
    gripper: float | None = None
    deadman: bool = False
    buttons: tuple[str, ...] = ()
    joints: np.ndarray | None = None

    def __post_init__(self):
        t = np.asarray(self.twist, dtype=np.float64).reshape(-1)
        if t.shape != (6,):
            raise ValueError(f"TeleopCommand.twist: expected 6 values, got {t.shape[0]}")
        # A device glitch (NaN) is read as "no motion", never forwarded.
        object.__setattr__(self, "twist", np.clip(np.nan_to_num(t, nan=0.0, posinf=0.0,
                                                                neginf=0.0), -1.0, 1.0))
        if self.gripper is not None and not math.isfinite(self.gripper):
            object.__setattr__(self, "gripper", None)
        if self.joints is not None:
            q = np.asarray(self.joints, dtype=np.float64).reshape(-1)
            # A glitched reading is "no joint command" (the controller then holds), never forwarded.
            object.__setattr__(self, "joints", q if np.all(np.isfinite(q)) else None)


@dataclass
class TeleopConfig:
    """Scaling and limits of the teleop core (each field is a ROS parameter of teleop_node)."""

    max_linear_mps: float = 0.15  # EE speed at full stick
    max_angular_rps: float = 0.8
    deadband: float = 0.05  # |axis| below this reads as 0
    limit_margin: float = 0.8  # fraction of the spec's joint velocity limits per tick
    workspace_margin_m: float = 0.01  # target kept this far inside the spec's workspace box
    max_tracking_error_m: float = 0.03  # target pulled back to the achieved EE when further

    def __post_init__(self):
        for name in ("max_linear_mps", "max_angular_rps", "limit_margin", "max_tracking_error_m"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise SpecError(f"TeleopConfig.{name}: must be a positive number, got {v!r}")
        if not 0 <= self.deadband < 1:
            raise SpecError(f"TeleopConfig.deadband: must be in [0, 1), got {self.deadband!r}")
        if self.limit_margin > 1:
            raise SpecError(f"TeleopConfig.limit_margin: must be <= 1, got {self.limit_margin!r}")
        if not (math.isfinite(self.workspace_margin_m) and self.workspace_margin_m >= 0):
            raise SpecError("TeleopConfig.workspace_margin_m: must be >= 0, "
                            f"got {self.workspace_margin_m!r}")


class Kinematics(Protocol):
    """EE pose of the arm joints and its inverse; quaternions are [x, y, z, w]."""

    def fk_pose(self, q_arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def ik(self, pos: np.ndarray, quat: np.ndarray, seed: np.ndarray) -> np.ndarray: ...

    def jacobian(self, q_arm: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class PandaTeleopKinematics:
    """Wraps ``PandaKinematics`` (PyBullet, private DIRECT client) with an orientation FK."""

    def __init__(self, spec: RobotSpec):
        import pybullet as p

        from rosmind.sim.experts import PandaKinematics

        self._p = p
        self.kin = PandaKinematics(spec)

    def fk_pose(self, q_arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = self.kin.fk(np.asarray(q_arm, dtype=np.float64)[:7])
        state = self._p.getLinkState(self.kin.body, self.kin.ee, computeForwardKinematics=True,
                                     physicsClientId=self.kin.cid)
        return np.asarray(pos), np.asarray(state[5], dtype=np.float64)

    def ik(self, pos: np.ndarray, quat: np.ndarray, seed: np.ndarray) -> np.ndarray:
        return self.kin.ik(pos, quat, np.asarray(seed, dtype=np.float64)[:7])

    def jacobian(self, q_arm: np.ndarray) -> np.ndarray:
        """[6, 7]: the EE's linear then angular velocity (base frame) per unit of each arm joint's."""
        q = [float(v) for v in np.asarray(q_arm, dtype=np.float64)[:7]]
        self.kin._set(q)
        zero = [0.0] * 9
        lin, ang = self._p.calculateJacobian(self.kin.body, self.kin.ee, [0.0, 0.0, 0.0], q + [0.0, 0.0], zero, zero,
                                             physicsClientId=self.kin.cid)
        return np.vstack([np.asarray(lin)[:, :7], np.asarray(ang)[:, :7]])

    def close(self) -> None:
        self.kin.close()


def make_kinematics(spec: RobotSpec) -> Kinematics:
    """The kinematics model teleop uses for ``spec``; ``SpecError`` when there is none."""
    if spec.name == "panda":
        return PandaTeleopKinematics(spec)
    raise SpecError(f"teleop: no kinematics model for robot {spec.name!r} "
                    f"(from {spec.source or 'its spec'}); known: panda")


def quat_mul(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Hamilton product of [x, y, z, w] quaternions: rotation b, then a."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def quat_from_rotvec(r: Sequence[float]) -> np.ndarray:
    """Rotation vector (axis * angle, radians) -> [x, y, z, w]."""
    r = np.asarray(r, dtype=np.float64)
    angle = float(np.linalg.norm(r))
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    s = math.sin(angle / 2) / angle
    return np.array([r[0] * s, r[1] * s, r[2] * s, math.cos(angle / 2)])


def scale_twist(twist: np.ndarray, cfg: TeleopConfig) -> np.ndarray:
    """Normalized twist [6] -> (m/s, rad/s) [6] with a rescaled deadband (continuous at its edge)."""
    t = np.clip(np.asarray(twist, dtype=np.float64), -1.0, 1.0)
    mag = np.maximum(np.abs(t) - cfg.deadband, 0.0) / (1.0 - cfg.deadband)
    t = np.sign(t) * mag
    return np.r_[t[:3] * cfg.max_linear_mps, t[3:] * cfg.max_angular_rps]


class TeleopController:
    """Device commands -> joint position commands [D] in spec order, one call per control tick.

    ``kin`` is injected (tests and other robots); by default ``make_kinematics(spec)``, except
    with ``joint_mode`` (devices sending ``TeleopCommand.joints``: leader arms).
    The spec's joints with role ``gripper`` (0 or 1 of them) take the gripper state: 0 ->
    the joint's upper limit (open), 1 -> its lower limit (closed).
    """

    def __init__(self, spec: RobotSpec, cfg: TeleopConfig | None = None,
                 kin: Kinematics | None = None, log: Callable[[str], None] | None = None,
                 joint_mode: bool = False):
        self.spec = spec
        self.cfg = cfg or TeleopConfig()
        # A joint-mode device (a leader arm) needs no kinematics; any other gets them now, so a
        # robot without a model fails at start, not at the first twist.
        self._kin = kin if kin is not None or joint_mode else make_kinematics(spec)
        self.joint_mode = joint_mode
        self.log = log or (lambda _m: None)
        self.dt = spec.control_period
        roles = [j.role for j in spec.joints]
        self.arm = np.array([i for i, r in enumerate(roles) if r == "arm"])
        grip = [i for i, r in enumerate(roles) if r == "gripper"]
        self.grip_index = grip[0] if grip else None
        self.lower = np.array(spec.limits("lower"))
        self.upper = np.array(spec.limits("upper"))
        self.max_step = np.array(spec.limits("velocity")) * self.dt * self.cfg.limit_margin
        self.max_dstep = (np.array(spec.limits("acceleration")) * self.dt ** 2
                          * self.cfg.limit_margin)
        self.last_step = np.zeros(spec.dof)
        ws = spec.workspace
        m = self.cfg.workspace_margin_m
        self.box = (None if ws is None else (np.array(ws.min) + m, np.array(ws.max) - m))
        self.engaged = False
        self.gripper = 0.0  # 0 open, 1 closed
        self.q_cmd: np.ndarray | None = None
        self.target_pos = np.zeros(3)
        self.target_quat = np.array([0.0, 0.0, 0.0, 1.0])

    @property
    def kin(self) -> Kinematics:
        if self._kin is None:
            self._kin = make_kinematics(self.spec)
        return self._kin

    def close(self) -> None:
        if self._kin is not None:
            self._kin.close()

    def release(self) -> None:
        """Forget the anchor: the next deadman press re-anchors at the measured joints."""
        self.engaged = False

    def _gripper_from(self, q: float) -> float:
        j = self.grip_index
        span = self.upper[j] - self.lower[j]
        return float(np.clip((self.upper[j] - q) / span, 0.0, 1.0)) if span > 0 else 0.0

    def _engage(self, q_measured: np.ndarray, joint_mode: bool = False) -> None:
        self.q_cmd = q_measured.copy()
        self.last_step = np.zeros(self.spec.dof)
        if joint_mode:
            self.engaged = True
            self.log("deadman pressed: following the leader's joints from the measured ones")
            return
        self.target_pos, self.target_quat = self.kin.fk_pose(q_measured[self.arm])
        if self.grip_index is not None:
            self.gripper = self._gripper_from(q_measured[self.grip_index])
        self.engaged = True
        self.log(f"deadman pressed: anchored at EE {np.round(self.target_pos, 3).tolist()}")

    def _update_gripper(self, cmd: TeleopCommand) -> None:
        if cmd.gripper is not None:
            self.gripper = float(np.clip(cmd.gripper, 0.0, 1.0))
        for b in cmd.buttons:
            if b == "gripper_toggle":
                self.gripper = 0.0 if self.gripper >= 0.5 else 1.0
            elif b == "gripper_open":
                self.gripper = 0.0
            elif b == "gripper_close":
                self.gripper = 1.0

    def step(self, cmd: TeleopCommand | None, q_measured: np.ndarray | None) -> np.ndarray | None:
        """One tick: the joint command [D] to send, or ``None`` (deadman released / no device /
        no measured joints yet: send nothing, see the module doc)."""
        if cmd is None or not cmd.deadman or q_measured is None:
            if self.engaged:
                self.log("deadman released: teleop stops commanding")
            self.engaged = False
            return None
        q_measured = np.asarray(q_measured, dtype=np.float64).reshape(self.spec.dof)
        if not np.all(np.isfinite(q_measured)):
            self.engaged = False
            return None
        if cmd.joints is not None:
            return self._follow(cmd.joints, q_measured)
        if self.joint_mode:  # a joint device without a (finite) reading this tick: send nothing
            return None
        if not self.engaged:
            self._engage(q_measured)
            self._update_gripper(cmd)
            return self.q_cmd.copy()
        self._update_gripper(cmd)
        vel = scale_twist(cmd.twist, self.cfg)
        pos = self.target_pos + vel[:3] * self.dt
        if self.box is not None:
            pos = np.clip(pos, self.box[0], self.box[1])
        quat = quat_mul(quat_from_rotvec(vel[3:] * self.dt), self.target_quat)
        quat /= np.linalg.norm(quat)
        q = self.q_cmd.copy()
        want = q.copy()
        want[self.arm] = self.kin.ik(pos, quat, q[self.arm])
        if self.grip_index is not None:
            j = self.grip_index
            want[j] = self.upper[j] - self.gripper * (self.upper[j] - self.lower[j])
        q = np.clip(q + self._limited_step(want - q), self.lower, self.upper)
        achieved, _ = self.kin.fk_pose(q[self.arm])
        err = pos - achieved
        dist = float(np.linalg.norm(err))
        if dist > self.cfg.max_tracking_error_m:  # unreachable: don't wind the target up
            pos = achieved + err * (self.cfg.max_tracking_error_m / dist)
        self.target_pos, self.target_quat = pos, quat
        self.q_cmd = q
        return q.copy()

    def _follow(self, joints: np.ndarray, q_measured: np.ndarray) -> np.ndarray:
        """Joint mode: step from the last command toward the leader's joints within the limits
        (the first tick after engaging starts at the measured joints, so nothing jumps)."""
        if joints.shape != (self.spec.dof,):
            raise SpecError(f"teleop: the device sent {joints.shape[0]} joints, robot {self.spec.name!r} "
                            f"has {self.spec.dof} {self.spec.joint_names}")
        if not self.engaged:
            self._engage(q_measured, joint_mode=True)
            return self.q_cmd.copy()
        want = np.clip(joints, self.lower, self.upper)
        self.q_cmd = np.clip(self.q_cmd + self._limited_step(want - self.q_cmd), self.lower, self.upper)
        return self.q_cmd.copy()

    def _limited_step(self, delta: np.ndarray) -> np.ndarray:
        """Per-joint step toward ``delta`` within the velocity and acceleration limits, braking
        so a joint can stop at its target (|step| <= sqrt(2 a |delta|) per tick)."""
        brake = np.sqrt(2.0 * self.max_dstep * np.abs(delta))
        vmax = np.minimum(self.max_step, np.maximum(brake, self.max_dstep))
        step = np.clip(delta, -vmax, vmax)
        step = np.clip(step, self.last_step - self.max_dstep, self.last_step + self.max_dstep)
        self.last_step = step
        return step


@dataclass
class VelocityTeleopConfig:
    """Quadrupeds: the device's twist as a planar velocity command (``cmd_vel``)."""

    max_vx: float = 1.0  # m/s at full stick
    max_vy: float = 0.5
    max_yaw_rate: float = 1.0  # rad/s

    def __post_init__(self):
        for name in ("max_vx", "max_vy", "max_yaw_rate"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise SpecError(f"VelocityTeleopConfig.{name}: must be >= 0, got {v!r}")


def velocity_command(cmd: TeleopCommand | None, cfg: VelocityTeleopConfig) -> np.ndarray | None:
    """``[vx, vy, yaw rate]`` from the device's twist (x, y and yaw axes) while the deadman is
    held; None otherwise (teleop_node then sends one zero command and falls silent: the policy
    stands still, and with cmd_vel stale it keeps standing)."""
    if cmd is None or not cmd.deadman:
        return None
    tw = np.clip(np.asarray(cmd.twist, dtype=np.float64), -1.0, 1.0)
    return np.array([tw[0] * cfg.max_vx, tw[1] * cfg.max_vy, tw[5] * cfg.max_yaw_rate])
