"""Sim/real parity: one node (robot_node, ``backend:=mujoco`` or ``backend:=hardware``) offers the
same topic names, message types, frame ids and joint order for the simulated Go2 and for the
Go2 driver on an emulated robot (tests/test_unitree.py's emulator); both are checked by the same
conformance function. The sim adds only what a simulator has (``/clock``, episode outcomes),
the hardware only its lifecycle's transition events, and it lacks only what its driver declares
unavailable, with the reason."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import rclpy
from procs import stop_process
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import NodeNameNonExistentError
from sensor_msgs.msg import Imu, JointState

from rosmind.ros_env import claim_domain
from rosmind.spec import load_spec

pytestmark = pytest.mark.ros
SIM_ONLY = {"/clock", "/episode/outcome"}
HARDWARE_ONLY = {"/robot_node/transition_event"}  # a lifecycle node's own topic


def conformance(spec) -> dict:
    """robot_node's published topics and types, one joint_states and one imu, checked against the
    spec; returns {topic: type} for the parity comparison."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("parity_probe", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    js, imu = [], []
    node.create_subscription(JointState, "joint_states", js.append, 10)
    node.create_subscription(Imu, "imu", imu.append, 10)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and not (js and imu):
            ex.spin_once(timeout_sec=0.05)
        assert js and imu, "robot_node published no joint_states / imu"
        topics = {}
        for _ in range(50):  # discovery of the node and every publisher
            try:
                topics = dict(node.get_publisher_names_and_types_by_node("robot_node", "/"))
            except NodeNameNonExistentError:  # its messages arrived before its graph entry
                topics = {}
            if "/joint_states" in topics and "/imu" in topics:
                break
            ex.spin_once(timeout_sec=0.1)
        assert list(js[-1].name) == list(spec.joint_names)  # the spec's joint order
        assert imu[-1].header.frame_id == spec.sensor("imu").frame_id
        assert topics["/joint_states"] == ["sensor_msgs/msg/JointState"] and topics["/imu"] == ["sensor_msgs/msg/Imu"]
        return {t: tuple(ty) for t, ty in topics.items() if t not in ("/rosout", "/parameter_events")}
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def _robot_node(env, *params) -> subprocess.Popen:
    args = [x for p in params for x in ("-p", p)]
    return subprocess.Popen([sys.executable, "-m", "rosmind_ros.robot_node", "--ros-args", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_go2_sim_and_emulated_hardware_offer_the_same_interface(ros_env):
    from rosmind.hardware.quadrupeds.unitree import UnitreeGo2

    spec = load_spec("go2")
    sim = _robot_node(ros_env, "robot:=go2", "backend:=mujoco", "mode:=realtime", "policy_wait_s:=0.0",
                      "cameras:=false")
    try:
        sim_topics = conformance(spec)
    finally:
        stop_process(sim)
        sim.communicate()
    did, lock = claim_domain()  # the robot's own DDS (CycloneDDS), apart from the ROS graph's
    emu = subprocess.Popen([sys.executable, "-m", "rosmind.hardware.emulators.unitree", "--interface", "lo",
                            "--domain", str(did), "--hang"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    hw = _robot_node(ros_env, "robot:=go2", "backend:=hardware", "interface:=lo", f"domain:={did}")
    try:
        hw_topics = conformance(spec)
    finally:
        stop_process(hw)
        out, _ = hw.communicate()
        emu.terminate()
        emu.communicate(timeout=20)
        lock.close()
    missing = {f"/{s}" for s in UnitreeGo2.unavailable}
    assert all(UnitreeGo2.unavailable.values())  # each with its reason
    expected = {t: ty for t, ty in sim_topics.items() if t not in SIM_ONLY | missing}
    got = {t: ty for t, ty in hw_topics.items() if t not in HARDWARE_ONLY}
    assert got == expected, (out[-2000:], sim_topics)
