"""Contact-rich tasks: ``wipe``, where only force feedback tells the robot where the surface is.

The Panda holds a round sponge tool (``WIPE_TOOL``, a sphere on a fixed joint below the hand)
and must wipe a straight path across a compliant board, keeping the normal force inside
``force_window`` while it moves. What makes force feedback necessary, all seeded and none of it
in the observation:

- the board's height varies from episode to episode (``surface_height``);
- the board has a step (up or down, ``step_height``) at a random point of the path, bridged by a
  short ramp so the sponge rides over it;
- the board is bumped up or down (``push_height``) once during the wipe, when the tool passes
  ``push_y`` (or at tick ``push_tick``, for reaction-latency measurements).

The board's contact is soft (PyBullet contact stiffness and damping: a sponge on a board), so
the normal force is about ``stiffness`` times the tool's penetration: a 1 cm error is 10 N at
the default 1000 N/m. The robot reads the force through its wrist F/T sensor (``wrench``,
tared, filtered and noisy: ``sim/ft_sensor.py``); the task measures the true normal force from
the contact points.

Success: the tool reaches the end of the path within ``time_limit_s``, with the normal force
inside the window for at least ``min_in_window`` of the wiping ticks (from touching down within
``START_MARGIN`` of the path's start to reaching ``path_y[1]``), never above ``max_force``, and
the tool within ``max_path_error`` of the path's line on average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pybullet as p

from rosmind.errors import SpecError
from rosmind.registry import TASKS

from .ft_sensor import FTSensorConfig
from .tasks import Task, _check_positive
from .world import pose7

if TYPE_CHECKING:
    from .robots import BulletRobot

START_MARGIN = 0.02  # m: the wipe must touch down within this of the path's start
TOUCH_FORCE = 1.0  # N of normal force that counts as touching the board
BOARD_X = (0.30, 0.70)  # board extent in the base frame, m
BOARD_Y = (-0.32, 0.32)


@dataclass(frozen=True)
class Tool:
    """A sphere fixed below ``panda_hand`` at ``offset`` along the hand's z axis."""

    radius: float = 0.03
    offset: float = 0.14
    link: str = "wipe_tool"


@dataclass
class WipeConfig:
    """Wipe along y at x = ``path_x`` from ``path_y[0]`` to ``path_y[1]`` with 5-15 N of normal
    force (base frame, metres and newtons; the table top is z = 0)."""

    time_limit_s: float = 12.0
    path_x: tuple[float, float] = (0.45, 0.55)
    path_y: tuple[float, float] = (-0.15, 0.15)  # start, end (not a random range)
    surface_height: tuple[float, float] = (0.02, 0.05)  # board top above the table
    step_height: tuple[float, float] = (0.008, 0.015)  # magnitude; up or down at random
    step_y: tuple[float, float] = (-0.08, -0.02)
    ramp_length: float = 0.02
    push_height: tuple[float, float] = (0.005, 0.010)  # the bump: magnitude, up or down
    push_y: tuple[float, float] = (0.03, 0.09)  # tool y at which the board is bumped
    push_tick: int = -1  # >= 0: bump at this control tick instead (reaction measurements)
    # More bumps at random points of the wipe (drawn after everything else: a seed's layout and
    # first bump stay the same). For demonstrations: the expert then shows how it recovers
    # from force errors a cloned policy will make.
    extra_pushes: int = 0
    extra_push_height: tuple[float, float] = (0.005, 0.015)
    stiffness: float = 1000.0  # N/m, contact stiffness of the board
    damping: float = 100.0  # N s/m
    friction: float = 0.3
    force_window: tuple[float, float] = (5.0, 15.0)
    force_target: float = 10.0
    max_force: float = 40.0
    min_in_window: float = 0.8
    max_path_error: float = 0.02
    tool_radius: float = 0.03
    ft_cutoff_hz: float = 30.0
    ft_force_noise: float = 0.2
    ft_torque_noise: float = 0.01
    # The taxel pad (the spec's tactile sensor, e.g. `pad`): read() then has tactile/<name>.
    tactile: bool = False
    taxel_pitch: float = 0.008  # m between taxel centres
    taxel_sigma: float = 0.006  # m: how far a contact spreads over the skin
    tactile_noise: float = 0.05  # N per taxel and channel

    def __post_init__(self):
        _check_positive(self, "time_limit_s", "ramp_length", "stiffness", "damping", "friction", "force_target",
                        "max_force", "max_path_error", "tool_radius", "taxel_pitch", "taxel_sigma")
        if not (math.isfinite(self.tactile_noise) and self.tactile_noise >= 0):
            raise SpecError(f"WipeConfig.tactile_noise: must be a finite number >= 0, got {self.tactile_noise!r}")
        if self.extra_pushes < 0:
            raise SpecError(f"WipeConfig.extra_pushes: must be >= 0, got {self.extra_pushes}")
        for name in ("path_x", "surface_height", "step_height", "step_y", "push_height", "push_y", "force_window",
                     "extra_push_height"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise SpecError(f"WipeConfig.{name}: expected (low, high) with low <= high, got {(lo, hi)}")
        if not self.path_y[0] < self.path_y[1]:
            raise SpecError(f"WipeConfig.path_y: (start, end) with start < end, got {self.path_y}")
        if not BOARD_Y[0] < self.path_y[0] and self.path_y[1] < BOARD_Y[1]:
            raise SpecError(f"WipeConfig.path_y: must lie on the board, inside {BOARD_Y}, got {self.path_y}")
        if not BOARD_X[0] < self.path_x[0] and self.path_x[1] < BOARD_X[1]:
            raise SpecError(f"WipeConfig.path_x: must lie on the board, inside {BOARD_X}, got {self.path_x}")
        if not self.force_window[0] <= self.force_target <= self.force_window[1]:
            raise SpecError(f"WipeConfig.force_target {self.force_target} is outside force_window {self.force_window}")
        if self.surface_height[0] < 0.005:
            raise SpecError(f"WipeConfig.surface_height: at least 0.005 m, got {self.surface_height}")
        if not 0 <= self.min_in_window <= 1:
            raise SpecError(f"WipeConfig.min_in_window: a fraction in [0, 1], got {self.min_in_window}")
        try:
            FTSensorConfig(self.ft_cutoff_hz, self.ft_force_noise, self.ft_torque_noise)
        except SpecError as e:
            raise SpecError(str(e).replace("FTSensorConfig.", "WipeConfig.ft_")) from None


@TASKS.register("wipe", config=WipeConfig, robot="panda")
class WipeTask(Task):
    """See the module doc. Extra ``read()`` key: ``goal_pose`` [7], the end of the path (z = 0:
    the board's height is not given). ``status()`` adds ``in_window`` (fraction of wiping ticks
    with the normal force inside the window), ``force_rmse`` (N, from ``force_target``, also
    ``error``), ``max_force`` and ``path_error`` (mean |x - path_x|, m)."""

    robot = "panda"
    config_cls = WipeConfig

    def __init__(self, config: WipeConfig | None = None):
        super().__init__(config)
        self.tool = Tool(radius=self.config.tool_radius)
        c = self.config
        self.ft_sensor = FTSensorConfig(c.ft_cutoff_hz, c.ft_force_noise, c.ft_torque_noise)
        self.board: list[int] = []

    # -- world ---------------------------------------------------------------------------

    def _box(self, sim: BulletRobot, centre, half, roll: float = 0.0) -> int:
        cid = sim.world.cid
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=list(half), physicsClientId=cid)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=list(half), rgbaColor=[0.75, 0.72, 0.65, 1],
                                  physicsClientId=cid)
        pos, quat = sim.base_to_world(centre, p.getQuaternionFromEuler([roll, 0.0, 0.0]))
        body = p.createMultiBody(0, col, vis, pos, quat, physicsClientId=cid)
        c = self.config
        p.changeDynamics(body, -1, contactStiffness=c.stiffness, contactDamping=c.damping,
                         lateralFriction=c.friction, physicsClientId=cid)
        return body

    def load(self, sim: BulletRobot, rng: np.random.Generator) -> None:
        c = self.config
        self.path_x = rng.uniform(*c.path_x)
        h0 = rng.uniform(*c.surface_height)
        self.step = rng.uniform(*c.step_height) * rng.choice([-1.0, 1.0])
        self.step_y = rng.uniform(*c.step_y)
        self.push = rng.uniform(*c.push_height) * rng.choice([-1.0, 1.0])
        self.push_y = rng.uniform(*c.push_y)
        self.surface = h0
        xc, hx = sum(BOARD_X) / 2, (BOARD_X[1] - BOARD_X[0]) / 2
        y_a, y_b = self.step_y - c.ramp_length / 2, self.step_y + c.ramp_length / 2
        h1 = h0 + self.step
        self.board = [
            self._box(sim, [xc, (BOARD_Y[0] + y_a) / 2, h0 / 2], [hx, (y_a - BOARD_Y[0]) / 2, h0 / 2]),
            self._box(sim, [xc, (y_b + BOARD_Y[1]) / 2, h1 / 2], [hx, (BOARD_Y[1] - y_b) / 2, h1 / 2]),
        ]
        # The ramp: a thin slab whose top face joins the two tops.
        angle = math.atan2(self.step, c.ramp_length)
        half_t = 0.004
        length = math.hypot(c.ramp_length, self.step) / 2 + 0.002
        top = np.array([self.step_y, h0 + self.step / 2])
        centre = top - half_t * np.array([-math.sin(angle), math.cos(angle)])
        self.board.append(self._box(sim, [xc, *centre], [hx, length, half_t], roll=angle))
        self.goal_base = pose7([self.path_x, c.path_y[1], 0.0], [0, 0, 0, 1])
        self.pad = None
        if c.tactile:
            pads = sim.spec.sensors_of("tactile")
            if not pads:
                raise SpecError(f"wipe: tactile=true needs a tactile sensor in robot {sim.spec.name!r}'s spec")
            self.pad = pads[0]
            cols, rows = self.pad.resolution
            self.taxels = np.stack(np.meshgrid((np.arange(cols) - (cols - 1) / 2) * c.taxel_pitch,
                                               (np.arange(rows) - (rows - 1) / 2) * c.taxel_pitch), -1)  # [R, C, 2]
            # Drawn last: the layout above is the same with or without the pad.
            self.tactile_rng = np.random.default_rng(rng.integers(2**63))
            self.tactile_now = np.zeros((rows, cols, 3))
        self.pushed = False
        self.offset = 0.0  # the board's displacement by bumps so far
        n = c.extra_pushes
        ys = np.sort(rng.uniform(c.path_y[0] + 0.03, c.path_y[1] - 0.02, n)) if n else np.zeros(0)
        dz = rng.uniform(*c.extra_push_height, n) * rng.choice([-1.0, 1.0], n) if n else np.zeros(0)
        self.extra = [list(x) for x in zip(ys, dz, strict=True)]  # [y, dz] not yet applied
        self.started = self.finished = False
        self.forces: list[float] = []
        self.path_errors: list[float] = []
        self.force_now = 0.0

    def board_height(self, y: float) -> float:
        """Top of the board under ``y`` right now (with the step and any bump), m."""
        c = self.config
        ramp = np.clip((y - (self.step_y - c.ramp_length / 2)) / c.ramp_length, 0.0, 1.0)
        return self.surface + self.step * ramp + self.offset

    def bump(self, sim: BulletRobot, dz: float | None = None) -> None:
        """Move the whole board by ``dz`` in z (someone knocks it); the default is the episode's
        ``push``, once."""
        cid = sim.world.cid
        if dz is None:
            dz, self.pushed = self.push, True
        for b in self.board:
            pos, quat = p.getBasePositionAndOrientation(b, physicsClientId=cid)
            p.resetBasePositionAndOrientation(b, [pos[0], pos[1], pos[2] + dz], quat, physicsClientId=cid)
        self.offset += dz

    # -- measurements --------------------------------------------------------------------

    def tool_position(self, sim: BulletRobot) -> np.ndarray:
        pos, quat = sim.link_world_pose(sim.tool_link)
        return np.asarray(sim.world_to_base(pos, quat)[0])

    def normal_force(self, sim: BulletRobot) -> float:
        """Sum of the contact normal forces between the tool and the board, N."""
        cid = sim.world.cid
        return float(sum(cp[9] for b in self.board
                         for cp in p.getContactPoints(sim.body, b, linkIndexA=sim.tool_link, physicsClientId=cid)))

    def tactile(self, sim: BulletRobot) -> np.ndarray:
        """Taxel readings ``[rows, cols, 3]`` (normal pressure, shear x, shear y in the tool's
        frame, N): each tool-board contact point spread over the taxels near where it touches
        (Gaussian, ``taxel_sigma``), plus noise."""
        c, cid = self.config, sim.world.cid
        pos, quat = sim.link_world_pose(sim.tool_link)
        rot = np.asarray(p.getMatrixFromQuaternion(quat)).reshape(3, 3)  # tool frame -> world
        out = np.zeros((*self.taxels.shape[:2], 3))
        for b in self.board:
            for cp in p.getContactPoints(sim.body, b, linkIndexA=sim.tool_link, physicsClientId=cid):
                at = rot.T @ (np.asarray(cp[5]) - np.asarray(pos))  # on the tool, tool frame
                shear = rot.T @ (cp[10] * np.asarray(cp[11]) + cp[12] * np.asarray(cp[13]))
                w = np.exp(-np.sum((self.taxels - at[:2]) ** 2, -1) / (2 * c.taxel_sigma ** 2))
                out += w[..., None] * np.array([cp[9], shear[0], shear[1]])
        return out + c.tactile_noise * self.tactile_rng.standard_normal(out.shape)

    def observe(self, sim: BulletRobot) -> dict[str, np.ndarray]:
        out = {"goal_pose": self.goal_base.copy()}
        if self.pad is not None:
            out[f"tactile/{self.pad.name}"] = self.tactile_now.copy()
        return out

    def update(self, sim: BulletRobot) -> None:
        c = self.config
        tool = self.tool_position(sim)
        self.force_now = self.normal_force(sim)
        if self.pad is not None:  # once per tick: the same reading however often read() runs
            self.tactile_now = self.tactile(sim)
        if not self.started and self.force_now >= TOUCH_FORCE and tool[1] <= c.path_y[0] + START_MARGIN:
            self.started = True
        if self.started and not self.finished:
            self.forces.append(self.force_now)
            self.path_errors.append(abs(tool[0] - self.path_x))
            if tool[1] >= c.path_y[1]:
                self.finished = True
        bump_now = (sim.tick == c.push_tick) if c.push_tick >= 0 else (self.started and tool[1] >= self.push_y)
        if bump_now and not self.pushed:
            self.bump(sim)
        while self.started and self.extra and tool[1] >= self.extra[0][0]:
            self.bump(sim, self.extra.pop(0)[1])

    def metrics(self) -> dict:
        c = self.config
        f = np.asarray(self.forces)
        if not len(f):
            return {"in_window": 0.0, "force_rmse": float("nan"), "max_force": 0.0, "path_error": float("nan")}
        inside = (f >= c.force_window[0]) & (f <= c.force_window[1])
        return {"in_window": float(inside.mean()), "force_rmse": float(np.sqrt(np.mean((f - c.force_target) ** 2))),
                "max_force": float(f.max()), "path_error": float(np.mean(self.path_errors))}

    def status(self, sim: BulletRobot) -> dict:
        c = self.config
        m = self.metrics()
        success = bool(self.finished and m["in_window"] >= c.min_in_window and m["max_force"] <= c.max_force
                       and m["path_error"] <= c.max_path_error)
        limit = c.time_limit_s
        return {"success": success, "done": self.finished or sim.time >= limit - 1e-9, "time_limit": limit,
                "error": m["force_rmse"], **m}
