"""``rosmind replay`` moves the sim robot: an episode holding a recorded joint ramp goes
through the real safety_node to the real robot_node (PyBullet, realtime), and the measured
joint_states follow it."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from procs import stop_process, stopped_cleanly
from rclpy.executors import SingleThreadedExecutor
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from rosmind.recording import EpisodeInfo, EpisodeWriter, TopicInfo
from rosmind.spec import load_spec
from rosmind_ros import conversions as cv

pytestmark = pytest.mark.ros

NAMES = load_spec("panda").joint_names


def _node(module: str, *params: str, env) -> subprocess.Popen:
    args = [a for p in params for a in ("-p", p)]
    return subprocess.Popen([sys.executable, "-m", f"rosmind_ros.{module}", "--ros-args", *args], env=env)



def test_replay_moves_the_sim_robot_through_safety(ros_env, tmp_path):
    procs = [_node("robot_node", "mode:=realtime", "cameras:=false", "policy_wait_s:=0.0", env=ros_env),
             _node("safety_node", "use_sim_time:=true", env=ros_env)]
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("replay_check", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    latest: dict[str, np.ndarray] = {}
    node.create_subscription(JointState, "joint_states",
                             lambda m: latest.__setitem__("q", cv.joint_state_to_numpy(m, NAMES)["joint_pos"]), 10)
    reset = node.create_client(Trigger, "reset")

    def spin_until(pred, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < end, f"timed out waiting for {what}"
            ex.spin_once(timeout_sec=0.02)

    try:
        spin_until(lambda: "q" in latest, 60.0, "joint_states from robot_node")
        spin_until(reset.service_is_ready, 10.0, "robot reset service")
        fut = reset.call_async(Trigger.Request())  # a fresh 10 s episode for the replay
        spin_until(fut.done, 10.0, "reset")
        latest.clear()
        spin_until(lambda: "q" in latest, 10.0, "joint_states after reset")
        q0 = latest["q"].copy()

        # The recorded episode: a 0.3 rad ramp of joint 1 over 1.5 s at 20 Hz, then a hold.
        w = EpisodeWriter(tmp_path / "ep", EpisodeInfo(name="ep", robot="panda"))
        topic = "/forward_position_controller/commands"
        w.add_topic(TopicInfo(topic, "std_msgs/msg/Float64MultiArray"))
        for k in range(40):
            q = q0.copy()
            q[0] += 0.3 * min(k / 30, 1.0)
            w.write(topic, serialize_message(cv.float_array(q)), 5_000_000_000 + k * 50_000_000)
        w.close()

        replay = subprocess.run([sys.executable, "-m", "rosmind.cli", "replay", str(tmp_path / "ep")],
                                env=ros_env, capture_output=True, text=True, timeout=90)
        assert stopped_cleanly(replay.returncode, replay.stderr), replay.stderr[-2000:]
        assert "replaying 40 commands" in replay.stderr + replay.stdout
        t_end = time.monotonic() + 1.0
        spin_until(lambda: time.monotonic() > t_end, 5.0, "")
        moved = latest["q"] - q0
        assert abs(moved[0] - 0.3) < 0.05, moved
        assert np.all(np.abs(moved[1:7]) < 0.05), moved
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        for p in procs:
            stop_process(p)
