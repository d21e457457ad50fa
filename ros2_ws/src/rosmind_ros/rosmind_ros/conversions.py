"""The one module that converts ROS 2 messages to numpy and back.

Conventions: stamps are float seconds; poses are ``[x, y, z, qx, qy, qz, qw]``; wrenches are
``[fx, fy, fz, tx, ty, tz]``; twists ``[vx, vy, vz, wx, wy, wz]``; joint vectors follow the
order of the ``names`` argument (the RobotSpec order), whatever order the message used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, PoseArray, PoseStamped, Twist, WrenchStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState, PointCloud2, PointField
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

_NS = 1_000_000_000


def to_sec(t: Time | Duration) -> float:
    """``builtin_interfaces`` Time or Duration -> float seconds."""
    return t.sec + t.nanosec * 1e-9


def to_ns(t: Time | Duration) -> int:
    return t.sec * _NS + t.nanosec


def stamp(seconds: float) -> Time:
    ns = int(round(seconds * _NS))
    return Time(sec=ns // _NS, nanosec=ns % _NS)


def duration(seconds: float) -> Duration:
    ns = int(round(seconds * _NS))
    return Duration(sec=ns // _NS, nanosec=ns % _NS)


def reorder(msg_names: Sequence[str], names: Sequence[str], values: Sequence[float]) -> np.ndarray:
    """Values given in ``msg_names`` order -> ``names`` order; KeyError names what's missing."""
    if list(msg_names) == list(names):
        return np.asarray(values, dtype=np.float64)
    index = {n: i for i, n in enumerate(msg_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise KeyError(f"joints {missing} missing from message with {list(msg_names)}")
    v = np.asarray(values, dtype=np.float64)
    return v[[index[n] for n in names]]


def joint_state_to_numpy(msg: JointState, names: Sequence[str]) -> dict[str, np.ndarray]:
    """-> {joint_pos, joint_vel, joint_effort} [D] in ``names`` order (absent fields: zeros)."""
    d = len(names)
    out = {"joint_pos": reorder(msg.name, names, msg.position)}
    for key, field in (("joint_vel", msg.velocity), ("joint_effort", msg.effort)):
        out[key] = reorder(msg.name, names, field) if len(field) == len(msg.name) else np.zeros(d)
    return out


def joint_state(names: Sequence[str], pos, vel=None, effort=None, t: float = 0.0, frame_id: str = "") -> JointState:
    msg = JointState()
    msg.header.stamp = stamp(t)
    msg.header.frame_id = frame_id
    msg.name = list(names)
    msg.position = np.asarray(pos, dtype=np.float64).tolist()
    if vel is not None:
        msg.velocity = np.asarray(vel, dtype=np.float64).tolist()
    if effort is not None:
        msg.effort = np.asarray(effort, dtype=np.float64).tolist()
    return msg


def pose_to_numpy(p: Pose) -> np.ndarray:
    return np.array([p.position.x, p.position.y, p.position.z,
                     p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w])


def pose(a) -> Pose:
    a = np.asarray(a, dtype=np.float64)
    p = Pose()
    p.position.x, p.position.y, p.position.z = float(a[0]), float(a[1]), float(a[2])
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(x) for x in a[3:7])
    return p


def pose_stamped(a, t: float, frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = stamp(t)
    msg.header.frame_id = frame_id
    msg.pose = pose(a)
    return msg


def pose_array(a, t: float, frame_id: str) -> PoseArray:
    """[N, 7] -> PoseArray."""
    msg = PoseArray()
    msg.header.stamp = stamp(t)
    msg.header.frame_id = frame_id
    msg.poses = [pose(row) for row in np.asarray(a).reshape(-1, 7)]
    return msg


def pose_array_to_numpy(msg: PoseArray) -> np.ndarray:
    """-> [N, 7]."""
    return np.array([pose_to_numpy(p) for p in msg.poses]).reshape(-1, 7)


def wrench_stamped(w, t: float, frame_id: str) -> WrenchStamped:
    w = np.asarray(w, dtype=np.float64)
    msg = WrenchStamped()
    msg.header.stamp = stamp(t)
    msg.header.frame_id = frame_id
    f, tq = msg.wrench.force, msg.wrench.torque
    f.x, f.y, f.z, tq.x, tq.y, tq.z = (float(x) for x in w[:6])
    return msg


def wrench_to_numpy(msg: WrenchStamped) -> np.ndarray:
    f, t = msg.wrench.force, msg.wrench.torque
    return np.array([f.x, f.y, f.z, t.x, t.y, t.z])


_ENCODINGS = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
              "mono8": (np.uint8, 1), "32FC1": (np.float32, 1), "16UC1": (np.uint16, 1),
              "32FC3": (np.float32, 3)}
COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "32FC1")  # millimetres (RealSense Z16) / metres, REP 118


def image(a: np.ndarray, encoding: str, t: float, frame_id: str) -> Image:
    dtype, ch = _ENCODINGS[encoding]
    a = np.ascontiguousarray(a, dtype=dtype)
    msg = Image()
    msg.header.stamp = stamp(t)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * ch * a.itemsize
    msg.data = a.tobytes()
    return msg


def image_to_numpy(msg: Image) -> np.ndarray:
    """-> [H, W, C] (C=3) or [H, W]; respects ``step`` padding. Unknown encodings raise ValueError."""
    if msg.encoding not in _ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; supported: {sorted(_ENCODINGS)}")
    dtype, ch = _ENCODINGS[msg.encoding]
    item = np.dtype(dtype).itemsize
    row = msg.width * ch * item
    if msg.step < row or len(msg.data) < msg.step * msg.height:
        raise ValueError(f"{msg.encoding} image {msg.width}x{msg.height}: step {msg.step} and "
                         f"{len(msg.data)} data bytes cannot hold it (a row needs {row} bytes)")
    buf = np.frombuffer(msg.data, dtype=np.uint8)[: msg.step * msg.height].reshape(msg.height, msg.step)
    buf = buf[:, :row]
    a = np.ascontiguousarray(buf).view(np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<"))
    a = a.astype(dtype, copy=False)
    return a.reshape(msg.height, msg.width, ch) if ch > 1 else a.reshape(msg.height, msg.width)


def image_to_rgb(msg: Image) -> np.ndarray:
    """Any colour encoding -> RGB ``[H, W, 3]`` uint8 (BGR reversed, alpha dropped, mono repeated)."""
    if msg.encoding not in COLOUR_ENCODINGS:
        raise ValueError(f"encoding {msg.encoding!r} is not a colour image; expected one of {list(COLOUR_ENCODINGS)}")
    a = image_to_numpy(msg)
    if msg.encoding == "mono8":
        return np.repeat(a[..., None], 3, axis=2)
    a = a[..., :3]
    return np.ascontiguousarray(a[..., ::-1] if msg.encoding.startswith("bgr") else a)


def depth_to_metres(msg: Image) -> np.ndarray:
    """A depth image -> ``[H, W]`` float32 metres; 16UC1 is millimetres, 0 (no return) -> NaN."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"encoding {msg.encoding!r} is not a depth image; expected one of {list(DEPTH_ENCODINGS)}")
    a = image_to_numpy(msg)
    if msg.encoding == "16UC1":
        m = a.astype(np.float32) * 1e-3
        m[a == 0] = np.nan
        return m
    return a.astype(np.float32, copy=False)


def tactile_to_numpy(msg: Image) -> np.ndarray:
    """A taxel image (32FC3: normal pressure, shear x, shear y per taxel, N) -> ``[rows, cols, 3]`` float32."""
    if msg.encoding != "32FC3":
        raise ValueError(f"encoding {msg.encoding!r} is not a taxel image; expected '32FC3'")
    return image_to_numpy(msg).astype(np.float32, copy=False)


def camera_info(width: int, height: int, fx: float, fy: float, cx: float, cy: float, t: float, frame_id: str) -> CameraInfo:
    msg = CameraInfo()
    msg.header.stamp = stamp(t)
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def imu(orientation, angular_velocity, linear_acceleration, t: float, frame_id: str) -> Imu:
    msg = Imu()
    msg.header.stamp = stamp(t)
    msg.header.frame_id = frame_id
    o = np.asarray(orientation, dtype=np.float64)
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (float(x) for x in o)
    av, la = msg.angular_velocity, msg.linear_acceleration
    av.x, av.y, av.z = (float(x) for x in angular_velocity)
    la.x, la.y, la.z = (float(x) for x in linear_acceleration)
    return msg


def imu_to_numpy(msg: Imu) -> dict[str, np.ndarray]:
    o, av, la = msg.orientation, msg.angular_velocity, msg.linear_acceleration
    return {"imu_orientation": np.array([o.x, o.y, o.z, o.w]),
            "imu_angular_velocity": np.array([av.x, av.y, av.z]),
            "imu_linear_acceleration": np.array([la.x, la.y, la.z])}


def odometry(pose7, twist6, t: float, frame_id: str, child_frame_id: str) -> Odometry:
    msg = Odometry()
    msg.header.stamp = stamp(t)
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    msg.pose.pose = pose(pose7)
    tw = np.asarray(twist6, dtype=np.float64)
    lin, ang = msg.twist.twist.linear, msg.twist.twist.angular
    lin.x, lin.y, lin.z, ang.x, ang.y, ang.z = (float(x) for x in tw[:6])
    return msg


def odometry_to_numpy(msg: Odometry) -> dict[str, np.ndarray]:
    lin, ang = msg.twist.twist.linear, msg.twist.twist.angular
    return {"odom_pose": pose_to_numpy(msg.pose.pose),
            "odom_twist": np.array([lin.x, lin.y, lin.z, ang.x, ang.y, ang.z])}


def twist(vx: float, vy: float, yaw_rate: float) -> Twist:
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.angular.z = float(vx), float(vy), float(yaw_rate)
    return msg


def twist_to_command(msg: Twist) -> np.ndarray:
    """-> [vx, vy, yaw rate]: the planar velocity command a quadruped policy reads (``cmd_vel``)."""
    return np.array([msg.linear.x, msg.linear.y, msg.angular.z])


def float_array(values) -> Float64MultiArray:
    msg = Float64MultiArray()
    msg.data = np.asarray(values, dtype=np.float64).ravel().tolist()
    return msg


def float_array_to_numpy(msg: Float64MultiArray) -> np.ndarray:
    return np.asarray(msg.data, dtype=np.float64)


def joint_trajectory(names: Sequence[str], points, t: float, dt: float, frame_id: str = "") -> JointTrajectory:
    """[N, D] positions, one per control period from stamp ``t`` -> JointTrajectory
    (point i at time_from_start ``i * dt``)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, len(names))
    msg = JointTrajectory()
    msg.header.stamp = stamp(t)
    msg.header.frame_id = frame_id
    msg.joint_names = list(names)
    for i, row in enumerate(pts):
        p = JointTrajectoryPoint()
        p.positions = row.tolist()
        p.time_from_start = duration(i * dt)
        msg.points.append(p)
    return msg


def joint_trajectory_waypoints(msg: JointTrajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """-> (times_from_start [N] s, positions [N, n], velocities [N, n] or None, has_velocity [N]),
    columns in ``msg.joint_names`` order. A point may leave its velocities empty (then
    ``has_velocity[i]`` is False); any other length, or positions of the wrong length, is a
    ValueError naming the point."""
    n = len(msg.joint_names)
    pos, vel, has = [], [], []
    for i, p in enumerate(msg.points):
        if len(p.positions) != n:
            raise ValueError(f"point {i} has {len(p.positions)} positions for {n} joint names")
        if len(p.velocities) not in (0, n):
            raise ValueError(f"point {i} has {len(p.velocities)} velocities for {n} joint names")
        pos.append(p.positions)
        has.append(len(p.velocities) == n)
        vel.append(p.velocities if has[-1] else [0.0] * n)
    times = np.array([to_sec(p.time_from_start) for p in msg.points], dtype=np.float64)
    shape = (-1, n)
    return (times, np.array(pos, dtype=np.float64).reshape(shape),
            np.array(vel, dtype=np.float64).reshape(shape) if any(has) else None, np.array(has, bool))


def joint_trajectory_to_numpy(msg: JointTrajectory, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """-> (positions [N, D] in ``names`` order, times_from_start [N] seconds).
    Raises KeyError for missing joints, ValueError for ragged points."""
    n = len(msg.joint_names)
    rows = []
    for i, p in enumerate(msg.points):
        if len(p.positions) != n:
            raise ValueError(f"point {i} has {len(p.positions)} positions for {n} joint names")
        rows.append(reorder(msg.joint_names, names, p.positions))
    pos = np.array(rows, dtype=np.float64).reshape(-1, len(names))
    times = np.array([to_sec(p.time_from_start) for p in msg.points], dtype=np.float64)
    return pos, times


def checked_trajectory(msg: JointTrajectory, names: Sequence[str], robot: str) -> tuple[np.ndarray, np.ndarray]:
    """A command trajectory as (positions [N, D] in ``names`` order, times [N]); N = 0 is an empty
    trajectory (hold). Raises ValueError naming the problem: other joints, ragged points,
    non-finite positions, times not increasing."""
    if not msg.points:
        return np.zeros((0, len(names))), np.zeros(0)
    if sorted(msg.joint_names) != sorted(names):
        raise ValueError(f"joint_trajectory joint_names {list(msg.joint_names)} do not match robot {robot!r} "
                         f"joints {list(names)}")
    try:
        pos, times = joint_trajectory_to_numpy(msg, names)
    except (KeyError, ValueError) as e:
        raise ValueError(f"joint_trajectory: {e}") from None
    if not np.all(np.isfinite(pos)) or np.any(np.diff(times) < 0):
        raise ValueError("joint_trajectory: non-finite positions or times not increasing")
    return pos, times


def checked_positions(msg: Float64MultiArray, names: Sequence[str]) -> np.ndarray:
    """A ``forward_position_controller/commands`` message as [D]; ValueError unless D finite values."""
    q = float_array_to_numpy(msg)
    if q.shape != (len(names),) or not np.all(np.isfinite(q)):
        raise ValueError(f"forward_position_controller/commands: expected {len(names)} finite positions "
                         f"{list(names)}, got {q.tolist()}")
    return q


_LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN,
           "ERROR": DiagnosticStatus.ERROR, "STALE": DiagnosticStatus.STALE}


def diagnostic_status(name: str, level: str, message: str, values: dict, hardware_id: str = "") -> DiagnosticStatus:
    st = DiagnosticStatus()
    st.name, st.message, st.hardware_id = name, message, hardware_id
    st.level = _LEVELS[level]
    st.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
    return st


def diagnostic_values(st: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in st.values}


def point_cloud(points: np.ndarray, colors: np.ndarray | None, t: float, frame_id: str) -> PointCloud2:
    """``[N, 3]`` points (and ``[N, 3]`` uint8 colours) -> an unorganized PointCloud2: float32
    x y z, plus PCL's packed ``rgb`` float32 field when coloured."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    if colors is None:
        rec = pts
    else:
        c = np.asarray(colors, dtype=np.uint32).reshape(-1, 3)
        packed = ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)
        rec = np.concatenate([pts, packed[:, None]], axis=1)
        fields.append(PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1))
    msg = PointCloud2()
    msg.header.stamp = stamp(t)
    msg.header.frame_id = frame_id
    msg.height, msg.width = 1, int(len(pts))
    msg.fields = fields
    msg.is_bigendian = False
    msg.point_step = 4 * rec.shape[1]
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = True
    msg.data = np.ascontiguousarray(rec, dtype=np.float32).tobytes()
    return msg


def point_cloud_to_numpy(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray | None]:
    """A PointCloud2 with float32 x y z (and optionally packed rgb) -> ``([N, 3], [N, 3] uint8 | None)``."""
    offsets = {f.name: f.offset for f in msg.fields}
    for n in "xyz":
        f = next((f for f in msg.fields if f.name == n), None)
        if f is None or f.datatype != PointField.FLOAT32:
            raise ValueError(f"PointCloud2: field {n!r} missing or not float32 (fields {sorted(offsets)})")
    n = msg.width * msg.height
    raw = np.frombuffer(msg.data, dtype=np.uint8)[: n * msg.point_step].reshape(n, msg.point_step)

    def col(off: int) -> np.ndarray:
        return np.ascontiguousarray(raw[:, off:off + 4]).view(">f4" if msg.is_bigendian else "<f4").reshape(-1)

    pts = np.stack([col(offsets[a]) for a in "xyz"], axis=1).astype(np.float32)
    if "rgb" not in offsets:
        return pts, None
    v = col(offsets["rgb"]).astype(np.float32).view(np.uint32)
    return pts, np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], axis=1).astype(np.uint8)


def _reordered_joint_state(msg: JointState, keys, names) -> dict[str, np.ndarray]:
    return joint_state_to_numpy(msg, names)


# Message type -> decode(msg, keys, joint names) -> {key: value}: the policy side of every
# observation topic except images (which need the manifest's shape, see policy_node).
DECODERS = {
    "sensor_msgs/msg/JointState": _reordered_joint_state,
    "sensor_msgs/msg/Imu": lambda msg, keys, names: imu_to_numpy(msg),
    "nav_msgs/msg/Odometry": lambda msg, keys, names: odometry_to_numpy(msg),
    "geometry_msgs/msg/PoseStamped": lambda msg, keys, names: dict.fromkeys(keys, pose_to_numpy(msg.pose)),
    "geometry_msgs/msg/PoseArray": lambda msg, keys, names: dict.fromkeys(keys, pose_array_to_numpy(msg)),
    "geometry_msgs/msg/WrenchStamped": lambda msg, keys, names: dict.fromkeys(keys, wrench_to_numpy(msg)),
    "geometry_msgs/msg/Twist": lambda msg, keys, names: dict.fromkeys(keys, twist_to_command(msg)),
}
