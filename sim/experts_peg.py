"""A scripted expert for ``peg_insert`` (``sim/tasks_peg.py``), with a realistic flaw: it sees the
hole through a noisy estimate (per episode, ``noise_xy`` metres and ``noise_yaw`` radians, drawn
from the hole's true pose so an episode's noise is the same however the episodes are run), so it
often lands on the chamfer-less edge and has to search, as a real arm with an imperfect camera
calibration does. Phases::

    approach (peg bottom ``hover`` above the estimated hole, yaw aligned)
        -> descend (to ``pre_insert`` above the top) -> insert (down at ``insert_speed``)
        -> [jam: force over ``jam_force`` before the depth] backoff (up ``backoff``) and the next
           point of a spiral around the estimate -> insert ... -> done (at depth: hold)

It reads joint positions, the end-effector pose, the wrist F/T sensor (``wrench`` z: the force
pushing the peg up) and the hole's pose (``goal_pose``). Rows go through the spec's velocity
and acceleration limits (``SetpointLimiter``) from the last row that ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p

from rosmind.errors import SpecError
from rosmind.spec import RobotSpec, load_spec
from rosmind.trajectory import SetpointLimiter

from .experts import PandaKinematics
from .experts_contact import GRASP_TARGET_OFFSET, tip_rows
from .tasks_peg import PEG_HALF, PEG_OFFSET, PegInsertConfig

PEG_PHASES = ("approach", "descend", "insert", "backoff", "done")


@dataclass
class PegInsertExpertConfig:
    horizon: int = 8
    hover: float = 0.05  # peg bottom above the hole's top while approaching
    pre_insert: float = 0.004
    approach_speed: float = 0.20  # m/s
    descend_speed: float = 0.05
    insert_speed: float = 0.02
    jam_force: float = 6.0  # N pushing the peg up before the depth: jammed
    backoff: float = 0.006
    spiral_step: float = 0.0006  # m: the k-th search point is sqrt(k) * this from the estimate
    spiral_angle: float = math.radians(137.5)  # golden angle: the points cover the disc evenly
    lead: float = 0.004  # m: the commanded bottom never more than this below the measured one
    noise_xy: float = 0.001  # std of the hole-position estimate, m
    noise_yaw: float = math.radians(1.0)
    depth: float = PegInsertConfig.depth
    insert_depth: float = PegInsertConfig.insert_depth
    # Loose on purpose (as the pick_place expert's switches): a cloned policy cannot tell
    # "almost at the hover point" from "there", and stalls short of a sharp threshold.
    tolerance: float = 0.015
    open_width: float = 0.04
    limit_margin: float = 0.9

    def __post_init__(self):
        for n in ("hover", "pre_insert", "approach_speed", "descend_speed", "insert_speed", "jam_force", "backoff",
                  "spiral_step", "tolerance"):
            v = getattr(self, n)
            if not (math.isfinite(v) and v > 0):
                raise SpecError(f"PegInsertExpertConfig.{n}: must be positive, got {v!r}")
        if self.horizon < 1 or self.noise_xy < 0 or self.noise_yaw < 0:
            raise SpecError("PegInsertExpertConfig: horizon >= 1 and noise >= 0")


class PegInsertExpert:
    """``reset()`` then ``act(obs, n_executed)`` per plan; ``phase`` says where it is."""

    def __init__(self, spec: RobotSpec | None = None, config: PegInsertExpertConfig | None = None):
        self.spec = spec or load_spec("panda")
        if self.spec.dof != 8:
            raise SpecError(f"PegInsertExpert: needs the Panda's 8 joints, robot {self.spec.name!r} has {self.spec.dof}")
        self.config = config or PegInsertExpertConfig()
        self.kin = PandaKinematics(self.spec)
        self.tip_below_ee = PEG_OFFSET + PEG_HALF[2] - GRASP_TARGET_OFFSET  # peg bottom below the grasp target
        self.reset()

    def close(self) -> None:
        self.kin.close()

    def reset(self) -> None:
        self.phase = "approach"
        self.limiter: SetpointLimiter | None = None
        self.aim: np.ndarray | None = None  # estimated hole top [x, y, z] and yaw
        self.yaw = 0.0
        self.tries = 0
        self.cmd: np.ndarray | None = None  # commanded peg-bottom position

    def _estimate(self, hole: np.ndarray) -> None:
        c = self.config
        seed = np.frombuffer(np.round(hole[:3], 6).tobytes(), dtype=np.uint32)
        rng = np.random.default_rng(seed)
        self.centre = hole[:3] + np.append(rng.normal(0.0, c.noise_xy, 2), 0.0)
        yaw = 2 * math.atan2(hole[5], hole[6]) + rng.normal(0.0, c.noise_yaw)  # about z: (0, 0, s, c)
        self.yaw = (yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4  # a square peg: mod 90 degrees
        self.aim = self.centre.copy()

    def _spiral(self) -> None:
        c = self.config
        self.tries += 1
        r, a = c.spiral_step * math.sqrt(self.tries), c.spiral_angle * self.tries
        self.aim = self.centre + [r * math.cos(a), r * math.sin(a), 0.0]

    def _advance_phase(self, tip: np.ndarray, force: float) -> None:
        c = self.config
        top = self.aim[2]
        if self.phase == "approach" and np.linalg.norm(tip - (self.aim + [0, 0, c.hover])) < c.tolerance:
            self.phase, self.cmd = "descend", tip.copy()
        if self.phase == "descend" and self.cmd[2] <= top + c.pre_insert + 1e-9 and tip[2] <= top + c.pre_insert + 0.003:
            self.phase = "insert"
        if self.phase == "insert":
            if tip[2] <= top - c.insert_depth - 0.002:
                self.phase = "done"
            elif force > c.jam_force and tip[2] > top - 0.004:  # stuck on the top, not in the hole
                self.phase = "backoff"
                self._spiral()
        if self.phase == "backoff" and tip[2] >= top + c.backoff - 0.001:
            self.phase, self.cmd = "descend", np.array([self.aim[0], self.aim[1], tip[2]])

    def _targets(self, tip: np.ndarray) -> list[np.ndarray]:
        """Peg-bottom positions for rows 0..H-1. Descending and inserting follow a commanded
        position (``cmd``) that moves at the phase's speed whatever the arm's lag, so a jammed
        peg shows as a growing force instead of a stall."""
        c = self.config
        dt, h = self.spec.control_period, c.horizon
        top = self.aim[2]

        def toward(start: np.ndarray, goal: np.ndarray, speed: float) -> list[np.ndarray]:
            out, pos = [], start.copy()
            for _ in range(h):
                d = goal - pos
                n = np.linalg.norm(d)
                pos = goal.copy() if n <= speed * dt else pos + d * (speed * dt / n)
                out.append(pos.copy())
            return out

        if self.phase == "approach":
            return toward(tip, self.aim + [0.0, 0.0, c.hover], c.approach_speed)
        if self.phase == "descend":
            rows = toward(self.cmd, np.array([self.aim[0], self.aim[1], top + c.pre_insert]), c.descend_speed)
            self.cmd = rows[0]
            return rows
        if self.phase == "insert":
            z = max(self.cmd[2] - c.insert_speed * dt, tip[2] - c.lead, top - c.depth)
            self.cmd = np.array([self.aim[0], self.aim[1], z])
            return [self.cmd + [0.0, 0.0, -c.insert_speed * dt * k] for k in range(h)]
        if self.phase == "backoff":
            return toward(tip, np.array([tip[0], tip[1], top + c.backoff]), c.descend_speed)
        return [np.array([self.aim[0], self.aim[1], top - c.insert_depth - 0.004])] * h

    def act(self, obs: dict[str, np.ndarray], n_executed: int = 1) -> np.ndarray:
        """``obs``: one tick (``joint_pos`` [8], ``ee_pose`` [7], ``wrench`` [6], ``goal_pose`` [7])
        -> ``[horizon, 8]`` absolute joint targets, row 0 for this tick."""
        q = np.asarray(obs["joint_pos"], dtype=np.float64)
        ee = np.asarray(obs["ee_pose"], dtype=np.float64)
        if self.aim is None:
            self._estimate(np.asarray(obs["goal_pose"], dtype=np.float64))
        force = float(np.asarray(obs["wrench"], dtype=np.float64)[2])
        tip = ee[:3] - [0.0, 0.0, self.tip_below_ee]
        if self.limiter is None:
            self.limiter = SetpointLimiter(self.spec, self.config.limit_margin)
            self.limiter.reset(q)
        self._advance_phase(tip, force)
        quat = p.getQuaternionFromEuler([math.pi, 0.0, self.yaw])
        return tip_rows(self.kin, self.limiter, q, self._targets(tip), self.tip_below_ee, quat,
                        self.config.open_width, n_executed, rest_yaw=self.yaw)
