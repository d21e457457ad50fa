"""Observation key <-> ROS topic and message type: the one table nodes and manifests share.

Keys are those of ``rosmind.robot`` (``joint_pos``, ``ee_pose``, ...) plus camera frames
``camera/<name>/rgb`` and ``camera/<name>/depth``. Topic names are relative (launch files
namespace them); message types are written ``pkg/msg/Type`` as in ``ros2 topic info``.

``ee_pose`` is not in DESIGN.md's topic table: it is the arm's end-effector pose
(``spec.ee_link`` in ``spec.base_frame``) as a PoseStamped on ``ee_pose``, because tf2 does
not install from pip; on a full ROS install a tf2 lookup could feed the same key.

Several keys share one message (``joint_pos``/``joint_vel``/``joint_effort`` are fields of
one JointState); ``field`` says which part of the message a key is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rosmind.errors import SpecError, UnknownNameError
from rosmind.spec import RobotSpec

JOINT_STATE = "sensor_msgs/msg/JointState"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POSE_ARRAY = "geometry_msgs/msg/PoseArray"
WRENCH_STAMPED = "geometry_msgs/msg/WrenchStamped"
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMU = "sensor_msgs/msg/Imu"
ODOMETRY = "nav_msgs/msg/Odometry"
TWIST = "geometry_msgs/msg/Twist"


@dataclass(frozen=True)
class TopicBinding:
    """Where one observation key comes from.

    ``per_tick``: the robot publishes it every control tick stamped with the tick's time,
    so a policy must see the very stamp of the tick (cameras run at their own rate).
    """

    key: str
    topic: str
    msg_type: str
    field: str
    per_tick: bool = True
    # A command input (``cmd_vel``): its message has no header, so it is stamped when it
    # arrives; when none is fresh the policy reads ``default`` instead of pausing (a quadruped
    # told nothing stands still).
    default: tuple[float, ...] | None = None


_FIXED: dict[str, TopicBinding] = {
    b.key: b
    for b in (
        TopicBinding("joint_pos", "joint_states", JOINT_STATE, "position"),
        TopicBinding("joint_vel", "joint_states", JOINT_STATE, "velocity"),
        TopicBinding("joint_effort", "joint_states", JOINT_STATE, "effort"),
        TopicBinding("ee_pose", "ee_pose", POSE_STAMPED, "pose"),
        TopicBinding("wrench", "wrench", WRENCH_STAMPED, "wrench"),
        TopicBinding("object_poses", "object_poses", POSE_ARRAY, "poses"),
        TopicBinding("goal_pose", "goal_pose", POSE_STAMPED, "pose"),
        TopicBinding("imu_orientation", "imu", IMU, "orientation"),
        TopicBinding("imu_angular_velocity", "imu", IMU, "angular_velocity"),
        TopicBinding("imu_linear_acceleration", "imu", IMU, "linear_acceleration"),
        TopicBinding("odom_pose", "odom", ODOMETRY, "pose"),
        TopicBinding("odom_twist", "odom", ODOMETRY, "twist"),
        # vx, vy (m/s) and yaw rate (rad/s) of geometry_msgs/Twist, in the base frame.
        TopicBinding("cmd_vel", "cmd_vel", TWIST, "twist", per_tick=False, default=(0.0, 0.0, 0.0)),
    )
}
_CAMERA = re.compile(r"^camera/([A-Za-z_][A-Za-z0-9_]*)/(rgb|depth)$")
_TACTILE = re.compile(r"^tactile/([A-Za-z_][A-Za-z0-9_]*)$")


# Topics that only a robot with that kind of sensor publishes (``binding(key, spec)`` checks).
SENSOR_TOPICS = {"wrench": "wrench", "imu": "imu", "odom": "odom"}


def camera_topics(name: str) -> dict[str, str]:
    """Relative topic names of camera ``name``: ``rgb``, ``depth`` and a CameraInfo beside each
    (``info``, ``depth_info``), as RealSense's driver and image_pipeline's nodes expect."""
    return {"rgb": f"camera/{name}/image_raw", "depth": f"camera/{name}/depth/image_raw",
            "info": f"camera/{name}/camera_info", "depth_info": f"camera/{name}/depth/camera_info"}


def binding(key: str, spec: RobotSpec | None = None) -> TopicBinding:
    """The topic of observation ``key``; with ``spec``, also check the robot has that sensor.

    Raises ``UnknownNameError`` for a key nobody publishes, ``SpecError`` for a camera or a
    sensor (wrench, imu, odom) the robot does not have.
    """
    if key in _FIXED:
        b = _FIXED[key]
        kind = SENSOR_TOPICS.get(b.topic)
        if spec is not None and kind is not None and not spec.sensors_of(kind):
            raise SpecError(f"observation key {key!r} needs a {kind} sensor (topic {b.topic!r}); robot "
                            f"{spec.name!r} has none (its sensors: {[f'{x.name} ({x.kind})' for x in spec.sensors]})")
        return b
    t = _TACTILE.match(key)
    if t is not None:  # a taxel pad: a 32FC3 image every tick, like the wrench
        if spec is not None and spec.sensor(t.group(1)).kind != "tactile":
            raise SpecError(f"observation key {key!r}: sensor {t.group(1)!r} of robot {spec.name!r} "
                            f"is a {spec.sensor(t.group(1)).kind} sensor, not tactile")
        return TopicBinding(key, key, IMAGE, "data")
    m = _CAMERA.match(key)
    if m is None:
        known = ", ".join([*_FIXED, "camera/<name>/rgb", "camera/<name>/depth", "tactile/<name>"])
        raise UnknownNameError(f"unknown observation key {key!r}; known keys: {known}")
    cam, channel = m.groups()
    if spec is not None:
        sensor = spec.sensor(cam)
        if sensor.kind not in ("rgb", "rgbd") or (channel == "depth" and sensor.kind != "rgbd"):
            raise SpecError(f"observation key {key!r}: sensor {cam!r} of robot {spec.name!r} "
                            f"is a {sensor.kind} sensor, it has no {channel} channel")
    return TopicBinding(key, camera_topics(cam)[channel], IMAGE, "data", per_tick=False)


def topics_for(keys: Iterable[str], spec: RobotSpec | None = None) -> dict[str, tuple[str, list[str]]]:
    """``{topic: (msg_type, [keys read from it])}`` for a policy's ``obs_keys``, in key order."""
    out: dict[str, tuple[str, list[str]]] = {}
    for key in keys:
        b = binding(key, spec)
        out.setdefault(b.topic, (b.msg_type, []))[1].append(key)
    return out


def camera_every(spec: RobotSpec, name: str) -> int:
    """A camera publishes on control ticks ``k`` with ``k % camera_every == 0`` (``k`` counts
    control periods of sim time): the robot renders on that schedule and a lockstep policy
    waits for exactly that frame, so vision policies are deterministic too."""
    return max(1, round(spec.control_rate_hz / spec.sensor(name).rate_hz))


def camera_name(key: str) -> str | None:
    """``"wrist"`` for ``camera/wrist/rgb``; None for a non-camera key."""
    m = _CAMERA.match(key)
    return m.group(1) if m else None
