"""Scripted experts: closed-loop state machines over ground-truth observations.

``PickPlaceExpert.act(obs) -> [H, 8]`` absolute joint targets (7 arm joints + finger width)
for the Panda ``pick_place`` task. Each call re-reads the observation (``joint_pos`` [8],
``ee_pose`` [7], ``object_poses`` [N, 7], ``goal_pose`` [7], all in the base frame), advances
its phase when the observation says the current one is finished, and plans ``horizon`` rows
toward the phase's Cartesian target at a bounded speed. Phases::

    approach -> descend -> grasp -> lift -> carry -> lower -> release -> retreat -> done
         ^________________________ (cube lost) ________________|

Arm rows come from PyBullet's null-space IK, solved on a private DIRECT client that holds
only a Panda (kinematics only; it never touches the sim's world), with the gripper pointing
down and its fingers square to the cube. Rows track the IK solutions within
``limit_margin`` times the spec's velocity and acceleration limits (per control period, with
braking so a joint stops at its target), continuing from the last row that ran, so a safety
node (``rosmind.safety``, which checks both) never has to clamp the expert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p
import pybullet_data

from rosmind.errors import SpecError
from rosmind.spec import RobotSpec, load_spec

PHASES = ("approach", "descend", "grasp", "lift", "carry", "lower", "release", "retreat", "done")
REST_POSE = (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785)


@dataclass
class PickPlaceExpertConfig:
    """Speeds in m/s, distances in metres (base frame; the table top is z = 0)."""

    horizon: int = 8
    speed: float = 0.30  # free-space Cartesian speed
    slow_speed: float = 0.12  # descending onto the cube / the target
    hover_height: float = 0.10  # above the cube's centre before descending
    carry_height: float = 0.16  # grasp-target height while carrying
    grasp_depth: float = 0.0  # grasp target below the cube's centre
    place_clearance: float = 0.004  # cube bottom above the table when released
    tolerance: float = 0.008  # position error that ends a move
    # Phase switches that a learned policy must reproduce are made loose on purpose: a switch
    # at a sharp 8 mm threshold leaves a cloned policy hovering just outside it (it cannot
    # tell "still moving" from "switch now"). The next phase keeps correcting xy anyway.
    switch_xy: float = 0.012  # xy error at which hovering over the cube/target turns into descending
    switch_z: float = 0.03  # height error at which a vertical move counts as arrived
    open_width: float = 0.04  # per finger
    squeeze: float = 0.008  # close to this far inside the cube's half size (grip force)
    limit_margin: float = 0.9  # fraction of the spec's velocity and acceleration limits
    # Plans continue from the last command, assumed to have run. Where the measured arm is
    # farther than this (rad, any joint) from every row of the last plan (and from where it
    # began), that plan did not run (refused or held downstream, or never delivered): the next
    # one starts from the measured pose again. Set above the arm's tracking lag behind its command.
    resync_rad: float = 0.3

    def __post_init__(self):
        for n in ("speed", "slow_speed", "hover_height", "carry_height", "tolerance", "open_width",
                  "switch_xy", "switch_z", "resync_rad"):
            v = getattr(self, n)
            if not (math.isfinite(v) and v > 0):
                raise SpecError(f"PickPlaceExpertConfig.{n}: must be positive, got {v!r}")
        if self.horizon < 1:
            raise SpecError(f"PickPlaceExpertConfig.horizon: must be >= 1, got {self.horizon}")
        if not 0 < self.limit_margin <= 1:
            raise SpecError(f"PickPlaceExpertConfig.limit_margin: in (0, 1], got {self.limit_margin}")


def _yaw(quat) -> float:
    return p.getEulerFromQuaternion(list(map(float, quat)))[2]


def _square_yaw(yaw: float) -> float:
    """A cube looks the same every quarter turn: the equivalent yaw in [-pi/4, pi/4)."""
    return (yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4


class PandaKinematics:
    """A private DIRECT client holding one fixed-base Panda, used only for IK and FK."""

    EE_LINK = "panda_grasptarget"

    def __init__(self, spec: RobotSpec):
        self.cid = p.connect(p.DIRECT)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=self.cid)
        self.body = p.loadURDF("franka_panda/panda.urdf", useFixedBase=True, physicsClientId=self.cid)
        names = {p.getJointInfo(self.body, i, physicsClientId=self.cid)[12].decode(): i
                 for i in range(p.getNumJoints(self.body, physicsClientId=self.cid))}
        self.ee = names[self.EE_LINK]
        arm = spec.joints[:7]
        # IK works over every movable joint (7 arm + 2 fingers), in body order.
        self.lower = [j.lower for j in arm] + [0.0, 0.0]
        self.upper = [j.upper for j in arm] + [0.04, 0.04]
        self.ranges = [u - lo for lo, u in zip(self.lower, self.upper, strict=True)]

    def close(self) -> None:
        if self.cid is not None:
            try:
                p.disconnect(physicsClientId=self.cid)
            finally:
                self.cid = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown may have torn pybullet down already
            pass

    def _set(self, q_arm: np.ndarray) -> None:
        for i, q in enumerate(q_arm):
            p.resetJointState(self.body, i, float(q), 0.0, physicsClientId=self.cid)

    def fk(self, q_arm: np.ndarray) -> np.ndarray:
        self._set(q_arm)
        s = p.getLinkState(self.body, self.ee, computeForwardKinematics=True, physicsClientId=self.cid)
        return np.asarray(s[4])

    def ik(self, pos, quat, seed: np.ndarray, rest_yaw: float = 0.0) -> np.ndarray:
        """Arm joints [7] placing the grasp target at ``pos``/``quat``, starting from ``seed``."""
        rest = list(REST_POSE) + [0.04, 0.04]
        rest[6] += rest_yaw
        q = np.asarray(seed, dtype=np.float64)
        for _ in range(2):
            self._set(q)
            sol = p.calculateInverseKinematics(
                self.body, self.ee, list(map(float, pos)), list(map(float, quat)),
                lowerLimits=self.lower, upperLimits=self.upper, jointRanges=self.ranges,
                restPoses=rest, maxNumIterations=50, residualThreshold=1e-4,
                physicsClientId=self.cid)
            q = np.clip(np.asarray(sol[:7]), self.lower[:7], self.upper[:7])
            if np.linalg.norm(self.fk(q) - np.asarray(pos)) < 1.5e-3:
                break
        return q


class PickPlaceExpert:
    """Closed-loop pick-and-place state machine; ``reset()`` then ``act(obs)`` per plan."""

    def __init__(self, spec: RobotSpec | None = None, config: PickPlaceExpertConfig | None = None):
        self.spec = spec or load_spec("panda")
        if self.spec.dof != 8:
            raise SpecError(f"PickPlaceExpert: needs the Panda's 8 joints, robot {self.spec.name!r} "
                            f"has {self.spec.dof}")
        self.config = config or PickPlaceExpertConfig()
        self.kin = PandaKinematics(self.spec)
        dt = self.spec.control_period
        m = self.config.limit_margin
        self.max_step = np.array(self.spec.limits("velocity")) * dt * m
        self.max_dstep = np.array(self.spec.limits("acceleration")) * dt * dt * m
        self.lower = np.array(self.spec.limits("lower"))
        self.upper = np.array(self.spec.limits("upper"))
        self.reset()

    def close(self) -> None:
        self.kin.close()

    def reset(self) -> None:
        self.phase = "approach"
        self.grasp_yaw = 0.0
        self.carry_xy = np.zeros(2)
        self._last_width: float | None = None
        # The previous plan's start and the rows of it that ran; its last row is the last command.
        self._last_path: np.ndarray | None = None
        self._last_step = np.zeros(8)  # the last command's per-tick step
        self.resyncs = 0  # plans restarted from the measured pose (a plan did not run)
        self._offset = np.zeros(3)  # cube centre minus grasp target, measured once lifted

    def take_over(self, obs: dict[str, np.ndarray], last_cmd: np.ndarray | None = None,
                  last_step: np.ndarray | None = None) -> str:
        """Continue an episode another controller began (a learner, for corrective
        demonstrations): pick the phase from the state (``obs`` as for ``act``) and rate-limit
        from that controller's last command and per-tick step. Returns the phase."""
        self.reset()
        q = np.asarray(obs["joint_pos"], dtype=np.float64)
        ee = np.asarray(obs["ee_pose"], dtype=np.float64)
        cube = np.asarray(obs["object_poses"], dtype=np.float64).reshape(-1, 7)[0]
        goal = np.asarray(obs["goal_pose"], dtype=np.float64)
        c, half = self.config, goal[2]
        # Fingers on the cube: closed to about its half size (not past it: that is a miss), around it.
        held = (half - 0.75 * c.squeeze < q[7] < half + 0.004 and np.linalg.norm(cube[:3] - ee[:3]) < 0.02
                and cube[2] > half - 0.005)
        self.grasp_yaw = _square_yaw(_yaw(cube[3:]))
        if held:  # the fingers are on the cube: carry it (lift first, where it is still low)
            self.carry_xy = ee[:2].copy()
            self._offset = cube[:3] - ee[:3]
            self.phase = "carry" if abs(c.carry_height - ee[2]) < c.switch_z else "lift"
        elif (q[7] > half + 0.004 and np.linalg.norm(cube[:2] - ee[:2]) < 0.02
              and ee[2] < cube[2] + c.hover_height):
            # Open (not yet on the cube), over it within what descending itself tolerates
            # (_next_phase aborts a descent beyond 2 cm), below the hover height: as its own
            # run would be there. Descending turns into grasping where the hand is at the cube.
            self.phase = "descend"
        else:
            self.phase = "approach"  # anything else: open, back over the cube, and again
        if last_cmd is not None:
            self._last_path = np.asarray(last_cmd, dtype=np.float64).reshape(1, -1).copy()
            self._last_step = (np.zeros(8) if last_step is None else np.asarray(last_step, dtype=np.float64).copy())
        return self.phase

    def _next_phase(self, q, ee, cube, goal) -> None:
        c = self.config
        width = q[7]
        half = goal[2]
        if self.phase in ("lift", "carry", "lower") and np.linalg.norm(cube[:3] - ee[:3]) > 0.04:
            self.phase = "approach"
        for _ in range(len(PHASES)):
            target, _, _ = self._target(ee, cube, goal)
            near = np.linalg.norm(target - ee[:3]) < c.tolerance
            over = (np.linalg.norm(target[:2] - ee[:2]) < c.switch_xy
                    and abs(target[2] - ee[2]) < c.switch_z)
            before = self.phase
            if self.phase == "approach" and over:
                self.phase = "descend"
            elif self.phase == "descend":
                if np.linalg.norm(cube[:2] - ee[:2]) > 0.02:
                    self.phase = "approach"
                elif near:
                    self.phase = "grasp"
            elif self.phase == "grasp":
                stalled = self._last_width is not None and abs(width - self._last_width) < 5e-4
                if stalled and width < half + 0.004:
                    self.carry_xy = ee[:2].copy()
                    self.phase = "lift"
                elif stalled and width < half - 0.75 * c.squeeze:
                    self.phase = "approach"
            elif self.phase == "lift" and abs(target[2] - ee[2]) < c.switch_z:
                self._offset = cube[:3] - ee[:3]
                self.phase = "carry"
            elif self.phase == "carry" and over:
                self.phase = "lower"
            elif self.phase == "lower" and (near or cube[2] < half + 0.5 * c.place_clearance):
                self.phase = "release"
            elif self.phase == "release" and width > c.open_width - 0.005:
                self.phase = "retreat"
            elif self.phase == "retreat" and near:
                self.phase = "done"
            if self.phase == before:
                break
        self._last_width = float(width)

    def _target(self, ee, cube, goal) -> tuple[np.ndarray, float, float]:
        """(grasp-target position [3], Cartesian speed, finger width) for the current phase."""
        c = self.config
        half = goal[2]
        closed = max(0.0, half - c.squeeze)
        ph = self.phase
        if ph in ("approach", "descend"):
            z = cube[2] + (c.hover_height if ph == "approach" else -c.grasp_depth)
            return np.array([cube[0], cube[1], z]), c.speed if ph == "approach" else c.slow_speed, c.open_width
        if ph == "grasp":
            return np.array([cube[0], cube[1], cube[2] - c.grasp_depth]), c.slow_speed, closed
        if ph == "lift":
            return np.array([*self.carry_xy, c.carry_height]), c.slow_speed, closed
        if ph in ("carry", "lower"):
            # Put the cube's centre (not the fingers) on the target: correct by the held offset.
            xy = goal[:2] - self._offset[:2]
            z = c.carry_height if ph == "carry" else half + c.place_clearance - self._offset[2]
            return np.array([*xy, z]), c.speed if ph == "carry" else c.slow_speed, closed
        if ph == "release":
            return ee[:3].copy(), c.slow_speed, c.open_width
        return np.array([ee[0], ee[1], c.carry_height]), c.speed, c.open_width

    def _track(self, prev: np.ndarray, prev_step: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Per-tick step from ``prev`` toward ``target`` within the step (velocity) and
        step-change (acceleration) bounds, slow enough to brake to a stop at the target."""
        a, v = self.max_dstep, self.max_step
        d = target - prev
        # Fastest step from which steps shrinking by ``a`` each tick still stop within |d|.
        brake = (np.sqrt(a * a + 8 * a * np.abs(d)) - a) / 2
        step = np.clip(d, -np.minimum(v, brake), np.minimum(v, brake))
        return np.clip(np.clip(step, prev_step - a, prev_step + a), -v, v)

    def act(self, obs: dict[str, np.ndarray], n_executed: int = 1) -> np.ndarray:
        """``obs``: one tick (``joint_pos`` [8], ``ee_pose`` [7], ``object_poses`` [N, 7],
        ``goal_pose`` [7]) -> ``[horizon, 8]`` absolute joint targets, row 0 for this tick.

        ``n_executed``: how many rows of this plan will run before the next call (the
        executor's ``n_action_steps``). Rows are rate-limited against the last row that ran,
        so commands stay within the velocity limits across plans too.
        """
        q = np.asarray(obs["joint_pos"], dtype=np.float64)
        ee = np.asarray(obs["ee_pose"], dtype=np.float64)
        cube = np.asarray(obs["object_poses"], dtype=np.float64).reshape(-1, 7)[0]
        goal = np.asarray(obs["goal_pose"], dtype=np.float64)
        if self.phase in ("approach", "descend"):
            self.grasp_yaw = _square_yaw(_yaw(cube[3:]))
        self._next_phase(q, ee, cube, goal)
        target, speed, width = self._target(ee, cube, goal)
        quat = p.getQuaternionFromEuler([math.pi, 0.0, self.grasp_yaw])
        stride = speed * self.spec.control_period
        rows = np.empty((self.config.horizon, 8))
        # Paths start at the measured pose (closed loop); steps are limited against the last
        # command, which for the gripper differs from its position whenever it holds the cube.
        seed = q[:7].copy()
        if self._last_path is not None and \
                np.abs(self._last_path[:, :7] - q[:7]).max(axis=1).min() > self.config.resync_rad:
            self._last_path, self._last_step = None, np.zeros(8)  # that plan did not run
            self.resyncs += 1
        start = q.copy() if self._last_path is None else self._last_path[-1].copy()
        prev, prev_step = start, self._last_step.copy()
        pos = ee[:3].copy()
        for k in range(self.config.horizon):
            delta = target - pos
            dist = np.linalg.norm(delta)
            pos = target.copy() if dist <= stride else pos + delta * (stride / dist)
            seed = self.kin.ik(pos, quat, seed, rest_yaw=self.grasp_yaw)
            step = self._track(prev, prev_step, np.append(seed, width))
            rows[k] = np.clip(prev + step, self.lower, self.upper)
            prev_step, prev = rows[k] - prev, rows[k]
        n = min(max(n_executed, 1), len(rows))
        self._last_step = rows[n - 1] - (rows[n - 2] if n > 1 else start)
        self._last_path = np.vstack([start[None], rows[:n]])
        return rows
