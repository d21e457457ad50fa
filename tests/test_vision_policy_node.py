"""policy_node hosting an image checkpoint: camera frames on their schedule (bgr8 decoded to RGB),
a frame of the wrong size refused naming the topic and both shapes, a camera the robot lacks
refused at load, a silent camera named on /diagnostics while the policy pauses."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from procs import start_policy_node, stop_process
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from rosmind_ros import conversions as cv

pytestmark = pytest.mark.ros

H, W = 24, 32


def _checkpoint(path, obs_keys=("joint_pos", "camera/scene/rgb"), **kw):
    from rosmind.checkpoint import save_checkpoint
    from rosmind.policies.diffusion.config import DiffusionConfig
    from rosmind.policies.diffusion.policy import DiffusionPolicy
    from rosmind.spec import load_spec

    shapes = {"joint_pos": (8,), **{k: (H, W, 3) for k in obs_keys if k.startswith("camera/")}}
    cfg = DiffusionConfig(obs_keys=obs_keys, obs_shapes=shapes, n_obs_steps=1, horizon=8, n_action_steps=4,
                          down_dims=(16, 32), step_embed_dim=16, n_groups=4, num_inference_steps=2,
                          image_feature_dim=8, image_channels=(8, 8), **kw)
    policy = DiffusionPolicy(cfg)
    # With relative actions in +-1 mrad: an untrained policy whose chunks safety lets through.
    policy.fit_normalizer({"joint_pos": {"min": np.full(8, -3.0), "max": np.full(8, 3.0)},
                           "action": {"min": np.full(8, -3.0), "max": np.full(8, 3.0)},
                           "action_relative": {"min": np.full((8, 8), -1e-3), "max": np.full((8, 8), 1e-3)}})
    return save_checkpoint(policy, path, load_spec("panda"))


class Robot:
    def __init__(self):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = n = rclpy.create_node("fake_camera_robot", context=self.ctx)
        self.exec = SingleThreadedExecutor(context=self.ctx)
        self.exec.add_node(n)
        self.traj: list[JointTrajectory] = []
        n.create_subscription(JointTrajectory, "joint_trajectory", self.traj.append, 10)
        self.js = n.create_publisher(JointState, "joint_states", 10)
        self.cam = n.create_publisher(Image, "camera/scene/image_raw", 10)

    def tick(self, t: float, frame: np.ndarray | None, encoding: str = "bgr8") -> None:
        if frame is not None:
            self.cam.publish(cv.image(frame, encoding, t, "scene_camera_optical"))
        q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.04])
        self.js.publish(cv.joint_state([f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1"],
                                       q, np.zeros(8), np.zeros(8), t))

    def spin(self, cond, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            self.exec.spin_once(timeout_sec=0.05)
        return cond()

    def close(self):
        self.exec.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def test_frames_on_schedule_then_a_wrong_size_is_refused(ros_env, tmp_path):
    ckpt = _checkpoint(tmp_path / "vision")
    proc = start_policy_node(ros_env, ckpt)
    robot = Robot()
    frame = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    try:
        end = time.monotonic() + 60
        while not robot.traj and time.monotonic() < end and proc.poll() is None:
            robot.tick(0.0, frame)  # tick 0: a camera tick (10 Hz camera, 20 Hz control)
            robot.spin(lambda: bool(robot.traj), 0.5)
        assert robot.traj, "no command for tick 0"
        robot.tick(0.05, None)  # tick 1: no frame due; the held frame of tick 0 serves
        assert robot.spin(lambda: any(abs(cv.to_sec(m.header.stamp) - 0.05) < 1e-6 for m in robot.traj), 10)
        robot.tick(0.10, np.zeros((H + 8, W, 3), np.uint8))  # tick 2: a frame of another size
        ended = robot.spin(lambda: proc.poll() is not None, 20)
    finally:
        robot.close()
        code = stop_process(proc)
    out = proc.stdout.read()
    assert ended and code != 0, out
    assert "/camera/scene/image_raw" in out and "[32, 32, 3]" in out and "[24, 32, 3]" in out, out


def test_a_camera_the_robot_lacks_is_refused_at_load(ros_env, tmp_path):
    ckpt = _checkpoint(tmp_path / "nose", obs_keys=("joint_pos", "camera/nose/rgb"))
    proc = start_policy_node(ros_env, ckpt)
    code = proc.wait(timeout=60)
    out = proc.stdout.read()
    assert code == 2, out
    assert "'nose'" in out and "/camera/nose/image_raw" in out and "wrist" in out, out


def test_a_silent_camera_pauses_the_policy_and_diagnostics_name_it(ros_env, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray

    ckpt = _checkpoint(tmp_path / "vision")
    proc = start_policy_node(ros_env, ckpt, "-p", "mode:=realtime")
    robot = Robot()
    diag: dict = {}
    robot.node.create_subscription(
        DiagnosticArray, "/diagnostics",
        lambda m: diag.update(cv.diagnostic_values(m.status[0])) if m.status[0].name.endswith(": policy") else None, 10)
    frame = np.zeros((H, W, 3), np.uint8)
    try:
        end, k = time.monotonic() + 60, 0
        while not robot.traj and time.monotonic() < end and proc.poll() is None:
            robot.tick(k * 0.05, frame)
            robot.spin(lambda: bool(robot.traj), 0.1)
            k += 1
        assert robot.traj, "no command while the camera streams"
        late = 0
        for j in range(k, k + 24):  # the camera goes silent; joint_states keep coming
            if j == k + 14:  # 0.7 s on: past camera_max_age_s (0.25 s) and any prefetched plan
                late = len(robot.traj)
            robot.tick(j * 0.05, None)
            robot.spin(lambda: False, 0.05)
        robot.spin(lambda: "/camera/scene/image_raw" in diag.get("stale_topics", ""), 5)
        paused = len(robot.traj) - late  # commands in the last 10 silent ticks
    finally:
        robot.close()
        stop_process(proc)
    assert "/camera/scene/image_raw" in diag.get("stale_topics", ""), diag
    # The last frame serves for camera_max_age_s (0.25 s: 5 ticks) plus the plans already asked
    # for (realtime prefetch); after that every tick is skipped and nothing is commanded.
    assert int(diag["skipped_stale_ticks"]) >= 10 and paused == 0, (diag, paused)


def test_camera_graph_bench_times_every_stage(ros_env, tmp_path):
    """`rosmind bench camera_graph` over the real graph: robot_node renders 128x96, the
    checkpoint (24x32, image_resize) resizes; every stage is measured from the timelines."""
    import json

    ckpt = _checkpoint(tmp_path / "vision", image_resize=True, relative_actions=True)
    out = tmp_path / "cg.json"
    r = subprocess.run([sys.executable, "-m", "rosmind.cli", "bench", "camera_graph", "--checkpoint", str(ckpt),
                        "--episodes", "1", "--modes", "lockstep,realtime", "--json", str(out)],
                       env=ros_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    for mode in ("lockstep", "realtime"):
        m = res["modes"][mode]
        assert m["episodes"] == 1 and m["ticks"] == 200
        for stage in ("render_ms", "image_dds_hop_ms", "decode_to_numpy_ms", "image_age_at_inference_ms",
                      "inference_ms", "publish_ms", "safety_filter_ms", "plan_to_robot_ms"):
            s = m["stages"][stage]
            assert s["n"] > 0 and 0 <= s["p50"] < 2000, (mode, stage, s)
        assert m["camera_topics"] == ["camera/scene/image_raw"], m["camera_topics"]  # only what it reads
    lock = res["modes"]["lockstep"]
    assert lock["stages"]["image_age_at_inference_sim_ms"]["p99"] < 1e-6  # chunks start on camera ticks
    assert lock["no_plan_ticks"] == 0
