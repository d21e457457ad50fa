"""The Robot interface: one shape for sim and hardware.

``read()`` returns an observation dict of numpy arrays with these keys (those the robot
has; shapes per key, ``D`` = ``spec.dof``)::

    stamp            ()       seconds on the robot's clock
    joint_pos        [D]      rad or m, in spec.joint_names order
    joint_vel        [D]
    joint_effort     [D]
    ee_pose          [7]      x y z qx qy qz qw of spec.ee_link in spec.base_frame (arms)
    wrench           [6]      fx fy fz tx ty tz at the wrist (arms with F/T)
    object_poses     [N, 7]   task objects (sim ground truth, or a perception node)
    goal_pose        [7]      task target
    imu_orientation  [4]      qx qy qz qw (quadrupeds)
    imu_angular_velocity [3], imu_linear_acceleration [3]
    odom_pose        [7], odom_twist [6]

Camera frames cost real time, so they come from ``render(name) -> (rgb[H,W,3] uint8,
depth[H,W] float32 metres)`` at the camera's own rate, not from every ``read()``.

``write(positions[D]) -> positions actually sent`` (after the robot's own clipping).
"""

from __future__ import annotations

import abc
import math

import numpy as np

from rosmind.errors import SpecError
from rosmind.spec import RobotSpec

Observation = dict[str, np.ndarray]


def checked_positions(spec: RobotSpec, positions, where: str) -> np.ndarray:
    """``positions`` as ``[D]`` float64, or SpecError (wrong shape, or a non-finite value, naming
    the joints): what every ``write()`` checks before anything is sent."""
    q = np.asarray(positions, dtype=np.float64)
    if q.shape != (spec.dof,):
        raise SpecError(f"{where}: expected {spec.dof} joint positions {spec.joint_names}, got shape {q.shape}")
    if not np.all(np.isfinite(q)):
        bad = [n for n, v in zip(spec.joint_names, q, strict=True) if not math.isfinite(v)]
        raise SpecError(f"{where}: non-finite command for joint(s) {bad}; nothing sent")
    return q


class Robot(abc.ABC):
    spec: RobotSpec

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> Observation: ...

    @abc.abstractmethod
    def write(self, positions: np.ndarray) -> np.ndarray: ...

    def render(self, camera: str) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} has no camera {camera!r}")

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.disconnect()


class SimRobot(Robot):
    """A Robot whose world we own: it steps on command and can be reset to a seeded task."""

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> Observation:
        """Re-randomize the task from ``seed`` and return the first observation."""

    @abc.abstractmethod
    def step(self) -> None:
        """Advance physics by one control period, tracking the last written setpoint."""

    @property
    @abc.abstractmethod
    def time(self) -> float:
        """Sim time in seconds since reset."""

    @abc.abstractmethod
    def task_status(self) -> dict:
        """``{"success": bool, "done": bool, "time_limit": float}`` for the current episode, plus
        ``"error"`` (float, the task's own distance from done, e.g. cube to target in m) where
        the task defines one."""


class HardwareRobot(Robot):
    """A real robot behind a driver (``rosmind.hardware.drivers``): ``connect`` reaches the device,
    ``enable`` starts control without moving it (it holds where it is), ``disable`` is the
    device's own safe stop, ``disconnect`` releases it. Errors are ``HardwareError`` naming the
    device and what to check."""

    @abc.abstractmethod
    def enable(self) -> None: ...

    @abc.abstractmethod
    def disable(self) -> None: ...

    @property
    def device(self) -> str:
        """Where the robot is (a port, an address), for messages and diagnostics."""
        return ""

