"""A scripted force-control expert for ``wipe`` (``sim/tasks_contact.py``).

``WipeExpert.act(obs) -> [H, 8]`` absolute joint targets. It reads what a real arm has: joint
positions, the end-effector pose and the wrist F/T sensor (``wrench``, tared: its z component
is the normal force on the downward-pointing tool), plus the path's end (``goal_pose``). It
never reads the board's height. Phases::

    approach (above the path's start) -> descend (slowly, until the sponge touches)
        -> wipe (along the path; the height follows the force) -> lift -> done

While wiping it is an admittance controller: every tick the commanded tool height moves by
``force_gain * (F - force_target) / stiffness`` (at most ``max_dz``), so a step in the board or
a bump shows in its commands within a tick or two: the force-reactive corrections a
slow-fast policy must learn. Row ``k`` of a plan continues along the path at the wiping speed
with the height held (the expert cannot see the future force). Rows go through the spec's
velocity and acceleration limits (``rosmind.trajectory.SetpointLimiter``) from the last row
that ran, so safety_node never clamps the expert.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pybullet as p

from rosmind.errors import SpecError
from rosmind.spec import RobotSpec, load_spec
from rosmind.trajectory import SetpointLimiter

from .experts import PandaKinematics
from .tasks_contact import Tool, WipeConfig

WIPE_PHASES = ("approach", "descend", "wipe", "lift", "done")
GRASP_TARGET_OFFSET = 0.105  # panda_grasptarget below panda_hand, m


@dataclass
class WipeExpertConfig:
    horizon: int = 8
    hover: float = 0.08  # tool tip height (above the table) to approach at: above any board
    approach_speed: float = 0.25  # m/s
    # The approach slows down near the path's start: each row moves at most this fraction of
    # the distance left, so a row says how far the start still is, not only which way (a cloned
    # policy that stops short or overshoots sees rows that close the gap).
    approach_gain: float = 0.3
    descend_speed: float = 0.05
    wipe_speed: float = 0.06
    contact_force: float = 3.0  # N: the sponge has touched
    force_target: float = WipeConfig.force_target
    stiffness: float = WipeConfig.stiffness  # N/m: the admittance's estimate of the contact
    force_gain: float = 0.5  # fraction of the force error corrected per tick
    max_dz: float = 0.004  # m per tick of height correction
    lift: float = 0.06
    tolerance: float = 0.015  # m: a free-space move has arrived (DART noise moves the tool by ~1 cm)
    tool_radius: float = WipeConfig.tool_radius
    tool_offset: float = Tool.offset
    path_start_y: float = WipeConfig.path_y[0]
    # Touch down this far before the path's start (the task counts a touch-down up to
    # START_MARGIN past it): a clone that arrives a little short still starts in time.
    lead_in: float = 0.01
    open_width: float = 0.04
    limit_margin: float = 0.9

    def __post_init__(self):
        if not 0 < self.approach_gain <= 1:
            raise SpecError(f"WipeExpertConfig.approach_gain: in (0, 1], got {self.approach_gain!r}")
        if not 0 <= self.lead_in <= 0.05:
            raise SpecError(f"WipeExpertConfig.lead_in: in [0, 0.05] m, got {self.lead_in!r}")
        for n in ("hover", "approach_speed", "descend_speed", "wipe_speed", "contact_force", "force_target",
                  "stiffness", "force_gain", "max_dz", "lift", "tolerance", "tool_radius"):
            v = getattr(self, n)
            if not (math.isfinite(v) and v > 0):
                raise SpecError(f"WipeExpertConfig.{n}: must be positive, got {v!r}")
        if self.horizon < 1:
            raise SpecError(f"WipeExpertConfig.horizon: must be >= 1, got {self.horizon}")
        if not 0 < self.limit_margin <= 1:
            raise SpecError(f"WipeExpertConfig.limit_margin: in (0, 1], got {self.limit_margin}")


class WipeExpert:
    """``reset()`` then ``act(obs, n_executed)`` per plan; ``phase`` says where it is."""

    def __init__(self, spec: RobotSpec | None = None, config: WipeExpertConfig | None = None):
        self.spec = spec or load_spec("panda")
        if self.spec.dof != 8:
            raise SpecError(f"WipeExpert: needs the Panda's 8 joints, robot {self.spec.name!r} has {self.spec.dof}")
        self.config = config or WipeExpertConfig()
        self.kin = PandaKinematics(self.spec)
        self.quat = p.getQuaternionFromEuler([math.pi, 0.0, 0.0])  # tool straight down
        self.tip_below_ee = self.config.tool_offset + self.config.tool_radius - GRASP_TARGET_OFFSET
        self.reset()

    def close(self) -> None:
        self.kin.close()

    def reset(self) -> None:
        self.phase = "approach"
        self.limiter: SetpointLimiter | None = None
        self.cmd: np.ndarray | None = None  # commanded tool-tip position
        self.force = 0.0

    def _hover_start(self, goal: np.ndarray) -> np.ndarray:
        """Where the approach ends: above the touch-down point, ``lead_in`` before the path's start."""
        c = self.config
        return np.array([goal[0], c.path_start_y - c.lead_in, c.hover])

    def _advance_phase(self, tip: np.ndarray, goal: np.ndarray) -> None:
        c = self.config
        start = self._hover_start(goal)
        if self.phase == "approach" and np.linalg.norm(tip - start) < c.tolerance:
            self.phase = "descend"
            self.cmd = tip.copy()
        if self.phase == "descend" and self.force >= c.contact_force:
            self.phase = "wipe"
            self.cmd = tip.copy()
        if self.phase == "wipe" and tip[1] >= goal[1]:
            self.phase = "lift"
            self.cmd = tip.copy()
        if self.phase == "lift" and tip[2] >= self.cmd[2] + c.lift - c.tolerance:
            self.phase = "done"

    def _targets(self, tip: np.ndarray, goal: np.ndarray) -> list[np.ndarray]:
        """Tool-tip positions for rows 0..H-1; advances the commanded position by one tick."""
        c = self.config
        dt = self.spec.control_period
        h = c.horizon
        if self.phase == "approach":
            start = self._hover_start(goal)
            out, pos = [], tip.copy()
            for _ in range(h):
                d = start - pos
                pos = pos + d * min(c.approach_gain, c.approach_speed * dt / max(np.linalg.norm(d), 1e-9))
                out.append(pos.copy())
            return out
        if self.phase == "descend":
            self.cmd = self.cmd + [0.0, 0.0, -c.descend_speed * dt]
            self.cmd[:2] = self._hover_start(goal)[:2]
            return [self.cmd + [0.0, 0.0, -c.descend_speed * dt * k] for k in range(h)]
        if self.phase == "wipe":
            dz = np.clip(c.force_gain * (self.force - c.force_target) / c.stiffness, -c.max_dz, c.max_dz)
            step = c.wipe_speed * dt
            self.cmd = np.array([goal[0], min(self.cmd[1] + step, goal[1] + 0.01), self.cmd[2] + dz])
            return [self.cmd + [0.0, step * k, 0.0] for k in range(h)]
        if self.phase == "lift":
            top = self.cmd[2] + c.lift
            return [np.array([self.cmd[0], self.cmd[1], min(top, tip[2] + c.approach_speed * dt * (k + 1))])
                    for k in range(h)]
        return [np.array([self.cmd[0], self.cmd[1], self.cmd[2] + c.lift])] * h

    def act(self, obs: dict[str, np.ndarray], n_executed: int = 1) -> np.ndarray:
        """``obs``: one tick (``joint_pos`` [8], ``ee_pose`` [7], ``wrench`` [6], ``goal_pose`` [7])
        -> ``[horizon, 8]`` absolute joint targets, row 0 for this tick."""
        q = np.asarray(obs["joint_pos"], dtype=np.float64)
        ee = np.asarray(obs["ee_pose"], dtype=np.float64)
        goal = np.asarray(obs["goal_pose"], dtype=np.float64)
        self.force = float(np.asarray(obs["wrench"], dtype=np.float64)[2])
        tip = ee[:3] - [0.0, 0.0, self.tip_below_ee]
        if self.limiter is None:
            self.limiter = SetpointLimiter(self.spec, self.config.limit_margin)
            self.limiter.reset(q)
        self._advance_phase(tip, goal)
        return tip_rows(self.kin, self.limiter, q, self._targets(tip, goal), self.tip_below_ee, self.quat,
                        self.config.open_width, n_executed)


def tip_rows(kin: PandaKinematics, limiter: SetpointLimiter, q: np.ndarray, targets: list[np.ndarray],
             tip_below_ee: float, quat, width: float, n_executed: int, rest_yaw: float = 0.0) -> np.ndarray:
    """Tool-tip positions -> ``[H, 8]`` joint rows: IK along the path from the measured arm
    ``q``, the fingers at ``width``, then ``limiter`` (on a copy; the real one advances over the
    ``n_executed`` rows that will run, so the next plan continues from them)."""
    seed, joint_targets = q[:7].copy(), []
    for pos in targets:
        seed = kin.ik(pos + [0.0, 0.0, tip_below_ee], quat, seed, rest_yaw=rest_yaw)
        joint_targets.append(np.append(seed, width))
    ahead = copy.deepcopy(limiter)
    rows = np.stack([ahead(t) for t in joint_targets])
    for t in joint_targets[:max(1, min(n_executed, len(rows)))]:
        limiter(t)
    return rows
