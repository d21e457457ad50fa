"""recorder_node as a real process over DDS, fed by a test-side publisher node.

Round trip (publish -> record -> metadata.yaml/episode.json -> convert: counts match what was
published), the episode lifecycle services, and crash safety (SIGKILL mid-episode: the file
reads back with at most the last ~second missing).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from geometry_msgs.msg import PoseStamped, WrenchStamped
from procs import stop_process
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from rosmind.convert import convert
from rosmind.dataset import ReplayBuffer
from rosmind.episodes import find_episodes, read_episode
from rosmind.spec import load_spec
from rosmind_ros import conversions as cv

pytestmark = pytest.mark.ros

NAMES = load_spec("panda").joint_names
TOPICS = ("/joint_states", "/ee_pose", "/wrench", "/camera/wrist/image_raw",
          "/forward_position_controller/commands")


class Publisher:
    """The test side: sensor/command publishers, recorder service clients, status listener."""

    def __init__(self):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = n = rclpy.create_node("fake_graph", context=self.ctx)
        self.exec = SingleThreadedExecutor(context=self.ctx)
        self.exec.add_node(n)
        self.pubs = {"/joint_states": n.create_publisher(JointState, "joint_states", 10),
                     "/ee_pose": n.create_publisher(PoseStamped, "ee_pose", 10),
                     "/wrench": n.create_publisher(WrenchStamped, "wrench", 10),
                     "/camera/wrist/image_raw": n.create_publisher(Image, "camera/wrist/image_raw", 10),
                     "/forward_position_controller/commands":
                         n.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)}
        self.meta = n.create_publisher(String, "recorder/metadata", 10)
        self.status: dict = {}
        n.create_subscription(String, "recorder/status", lambda m: setattr(self, "status", json.loads(m.data)), 10)
        self.clients = {s: n.create_client(Trigger, f"recorder/{s}")
                        for s in ("start", "stop", "discard", "mark_success")}

    def spin_until(self, pred, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            self.exec.spin_once(timeout_sec=0.02)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.exec.spin_once(timeout_sec=0.01)

    def call(self, service: str) -> Trigger.Response:
        cli = self.clients[service]
        self.spin_until(cli.service_is_ready, 20.0, f"recorder/{service}")
        fut = cli.call_async(Trigger.Request())
        self.spin_until(fut.done, 30.0, f"recorder/{service} answer")
        return fut.result()

    def wait_recorder_ready(self, topics=TOPICS) -> None:
        """Until the recorder subscribed every topic and each publisher matched it."""
        self.spin_until(lambda: set(topics) <= set(self.status.get("topics", [])), 20.0,
                        f"recorder subscribed to {topics} (status {self.status})")
        self.spin_until(lambda: all(self.pubs[t].get_subscription_count() >= 1 for t in topics),
                        10.0, "publishers matched")

    def publish_tick(self, k: int, t: float, image_every: int = 5) -> dict[str, int]:
        """Tick k stamped t; returns how many messages went to each topic."""
        q = np.full(8, 0.001 * k)
        sent = {t_: 0 for t_ in TOPICS}
        for topic, msg in (("/ee_pose", cv.pose_stamped([k, 0, 0, 0, 0, 0, 1], t, "base")),
                           ("/wrench", cv.wrench_stamped(np.full(6, float(k)), t, "ft")),
                           ("/joint_states", cv.joint_state(NAMES, q, q * 0, q * 0, t))):
            self.pubs[topic].publish(msg)
            sent[topic] += 1
        if k % image_every == 0:
            img = np.full((48, 64, 3), k % 256, dtype=np.uint8)
            self.pubs["/camera/wrist/image_raw"].publish(cv.image(img, "rgb8", t, "wrist"))
            sent["/camera/wrist/image_raw"] += 1
        self.pubs["/forward_position_controller/commands"].publish(cv.float_array(q + 0.25))
        sent["/forward_position_controller/commands"] += 1
        return sent

    def close(self) -> None:
        self.exec.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def _recorder(ros_env, out_dir: Path, *params: str) -> subprocess.Popen:
    args = ["-p", f"out_dir:={out_dir}", "-p", "robot:=panda", "-p", "task:=reach"]
    for p in params:
        args += ["-p", p]
    return subprocess.Popen([sys.executable, "-m", "rosmind_ros.recorder_node", "--ros-args", *args],
                            env=ros_env)



@pytest.fixture
def graph(ros_env, tmp_path):
    procs: list[subprocess.Popen] = []
    pub = Publisher()
    try:
        yield pub, lambda *p: procs.append(_recorder(ros_env, tmp_path / "episodes", *p)) or procs[-1]
    finally:
        for p in procs:
            stop_process(p)
        pub.close()


def test_record_metadata_and_convert_round_trip(graph, tmp_path):
    pub, start_recorder = graph
    rec = start_recorder()
    pub.spin_until(lambda: pub.status, 30.0, "recorder/status")
    pub.publish_tick(0, time.time())  # the recorder finds topics with publishers on the graph
    pub.wait_recorder_ready()

    # An episode that is thrown away.
    assert pub.call("start").success
    assert not pub.call("start").success  # one at a time
    pub.publish_tick(0, time.time())
    r = pub.call("discard")
    assert r.success and not Path(r.message.split()[-1]).exists()

    r = pub.call("start")
    assert r.success, r.message
    ep_dir = Path(r.message)
    pub.meta.publish(String(data=json.dumps({"instruction": "push the cube", "operator": "alice"})))
    sent = dict.fromkeys(TOPICS, 0)
    n, period = 100, 0.02
    t0 = time.time()
    for k in range(n):  # stamped when sent (as a driver stamps its samples)
        for topic, c in pub.publish_tick(k, time.time()).items():
            sent[topic] += c
        pub.spin_until(lambda k=k: time.time() >= t0 + (k + 1) * period, 5.0, "tick")
    pub.spin(0.5)  # let the last messages arrive before stopping
    assert pub.call("mark_success").success
    r = pub.call("stop")
    assert r.success, r.message
    stop_process(rec)

    meta = yaml.safe_load((ep_dir / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == "mcap"
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    for topic in TOPICS:
        assert counts[topic] == sent[topic], (topic, counts, sent)
    tm = {t["topic_metadata"]["name"]: t["topic_metadata"] for t in meta["topics_with_message_count"]}
    assert tm["/joint_states"]["type_description_hash"].startswith("RIHS01_")
    assert tm["/joint_states"]["offered_qos_profiles"][0]["reliability"] == "reliable"
    assert meta["relative_file_paths"] == [f"{ep_dir.name}_0.mcap"]
    info = json.loads((ep_dir / "episode.json").read_text())
    assert info["instruction"] == "push the cube" and info["operator"] == "alice"
    assert info["task"] == "reach" and info["success"] is True and info["status"] == "stopped"
    assert meta["custom_data"]["operator"] == "alice"

    ep = read_episode(ep_dir)
    assert ep.complete and not ep.problems
    assert "MSG: std_msgs/Header" in ep.topics["/joint_states"].schema  # Foxglove decodes with it

    report = convert(find_episodes(tmp_path / "episodes")[0], tmp_path / "d.zarr")
    r0 = report["episodes"][0]
    assert r0["ticks"] == n
    assert r0["topics"]["/joint_states"]["dropped"] == 0
    assert r0["topics"]["/camera/wrist/image_raw"]["used"] == sent["/camera/wrist/image_raw"]
    buf = ReplayBuffer.open(tmp_path / "d.zarr")
    data = buf.get_episode(0)
    assert data["camera/wrist/rgb"].shape == (n, 48, 64, 3)
    np.testing.assert_allclose(data["joint_pos"][:, 0], 0.001 * np.arange(n))
    np.testing.assert_allclose(data["action"], data["joint_pos"] + 0.25)  # command answering tick k


def test_sigkill_leaves_a_readable_episode(graph, tmp_path):
    pub, start_recorder = graph
    rec = start_recorder("flush_period_s:=0.5")
    pub.spin_until(lambda: pub.status, 30.0, "recorder/status")
    topics = ("/joint_states", "/camera/wrist/image_raw")
    pub.publish_tick(0, time.time(), image_every=1)
    pub.wait_recorder_ready(topics)
    r = pub.call("start")
    assert r.success
    ep_dir = Path(r.message)
    published: list[float] = []  # wall time of each joint_states message
    t0 = time.time()
    k = 0
    while time.time() - t0 < 3.0:
        pub.publish_tick(k, time.time(), image_every=3)
        published.append(time.time())
        k += 1
        pub.spin_until(lambda k=k: time.time() >= t0 + k * 0.01, 5.0, "tick")
    killed_at = time.time()
    rec.send_signal(signal.SIGKILL)
    rec.wait(timeout=10)

    ep = read_episode(ep_dir)
    assert not ep.complete and ep.problems
    got = len(ep.topics["/joint_states"].data)
    before = sum(t <= killed_at - 1.0 for t in published)
    assert before <= got <= len(published), (before, got, len(published))
    meta = yaml.safe_load((ep_dir / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["message_count"] > 0  # rewritten while recording
    report = convert(ep_dir, tmp_path / "d.zarr")
    assert report["episodes"][0]["ticks"] == got and not report["episodes"][0]["complete"]
