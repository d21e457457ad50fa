"""Quadruped models for MuJoCo, built with ``MjSpec`` from URDF, plus a floor or a terrain.

    model, terrain = build_model("a1", TerrainConfig(kind="rough"))

Per robot (``QUADRUPEDS`` registry): where its URDF comes from, the joint PD gains and the
bodies the env needs by role (trunk, feet, thighs, calves). ``build_model`` adds

- a free joint on the trunk and a plane (and a heightfield for non-flat terrains);
- one position actuator per spec joint, in spec order: ``kp (q* - q) - kv dq`` computed in C at
  every physics step and clipped to the spec's effort, so no Python runs per substep;
- sensors, in this order: foot touch [4], trunk touch [1], thigh touch [4], calf touch [4],
  actuator force [D], IMU gyro [3], accelerometer [3], orientation [4] (w x y z);
- the spec's joint limits as the hinge ranges.

The A1 is pybullet_data's ``a1/a1.urdf``, the very file the PyBullet backend loads, with its
visual meshes dropped (collision shapes are primitives). The Go2 is a URDF written here from
Unitree's published link lengths, masses and limits (``go2.urdf`` beside this file): no
package download.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from rosmind.registry import Registry
from rosmind.spec import RobotSpec, load_spec

from .terrain import Terrain, TerrainConfig

QUADRUPEDS = Registry("quadruped model", ("rosmind.sim.mujoco.models",))
PHYSICS_DT = 0.005
LEGS = ("FR", "FL", "RR", "RL")
# (contype, conaffinity): robot geoms touch the ground's, never each other.
ROBOT_COLLISION = (2, 1)
GROUND_COLLISION = (1, 2)
SENSOR_LAYOUT = ("foot_touch", "trunk_touch", "thigh_touch", "calf_touch", "actuator_force", "gyro",
                 "accelerometer", "orientation")


@dataclass(frozen=True)
class QuadrupedModel:
    """What the MuJoCo backend and the locomotion env need to know about one quadruped.

    ``stand`` (where actions are centred) and ``lying`` (the folded start of ``stand``, and
    what safety_node crouches into) are the spec's ``extra.stand_pose`` / ``extra.crouch_pose``,
    in joint order. ``trunk_box`` is the trunk's collision box half sizes (the touch sensor
    that ends an episode covers it).
    """

    name: str
    urdf: str  # path
    trunk: str
    foot: str  # body name pattern, "{leg}" replaced by FR FL RR RL
    thigh: str
    calf: str
    trunk_box: tuple[float, float, float]
    calf_length: float
    stand_height: float  # trunk origin above flat ground in the stand pose
    foot_friction: float = 1.0
    no_collision: tuple[str, ...] = ()  # bodies whose geoms do not collide (above the feet's reach)

    def spec(self) -> RobotSpec:
        return _spec(self.name)

    @property
    def stand(self) -> tuple[float, ...]:
        return tuple(self.spec().extra["stand_pose"])

    @property
    def lying(self) -> tuple[float, ...]:
        return tuple(self.spec().extra["crouch_pose"])


@functools.cache
def _spec(name: str) -> RobotSpec:
    return load_spec(name)


def _pybullet_data(rel: str) -> str:
    import pybullet_data

    return str(Path(pybullet_data.getDataPath()) / rel)


def register_quadruped(model: QuadrupedModel) -> QuadrupedModel:
    QUADRUPEDS.register(model.name)(model)
    return model


A1 = register_quadruped(QuadrupedModel(
    name="a1", urdf=_pybullet_data("a1/a1.urdf"), trunk="trunk", foot="{leg}_toe", thigh="{leg}_upper",
    calf="{leg}_lower", trunk_box=(0.1335, 0.097, 0.057), calf_length=0.2,
    no_collision=("imu_link", *(f"{leg}_{part}" for leg in LEGS for part in ("hip", "upper_shoulder"))),
    # legged_gym's default pose (rear thighs further forward, under the centre of mass) is the
    # spec's stand_pose, its gains (stiffness 20, damping 0.5) the spec's pd_gains.
    stand_height=0.30))
GO2 = register_quadruped(QuadrupedModel(
    name="go2", urdf=str(Path(__file__).with_name("go2.urdf")), trunk="base", foot="{leg}_foot",
    thigh="{leg}_thigh", calf="{leg}_calf", trunk_box=(0.1881, 0.0467, 0.057), calf_length=0.213,
    stand_height=0.32, no_collision=tuple(f"{leg}_hip" for leg in LEGS)))


def _urdf_without_visuals(path: str) -> str:
    text = Path(path).read_text()
    text = re.sub(r"<visual>.*?</visual>", "", text, flags=re.S)
    # Keep fixed links (toes, IMU) as bodies: the env reads them by name.
    return text.replace("<link", '<mujoco><compiler fusestatic="false" balanceinertia="true"/></mujoco><link', 1)


def add_terrain(spec: mujoco.MjSpec, terrain: Terrain, friction: float = 1.0) -> None:
    """A plane at the terrain's floor, and a heightfield whose samples sit at the tile cells' centres."""
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05],
                            pos=[0, 0, terrain.floor - 1e-3 if terrain.heights is not None else 0.0],
                            friction=[friction, 0.005, 0.0001], contype=GROUND_COLLISION[0],
                            conaffinity=GROUND_COLLISION[1])
    if terrain.heights is None:
        return
    h = terrain.heights
    lo, hi = float(h.min()), float(h.max())
    span = max(hi - lo, 1e-3)
    ex, ey = terrain.extent
    res = terrain.config.resolution
    spec.add_hfield(name="terrain", nrow=h.shape[0], ncol=h.shape[1],
                    size=[ex - res / 2, ey - res / 2, span, 0.1],
                    userdata=((h - lo) / span).astype(np.float32).ravel().tolist())
    spec.worldbody.add_geom(name="terrain", type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname="terrain",
                            pos=[0, 0, lo], friction=[friction, 0.005, 0.0001], contype=GROUND_COLLISION[0],
                            conaffinity=GROUND_COLLISION[1])


def build_spec(robot: str, terrain: Terrain) -> tuple[mujoco.MjSpec, QuadrupedModel, RobotSpec]:
    qm: QuadrupedModel = QUADRUPEDS.get(robot).factory
    rspec = qm.spec()
    spec = mujoco.MjSpec.from_string(_urdf_without_visuals(qm.urdf))
    spec.option.timestep = PHYSICS_DT
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    # Newton converges in a few iterations on legged contacts; capping them (MuJoCo Playground
    # uses 4-5) roughly doubles the steps per second of the default 100 / 50.
    spec.option.iterations = 10
    spec.option.ls_iterations = 10
    trunk = spec.body(qm.trunk)
    trunk.add_freejoint(name="root")
    # The robot collides with the ground only (as PyBullet loads it, and legged_gym's A1): a leg
    # brushing the trunk is not a fall.
    for g in spec.geoms:
        g.contype, g.conaffinity = ROBOT_COLLISION
        # Geoms that never meet the ground before the trunk does (hip motors: legged_gym neither
        # penalizes nor terminates on them; the A1 URDF's 1 mm IMU box) do not collide:
        # collision detection is a third of a physics step.
        if g.parent.name in qm.no_collision:
            g.contype = g.conaffinity = 0
    add_terrain(spec, terrain)
    for leg in LEGS:
        for g in spec.body(qm.foot.format(leg=leg)).geoms:
            g.friction = [qm.foot_friction, 0.005, 0.0001]
    for j in rspec.joints:
        joint = spec.joint(j.name)
        joint.range = [j.lower, j.upper]
        joint.limited = mujoco.mjtLimited.mjLIMITED_TRUE
        act = spec.add_actuator(name=j.name, target=j.name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=rspec.extra["pd_gains"]["kp"], kv=rspec.extra["pd_gains"]["kv"])
        act.forcerange = [-j.effort, j.effort]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    _add_sensors(spec, qm, rspec)
    return spec, qm, rspec


def _touch(spec: mujoco.MjSpec, body: str, name: str, size, pos=(0, 0, 0), box: bool = True) -> None:
    site = spec.body(body).add_site(name=name, pos=list(pos), size=list(size),
                                    type=mujoco.mjtGeom.mjGEOM_BOX if box else mujoco.mjtGeom.mjGEOM_SPHERE)
    spec.add_sensor(name=name, type=mujoco.mjtSensor.mjSENS_TOUCH, objtype=mujoco.mjtObj.mjOBJ_SITE,
                    objname=site.name)


def _add_sensors(spec: mujoco.MjSpec, qm: QuadrupedModel, rspec: RobotSpec) -> None:
    for leg in LEGS:
        _touch(spec, qm.foot.format(leg=leg), f"touch_{leg}_foot", [0.035, 0, 0], box=False)
    _touch(spec, qm.trunk, "touch_trunk", [s + 0.01 for s in qm.trunk_box])
    for leg in LEGS:
        _touch(spec, qm.thigh.format(leg=leg), f"touch_{leg}_thigh", [0.03, 0.025, 0.08], pos=(0, 0, -0.1))
    for leg in LEGS:
        # Covers the calf down to 4 cm above the foot, so foot contacts do not count here.
        half = (qm.calf_length - 0.04) / 2
        _touch(spec, qm.calf.format(leg=leg), f"touch_{leg}_calf", [0.025, 0.02, half], pos=(0, 0, -half))
    for j in rspec.joints:
        spec.add_sensor(name=f"force_{j.name}", type=mujoco.mjtSensor.mjSENS_ACTUATORFRC,
                        objtype=mujoco.mjtObj.mjOBJ_ACTUATOR, objname=j.name)
    spec.body(qm.trunk).add_site(name="imu", pos=[0, 0, 0])
    for kind in (mujoco.mjtSensor.mjSENS_GYRO, mujoco.mjtSensor.mjSENS_ACCELEROMETER,
                 mujoco.mjtSensor.mjSENS_FRAMEQUAT):
        spec.add_sensor(name=f"imu_{int(kind)}", type=kind, objtype=mujoco.mjtObj.mjOBJ_SITE, objname="imu")


def build_model(robot: str, terrain: TerrainConfig | Terrain | None = None, seed: int = 0
                ) -> tuple[mujoco.MjModel, Terrain]:
    """Compile ``robot`` on ``terrain`` (flat by default). Unknown names raise, listing the valid ones."""
    if not isinstance(terrain, Terrain):
        terrain = Terrain.build(terrain or TerrainConfig(), seed)
    spec, _, _ = build_spec(robot, terrain)
    return spec.compile(), terrain


def sensor_slices(model: mujoco.MjModel) -> dict[str, slice]:
    """Where each group of ``SENSOR_LAYOUT`` sits in ``sensordata``."""
    sizes = {"foot_touch": 4, "trunk_touch": 1, "thigh_touch": 4, "calf_touch": 4,
             "actuator_force": model.nu, "gyro": 3, "accelerometer": 3, "orientation": 4}
    out, start = {}, 0
    for key in SENSOR_LAYOUT:
        out[key] = slice(start, start + sizes[key])
        start += sizes[key]
    if start != model.nsensordata:
        raise AssertionError(f"sensor layout {start} != nsensordata {model.nsensordata}")
    return out


def joint_addresses(model: mujoco.MjModel, spec: RobotSpec) -> tuple[np.ndarray, np.ndarray]:
    """(qpos addresses, qvel addresses) of the spec's joints, in spec order."""
    qadr = np.array([model.jnt_qposadr[model.joint(n).id] for n in spec.joint_names])
    vadr = np.array([model.jnt_dofadr[model.joint(n).id] for n in spec.joint_names])
    return qadr, vadr


def yaw_quat(yaw: float) -> np.ndarray:
    """MuJoCo quaternion (w x y z) of a rotation about z."""
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])
