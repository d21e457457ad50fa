"""robot_node's camera topics as image_pipeline consumes them: a CameraInfo beside every image
(colour and depth), with the image's stamp, frame and size; task options and observation
noise passed as robot_node parameters reach the sim."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
import pytest
import rclpy
from procs import stop_process, stopped_cleanly
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2

from rosmind.schema import camera_topics
from rosmind.spec import load_spec
from rosmind_ros import conversions as cv

pytestmark = pytest.mark.ros

SPEC = load_spec("panda")


def test_every_image_has_a_camera_info_with_its_stamp_and_task_options_apply(ros_env, tmp_path):
    results = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rosmind_ros.robot_node", "--ros-args", "-p", "mode:=realtime",
         "-p", "episodes:=1", "-p", "cameras:=true", "-p", "policy_wait_s:=0.0", "-p", f"results:={results}",
         "-p", "task_options:=time_limit_s=1.5,cube_mass=0.2",
         "-p", "obs_noise:=joint_pos.arm=0.01", "-p", "point_clouds:=scene"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("camera_watcher", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    got: dict[str, list] = defaultdict(list)
    cams = SPEC.sensors_of("rgb", "rgbd")
    for s in cams:
        names = camera_topics(s.name)
        for ch, tp in (("rgb", Image), ("info", CameraInfo), ("depth", Image), ("depth_info", CameraInfo)):
            node.create_subscription(tp, names[ch], lambda m, t=names[ch]: got[t].append(m), 20)
    node.create_subscription(JointState, "joint_states", lambda m: got["joint_states"].append(m), 50)
    node.create_subscription(PointCloud2, "camera/scene/points", lambda m: got["points"].append(m), 20)
    try:
        end = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        for _ in range(20):  # what is still in flight
            ex.spin_once(timeout_sec=0.05)
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        code = stop_process(proc)
    out = proc.stdout.read()
    assert stopped_cleanly(code, out), out
    res = json.loads(results.read_text())
    assert res["episodes"][0]["ticks"] == round(1.5 * SPEC.control_rate_hz), res  # time_limit_s applied
    for s in cams:
        names = camera_topics(s.name)
        for img_topic, info_topic in ((names["rgb"], names["info"]), (names["depth"], names["depth_info"])):
            images, infos = got[img_topic], got[info_topic]
            assert len(images) >= 3, f"{img_topic}: {len(images)} frames"
            by_stamp = {cv.to_ns(i.header.stamp): i for i in infos}
            for img in images:
                info = by_stamp.get(cv.to_ns(img.header.stamp))
                assert info is not None, f"{img_topic} frame at {cv.to_sec(img.header.stamp)} s has no {info_topic}"
                assert info.header.frame_id == img.header.frame_id == s.frame_id
                assert (info.width, info.height) == (img.width, img.height) == tuple(s.resolution)
                k = np.array(info.k).reshape(3, 3)
                assert k[0, 0] > 0 and k[1, 1] > 0 and k[2, 2] == 1
        assert got[names["depth"]][0].encoding == "32FC1"
    # camera/scene/points: one cloud per scene frame, same stamp, in the base frame, cropped to
    # the workspace; it shows the table (z = 0) and the cube's top face (z = 0.045 m).
    clouds = got["points"]
    assert len(clouds) >= 3
    frames = {cv.to_ns(m.header.stamp) for m in got[camera_topics("scene")["rgb"]]}
    assert {cv.to_ns(m.header.stamp) for m in clouds} <= frames
    pts, cols = cv.point_cloud_to_numpy(clouds[0])
    assert clouds[0].header.frame_id == SPEC.base_frame and cols is not None and len(pts) > 1000
    ws = SPEC.workspace
    assert np.all(pts >= np.array(ws.min) - 1e-5) and np.all(pts <= np.array(ws.max) + 1e-5)
    assert np.mean(np.abs(pts[:, 2]) < 0.003) > 0.5
    red = (cols[:, 0] > 150) & (cols[:, 1] < 80)
    assert red.sum() > 10 and np.abs(np.max(pts[red, 2]) - 0.045) < 0.003
    # 0.01 rad of noise on the arm joints: the published arm readings jitter tick to tick while
    # the robot holds still at the start; the finger (not selected) does not.
    q = np.array([m.position for m in got["joint_states"][:10]])
    assert np.std(np.diff(q[:, :7], axis=0)) > 0.005
    assert np.std(np.diff(q[:, 7])) < 1e-3
