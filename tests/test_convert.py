"""``rosmind convert`` on hand-built episodes (written with the recorder's own EpisodeWriter,
CDR from the rosbags Jazzy type store; no ROS): time sync and frame accounting computed by
hand, action hold semantics, unknown topics, truncated and corrupt files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rosmind.cli import main as cli
from rosmind.convert import ConversionSpec, convert, frame_report, sync_indices
from rosmind.dataset import ReplayBuffer
from rosmind.episodes import find_episodes, read_episode
from rosmind.errors import DatasetError, UserError
from rosmind.recording import EpisodeInfo, EpisodeWriter, TopicInfo, typestore
from rosmind.spec import load_spec

pytestmark = pytest.mark.unit

NAMES = load_spec("panda").joint_names
T = typestore().types
MS = 1_000_000
T0 = 1_000_000_000_000  # 1000 s: a nonzero header clock


def _time(ns: int):
    return T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _header(ns: int):
    return T["std_msgs/msg/Header"](stamp=_time(ns), frame_id="base")


def joint_state(ns: int, q) -> object:
    q = np.asarray(q, dtype=np.float64)
    return T["sensor_msgs/msg/JointState"](header=_header(ns), name=list(NAMES), position=q,
                                           velocity=q * 0.0, effort=np.zeros(0))


def pose(ns: int, x: float) -> object:
    p = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=x, y=0.0, z=0.0),
                                    orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
    return T["geometry_msgs/msg/PoseStamped"](header=_header(ns), pose=p)


def image(ns: int, value: int, h: int = 4, w: int = 5) -> object:
    a = np.full((h, w, 3), value, dtype=np.uint8)
    return T["sensor_msgs/msg/Image"](header=_header(ns), height=h, width=w, encoding="rgb8",
                                      is_bigendian=0, step=3 * w, data=a.ravel())


def command(q) -> object:
    layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return T["std_msgs/msg/Float64MultiArray"](layout=layout, data=np.asarray(q, dtype=np.float64))


def trajectory(ns: int, points, dt_ns: int) -> object:
    pts = [T["trajectory_msgs/msg/JointTrajectoryPoint"](
        positions=np.asarray(p, dtype=np.float64), velocities=np.zeros(0), accelerations=np.zeros(0),
        effort=np.zeros(0), time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=i * dt_ns))
        for i, p in enumerate(points)]
    return T["trajectory_msgs/msg/JointTrajectory"](header=_header(ns), joint_names=list(NAMES), points=pts)


def write_episode(root: Path, name: str, messages: list[tuple[str, object, int]], **info) -> Path:
    """messages: (topic, rosbags message, receive ns)."""
    w = EpisodeWriter(root / name, EpisodeInfo(name=name, robot="panda", **info))
    for topic, msg, t in messages:
        if topic not in w.channels:
            w.add_topic(TopicInfo(topic, msg.__msgtype__))
        w.write(topic, typestore().serialize_cdr(msg, msg.__msgtype__), t)
    w.close()
    return root / name


def base_episode(n: int = 20, period_ms: int = 50, latency_ms: int = 3) -> list:
    """n joint_states ticks (stamped T0 + k*period, received latency later), ee_pose every tick,
    a camera every 3rd tick, a command answering every tick (received 1 ms after its tick)."""
    msgs = []
    for k in range(n):
        t = T0 + k * period_ms * MS
        q = np.full(8, 0.01 * k)
        msgs.append(("/joint_states", joint_state(t, q), t + latency_ms * MS))
        msgs.append(("/ee_pose", pose(t, float(k)), t + latency_ms * MS))
        if k % 3 == 0:
            msgs.append(("/camera/wrist/image_raw", image(t, k), t + latency_ms * MS))
        msgs.append(("/forward_position_controller/commands", command(q + 0.5), t + (latency_ms + 1) * MS))
    return msgs


def test_sync_policies_and_frame_report_by_hand():
    msg_t = np.array([0, 100, 200, 300]) * MS
    ticks = np.array([0, 50, 90, 160, 300, 400]) * MS
    prev = sync_indices(msg_t, ticks, "previous")
    near = sync_indices(msg_t, ticks, "nearest")
    assert prev.tolist() == [0, 0, 0, 1, 3, 3]
    assert near.tolist() == [0, 0, 1, 2, 3, 3]  # 50 ms is a tie: the earlier message
    rep = frame_report(prev, msg_t, ticks, max_skew_ms=60)
    assert rep == {"messages": 4, "used": 3, "dropped": 1, "duplicated": 3, "max_skew_ms": 100.0,
                   "over_skew": 2}  # skews 0, 50, 90, 60, 0, 100 ms


def test_round_trip_counts_keys_and_actions(tmp_path):
    write_episode(tmp_path / "eps", "ep0", base_episode(), task="reach", success=True)
    out = tmp_path / "d.zarr"
    report = convert(tmp_path / "eps", out)
    buf = ReplayBuffer.open(out)
    ep = buf.get_episode(0)
    assert set(buf.keys()) == {"joint_pos", "joint_vel", "ee_pose", "camera/wrist/rgb", "action"}
    assert ep["joint_pos"].shape == (20, 8) and ep["camera/wrist/rgb"].shape == (20, 4, 5, 3)
    np.testing.assert_allclose(ep["joint_pos"][:, 0], 0.01 * np.arange(20))
    np.testing.assert_allclose(ep["ee_pose"][:, 0], np.arange(20))
    # The command answering tick k (arriving 1 ms after it) is action k.
    np.testing.assert_allclose(ep["action"], ep["joint_pos"] + 0.5)
    # Camera every 3rd tick (0, 3, ..., 18: 7 frames), nearest sync: each frame serves the
    # ticks around it; 20 ticks from 7 frames = 13 duplicates, none dropped.
    r = report["episodes"][0]
    assert r["topics"]["/camera/wrist/image_raw"] == {"messages": 7, "used": 7, "dropped": 0,
                                                      "duplicated": 13, "max_skew_ms": 50.0}
    assert r["topics"]["/joint_states"]["dropped"] == 0 and r["ticks"] == 20
    assert r["clock_offset_ms"] == -3.0
    assert r["action"]["commands"] == 20 and r["action"]["dropped"] == 0
    assert buf.episode_meta("success").tolist() == [1]


def test_trajectory_chunks_hold_points_and_previous_sync(tmp_path):
    msgs = [m for m in base_episode(n=10) if m[0] != "/forward_position_controller/commands"]
    chunk = np.stack([np.full(8, 1.0 + i) for i in range(3)])  # points at tick 2, 3, 4
    msgs.append(("/joint_trajectory", trajectory(T0 + 2 * 50 * MS, chunk, 50 * MS), T0 + 101 * MS))
    write_episode(tmp_path / "eps", "ep0", msgs)
    report = convert(tmp_path / "eps", tmp_path / "d.zarr", ConversionSpec(sync="previous"))
    ep = ReplayBuffer.open(tmp_path / "d.zarr").get_episode(0)
    a = ep["action"][:, 0]
    np.testing.assert_allclose(a[:2], ep["joint_pos"][:2, 0])  # before the first command
    np.testing.assert_allclose(a[2:], [1, 2, 3, 3, 3, 3, 3, 3])  # then held on the last point
    assert report["episodes"][0]["action"]["ticks_before_first_command"] == 2
    # previous sync: the camera frame of tick 0 serves ticks 0..2 (no look-ahead).
    np.testing.assert_array_equal(ep["camera/wrist/rgb"][:, 0, 0, 0], [0, 0, 0, 3, 3, 3, 6, 6, 6, 9])


def test_rate_resamples_the_clock(tmp_path):
    write_episode(tmp_path / "eps", "ep0", base_episode(n=21))
    report = convert(tmp_path / "eps", tmp_path / "d.zarr", ConversionSpec(rate_hz=10.0))
    r = report["episodes"][0]
    assert r["ticks"] == 11  # 1 s of 20 Hz stamps at 10 Hz
    assert r["topics"]["/joint_states"]["dropped"] == 10


def test_unknown_topics_in_spec_are_named(tmp_path):
    write_episode(tmp_path / "eps", "ep0", base_episode(n=5))
    spec = tmp_path / "conv.yaml"
    spec.write_text("keys:\n  joint_pos: {topic: joint_states, field: position}\n"
                    "  force: {topic: wrist_ft, field: wrench}\naction: [teleop/cmd]\n")
    with pytest.raises(UserError, match=r"wrist_ft \(key force\).*teleop/cmd \(action\)"):
        convert(tmp_path / "eps", tmp_path / "d.zarr", ConversionSpec.load(spec))
    spec.write_text("keys:\n  joint_pos: {topic: joint_states, field: colour}\n")
    with pytest.raises(UserError, match="colour"):
        ConversionSpec.load(spec)
    spec.write_text("sink: nearest\n")
    with pytest.raises(UserError, match="sink"):
        ConversionSpec.load(spec)
    assert cli(["convert", str(tmp_path / "eps"), "--out", str(tmp_path / "x.zarr"),
                "--spec", str(spec)]) == 2


def test_truncated_and_corrupt_episodes_convert_what_is_readable(tmp_path, capsys):
    root = tmp_path / "eps"
    # Chunks of ~1 frame each, so a cut in the middle loses only the last chunk.
    d = root / "ep_cut"
    w = EpisodeWriter(d, EpisodeInfo(name="ep_cut", robot="panda"), chunk_size=256)
    for topic, msg, t in base_episode(n=40):
        if topic not in w.channels:
            w.add_topic(TopicInfo(topic, msg.__msgtype__))
        w.write(topic, typestore().serialize_cdr(msg, msg.__msgtype__), t)
    w.flush()
    mcap = next(d.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) * 2 // 3])  # no footer, last chunk cut
    write_episode(root, "ep_ok", base_episode(n=10))
    bad = root / "ep_bad"
    bad.mkdir()
    (bad / "ep_bad_0.mcap").write_bytes(b"not an mcap file at all")
    ep = read_episode(d)
    assert not ep.complete and ep.problems
    n_js = len(ep.topics["/joint_states"].data)
    assert 15 <= n_js < 40
    assert cli(["convert", str(root), "--out", str(tmp_path / "d.zarr"),
                "--report", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "ep_cut" in out and "(truncated)" in out and "skipped ep_bad" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert [e["episode"] for e in report["episodes"]] == ["ep_cut", "ep_ok"]
    assert report["episodes"][0]["ticks"] == n_js
    buf = ReplayBuffer.open(tmp_path / "d.zarr")
    assert buf.episode_ends.tolist() == [n_js, n_js + 10]


def test_missing_inputs_raise_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such episode directory"):
        find_episodes(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no episodes"):
        find_episodes(tmp_path / "empty")


def test_episode_opens_with_independent_readers(tmp_path):
    """rosbags' rosbag2 reader (metadata.yaml v9 + MCAP storage, like `ros2 bag info`) and
    the mcap library's indexed reader (summary, as Foxglove seeks) both read an episode."""
    from mcap.reader import make_reader
    from rosbags.rosbag2 import Reader

    d = write_episode(tmp_path, "ep", base_episode(n=6), task="reach")
    with Reader(d) as bag:
        counts = {c.topic: c.msgcount for c in bag.connections}
        assert counts == {"/joint_states": 6, "/ee_pose": 6, "/camera/wrist/image_raw": 2,
                          "/forward_position_controller/commands": 6}
        assert bag.message_count == 20
        conn = next(c for c in bag.connections if c.topic == "/joint_states")
        _, _, raw = next(m for m in bag.messages(connections=[conn]))
        assert typestore().deserialize_cdr(raw, conn.msgtype).position[0] == 0.0
    with open(next(d.glob("*.mcap")), "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics.message_count == 20
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        assert reader.get_header().profile == "ros2"


def test_an_episode_that_does_not_fit_is_skipped_whole(tmp_path):
    write_episode(tmp_path / "eps", "ep0", base_episode(n=6))
    other = [(t, image(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, 1, h=8, w=8), r)
             if t.startswith("/camera") else (t, m, r) for t, m, r in base_episode(n=9)]
    write_episode(tmp_path / "eps", "ep1", other)
    report = convert(tmp_path / "eps", tmp_path / "d.zarr")
    assert [s["episode"] for s in report["skipped"]] == ["ep1"]
    assert "camera/wrist/rgb" in report["skipped"][0]["why"]
    buf = ReplayBuffer.open(tmp_path / "d.zarr")  # still consistent: nothing of ep1 appended
    assert buf.episode_ends.tolist() == [6] and buf.array("joint_pos").shape[0] == 6


def test_large_images_are_decoded_only_when_used(tmp_path):
    """Frames over 64 KB take their stamps straight from the CDR and decode on use; the result
    is the same as for small frames."""
    msgs = [m for m in base_episode(n=7) if not m[0].startswith("/camera")]
    for k in range(0, 7, 2):  # 128x192 rgb8 = 73,728 bytes a frame
        t = T0 + k * 50 * MS
        msgs.append(("/camera/wrist/image_raw", image(t, 10 * k, h=128, w=192), t + 3 * MS))
    write_episode(tmp_path / "eps", "ep0", msgs)
    report = convert(tmp_path / "eps", tmp_path / "d.zarr", ConversionSpec(sync="previous"))
    rgb = ReplayBuffer.open(tmp_path / "d.zarr").get_episode(0)["camera/wrist/rgb"]
    assert rgb.shape == (7, 128, 192, 3)
    np.testing.assert_array_equal(rgb[:, 5, 7, 0], [0, 0, 20, 20, 40, 40, 60])
    assert report["episodes"][0]["topics"]["/camera/wrist/image_raw"]["duplicated"] == 3
