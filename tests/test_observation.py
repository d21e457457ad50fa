"""ObservationAssembler (fake stamps) and the obs key <-> topic table."""

from __future__ import annotations

import numpy as np
import pytest

from rosmind.errors import SpecError, UnknownNameError, UserError
from rosmind.observation import ObservationAssembler
from rosmind.schema import binding, topics_for
from rosmind.spec import load_spec

pytestmark = pytest.mark.unit

DT = 0.05


def _v(x: float, n: int = 2) -> np.ndarray:
    return np.full(n, x, dtype=np.float64)


def test_per_tick_key_needs_the_ticks_own_stamp():
    asm = ObservationAssembler(["joint_pos", "ee_pose"], n_obs_steps=1, max_age=0.0, period=DT)
    asm.add("joint_pos", 1.0, _v(1))
    assert not asm.ready(1.0)
    assert asm.stale(1.0) == ["ee_pose"]
    asm.add("ee_pose", 0.95, _v(0.95, 7))
    assert asm.stale(1.0) == ["ee_pose"]  # one tick old is stale for a per-tick topic
    asm.add("ee_pose", 1.0, _v(1, 7))
    assert asm.ready(1.0)
    assert asm.stale(1.05) == ["joint_pos", "ee_pose"]


def test_max_age_per_key_and_future_samples_do_not_count():
    asm = ObservationAssembler(["joint_pos", "camera/wrist/rgb"], n_obs_steps=1,
                               max_age={"camera/wrist/rgb": 0.1}, period=DT)
    asm.add("joint_pos", 2.0, _v(2))
    asm.add("camera/wrist/rgb", 1.9, _v(1.9))
    assert asm.ready(2.0)                       # 0.1 s old, allowed
    asm.add("joint_pos", 2.05, _v(2.05))
    assert asm.stale(2.05) == ["camera/wrist/rgb"]  # 0.15 s old
    asm2 = ObservationAssembler(["joint_pos"], 1, 0.5)
    asm2.add("joint_pos", 3.0, _v(3))
    assert asm2.stale(2.9) == ["joint_pos"]      # only a sample newer than t


def test_history_pads_by_repetition_then_slides_oldest_first():
    asm = ObservationAssembler(["joint_pos"], n_obs_steps=3, max_age=0.0, period=DT)
    asm.add("joint_pos", 0.0, _v(0))
    h = asm.history(0.0)["joint_pos"]
    assert h.shape == (3, 2)
    np.testing.assert_array_equal(h[:, 0], [0, 0, 0])
    asm.add("joint_pos", 0.05, _v(1))
    np.testing.assert_array_equal(asm.history(0.05)["joint_pos"][:, 0], [0, 0, 1])
    asm.add("joint_pos", 0.10, _v(2))
    asm.add("joint_pos", 0.15, _v(3))
    np.testing.assert_array_equal(asm.history(0.15)["joint_pos"][:, 0], [1, 2, 3])
    # history at an earlier time ignores newer samples
    np.testing.assert_array_equal(asm.history(0.10)["joint_pos"][:, 0], [0, 1, 2])


def test_history_aligns_a_slower_topic_to_control_ticks():
    asm = ObservationAssembler(["joint_pos", "camera/c/rgb"], n_obs_steps=2,
                               max_age={"camera/c/rgb": 0.1}, period=DT)
    for k in range(5):                          # joint_pos at 20 Hz, camera at 10 Hz
        asm.add("joint_pos", k * DT, _v(k))
        if k % 2 == 0:
            asm.add("camera/c/rgb", k * DT, _v(10 + k))
    h = asm.history(3 * DT)
    np.testing.assert_array_equal(h["joint_pos"][:, 0], [2, 3])
    np.testing.assert_array_equal(h["camera/c/rgb"][:, 0], [12, 12])  # frame at t=0.10 serves both
    h = asm.history(4 * DT)
    np.testing.assert_array_equal(h["camera/c/rgb"][:, 0], [12, 14])


def test_out_of_order_and_duplicate_stamps():
    asm = ObservationAssembler(["joint_pos"], n_obs_steps=3, period=None)
    asm.add("joint_pos", 0.10, _v(2))
    asm.add("joint_pos", 0.0, _v(0))
    asm.add("joint_pos", 0.05, _v(1))
    asm.add("joint_pos", 0.10, _v(5))           # same stamp replaces
    np.testing.assert_array_equal(asm.history(0.10)["joint_pos"][:, 0], [0, 1, 5])


def test_capacity_bounds_memory_and_reset_forgets():
    asm = ObservationAssembler(["joint_pos"], n_obs_steps=2, period=DT, capacity=4)
    for k in range(10):
        asm.add("joint_pos", k * DT, _v(k))
    assert len(asm._stamps["joint_pos"]) == 4
    np.testing.assert_array_equal(asm.history(9 * DT)["joint_pos"][:, 0], [8, 9])
    asm.reset()
    assert not asm.has_any("joint_pos")
    assert asm.stale(9 * DT) == ["joint_pos"]
    with pytest.raises(SpecError, match="no sample of 'joint_pos'"):
        asm.history(9 * DT)


@pytest.mark.parametrize("kwargs, match", [
    ({"keys": [], "n_obs_steps": 1}, "at least one"),
    ({"keys": ["joint_pos"], "n_obs_steps": 0}, "n_obs_steps"),
    ({"keys": ["joint_pos"], "n_obs_steps": 1, "max_age": -1.0}, "max_age"),
    ({"keys": ["joint_pos"], "n_obs_steps": 1, "max_age": {"wrench": 1.0}}, "wrench"),
    ({"keys": ["joint_pos"], "n_obs_steps": 1, "period": float("nan")}, "period"),
])
def test_bad_config_is_a_user_error(kwargs, match):
    with pytest.raises(UserError, match=match):
        ObservationAssembler(**kwargs)


def test_add_unknown_key_is_a_user_error():
    asm = ObservationAssembler(["joint_pos"], 1)
    with pytest.raises(SpecError, match="'wrench' is not one of"):
        asm.add("wrench", 0.0, _v(0))


def test_schema_table():
    assert binding("joint_vel").topic == "joint_states"
    assert binding("joint_vel").msg_type == "sensor_msgs/msg/JointState"
    assert binding("ee_pose").msg_type == "geometry_msgs/msg/PoseStamped"
    assert binding("object_poses").msg_type == "geometry_msgs/msg/PoseArray"
    assert binding("wrench").msg_type == "geometry_msgs/msg/WrenchStamped"
    assert binding("odom_twist").msg_type == "nav_msgs/msg/Odometry"
    assert binding("imu_orientation").topic == "imu"
    rgb = binding("camera/wrist/rgb")
    assert (rgb.topic, rgb.msg_type, rgb.per_tick) == ("camera/wrist/image_raw", "sensor_msgs/msg/Image", False)
    assert binding("camera/wrist/depth").topic == "camera/wrist/depth/image_raw"
    t = topics_for(["joint_pos", "joint_vel", "ee_pose"])
    assert t == {"joint_states": ("sensor_msgs/msg/JointState", ["joint_pos", "joint_vel"]),
                 "ee_pose": ("geometry_msgs/msg/PoseStamped", ["ee_pose"])}


def test_schema_unknown_key_and_missing_camera_are_user_errors():
    with pytest.raises(UnknownNameError, match="unknown observation key 'joint_torque'"):
        binding("joint_torque")
    panda = load_spec("panda")
    binding("camera/wrist/depth", panda)
    with pytest.raises(SpecError, match="no sensor 'head'"):
        binding("camera/head/rgb", panda)
    with pytest.raises(SpecError, match="no rgb channel"):
        binding("camera/wrench/rgb", panda)


def test_max_age_override_per_call_follows_a_camera_schedule():
    asm = ObservationAssembler(["joint_pos", "camera/c/rgb"], n_obs_steps=1,
                               max_age={"camera/c/rgb": 0.25}, period=DT)
    asm.add("camera/c/rgb", 0.0, _v(0))
    asm.add("joint_pos", 0.10, _v(2))
    assert asm.ready(0.10)                                      # configured: 0.1 s old is fine
    assert asm.stale(0.10, {"camera/c/rgb": 0.0}) == ["camera/c/rgb"]  # schedule: frame of t=0.10
    asm.add("camera/c/rgb", 0.10, _v(2))
    assert asm.ready(0.10, {"camera/c/rgb": 0.0})
    asm.add("joint_pos", 0.15, _v(3))
    assert asm.ready(0.15, {"camera/c/rgb": DT})                # odd tick: last tick's frame


def test_camera_schedule_from_the_spec():
    from rosmind.schema import camera_every

    panda = load_spec("panda")
    assert camera_every(panda, "wrist") == 2                    # 20 Hz control, 10 Hz camera
    assert camera_every(panda, "wrench") == 1
