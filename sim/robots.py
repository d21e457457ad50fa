"""PyBullet robots behind the ``rosmind.robot.SimRobot`` contract: ``panda`` and ``a1``.

    with make_sim("panda", "pick_place") as sim:
        obs = sim.reset(seed=3)            # read() of tick 0
        sim.write(obs["joint_pos"])        # -> the clipped setpoint actually used
        sim.step()                         # one control period (spec.control_rate_hz)
        rgb, depth = sim.render("wrist")   # [H, W, 3] uint8, [H, W] float32 metres

Each sim owns one DIRECT physics client (``sim/world.py``). ``reset(seed)`` rebuilds the
world from scratch and seeds the task, so equal seeds give bit-identical episodes. Joints
track the last written setpoint with PyBullet's position motors (force limited by the spec's
effort, speed by its velocity limit); the first setpoint after a reset is the robot's
``default_setpoint``.
"""

from __future__ import annotations

import numpy as np
import pybullet as p

from rosmind.errors import SpecError, UnknownNameError
from rosmind.registry import ROBOTS
from rosmind.robot import Observation, SimRobot, checked_positions
from rosmind.spec import RobotSpec, load_spec

from .panda_urdf import low_poly_panda_urdf, tool_panda_urdf
from .tasks import Task, TaskSim
from .world import GRAVITY, CameraModel, World, pose7, quat_to_matrix


class BulletRobot(TaskSim, SimRobot):
    """What Panda and A1 share: the world, joints by spec name, setpoints, task plumbing.

    Subclasses set ``NAME``, ``DEFAULT_TASK`` and implement ``_load_robot()`` (returns the body
    id), ``initial_positions()`` and ``default_setpoint()`` (both ``[D]`` in spec order) and may
    extend ``read()``.
    """

    NAME = ""
    DEFAULT_TASK = ""
    POSITION_GAIN = 0.3
    VELOCITY_GAIN = 1.0

    def __init__(self, task: str | Task | None = None, spec: RobotSpec | str | None = None,
                 **task_options):
        self.spec = spec if isinstance(spec, RobotSpec) else load_spec(spec or self.NAME)
        self.task = self._make_task(task or self.DEFAULT_TASK, task_options)
        self.world = World(self.spec.control_rate_hz)
        self.body = -1
        self.joint_ids: list[int] = []
        self.lower = np.array(self.spec.limits("lower"))
        self.upper = np.array(self.spec.limits("upper"))
        self.setpoint = np.zeros(self.spec.dof)
        self._tick = 0
        self._built = False

    def connect(self) -> None:
        self.world.connect()
        if not self._built:
            self.reset(0)

    def disconnect(self) -> None:
        self.world.disconnect()
        self._built = False

    def __del__(self):
        # A forgotten sim must not keep its physics client (and its memory) alive.
        try:
            self.disconnect()
        except Exception:  # interpreter shutdown may have torn pybullet down already
            pass

    def _load_robot(self) -> int:
        raise NotImplementedError

    def initial_positions(self) -> np.ndarray:
        raise NotImplementedError

    def default_setpoint(self) -> np.ndarray:
        raise NotImplementedError

    def _joint_index(self, name: str) -> int:
        for i in range(p.getNumJoints(self.body, physicsClientId=self.world.cid)):
            info = p.getJointInfo(self.body, i, physicsClientId=self.world.cid)
            if info[1].decode() == name:
                return i
        raise SpecError(f"{self.spec.source}: joint {name!r} is not in the {self.NAME} URDF")

    def link_index(self, name: str) -> int:
        for i in range(p.getNumJoints(self.body, physicsClientId=self.world.cid)):
            if p.getJointInfo(self.body, i, physicsClientId=self.world.cid)[12].decode() == name:
                return i
        raise SpecError(f"{self.NAME}: link {name!r} is not in the URDF")

    def reset(self, seed: int | None = None) -> Observation:
        self.plane = self.world.build()
        self.body = self._load_robot()
        self.joint_ids = [self._joint_index(n) for n in self.spec.joint_names]
        for j, q in zip(self.joint_ids, self.initial_positions(), strict=True):
            p.resetJointState(self.body, j, float(q), 0.0, physicsClientId=self.world.cid)
        self._after_load()
        self.task.load(self, np.random.default_rng(seed))
        self._tick = 0
        self._built = True
        self._apply(np.clip(self.default_setpoint(), self.lower, self.upper))
        return self.read()

    def _after_load(self) -> None:
        """Hook run once the robot is loaded and posed, before the task loads."""

    def _motor(self, joint: int, target: float, effort: float, velocity: float) -> None:
        p.setJointMotorControl2(self.body, joint, p.POSITION_CONTROL, targetPosition=target,
                                force=effort, maxVelocity=velocity, positionGain=self.POSITION_GAIN,
                                velocityGain=self.VELOCITY_GAIN, physicsClientId=self.world.cid)

    def _apply(self, setpoint: np.ndarray) -> None:
        self.setpoint = setpoint
        for j, q, js in zip(self.joint_ids, setpoint, self.spec.joints, strict=True):
            self._motor(j, float(q), js.effort, js.velocity)

    def write(self, positions: np.ndarray) -> np.ndarray:
        """Set the joint setpoint ``[D]`` (spec order), clipped to the spec's position limits.

        A wrong shape or a non-finite value is refused (SpecError) and nothing is sent.
        """
        if not self._built:
            self.connect()
        sent = np.clip(checked_positions(self.spec, positions, f"{self.NAME}.write"), self.lower, self.upper)
        self._apply(sent)
        return sent.copy()

    def _advance(self) -> None:
        self.world.step()

    def base_pose(self) -> tuple[tuple, tuple]:
        """World pose of the base link's frame (PyBullet reports its centre of mass)."""
        cid = self.world.cid
        com_pos, com_quat = p.getBasePositionAndOrientation(self.body, physicsClientId=cid)
        local_pos, local_quat = p.getDynamicsInfo(self.body, -1, physicsClientId=cid)[3:5]
        inv_pos, inv_quat = p.invertTransform(local_pos, local_quat)
        return p.multiplyTransforms(com_pos, com_quat, inv_pos, inv_quat)

    def world_to_base(self, pos, quat) -> tuple[tuple, tuple]:
        bp, bq = self.base_pose()
        ip, iq = p.invertTransform(bp, bq)
        return p.multiplyTransforms(ip, iq, pos, quat)

    def base_to_world(self, pos, quat) -> tuple[tuple, tuple]:
        bp, bq = self.base_pose()
        return p.multiplyTransforms(bp, bq, pos, quat)

    def link_world_pose(self, link: int) -> tuple[tuple, tuple]:
        s = p.getLinkState(self.body, link, computeForwardKinematics=True, physicsClientId=self.world.cid)
        return s[4], s[5]

    def read(self) -> Observation:
        """``stamp``, ``joint_pos``/``joint_vel``/``joint_effort`` ``[D]`` plus the task's keys."""
        if not self._built:
            self.connect()
        states = p.getJointStates(self.body, self.joint_ids, physicsClientId=self.world.cid)
        obs = {
            "stamp": np.asarray(self.time, dtype=np.float64),
            "joint_pos": np.array([s[0] for s in states], dtype=np.float64),
            "joint_vel": np.array([s[1] for s in states], dtype=np.float64),
            "joint_effort": np.array([s[3] for s in states], dtype=np.float64),
        }
        obs.update(self.task.observe(self))
        return obs


PANDA_HOME = (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.04)


FT_SALT = 0x46545345  # keeps the F/T noise stream apart from the task's rng(seed)


@ROBOTS.register("panda")
class PandaSim(BulletRobot):
    """Franka Panda on the table (the ground plane, z = 0 of ``panda_link0``).

    Joint 8 of the spec is ``panda_finger_joint1`` (0..0.04 m per finger); finger 2 is
    driven to the same target. Extra ``read()`` keys: ``ee_pose`` [7] of the grasp target
    between the fingertips, ``wrench`` [6] at ``panda_hand_joint``. Cameras: ``wrist`` (on
    the hand, looking along the fingers, which it does not see), ``gripper`` (on the hand,
    tilted in to see the fingertips and what they hold) and ``scene`` (fixed, facing the robot).
    """

    NAME = "panda"
    DEFAULT_TASK = "pick_place"
    LOW_POLY_VISUALS = True  # see low_poly_panda_urdf(); False: the detailed visual meshes
    # The fixed scene camera (base frame): in front of the robot, above the cube region.
    SCENE_EYE = (0.9, 0.0, 0.55)
    SCENE_TARGET = (0.48, 0.0, 0.0)
    # Cameras on panda_hand: (eye, target) in the hand frame; target None: looking along +z.
    HAND_CAMERAS = {
        "wrist": ((0.07, 0.0, 0.03), None),  # beside the hand, clear of the fingers (sees neither)
        "gripper": ((0.08, 0.0, 0.02), (0.0, 0.0, 0.13)),  # tilted in: the fingertips and what they hold
    }
    # Offset of the grasp target from panda_hand, used if the URDF lacks the link.
    GRASP_OFFSET = 0.105

    def __init__(self, task: str | Task | None = None, spec: RobotSpec | str | None = None, **kw):
        super().__init__(task, spec, **kw)
        self.cameras = {s.name: CameraModel(*s.resolution) for s in self.spec.sensors_of("rgb", "rgbd")}

    def reset(self, seed: int | None = None) -> Observation:
        obs = super().reset(seed)
        if self.ft is None:
            return obs
        # Tare the F/T sensor at rest in the start pose: settle one control period first.
        cid = self.world.cid
        self.world.step()
        tare = p.getJointState(self.body, self.hand_joint, physicsClientId=cid)[2]
        self.ft.reset(np.random.default_rng(None if seed is None else [int(seed), FT_SALT]), tare)
        return self.read()

    def _load_robot(self) -> int:
        tool = getattr(self.task, "tool", None)
        if tool is not None:
            urdf = tool_panda_urdf(tool)
        else:
            urdf = low_poly_panda_urdf() if self.LOW_POLY_VISUALS else "franka_panda/panda.urdf"
        return p.loadURDF(urdf, [0, 0, 0], [0, 0, 0, 1], useFixedBase=True,
                          flags=p.URDF_USE_INERTIA_FROM_FILE, physicsClientId=self.world.cid)

    def initial_positions(self) -> np.ndarray:
        return np.array(PANDA_HOME)

    def default_setpoint(self) -> np.ndarray:
        return np.array(PANDA_HOME)

    def _after_load(self) -> None:
        cid = self.world.cid
        self.hand = self.link_index("panda_hand")
        self.hand_joint = self._joint_index("panda_hand_joint")
        self.finger2 = self._joint_index("panda_finger_joint2")
        self.finger_links = [self.joint_ids[-1], self.finger2]
        p.resetJointState(self.body, self.finger2, PANDA_HOME[-1], 0.0, physicsClientId=cid)
        try:
            self.grasp_link: int | None = self.link_index(self.spec.ee_link)
        except SpecError:
            self.grasp_link = None
        p.enableJointForceTorqueSensor(self.body, self.hand_joint, True, physicsClientId=cid)
        tool = getattr(self.task, "tool", None)
        self.tool_link = self.link_index(tool.link) if tool is not None else None
        # A task that says how its wrist F/T sensor behaves gets it modelled (tared, filtered,
        # noisy: sim/ft_sensor.py); otherwise ``wrench`` is the raw joint reaction.
        ft = getattr(self.task, "ft_sensor", None)
        self.ft = None
        if ft is not None:
            from .ft_sensor import ForceTorqueSensor

            self.ft = ForceTorqueSensor(ft, self.world.dt)
        # The real fingers are coupled by one mechanism; a gear constraint keeps them mirrored
        # so that a grasped cube cannot push one finger open while the other closes.
        gear = p.createConstraint(self.body, self.joint_ids[-1], self.body, self.finger2, p.JOINT_GEAR,
                                  [1, 0, 0], [0, 0, 0], [0, 0, 0], physicsClientId=cid)
        p.changeConstraint(gear, gearRatio=-1, erp=0.1, maxForce=self.spec.joints[-1].effort,
                           physicsClientId=cid)
        for link in self.finger_links:
            p.changeDynamics(self.body, link, lateralFriction=1.0, spinningFriction=0.001,
                             physicsClientId=cid)
        for link in (self.hand, *self.finger_links):
            p.changeVisualShape(self.body, link, rgbaColor=[0.25, 0.25, 0.28, 1], physicsClientId=cid)

    def _apply(self, setpoint: np.ndarray) -> None:
        super()._apply(setpoint)
        g = self.spec.joints[-1]
        self._motor(self.finger2, float(setpoint[-1]), g.effort, g.velocity)

    def _advance(self) -> None:
        if self.ft is None:
            return super()._advance()
        cid = self.world.cid
        for _ in range(self.world.substeps):
            p.stepSimulation(physicsClientId=cid)
            self.ft.update(p.getJointState(self.body, self.hand_joint, physicsClientId=cid)[2])
        self.ft.sample()

    def gripper_width(self) -> float:
        """Opening of finger 1 (m); the spec's gripper joint."""
        return float(p.getJointState(self.body, self.joint_ids[-1], physicsClientId=self.world.cid)[0])

    def ee_world_pose(self) -> tuple[tuple, tuple]:
        if self.grasp_link is not None:
            return self.link_world_pose(self.grasp_link)
        hp, hq = self.link_world_pose(self.hand)
        return p.multiplyTransforms(hp, hq, [0, 0, self.GRASP_OFFSET], [0, 0, 0, 1])

    def read(self) -> Observation:
        obs = super().read()
        obs["ee_pose"] = pose7(*self.world_to_base(*self.ee_world_pose()))
        if self.ft is not None:
            obs["wrench"] = self.ft.read()
        else:
            wrench = p.getJointState(self.body, self.hand_joint, physicsClientId=self.world.cid)[2]
            obs["wrench"] = np.array(wrench, dtype=np.float64)
        return dict(sorted(obs.items()))

    def camera_intrinsics(self, name: str) -> dict[str, float]:
        """``dict(width, height, fx, fy, cx, cy)`` of a camera, for a CameraInfo message."""
        self.spec.sensor(name)
        return self.cameras[name].intrinsics()

    def _camera_view(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if name in self.HAND_CAMERAS:
            eye_h, target_h = self.HAND_CAMERAS[name]
            hp, hq = self.link_world_pose(self.hand)
            r = quat_to_matrix(hq)
            eye = np.asarray(hp) + r @ np.array(eye_h)
            target = eye + r[:, 2] if target_h is None else np.asarray(hp) + r @ np.array(target_h)
            return eye, target, r[:, 0]
        bp, bq = self.base_pose()
        r = quat_to_matrix(bq)
        eye = np.asarray(bp) + r @ np.array(self.SCENE_EYE)
        return eye, np.asarray(bp) + r @ np.array(self.SCENE_TARGET), r[:, 2]

    def camera_pose(self, name: str) -> np.ndarray:
        """4x4 pose of camera ``name``'s optical frame (x right, y down, z forward) in the base
        frame: what a calibrated real camera's extrinsics give (``rosmind.pointcloud``)."""
        from rosmind.pointcloud import optical_pose

        if name not in self.cameras:
            self.spec.sensor(name)
            raise SpecError(f"panda: sensor {name!r} is not a camera")
        eye, target, up = self._view(name)
        bp, bq = self.base_pose()
        r = quat_to_matrix(bq)
        to_base = lambda v: r.T @ (np.asarray(v, dtype=np.float64) - np.asarray(bp))  # noqa: E731
        return optical_pose(to_base(eye), to_base(target), r.T @ np.asarray(up, dtype=np.float64))

    def render(self, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """``(rgb [H, W, 3] uint8, depth [H, W] float32 m)`` at the spec's resolution."""
        if camera not in self.cameras:
            self.spec.sensor(camera)  # raises, naming the cameras there are
            raise SpecError(f"panda: sensor {camera!r} is not a camera")
        if not self._built:
            self.connect()
        look = self.task.look
        return self.world.render(self.cameras[camera], *self._view(camera), light=look.light if look else None)

    def _view(self, name: str):
        """The camera's (eye, target, up) in the world, moved by the task's image randomization."""
        view = self._camera_view(name)
        return self.task.look.move_camera(*view) if self.task.look is not None else view




A1_STAND = (0.0, 0.8, -1.6) * 4  # what PyBullet's position motors stand up into


@ROBOTS.register("a1")
class A1Sim(BulletRobot):
    """Unitree A1, starting folded on the ground (or standing, for tasks that say so); its first
    setpoint is the spec's ``stand_pose``.

    For tasks with ``actuation = "pd"`` (walk), joints are driven as the MuJoCo backend and the RL
    env drive them: a PD torque ``kp (q* - q) - kv dq`` (the spec's ``extra.pd_gains``) clipped to
    the spec's effort at every physics substep, so a walking policy meets the same actuators on
    both backends. The stand-up task keeps PyBullet's position motors: with that PD the PyBullet
    A1 stands up with its rear legs still half folded (trunk pitched ~14 deg); MuJoCo's does not.

    Extra ``read()`` keys: ``imu_orientation`` [4] (qx qy qz qw, world to trunk),
    ``imu_angular_velocity`` [3] and ``imu_linear_acceleration`` [3] in the trunk frame (the
    accelerometer's specific force: +9.81 m/s^2 up at rest), ``odom_pose`` [7] (world frame)
    and ``odom_twist`` [6] (linear then angular velocity in the trunk frame, as
    nav_msgs/Odometry's child frame).
    """

    NAME = "a1"
    DEFAULT_TASK = "stand"
    # Position motors (stand): soft enough that the step from lying to standing does not throw
    # the robot in the air.
    POSITION_GAIN = 0.03
    VELOCITY_GAIN = 1.0

    @property
    def pd(self) -> bool:
        return getattr(self.task, "actuation", "position") == "pd"

    def _load_robot(self) -> int:
        return p.loadURDF("a1/a1.urdf", [0, 0, 0.3], [0, 0, 0, 1],
                          physicsClientId=self.world.cid)

    def initial_positions(self) -> np.ndarray:
        standing = getattr(self.task, "start_pose", "") == "standing"
        return np.array(self.spec.extra["stand_pose" if standing else "crouch_pose"])

    def default_setpoint(self) -> np.ndarray:
        return np.array(self.spec.extra["stand_pose"] if self.pd else A1_STAND)

    def _apply(self, setpoint: np.ndarray) -> None:
        if not self.pd:
            return super()._apply(setpoint)
        self.setpoint = setpoint  # tracked by the PD loop in _advance

    def _advance(self) -> None:
        if not self.pd:
            return super()._advance()
        cid, ids = self.world.cid, self.joint_ids
        kp, kv = self.spec.extra["pd_gains"]["kp"], self.spec.extra["pd_gains"]["kv"]
        effort = np.array(self.spec.limits("effort"))
        for _ in range(self.world.substeps):
            states = p.getJointStates(self.body, ids, physicsClientId=cid)
            q = np.array([st[0] for st in states])
            dq = np.array([st[1] for st in states])
            self._torque = np.clip(kp * (self.setpoint - q) - kv * dq, -effort, effort)
            p.setJointMotorControlArray(self.body, ids, p.TORQUE_CONTROL, forces=self._torque.tolist(),
                                        physicsClientId=cid)
            p.stepSimulation(physicsClientId=cid)

    def _after_load(self) -> None:
        cid = self.world.cid
        # Lift the folded body so that its lowest point just touches the ground.
        lowest = min(p.getAABB(self.body, i, physicsClientId=cid)[0][2]
                     for i in range(-1, p.getNumJoints(self.body, physicsClientId=cid)))
        pos, quat = self.base_pose()
        p.resetBasePositionAndOrientation(self.body, [pos[0], pos[1], pos[2] - lowest + 1e-3], quat,
                                          physicsClientId=cid)
        for leg in ("FR", "FL", "RR", "RL"):
            p.changeDynamics(self.body, self.link_index(f"{leg}_toe"), lateralFriction=1.0,
                             physicsClientId=cid)
        if self.pd:  # torque control: PyBullet's default velocity motors off
            p.setJointMotorControlArray(self.body, self.joint_ids, p.VELOCITY_CONTROL,
                                        forces=[0.0] * len(self.joint_ids), physicsClientId=cid)
        self._torque = np.zeros(len(self.joint_ids))
        self._prev_vel = np.zeros(3)
        self._accel = np.zeros(3)

    def step(self) -> None:
        v0 = np.asarray(p.getBaseVelocity(self.body, physicsClientId=self.world.cid)[0])
        super().step()
        v1 = np.asarray(p.getBaseVelocity(self.body, physicsClientId=self.world.cid)[0])
        self._accel = (v1 - v0) * self.spec.control_rate_hz

    def base_twist(self) -> tuple[np.ndarray, np.ndarray]:
        """(linear, angular) velocity of the trunk in its own frame."""
        lin, ang = p.getBaseVelocity(self.body, physicsClientId=self.world.cid)
        r = quat_to_matrix(self.base_pose()[1])
        return r.T @ np.asarray(lin), r.T @ np.asarray(ang)

    def push(self, dv_xy) -> None:
        """Kick the trunk: add ``dv_xy`` (m/s, world x y) to its velocity."""
        cid = self.world.cid
        lin, ang = p.getBaseVelocity(self.body, physicsClientId=cid)
        p.resetBaseVelocity(self.body, [lin[0] + float(dv_xy[0]), lin[1] + float(dv_xy[1]), lin[2]], ang,
                            physicsClientId=cid)

    def read(self) -> Observation:
        obs = super().read()
        pos, quat = self.base_pose()
        r = quat_to_matrix(quat)
        lin, ang = self.base_twist()
        obs["imu_orientation"] = pose7(pos, quat)[3:]
        obs["imu_angular_velocity"] = ang
        obs["imu_linear_acceleration"] = r.T @ (self._accel - np.array([0.0, 0.0, GRAVITY]))
        obs["odom_pose"] = pose7(pos, quat)
        obs["odom_twist"] = np.concatenate([lin, ang])
        if self.pd:
            obs["joint_effort"] = self._torque.copy()  # PyBullet reports no torque for TORQUE_CONTROL
        return dict(sorted(obs.items()))


BACKENDS = ("pybullet", "mujoco")


def default_task(robot: str, backend: str = "pybullet") -> str:
    """The task a robot runs when none is named."""
    if backend == "mujoco":
        from .mujoco.robot import MujocoQuadruped

        return MujocoQuadruped.DEFAULT_TASK
    return ROBOTS.get(robot).factory.DEFAULT_TASK


def make_sim(robot: str, task: str | None = None, backend: str = "pybullet", terrain: str | None = None,
             **options) -> SimRobot:
    """Build a sim robot by registry names; ``options`` override fields of the task's config.

    ``backend``: ``pybullet`` (every robot) or ``mujoco`` (the quadrupeds of
    ``rosmind.sim.mujoco.models.QUADRUPEDS``, on ``terrain``: flat, rough, slopes, stairs, mixed).
    Unknown robot, task, backend or terrain names raise ``UnknownNameError`` listing the valid
    ones; unknown options ``SpecError``.
    """
    if backend == "mujoco":
        from .mujoco.robot import MujocoQuadruped

        return MujocoQuadruped(robot, task, terrain=terrain or "flat", **options)
    if backend != "pybullet":
        raise UnknownNameError(f"unknown sim backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if terrain not in (None, "", "flat"):
        raise SpecError(f"terrain {terrain!r} needs backend 'mujoco' (PyBullet has the flat plane only)")
    return ROBOTS.get(robot).factory(task=task, **options)
