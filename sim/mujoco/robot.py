"""``MujocoQuadruped``: one MuJoCo world behind the ``SimRobot`` contract, for robot_node.

    with make_sim("a1", "walk", backend="mujoco", terrain="rough") as sim:
        obs = sim.reset(seed=0)
        sim.write(obs["joint_pos"]); sim.step()

Same spec, joint order and ``read()`` keys as the PyBullet A1 (``sim/robots.py``): joint
states, ``imu_orientation`` (x y z w) / ``imu_angular_velocity`` / ``imu_linear_acceleration``
in the trunk frame from MuJoCo's IMU sensors, ``odom_pose`` (world) and ``odom_twist`` (trunk
frame). The model and its actuators are the RL env's (``models.build_model``), so the robot the
graph drives is the robot PPO trained on; one control period is ``mj_step(nstep=decimation)``
in C.
"""

from __future__ import annotations

import mujoco
import numpy as np

from rosmind.errors import SpecError
from rosmind.robot import Observation, SimRobot, checked_positions

from ..tasks import Task, TaskSim
from .models import PHYSICS_DT, QUADRUPEDS, build_model, joint_addresses, sensor_slices
from .terrain import TerrainConfig


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    return np.array([q[1], q[2], q[3], q[0]])


class MujocoQuadruped(TaskSim, SimRobot):
    DEFAULT_TASK = "stand"
    backend = "mujoco"

    def __init__(self, robot: str = "a1", task: str | Task | None = None, terrain: str = "flat",
                 seed: int = 0, **task_options):
        self.qm = QUADRUPEDS.get(robot).factory
        self.NAME = robot
        self.spec = self.qm.spec()
        self.task = self._make_task(task or self.DEFAULT_TASK, task_options)
        if getattr(self.task, "kind", "") != "quadruped":
            raise SpecError(f"task {type(self.task).__name__} is not a quadruped task; the MuJoCo backend "
                            f"runs quadruped tasks only (stand, walk)")
        self.model, self.terrain = build_model(robot, TerrainConfig(kind=terrain), seed)
        self.data = mujoco.MjData(self.model)
        self.substeps = int(round(self.spec.control_period / PHYSICS_DT))
        if abs(self.substeps * PHYSICS_DT - self.spec.control_period) > 1e-9:
            raise SpecError(f"{robot}: control period {self.spec.control_period} s is not a multiple of "
                            f"the physics step {PHYSICS_DT} s")
        self.qadr, self.vadr = joint_addresses(self.model, self.spec)
        self.sensors = sensor_slices(self.model)
        self.lower = np.array(self.spec.limits("lower"))
        self.upper = np.array(self.spec.limits("upper"))
        self.setpoint = np.array(self.qm.stand)
        self._tick = 0
        self._built = False

    def connect(self) -> None:
        if not self._built:
            self.reset(0)

    def disconnect(self) -> None:
        self._built = False

    def default_setpoint(self) -> np.ndarray:
        return np.array(self.qm.stand)

    def reset(self, seed: int | None = None) -> Observation:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        standing = getattr(self.task, "start_pose", "lying") == "standing"
        pose = np.array(self.qm.stand if standing else self.qm.lying)
        origin = self.terrain.origins[0, 0]
        d.qpos[:3] = origin
        d.qpos[3:7] = (1.0, 0.0, 0.0, 0.0)
        d.qpos[self.qadr] = pose
        # Put the lowest geom 1 mm above the ground (standing or folded alike).
        mujoco.mj_forward(m, d)
        robot_geoms = m.geom_bodyid > 0
        lowest = np.min(d.geom_xpos[robot_geoms, 2] - m.geom_rbound[robot_geoms])
        d.qpos[2] += origin[2] - lowest + 1e-3
        mujoco.mj_forward(m, d)
        self.task.load(self, np.random.default_rng(seed))
        self._tick = 0
        self._built = True
        self.setpoint = np.clip(self.default_setpoint(), self.lower, self.upper)
        d.ctrl[:] = self.setpoint
        return self.read()

    def write(self, positions: np.ndarray) -> np.ndarray:
        if not self._built:
            self.connect()
        sent = np.clip(checked_positions(self.spec, positions, f"{self.NAME}.write"), self.lower, self.upper)
        self.setpoint = sent
        self.data.ctrl[:] = sent
        return sent.copy()

    def _advance(self) -> None:
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        # mj_step evaluates sensors before it integrates: without this the IMU would read the
        # state of one physics step ago (the RL env reads the state itself, so would not).
        mujoco.mj_forward(self.model, self.data)

    def base_pose(self) -> tuple[tuple, tuple]:
        """World pose of the trunk frame: position, quaternion (x y z w)."""
        q = self.data.qpos
        return tuple(q[:3]), tuple(wxyz_to_xyzw(q[3:7]))

    def base_twist(self) -> tuple[np.ndarray, np.ndarray]:
        """(linear, angular) velocity of the trunk in its own frame."""
        rot = np.empty(9)
        mujoco.mju_quat2Mat(rot, self.data.qpos[3:7])
        # A free joint's linear velocity is in the world frame, its angular velocity in the body's.
        return rot.reshape(3, 3).T @ self.data.qvel[:3], self.data.qvel[3:6].copy()

    def push(self, dv_xy) -> None:
        """Kick the trunk: add ``dv_xy`` (m/s, world x y) to its velocity."""
        self.data.qvel[:2] += np.asarray(dv_xy, dtype=np.float64)

    def read(self) -> Observation:
        if not self._built:
            self.connect()
        d, s = self.data, self.sensors
        pos, xyzw = self.base_pose()
        obs = {
            "stamp": np.float64(self.time),
            "joint_pos": d.qpos[self.qadr].copy(),
            "joint_vel": d.qvel[self.vadr].copy(),
            "joint_effort": d.sensordata[s["actuator_force"]].copy(),
            "imu_orientation": np.array(xyzw),
            "imu_angular_velocity": d.sensordata[s["gyro"]].copy(),
            "imu_linear_acceleration": d.sensordata[s["accelerometer"]].copy(),
            "odom_pose": np.array([*pos, *xyzw]),
            "odom_twist": np.concatenate(self.base_twist()),
        }
        obs.update(self.task.observe(self))
        return dict(sorted(obs.items()))

    def render(self, camera: str) -> tuple[np.ndarray, np.ndarray]:
        self.spec.sensor(camera)  # raises, naming the sensors there are
        raise SpecError(f"{self.NAME}: sensor {camera!r} is not a camera")
