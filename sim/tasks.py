"""Tasks: what a sim episode asks of a robot, how it is randomized, and when it ends.

A task is built from its config dataclass (its single source of truth) and plugs into a
``BulletRobot`` (``sim/robots.py``) through four calls, all made by the robot::

    task.load(sim, rng)     # fresh world: add objects, randomize them from rng
    task.observe(sim)       # extra read() keys, e.g. object_poses [N, 7], goal_pose [7]
    task.update(sim)        # after every control step (success bookkeeping)
    task.status(sim)        # {"success": bool, "done": bool, "time_limit": float, "error": float}

Poses are in the robot's base frame (``spec.base_frame``), ``x y z qx qy qz qw``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import pybullet as p

from rosmind.errors import SpecError
from rosmind.registry import TASKS

from .visuals import SceneLook, VisualOptions
from .world import pose7, quat_to_matrix

if TYPE_CHECKING:
    from .robots import BulletRobot


def _check_positive(cfg, *names: str) -> None:
    for n in names:
        v = getattr(cfg, n)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise SpecError(f"{type(cfg).__name__}.{n}: must be a positive finite number, got {v!r}")


def _check_range(cfg, name: str) -> None:
    lo, hi = getattr(cfg, name)
    if not lo < hi:
        raise SpecError(f"{type(cfg).__name__}.{name}: expected (low, high) with low < high, got {(lo, hi)}")


def build_task_config(config_cls: type, overrides: dict, task: str):
    """``config_cls(**overrides)`` with unknown keys reported as a SpecError naming the task."""
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SpecError(f"task {task!r}: unknown option(s) {unknown}; it has {sorted(known)}")
    return config_cls(**overrides)


class Task:
    """Base class: a task needs a config and the name of the robot it is written for."""

    robot: str = ""
    look: SceneLook | None = None  # this episode's image randomization (sim/visuals.py), if any

    def __init__(self, config=None):
        self.config = config if config is not None else self.config_cls()

    config_cls: type = object

    def load(self, sim: BulletRobot, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def observe(self, sim: BulletRobot) -> dict[str, np.ndarray]:
        return {}

    def update(self, sim: BulletRobot) -> None:
        pass

    def status(self, sim: BulletRobot) -> dict:
        raise NotImplementedError


class TaskSim:
    """What every sim robot that runs a task shares, on either backend: the task built by name
    (and checked against the robot), the tick counter, sim time and the task's status.
    Needs ``NAME``, ``spec``, ``task`` and ``_tick``; ``_advance()`` is one control period of
    physics."""

    NAME = ""

    def _make_task(self, task: str | Task, options: dict) -> Task:
        if isinstance(task, Task):
            if options:
                raise SpecError(f"{self.NAME}: task options {sorted(options)} given with a task object")
            obj = task
        else:
            entry = TASKS.get(task)
            obj = entry.factory(build_task_config(entry.config, options, task))
        if obj.robot and obj.robot != self.NAME:
            raise SpecError(f"task {type(obj).__name__} is for robot {obj.robot!r}, not {self.NAME!r}")
        kind = getattr(obj, "kind", "")
        if kind and kind != self.spec.kind:
            raise SpecError(f"task {type(obj).__name__} is for a {kind}; {self.NAME!r} is of kind {self.spec.kind!r}")
        return obj

    def _advance(self) -> None:
        raise NotImplementedError

    def step(self) -> None:
        if not self._built:
            self.connect()
        self._advance()
        self._tick += 1
        self.task.update(self)

    @property
    def time(self) -> float:
        return self._tick / self.spec.control_rate_hz

    @property
    def tick(self) -> int:
        return self._tick

    def task_status(self) -> dict:
        return self.task.status(self)


@dataclass
class PickPlaceConfig(VisualOptions):
    """Pick a cube off the table and put it down on a target marker.

    Regions are in the Panda base frame (metres); the table top is z = 0 of that frame.
    The image randomization fields come from ``VisualOptions`` (sim/visuals.py).
    """

    time_limit_s: float = 10.0
    cube_size: float = 0.045
    cube_mass: float = 0.1
    cube_friction: float = 1.0
    cube_x: tuple[float, float] = (0.40, 0.62)
    cube_y: tuple[float, float] = (-0.20, 0.20)
    cube_yaw: tuple[float, float] = (-math.pi / 4, math.pi / 4)
    goal_x: tuple[float, float] = (0.40, 0.62)
    goal_y: tuple[float, float] = (-0.20, 0.20)
    min_goal_distance: float = 0.12
    xy_tolerance: float = 0.03
    z_tolerance: float = 0.01
    release_width: float = 0.03  # finger joint above this (per finger, m) counts as open
    hold_ticks: int = 3

    def __post_init__(self):
        super().__post_init__()
        _check_positive(self, "time_limit_s", "cube_size", "cube_mass", "cube_friction",
                        "min_goal_distance", "xy_tolerance", "z_tolerance", "release_width")
        for r in ("cube_x", "cube_y", "cube_yaw", "goal_x", "goal_y"):
            _check_range(self, r)
        if not 0.01 <= self.cube_size <= 0.07:
            raise SpecError(f"PickPlaceConfig.cube_size: the Panda hand opens 0.08 m; "
                            f"use 0.01..0.07 m, got {self.cube_size}")
        if self.hold_ticks < 1:
            raise SpecError(f"PickPlaceConfig.hold_ticks: must be >= 1, got {self.hold_ticks}")
        gx, gy = self.goal_x[1] - self.goal_x[0], self.goal_y[1] - self.goal_y[0]
        if self.min_goal_distance >= math.hypot(gx, gy):
            raise SpecError(f"PickPlaceConfig.min_goal_distance {self.min_goal_distance} "
                            f"cannot be met inside the goal region")


@TASKS.register("pick_place", config=PickPlaceConfig, robot="panda")
class PickPlaceTask(Task):
    """A cube at a seeded random spot, a visual-only target at least ``min_goal_distance`` away.

    Success: the cube's centre within ``xy_tolerance`` of the target in xy, resting on the
    table (centre height within ``z_tolerance`` of half the cube size) and released (the
    gripper is open or no finger touches it), for ``hold_ticks`` consecutive control ticks.
    Done on success or when ``time_limit_s`` of sim time have passed.
    """

    robot = "panda"
    config_cls = PickPlaceConfig

    def __init__(self, config: PickPlaceConfig | None = None):
        super().__init__(config)
        self.cube = -1
        self.goal_base = np.zeros(7)
        self._hold = 0

    def load(self, sim: BulletRobot, rng: np.random.Generator) -> None:
        c, cid = self.config, sim.world.cid
        half = c.cube_size / 2
        cx, cy = rng.uniform(*c.cube_x), rng.uniform(*c.cube_y)
        yaw = rng.uniform(*c.cube_yaw)
        for _ in range(1000):
            gx, gy = rng.uniform(*c.goal_x), rng.uniform(*c.goal_y)
            if math.hypot(gx - cx, gy - cy) >= c.min_goal_distance:
                break
        self.look = look = SceneLook(c, rng)  # draws after the layout: same cube and target
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[half] * 3, physicsClientId=cid)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[half] * 3, rgbaColor=look.colour(0, [0.85, 0.15, 0.1, 1]),
                                  physicsClientId=cid)
        pos, quat = sim.base_to_world([cx, cy, half], p.getQuaternionFromEuler([0, 0, yaw]))
        self.cube = p.createMultiBody(c.cube_mass, col, vis, pos, quat, physicsClientId=cid)
        p.changeDynamics(self.cube, -1, lateralFriction=c.cube_friction, spinningFriction=0.001,
                         rollingFriction=0.0001, physicsClientId=cid)
        marker = p.createVisualShape(p.GEOM_CYLINDER, radius=c.xy_tolerance, length=0.002,
                                     rgbaColor=look.colour(1, [0.1, 0.8, 0.2, 1]), physicsClientId=cid)
        gpos, gquat = sim.base_to_world([gx, gy, 0.001], [0, 0, 0, 1])
        # Mass 0 and no collision shape: the marker is drawn but never touched.
        p.createMultiBody(0, -1, marker, gpos, gquat, physicsClientId=cid)
        if c.color_jitter:
            p.changeVisualShape(sim.plane, -1, rgbaColor=look.colour(2, [1, 1, 1, 1]), physicsClientId=cid)
        if c.distractors:
            look.add_distractors(sim, rng, [(cx, cy), (gx, gy)], (c.cube_x, c.cube_y))
        self.goal_base = pose7([gx, gy, half], [0, 0, 0, 1])
        self._hold = 0

    def cube_pose(self, sim: BulletRobot) -> np.ndarray:
        pos, quat = p.getBasePositionAndOrientation(self.cube, physicsClientId=sim.world.cid)
        return pose7(*sim.world_to_base(pos, quat))

    def observe(self, sim: BulletRobot) -> dict[str, np.ndarray]:
        return {"object_poses": self.cube_pose(sim)[None, :], "goal_pose": self.goal_base.copy()}

    def _released(self, sim: BulletRobot) -> bool:
        if sim.gripper_width() > self.config.release_width:
            return True
        cid = sim.world.cid
        return not any(p.getContactPoints(self.cube, sim.body, linkIndexB=link, physicsClientId=cid)
                       for link in sim.finger_links)

    def placed(self, sim: BulletRobot) -> bool:
        c = self.config
        cube = self.cube_pose(sim)
        on_goal = np.hypot(*(cube[:2] - self.goal_base[:2])) <= c.xy_tolerance
        resting = abs(cube[2] - c.cube_size / 2) <= c.z_tolerance
        return bool(on_goal and resting and self._released(sim))

    def update(self, sim: BulletRobot) -> None:
        self._hold = self._hold + 1 if self.placed(sim) else 0

    def status(self, sim: BulletRobot) -> dict:
        """``error``: the cube centre's xy distance from the target, m (the task's final error)."""
        success = self._hold >= self.config.hold_ticks
        limit = self.config.time_limit_s
        error = float(np.hypot(*(self.cube_pose(sim)[:2] - self.goal_base[:2])))
        return {"success": success, "done": success or sim.time >= limit - 1e-9, "time_limit": limit,
                "error": error}


@dataclass
class StandConfig:
    """Stand up from the lying pose and stay standing until ``time_limit_s``."""

    time_limit_s: float = 3.0
    min_height: float = 0.22  # trunk origin above the ground, m
    min_upright: float = 0.9  # cosine between the trunk's z axis and the world's

    def __post_init__(self):
        _check_positive(self, "time_limit_s", "min_height", "min_upright")
        if self.min_upright > 1:
            raise SpecError(f"StandConfig.min_upright: a cosine, at most 1, got {self.min_upright}")


class QuadrupedTask(Task):
    """Any quadruped on either backend: reads the trunk through ``sim.base_pose()`` only."""

    robot = ""
    kind = "quadruped"
    start_pose = "lying"  # or "standing": where the robot's joints start (``reset``)
    # "pd": the RL actuator model on every backend (the spec's pd_gains); "position": the
    # backend's own position motors where it has them (PyBullet's stand-up demo).
    actuation = "pd"

    def load(self, sim: BulletRobot, rng: np.random.Generator) -> None:
        pass

    def observe(self, sim: BulletRobot) -> dict[str, np.ndarray]:
        """The velocity command a walking policy reads in direct mode: stand still."""
        return {"cmd_vel": np.zeros(3)}

    def standing(self, sim: BulletRobot) -> bool:
        pos, quat = sim.base_pose()
        up = quat_to_matrix(quat)[2, 2]
        return bool(pos[2] >= self.config.min_height and up >= self.config.min_upright)


@TASKS.register("stand", config=StandConfig, robot="a1")
class StandTask(QuadrupedTask):
    """Success: at the time limit the trunk is above ``min_height`` and upright."""

    config_cls = StandConfig
    actuation = "position"

    def status(self, sim: BulletRobot) -> dict:
        limit = self.config.time_limit_s
        done = sim.time >= limit - 1e-9
        return {"success": bool(done and self.standing(sim)), "done": done, "time_limit": limit}


@dataclass
class WalkConfig:
    """Walk on a velocity command for ``time_limit_s`` without falling.

    ``command`` (vx, vy, yaw rate) is what the task tells the policy through ``read()["cmd_vel"]``
    in direct mode; in the ROS graph the policy reads the ``cmd_vel`` topic instead, so give the
    same value there. ``command_resample_s`` > 0 draws a new command from ``command_ranges`` that
    often (seeded); ``push_interval_s`` > 0 kicks the trunk by up to ``push_velocity`` m/s (x, y).
    """

    time_limit_s: float = 20.0
    min_height: float = 0.15  # trunk origin above the ground, m, below which it has fallen
    min_upright: float = 0.5  # cosine of the largest tilt that still counts as upright
    command: tuple[float, float, float] = (0.0, 0.0, 0.0)
    command_resample_s: float = 0.0
    command_ranges: tuple[tuple[float, float], ...] = ((0.0, 1.0), (-0.5, 0.5), (-1.0, 1.0))
    push_interval_s: float = 0.0
    push_velocity: float = 0.5

    def __post_init__(self):
        _check_positive(self, "time_limit_s", "min_height", "min_upright")
        if self.min_upright > 1:
            raise SpecError(f"WalkConfig.min_upright: a cosine, at most 1, got {self.min_upright}")
        self.command = tuple(float(v) for v in self.command)
        if len(self.command) != 3 or not all(math.isfinite(v) for v in self.command):
            raise SpecError(f"WalkConfig.command: (vx, vy, yaw rate), got {self.command}")
        if self.command_resample_s < 0 or self.push_interval_s < 0 or self.push_velocity < 0:
            raise SpecError("WalkConfig: command_resample_s, push_interval_s and push_velocity must be >= 0")


@TASKS.register("walk", config=WalkConfig, robot="a1")
class WalkTask(QuadrupedTask):
    """Starts standing; fails (and ends) on a fall, succeeds at the time limit. ``status()["error"]``
    is the mean planar velocity tracking error |v_xy - cmd_xy| (m/s, trunk frame) so far, and
    ``yaw_error`` the mean |yaw rate - cmd| (rad/s)."""

    config_cls = WalkConfig
    start_pose = "standing"

    def __init__(self, config=None):
        super().__init__(config)
        self.fell_at: float | None = None

    def load(self, sim: BulletRobot, rng: np.random.Generator) -> None:
        self.fell_at = None
        self.rng = rng
        self.current = np.array(self.config.command)
        self.errors: list[tuple[float, float]] = []

    def _every(self, sim, period_s: float) -> bool:
        k = round(period_s * sim.spec.control_rate_hz)
        return period_s > 0 and k > 0 and sim.tick % k == 0

    def observe(self, sim: BulletRobot) -> dict[str, np.ndarray]:
        return {"cmd_vel": self.current.copy()}

    def update(self, sim: BulletRobot) -> None:
        c = self.config
        lin, ang = sim.base_twist()
        self.errors.append((float(np.hypot(*(lin[:2] - self.current[:2]))), abs(float(ang[2] - self.current[2]))))
        if self.fell_at is None and not self.standing(sim):
            self.fell_at = sim.time
        if self._every(sim, c.command_resample_s):
            r = np.asarray(c.command_ranges)
            self.current = self.rng.uniform(r[:, 0], r[:, 1])
        if self._every(sim, c.push_interval_s):
            sim.push(self.rng.uniform(-c.push_velocity, c.push_velocity, 2))

    def status(self, sim: BulletRobot) -> dict:
        limit = self.config.time_limit_s
        fell = self.fell_at is not None
        done = fell or sim.time >= limit - 1e-9
        err = np.mean(self.errors, axis=0) if self.errors else (0.0, 0.0)
        return {"success": bool(done and not fell), "done": done, "time_limit": limit, "fell": fell,
                "error": float(err[0]), "yaw_error": float(err[1])}
