"""The quadruped graph over real DDS: robot_node hosting the MuJoCo A1, policy_node hosting a
``ppo_locomotion`` checkpoint, safety_node with the fall guard (launch/sim_a1_walk.launch.yaml).

Lockstep ROS episodes equal the direct ones; cmd_vel beyond the trained range is clamped and
a silent cmd_vel reads as "stand still", both named on /diagnostics; a tilted IMU latches the
e-stop and folds the legs slowly into the crouch pose."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from procs import run_to_end, stop_process
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Imu, JointState
from trajectory_msgs.msg import JointTrajectory

from rosmind.checkpoint import load_checkpoint, save_checkpoint
from rosmind.policies.locomotion import LocomotionPolicy, LocomotionPolicyConfig
from rosmind.sim.robots import make_sim
from rosmind.sim.rollout import run_episode
from rosmind.spec import load_spec
from rosmind_ros import conversions as cv

pytestmark = pytest.mark.ros


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """An untrained walking policy (small random MLP, near-zero actions) as a real checkpoint."""
    torch.manual_seed(0)
    policy = LocomotionPolicy(LocomotionPolicyConfig(robot="a1", hidden_dims=(32, 32)))
    with torch.no_grad():
        policy.mlp[-1].weight.mul_(0.05)
    return save_checkpoint(policy, tmp_path / "ckpt", load_spec("a1"))


def _launch(repo, env, *args, timeout=120) -> tuple[int, str]:
    return run_to_end([sys.executable, "-m", "rosmind.cli", "launch",
                       str(repo / "launch" / "sim_a1_walk.launch.yaml"), *args], env, timeout)


def test_walk_graph_in_lockstep_equals_the_direct_episode(ros_env, repo, tmp_path, tiny_checkpoint):
    results = tmp_path / "results.json"
    rc, out = _launch(repo, ros_env, f"checkpoint:={tiny_checkpoint}", "episodes:=1", "seed:=5",
                      "task_options:=time_limit_s=1.5", f"results:={results}")
    assert rc == 0, out[-4000:]
    ep = json.loads(results.read_text())["episodes"][0]
    assert ep["missed_commands"] == 0 and ep["safety_holds"] == 0, ep
    with make_sim("a1", "walk", backend="mujoco", time_limit_s=1.5) as sim:
        direct = run_episode(sim, load_checkpoint(tiny_checkpoint), seed=5)
    # No cmd_vel publisher in the graph: the policy reads "stand still", as the task tells it
    # in direct mode; the limiter keeps every target inside what safety passes unchanged.
    assert (ep["success"], ep["ticks"]) == (direct.success, direct.ticks)
    assert ep["final_error"] == pytest.approx(direct.final_error, abs=1e-9)


class _Graph:
    """A test-side node: publishes cmd_vel, records policy_node's and safety_node's /diagnostics."""

    def __init__(self):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("walk_test", context=self.ctx)
        self.exec = SingleThreadedExecutor(context=self.ctx)
        self.exec.add_node(self.node)
        self.cmd = self.node.create_publisher(Twist, "cmd_vel", 10)
        self.imu = self.node.create_publisher(Imu, "imu", 10)
        self.js = self.node.create_publisher(JointState, "joint_states", 10)
        self.policy_diag: list[dict] = []
        self.safety_diag: list[dict] = []
        self.traj: list[np.ndarray] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.node.create_subscription(JointTrajectory, "joint_trajectory",
                                      lambda m: self.traj.append(cv.joint_trajectory_waypoints(m)[1]), 50)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name.endswith(": policy"):
                self.policy_diag.append(cv.diagnostic_values(st))
            elif st.name.startswith("safety_node"):
                self.safety_diag.append(cv.diagnostic_values(st))

    def spin_for(self, seconds: float, every=None, period: float = 0.02) -> None:
        end, nxt = time.monotonic() + seconds, 0.0
        while time.monotonic() < end:
            if every is not None and time.monotonic() >= nxt:
                every()
                nxt = time.monotonic() + period
            self.exec.spin_once(timeout_sec=0.01)

    def close(self) -> None:
        self.exec.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def test_cmd_vel_is_clamped_then_stale_means_stand_still(ros_env, repo, tmp_path, tiny_checkpoint, monkeypatch):
    for k, v in ros_env.items():
        monkeypatch.setenv(k, v)
    box: dict = {}
    launcher = threading.Thread(target=lambda: box.update(zip(("rc", "out"), _launch(
        repo, ros_env, f"checkpoint:={tiny_checkpoint}", "episodes:=1", "mode:=realtime",
        "task_options:=time_limit_s=9.0", "command_timeout_s:=0.5", timeout=120), strict=True)))
    launcher.start()
    g = _Graph()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not g.policy_diag:
            g.spin_for(0.2)
        assert g.policy_diag, "policy_node published no /diagnostics"
        g.spin_for(3.0, every=lambda: g.cmd.publish(cv.twist(2.5, 0.0, 0.0)))  # trained range: vx <= 1
        assert any(d.get("command_clamped") == "true" and d.get("stale_commands") == "" for d in g.policy_diag[-2:])
        n = len(g.policy_diag)
        g.spin_for(2.5)  # silence: older than command_timeout_s
        later = g.policy_diag[n:]
        assert later and later[-1].get("stale_commands") == "cmd_vel", later
    finally:
        g.close()
        launcher.join(timeout=120)
    assert box.get("rc") == 0, box.get("out", "")[-4000:]


def test_tilted_imu_latches_and_folds_into_the_crouch(ros_env, monkeypatch):
    spec = load_spec("a1")
    stand, crouch = np.array(spec.extra["stand_pose"]), np.array(spec.extra["crouch_pose"])
    proc = subprocess.Popen([sys.executable, "-m", "rosmind_ros.safety_node", "--ros-args", "-p", "robot:=a1",
                             "-p", "max_tilt_deg:=50.0", "-p", "crouch_speed:=1.0", "-p", "diagnostics_rate_hz:=5.0"],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for k, v in ros_env.items():
        monkeypatch.setenv(k, v)
    g = _Graph()
    try:
        upright = (0.0, 0.0, 0.0, 1.0)
        s, c = math.sin(math.radians(35)), math.cos(math.radians(35))  # 70 deg about x

        def publish(q_xyzw):
            def go():
                g.js.publish(cv.joint_state(spec.joint_names, stand, np.zeros(12), np.zeros(12), 0.0))
                g.imu.publish(cv.imu(q_xyzw, np.zeros(3), np.array([0, 0, 9.81]), 0.0, "imu_link"))
            return go

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not g.safety_diag:
            g.spin_for(0.2, every=publish(upright))
        assert g.safety_diag and g.safety_diag[-1]["fallen"] == "false"
        g.traj.clear()
        g.spin_for(2.0, every=publish((s, 0.0, 0.0, c)))
        assert g.safety_diag[-1]["fallen"] == "true" and g.safety_diag[-1]["falls"] == "1"
        pts = np.array([p[0] for p in g.traj])
        assert len(pts) > 10
        steps = np.abs(np.diff(np.vstack([stand, pts]), axis=0))
        assert steps.max() <= 1.0 * spec.control_period + 1e-9, "the crouch is speed-limited"
        assert np.all(np.abs(pts[-1] - crouch) < np.abs(stand - crouch) + 1e-9)
        assert np.abs(pts[-1] - crouch).max() < np.abs(stand - crouch).max(), "it moves toward the crouch"
    finally:
        g.close()
        stop_process(proc)
