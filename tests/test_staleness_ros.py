"""Staleness, one input kind at a time (issue 18): policy_node hosting a checkpoint that reads
``joint_pos`` and one more input, in lockstep. While that input stops (its topic silent, the
joint_states ticks still coming), or freezes (the last message
again and again, its stamp unchanged, as a hung camera driver does), every tick is skipped (no command: the robot holds on safety's
watchdog) and /diagnostics names the silent topic; when it streams again the node commands the
very next tick and /diagnostics stops naming it. One message type per case: PoseStamped,
PoseArray, WrenchStamped, Image (a camera on its own schedule), Imu, Odometry. (A stale or NaN
force on an RDP checkpoint's fast path: tests/test_rdp_ros.py.)"""

from __future__ import annotations

import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseArray, PoseStamped, WrenchStamped
from nav_msgs.msg import Odometry
from procs import start_policy_node, stop_process
from sensor_msgs.msg import Image, Imu
from test_policy_node import FakeRobot

from rosmind_ros import conversions as cv

pytestmark = pytest.mark.ros

POSE = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0])
H, W = 24, 32


def _msg(key: str, t: float):
    """``(topic, message class, message)`` of input ``key`` at tick time ``t``."""
    if key == "ee_pose":
        return "ee_pose", PoseStamped, cv.pose_stamped(POSE, t, "panda_link0")
    if key == "object_poses":
        return "object_poses", PoseArray, cv.pose_array(POSE[None], t, "panda_link0")
    if key == "wrench":
        return "wrench", WrenchStamped, cv.wrench_stamped(np.array([0.0, 0.0, 5.0, 0.0, 0.0, 0.0]), t, "panda_hand")
    if key == "camera/scene/rgb":
        return "camera/scene/image_raw", Image, cv.image(np.full((H, W, 3), 90, np.uint8), "rgb8", t,
                                                         "scene_camera_optical")
    if key == "imu_orientation":
        return "imu", Imu, cv.imu([0.0, 0.0, 0.0, 1.0], np.zeros(3), [0.0, 0.0, 9.81], t, "imu_link")
    if key == "odom_twist":
        return "odom", Odometry, cv.odometry(np.array([0, 0, 0.3, 0, 0, 0, 1.0]), np.zeros(6), t, "odom", "trunk")
    raise KeyError(key)


SHAPES = {"ee_pose": (7,), "object_poses": (1, 7), "wrench": (6,), "camera/scene/rgb": (H, W, 3),
          "imu_orientation": (4,), "odom_twist": (6,)}


def _checkpoint(path, robot: str, key: str):
    from rosmind.checkpoint import save_checkpoint
    from rosmind.policies.diffusion.config import DiffusionConfig
    from rosmind.policies.diffusion.policy import DiffusionPolicy
    from rosmind.spec import load_spec

    spec = load_spec(robot)
    d = spec.dof
    cfg = DiffusionConfig(robot=robot, obs_keys=("joint_pos", key), obs_shapes={"joint_pos": (d,), key: SHAPES[key]},
                          action_dim=d, n_obs_steps=1, horizon=8, n_action_steps=4, down_dims=(16, 32),
                          step_embed_dim=16, n_groups=4, num_inference_steps=2, image_feature_dim=8,
                          image_channels=(8, 8), relative_actions=True)
    policy = DiffusionPolicy(cfg)
    stats = {"joint_pos": {"min": np.full(d, -3.0), "max": np.full(d, 3.0)},
             "action_relative": {"min": np.full((8, d), -1e-3), "max": np.full((8, d), 1e-3)}}
    if not key.startswith("camera/"):
        stats[key] = {"min": np.full(SHAPES[key], -20.0), "max": np.full(SHAPES[key], 20.0)}
    policy.fit_normalizer(stats)  # relative actions within +-1 mrad: an untrained policy
    return save_checkpoint(policy, path, spec), spec


class Robot(FakeRobot):
    """joint_states every tick (the tick itself) and ``key``'s topic unless told to stay silent."""

    def __init__(self, spec, key: str):
        super().__init__(spec)
        self.key = key
        topic, cls, _ = _msg(key, 0.0)
        self.pub = self.node.create_publisher(cls, topic, 10)
        self.every = 1
        if key.startswith("camera/"):
            from rosmind.schema import camera_every
            self.every = camera_every(spec, "scene")
        self.q = np.asarray(spec.extra.get("stand_pose", [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.04]))

    def tick(self, k: int, silent: bool, frozen: bool = False) -> None:
        t = 10.0 + k * self.spec.control_period
        if k % self.every == 0:
            if not silent:
                self.last = _msg(self.key, t)[2]
                self.pub.publish(self.last)
            elif frozen:  # a frozen driver: the last message again, same content, same stamp
                self.pub.publish(self.last)
        n = self.spec.dof
        self.pubs["joint_states"].publish(cv.joint_state(self.spec.joint_names, self.q, np.zeros(n), np.zeros(n), t))

    def answered(self, k: int) -> bool:
        t = round(10.0 + k * self.spec.control_period, 6)
        return any(round(cv.to_sec(m.header.stamp), 6) == t for m in self.traj)


@pytest.mark.parametrize("robot,key,topic,frozen,period", [
    ("panda", "ee_pose", "/ee_pose", False, 0.2),
    ("panda", "object_poses", "/object_poses", False, 0.2),
    # A periodic report a minute away: the stall is named, and its end, as they happen (a short
    # stall had gone unreported between two 1 s reports in a CI run).
    ("panda", "object_poses", "/object_poses", True, 60.0),
    ("panda", "wrench", "/wrench", False, 0.2),
    ("panda", "wrench", "/wrench", True, 0.2),
    ("panda", "camera/scene/rgb", "/camera/scene/image_raw", False, 0.2),
    ("panda", "camera/scene/rgb", "/camera/scene/image_raw", True, 0.2),
    ("a1", "imu_orientation", "/imu", False, 0.2),
    ("a1", "odom_twist", "/odom", False, 0.2),
])
def test_a_silent_or_frozen_input_pauses_the_policy_names_the_topic_and_resumes(ros_env, tmp_path, robot, key,
                                                                                 topic, frozen, period):
    ckpt, spec = _checkpoint(tmp_path / "ckpt", robot, key)
    proc = start_policy_node(ros_env, ckpt, "-p", f"robot:={robot}", "-p", f"diagnostics_period_s:={period}")
    rob = Robot(spec, key)
    every = rob.every
    try:
        # Tick 0, re-sent until the node is up and answers (discovery may drop the first sends).
        end = time.monotonic() + 60
        while not rob.answered(0) and time.monotonic() < end and proc.poll() is None:
            rob.tick(0, silent=False)
            rob.spin_until(lambda: rob.answered(0), 0.5)
        assert rob.answered(0), f"no command while every input streams: {proc.poll()}"
        fresh = list(range(every, 3 * every + 1, every))
        for k in fresh:
            rob.tick(k, silent=False)
            assert rob.spin_until(lambda k=k: rob.answered(k), 10), f"no command for complete tick {k}"
        for k in range(fresh[-1] + 1, fresh[-1] + every):  # a camera's last frame serves till its next
            rob.tick(k, silent=False)
            assert rob.spin_until(lambda k=k: rob.answered(k), 10), f"no command for tick {k}"
        silent = list(range(fresh[-1] + every, fresh[-1] + 5 * every))
        for k in silent:
            rob.tick(k, silent=True, frozen=frozen)
            rob.spin_until(lambda: False, 0.15)
        named = rob.spin_until(lambda: topic in rob.diag.get("stale_topics", ""), 5)
        diag_silent = dict(rob.diag)
        back = list(range(silent[-1] + 1, silent[-1] + 1 + 3 * every))
        back = [k for k in back if k % every == 0]
        for k in back:
            rob.tick(k, silent=False)
            assert rob.spin_until(lambda k=k: rob.answered(k), 10), f"no command for tick {k} once {topic} streams again"
        cleared = rob.spin_until(lambda: rob.diag.get("stale_topics", "x") == "", 5)
        diag_back = dict(rob.diag)
        assert proc.poll() is None
    finally:
        rob.close()
        stop_process(proc)
    out = proc.stdout.read()
    commanded_silent = [k for k in silent if rob.answered(k)]
    assert commanded_silent == [], f"ticks {commanded_silent} commanded while {topic} was silent"
    assert named, (diag_silent, out)
    assert int(diag_silent["skipped_stale_ticks"]) >= (2 if period < 5 else 1), diag_silent
    assert key in diag_silent["stale_keys"], diag_silent
    assert cleared, diag_back  # resumed: nothing is named stale any more
