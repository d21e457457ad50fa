"""A teleoperated demonstration, end to end: launch/sim_teleop.launch.yaml with the keyboard
device on a pty (the test types the keys), recorder_node episode through its services,
``rosmind convert``, and 5 training steps (``--preset tiny``) on the result."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String
from std_srvs.srv import Trigger

from rosmind.cli import main as cli
from rosmind.dataset import ReplayBuffer

pytestmark = pytest.mark.ros


def test_keyboard_teleop_demo_records_converts_and_trains(ros_env, repo, tmp_path):
    master, slave = pty.openpty()
    episodes = tmp_path / "demos"
    launch = subprocess.Popen(
        [sys.executable, "-m", "rosmind.cli", "launch", str(repo / "launch/sim_teleop.launch.yaml"),
         "device:=keyboard", f"device_options:={{tty: {os.ttyname(slave)}}}", f"out_dir:={episodes}",
         "operator:=pytest"],
        env=ros_env, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("teleop_demo_driver", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    status: dict = {}
    node.create_subscription(String, "recorder/status", lambda m: status.update(json.loads(m.data)), 10)

    def spin_until(pred, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not pred():
            if launch.poll() is not None:
                raise AssertionError(f"the teleop graph exited: {launch.stdout.read()[-3000:]}")
            assert time.monotonic() < end, f"timed out waiting for {what}"
            ex.spin_once(timeout_sec=0.05)

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        spin_until(lambda: time.monotonic() > end, seconds + 5.0, "")

    def call(name: str) -> Trigger.Response:
        cli_ = node.create_client(Trigger, f"recorder/{name}")
        spin_until(cli_.service_is_ready, 60.0, f"recorder/{name}")
        fut = cli_.call_async(Trigger.Request())
        spin_until(fut.done, 30.0, f"recorder/{name} answer")
        return fut.result()

    try:
        spin_until(lambda: "/joint_states" in status.get("topics", []), 90.0, "the recorder")
        time.sleep(2.0)  # the robot ticking, the keyboard device open
        assert call("start").success
        os.write(master, b" ")  # deadman on
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:  # hold "w" (+x), as a terminal autorepeats it
            os.write(master, b"w")
            spin(0.1)
        os.write(master, b"x")  # deadman off
        spin(0.5)
        assert call("mark_success").success
        r = call("stop")
        assert r.success, r.message
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        if launch.poll() is None:
            launch.send_signal(signal.SIGINT)
            try:
                launch.wait(timeout=30)
            except subprocess.TimeoutExpired:
                launch.kill()
        os.close(master)
        os.close(slave)

    info = json.loads(next(episodes.glob("*/episode.json")).read_text())
    assert info["operator"] == "pytest" and info["success"] is True
    assert info["message_counts"]["/safety/commands"] > 10  # the operator's commands
    out = tmp_path / "demo.zarr"
    assert cli(["convert", str(episodes), "--out", str(out), "--report", str(tmp_path / "r.json")]) == 0
    data = ReplayBuffer.open(out).get_episode(0)
    assert "camera/scene/rgb" in data and len(data["joint_pos"]) > 20
    # Driving +x moved the end effector forward, and the actions say so too.
    assert data["ee_pose"][-1, 0] - data["ee_pose"][0, 0] > 0.05
    assert np.abs(data["action"][-1] - data["action"][0]).max() > 0.05
    run = tmp_path / "run"
    assert cli(["train", "--policy", "diffusion", "--dataset", str(out), "--out", str(run),
                "--preset", "tiny", "train.steps=5", "train.checkpoint_every=5", "train.batch_size=8"]) == 0
    assert any(run.rglob("*.safetensors"))
