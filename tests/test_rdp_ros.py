"""policy_node hosting an RDP checkpoint: per-tick fast decoding from the newest wrench (the
same commands as the direct slow-fast executor, tick for tick), a NaN force sample held and
reported on /diagnostics, and a checkpoint that needs a wrench refused on a robot without one."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from procs import start_policy_node, stop_process
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from rosmind_ros import conversions as cv

pytestmark = pytest.mark.ros

Q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.04])
EE = np.array([0.5, 0.0, 0.1, 1.0, 0.0, 0.0, 0.0])
GOAL = np.array([0.5, 0.15, 0.0, 0.0, 0.0, 0.0, 1.0])


def _force(k: int) -> float:
    return float("nan") if k == 8 else (2.0 if k < 5 else 15.0)


def _checkpoint(path):
    import torch

    from rosmind.checkpoint import save_checkpoint
    from rosmind.policies.rdp import RDPConfig, RDPPolicy
    from rosmind.spec import load_spec

    torch.manual_seed(0)
    policy = RDPPolicy(RDPConfig(down_dims=(16, 32), n_groups=4, step_embed_dim=16, num_inference_steps=2))
    ones = lambda n: np.ones(n)  # noqa: E731
    # Relative actions within +-1 mrad: an untrained policy whose commands safety would pass.
    policy.fit_normalizer({"joint_pos": {"min": -3 * ones(8), "max": 3 * ones(8)},
                           "ee_pose": {"min": -ones(7), "max": ones(7)}, "goal_pose": {"min": -ones(7), "max": ones(7)},
                           "wrench": {"min": np.full(6, -20.0), "max": np.full(6, 20.0)},
                           "action_relative": {"min": np.full((32, 8), -1e-3), "max": np.full((32, 8), 1e-3)}})
    return save_checkpoint(policy, path, load_spec("panda"))


def _direct(ckpt, ticks: int) -> list[np.ndarray]:
    from rosmind.checkpoint import load_checkpoint
    from rosmind.policies.executors import make_executor

    ex = make_executor(load_checkpoint(ckpt))
    ex.reset()
    return [ex.step({"joint_pos": Q[None], "ee_pose": EE[None], "goal_pose": GOAL[None],
                     "wrench": np.array([[0, 0, _force(k), 0, 0, 0]])}, k) for k in range(ticks)]


def test_policy_node_decodes_every_tick_from_the_newest_wrench_and_holds_on_nan(ros_env, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped, WrenchStamped

    ckpt = _checkpoint(tmp_path / "rdp")
    proc = start_policy_node(ros_env, ckpt)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("fake_wipe_robot", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    traj: list[JointTrajectory] = []
    diag: dict = {}
    node.create_subscription(JointTrajectory, "joint_trajectory", traj.append, 10)
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.update(
        cv.diagnostic_values(m.status[0])) if m.status[0].name.endswith(": policy") else None, 10)
    js = node.create_publisher(JointState, "joint_states", 10)
    ee = node.create_publisher(PoseStamped, "ee_pose", 10)
    goal = node.create_publisher(PoseStamped, "goal_pose", 10)
    wr = node.create_publisher(WrenchStamped, "wrench", 10)
    names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1"]

    def spin(cond, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            ex.spin_once(timeout_sec=0.05)
        return cond()

    ticks = 12
    try:
        for k in range(ticks):
            t = k * 0.05
            n = len(traj)
            end = time.monotonic() + (60 if k == 0 else 20)
            # Re-send the tick until answered (discovery may drop the first messages; policy_node
            # answers a repeated tick with the same plan).
            while len(traj) == n and time.monotonic() < end and proc.poll() is None:
                ee.publish(cv.pose_stamped(EE, t, "panda_link0"))
                goal.publish(cv.pose_stamped(GOAL, t, "panda_link0"))
                wr.publish(cv.wrench_stamped(np.array([0, 0, _force(k), 0, 0, 0]), t, "panda_hand"))
                js.publish(cv.joint_state(names, Q, np.zeros(8), np.zeros(8), t))
                spin(lambda n=n: len(traj) > n, 0.5)
            assert len(traj) > n, f"no answer to tick {k}"
        assert proc.poll() is None, proc.stdout.read()
        spin(lambda: diag.get("fast_held_ticks", "0") != "0", 5)
    finally:
        stop_process(proc)
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    got = {round(cv.to_sec(m.header.stamp) / 0.05): np.array(m.points[0].positions) for m in traj}
    want = _direct(ckpt, ticks)
    for k in range(ticks):
        np.testing.assert_allclose(got[k], want[k], atol=1e-9, err_msg=f"tick {k}")
    assert np.abs(want[5] - want[4]).max() > 0  # the force step changed the command of its own tick
    np.testing.assert_array_equal(got[8], got[7])  # NaN force: the last good command, held
    assert diag.get("fast_held_ticks") == "1" and "fast_p50_ms" in diag and "slow_loop_hz" in diag, diag


def test_an_rdp_checkpoint_on_a_robot_without_a_wrench_sensor_is_refused_at_load(ros_env, tmp_path, repo):
    ckpt = _checkpoint(tmp_path / "rdp")
    text = (repo / "rosmind" / "robots" / "panda.yaml").read_text()
    spec = tmp_path / "panda_no_ft.yaml"
    spec.write_text("\n".join(line for line in text.splitlines() if "kind: wrench" not in line))
    proc = start_policy_node(ros_env, ckpt, "-p", f"robot:={spec}")
    code = proc.wait(timeout=60)
    out = proc.stdout.read()
    assert code == 2, out
    assert "'wrench'" in out and "wrench sensor" in out, out


def test_robot_node_publishes_the_wipe_tools_taxel_pad(ros_env):
    """task_options tactile=true: robot_node publishes tactile/pad (32FC3, the spec's 4x4 taxels)
    every tick, stamped like joint_states; policy_node decodes it with cv.tactile_to_numpy."""
    from sensor_msgs.msg import Image

    proc = subprocess.Popen([sys.executable, "-m", "rosmind_ros.robot_node", "--ros-args", "-p", "robot:=panda",
                             "-p", "task:=wipe", "-p", "task_options:=tactile=true", "-p", "mode:=lockstep",
                             "-p", "episodes:=1", "-p", "policy_wait_s:=2.0"],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("pad_listener", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    pads: list[Image] = []
    stamps: list[float] = []
    node.create_subscription(Image, "tactile/pad", pads.append, 10)
    node.create_subscription(JointState, "joint_states", lambda m: stamps.append(cv.to_sec(m.header.stamp)), 10)
    try:
        end = time.monotonic() + 60
        while not pads and time.monotonic() < end and proc.poll() is None:
            ex.spin_once(timeout_sec=0.1)
        assert pads, proc.stdout.read() if proc.poll() is not None else "no tactile/pad message"
    finally:
        stop_process(proc)
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    a = cv.tactile_to_numpy(pads[0])
    assert pads[0].encoding == "32FC3" and a.shape == (4, 4, 3) and np.all(np.isfinite(a))
    assert pads[0].header.frame_id == "wipe_tool" and cv.to_sec(pads[0].header.stamp) in stamps + [0.0]
