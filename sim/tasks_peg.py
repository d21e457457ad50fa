"""``peg_insert``: the precision task of ResiP (issue 16) on the Panda.

A square peg (``PEG_HALF`` half extents, 2 x 2 x 7 cm) is fixed below the hand (a tool link, as
the wipe sponge: its contact wrench reaches the wrist F/T sensor). A fixture of four boxes on the
table leaves a square hole ``clearance`` wider than the peg (2 mm in all: 1 mm a side),
``depth`` deep, at a seeded random place and yaw. Observations add ``object_poses`` [2, 7] (the
peg's centre, the hole's top centre with its yaw) and ``goal_pose`` (the hole's top centre),
plus the arm's ``wrench`` (tared, filtered, noisy: ``sim/ft_sensor.py``).

Success: the peg's bottom ``insert_depth`` or more below the hole's top, its axis inside the hole,
for ``hold_ticks`` ticks. Done on success or after ``time_limit_s``. ``error``: the peg bottom's
height above the success depth (m, 0 when reached) plus its xy distance from the hole's axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p

from rosmind.errors import SpecError
from rosmind.registry import TASKS

from .ft_sensor import FTSensorConfig
from .tasks import Task, _check_positive, _check_range
from .world import pose7

PEG_HALF = (0.01, 0.01, 0.035)
PEG_OFFSET = 0.105 + PEG_HALF[2]  # the peg's centre below panda_hand: it starts at the fingertips


def peg_axis_and_bottom(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The peg's axis (its z, pointing down along it) and its bottom's centre, from its pose [7]."""
    axis = np.asarray(p.getMatrixFromQuaternion(pose[3:])).reshape(3, 3)[:, 2]
    return axis, pose[:3] + axis * PEG_HALF[2]


@dataclass(frozen=True)
class PegTool:
    """The peg as a tool link (``sim.panda_urdf.tool_panda_urdf``)."""

    box: tuple[float, float, float] = PEG_HALF
    offset: float = PEG_OFFSET
    link: str = "peg"


@dataclass
class PegInsertConfig:
    time_limit_s: float = 10.0
    hole_x: tuple[float, float] = (0.45, 0.60)
    hole_y: tuple[float, float] = (-0.12, 0.12)
    hole_yaw: tuple[float, float] = (-0.5, 0.5)  # rad
    clearance: float = 0.002  # hole width minus peg width, m
    depth: float = 0.03  # fixture height = hole depth
    fixture_half: float = 0.04  # half the fixture's outer side
    insert_depth: float = 0.02  # success: the peg bottom this far below the top
    hold_ticks: int = 3
    friction: float = 0.5
    ft_cutoff_hz: float = 30.0
    ft_force_noise: float = 0.2
    ft_torque_noise: float = 0.01

    def __post_init__(self):
        _check_positive(self, "time_limit_s", "clearance", "depth", "fixture_half", "insert_depth", "friction")
        for r in ("hole_x", "hole_y", "hole_yaw"):
            _check_range(self, r)
        if self.insert_depth >= self.depth:
            raise SpecError(f"PegInsertConfig.insert_depth: {self.insert_depth} must be less than depth {self.depth}")
        if not PEG_HALF[0] + self.clearance / 2 < self.fixture_half:
            raise SpecError("PegInsertConfig.fixture_half: the hole must fit inside the fixture")
        if self.hold_ticks < 1:
            raise SpecError(f"PegInsertConfig.hold_ticks: must be >= 1, got {self.hold_ticks}")


@TASKS.register("peg_insert", config=PegInsertConfig, robot="panda")
class PegInsertTask(Task):
    robot = "panda"
    config_cls = PegInsertConfig

    def __init__(self, config: PegInsertConfig | None = None):
        super().__init__(config)
        c = self.config
        self.tool = PegTool()
        self.ft_sensor = FTSensorConfig(c.ft_cutoff_hz, c.ft_force_noise, c.ft_torque_noise)
        self.hole = np.zeros(7)
        self._hold = 0

    def load(self, sim, rng: np.random.Generator) -> None:
        c, cid = self.config, sim.world.cid
        x, y, yaw = rng.uniform(*c.hole_x), rng.uniform(*c.hole_y), rng.uniform(*c.hole_yaw)
        a = PEG_HALF[0] + c.clearance / 2  # half the hole's side
        side = (c.fixture_half - a) / 2  # half the width of a wall
        walls = [((a + side, 0.0), (side, c.fixture_half)), ((-(a + side), 0.0), (side, c.fixture_half)),
                 ((0.0, a + side), (a, side)), ((0.0, -(a + side)), (a, side))]
        cy, sy = math.cos(yaw), math.sin(yaw)
        quat = p.getQuaternionFromEuler([0.0, 0.0, yaw])
        for (dx, dy), (hx, hy) in walls:
            col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[hx, hy, c.depth / 2], physicsClientId=cid)
            vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[hx, hy, c.depth / 2], rgbaColor=[0.55, 0.4, 0.25, 1],
                                      physicsClientId=cid)
            centre = [x + cy * dx - sy * dy, y + sy * dx + cy * dy, c.depth / 2]
            pos, q = sim.base_to_world(centre, quat)
            body = p.createMultiBody(0, col, vis, pos, q, physicsClientId=cid)
            p.changeDynamics(body, -1, lateralFriction=c.friction, physicsClientId=cid)
        self.hole = pose7([x, y, c.depth], quat)
        self._hold = 0

    def peg_pose(self, sim) -> np.ndarray:
        return pose7(*sim.world_to_base(*sim.link_world_pose(sim.tool_link)))

    def peg_bottom(self, sim) -> np.ndarray:
        """The peg bottom's centre (base frame): along the peg's own axis."""
        return peg_axis_and_bottom(self.peg_pose(sim))[1]  # the hand's z points down along the peg

    def observe(self, sim) -> dict[str, np.ndarray]:
        return {"object_poses": np.stack([self.peg_pose(sim), self.hole.copy()]), "goal_pose": self.hole.copy()}

    def _state(self, sim) -> tuple[float, float]:
        """(height of the peg bottom above the success depth, xy distance from the hole's axis)."""
        b = self.peg_bottom(sim)
        return float(b[2] - (self.config.depth - self.config.insert_depth)), float(np.hypot(*(b[:2] - self.hole[:2])))

    def update(self, sim) -> None:
        above, off = self._state(sim)
        inside = above <= 0 and off <= self.config.clearance / 2 + 1e-3
        self._hold = self._hold + 1 if inside else 0

    def status(self, sim) -> dict:
        above, off = self._state(sim)
        success = self._hold >= self.config.hold_ticks
        limit = self.config.time_limit_s
        return {"success": success, "done": success or sim.time >= limit - 1e-9, "time_limit": limit,
                "error": max(above, 0.0) + off}
