"""EpisodeRecorder (the recorder's core, no ROS): lifecycle, metadata, interventions, queue
bound accounting, config validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from rosmind.episodes import read_episode
from rosmind.errors import SpecError
from rosmind.recording import EpisodeRecorder, RecorderConfig, TopicInfo, qos_dict, typestore

pytestmark = pytest.mark.unit


def _cdr(k: int) -> bytes:
    T = typestore().types
    msg = T["std_msgs/msg/String"](data=f"m{k}")
    return bytes(typestore().serialize_cdr(msg, "std_msgs/msg/String"))


@pytest.fixture
def recorder(tmp_path):
    clock = {"ns": 5_000}
    rec = EpisodeRecorder(RecorderConfig(out_dir=str(tmp_path / "eps"), task="stack", robot="panda"),
                          lambda: clock["ns"], log=lambda m: pytest.fail(m))
    rec.add_topic(TopicInfo("/chatter", "std_msgs/msg/String", [qos_dict()], "RIHS01_x"))
    try:
        yield rec, clock
    finally:
        rec.close()


def test_lifecycle_metadata_and_interventions(recorder):
    rec, clock = recorder
    rec.submit("/chatter", _cdr(0), 1)  # not recording: ignored
    rec.note_interventions(7)  # safety's running total before the episode
    ok, where = rec.start()
    assert ok and rec.recording and not rec.start()[0]
    rec.update_metadata({"instruction": "stack the cubes", "operator": "bob", "shift": 2})
    for k in range(25):
        rec.submit("/chatter", _cdr(k), 1_000 + k)
    rec.note_interventions(10)
    clock["ns"] = 9_000
    ok, msg = rec.stop()
    assert ok and "25 messages" in msg
    assert rec.mark_success()[0]  # after stop: amends the last episode
    info = json.loads((rec.last_dir / "episode.json").read_text())
    assert info["task"] == "stack" and info["instruction"] == "stack the cubes"
    assert info["operator"] == "bob" and info["extra"] == {"shift": 2}
    assert info["interventions"] == 3 and info["success"] is True
    assert info["start_ns"] == 5_000 and info["stop_ns"] == 9_000 and info["status"] == "stopped"
    meta = yaml.safe_load((rec.last_dir / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["message_count"] == 25 and meta["duration"]["nanoseconds"] == 24
    ep = read_episode(rec.last_dir)
    assert ep.complete and ep.topics["/chatter"].log_ns == list(range(1_000, 1_025))


def test_discard_and_empty_episodes_leave_nothing(recorder, tmp_path):
    rec, _ = recorder
    assert not rec.stop()[0] and not rec.discard()[0]  # nothing open
    rec.start()
    rec.submit("/chatter", _cdr(0), 1)
    first = rec.last_dir
    assert rec.discard()[0] and not first.exists()
    rec.start()
    empty = rec.last_dir
    ok, msg = rec.stop()
    assert ok and "no messages" in msg and not empty.exists()


def test_queue_bound_counts_dropped_messages(tmp_path):
    cfg = RecorderConfig(out_dir=str(tmp_path), max_pending_mb=1e-4)  # ~100 bytes
    rec = EpisodeRecorder(cfg, lambda: 0)
    rec.add_topic(TopicInfo("/chatter", "std_msgs/msg/String"))
    try:
        rec.start()
        rec.submit("/chatter", _cdr(1), 1)
        rec.submit("/chatter", b"\0" * 4000, 2)  # larger than the bound: dropped, counted
        rec.stop()
        info = json.loads((rec.last_dir / "episode.json").read_text())
        assert info["dropped"] == {"/chatter": 1} and info["message_counts"] == {"/chatter": 1}
    finally:
        rec.close()


@pytest.mark.parametrize("field,value,match", [("flush_period_s", 2.0, "crash safety"),
                                               ("qos_depth", 0, "qos_depth"), ("topics", (), "topics")])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(SpecError, match=match):
        RecorderConfig(**{field: value})


def test_replay_commands_choose_the_source_and_keep_timing(tmp_path):
    from rosmind.cli import main as cli
    from rosmind.episodes import replay_commands
    from rosmind.errors import DatasetError, UserError
    from rosmind.recording import EpisodeInfo, EpisodeWriter

    T = typestore().types
    floats = T["std_msgs/msg/Float64MultiArray"](layout=T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0),
                                                 data=np.zeros(8))
    raw = bytes(typestore().serialize_cdr(floats, floats.__msgtype__))
    w = EpisodeWriter(tmp_path / "ep", EpisodeInfo(name="ep"))
    for topic in ("/forward_position_controller/commands", "/safety/commands", "/chatter"):
        w.add_topic(TopicInfo(topic, "std_msgs/msg/String" if topic == "/chatter" else floats.__msgtype__))
    for k in range(5):
        w.write("/safety/commands", raw, 1_000_000_000 + k * 100_000_000)
        w.write("/forward_position_controller/commands", raw, 1_010_000_000 + k * 100_000_000)
        w.write("/chatter", _cdr(k), 1_000_000_000 + k)
    w.close()
    out = replay_commands(tmp_path / "ep")
    assert [c.kind for c in out] == ["commands"] * 5
    assert [round(c.t_s, 6) for c in out] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert len(replay_commands(tmp_path / "ep", "inputs")) == 5
    with pytest.raises(SpecError, match="replay source"):
        replay_commands(tmp_path / "ep", "both")
    w = EpisodeWriter(tmp_path / "quiet", EpisodeInfo(name="quiet"))
    w.add_topic(TopicInfo("/chatter", "std_msgs/msg/String"))
    w.write("/chatter", _cdr(0), 1)
    w.close()
    with pytest.raises(DatasetError, match="no recorded commands"):
        replay_commands(tmp_path / "quiet")
    assert isinstance(DatasetError("x"), UserError)
    assert cli(["replay", str(tmp_path / "ep"), "speed=2"]) == 2  # not name:=value
    assert cli(["replay", str(tmp_path)]) == 2  # two episodes: which one?


_FULL_DISK_CHILD = r"""
import json, resource, signal, sys, time
from rosmind.recording import EpisodeRecorder, RecorderConfig, TopicInfo, qos_dict, typestore
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
T = typestore()
cfg = RecorderConfig(out_dir=sys.argv[1], robot="panda", flush_period_s=0.05, chunk_size_mb=0.05)
logs = []
rec = EpisodeRecorder(cfg, time.time_ns, log=logs.append)
rec.add_topic(TopicInfo("/chatter", "std_msgs/msg/String", [qos_dict()], "RIHS01_x"))
ok, where = rec.start()
flushed = []  # messages submitted before a flush period had passed since them: on disk
sent = 0
while rec.recording and sent < 5000:
    rec.submit("/chatter", bytes(T.serialize_cdr(T.types["std_msgs/msg/String"](data=f"{sent:06d}" + "x" * 2000),
                                                 "std_msgs/msg/String")), sent)
    sent += 1
    time.sleep(0.001)
time.sleep(0.5)
status = rec.status()
print(json.dumps({"dir": where, "sent": sent, "recording": rec.recording, "status": status, "logs": logs,
                  "stop": list(rec.stop())}))
rec.close()
"""


def _run_full_disk_child(tmp_path, how: str, limit: int) -> tuple[dict, str]:
    """Run the recorder child until storage fails; returns its report and where the episodes are
    (readable after the child is gone)."""
    import os
    import shutil
    import subprocess
    import sys

    if how == "efbig":  # the episode file cannot grow past ``limit``
        r = subprocess.run([sys.executable, "-c", _FULL_DISK_CHILD.replace("FILE_LIMIT", str(limit)), str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(r.stdout.strip().splitlines()[-1]), str(tmp_path)
    # A real full disk: a tmpfs of ``limit`` bytes, mounted in a private mount namespace (root,
    # or an unprivileged user namespace), so every write past it fails with ENOSPC. The mount
    # goes with the namespace: the episodes are copied out before it ends.
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    kept.mkdir()
    child = _FULL_DISK_CHILD.replace("resource.setrlimit", "# resource.setrlimit")
    script = (f"mount -t tmpfs -o size={limit} rosmind_full_disk {disk} || exit 77; "
              f'"{sys.executable}" -c "$CHILD" {disk}; rc=$?; cp -a {disk}/. {kept}/; exit $rc')
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1): cannot mount a small tmpfs for a real ENOSPC")
    for ns in (["--mount"], ["--user", "--map-root-user", "--mount"]):
        r = subprocess.run([unshare, *ns, "sh", "-c", script], env={**os.environ, "CHILD": child},
                           capture_output=True, text=True, timeout=120)
        if r.returncode not in (1, 77):  # 1: unshare itself refused; 77: the mount was refused
            break
    else:
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {r.stderr.strip()[-300:]}")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["dir"] = str(kept / out["dir"].split("/")[-1])
    return out, str(kept)


@pytest.mark.parametrize("how", ["efbig", "enospc"])
def test_a_full_disk_ends_the_episode_cleanly_and_keeps_what_was_written(tmp_path, how):
    """Storage failing mid-episode: with ``efbig`` the episode file cannot grow past 400 kB
    (RLIMIT_FSIZE), with ``enospc`` the disk itself is a 400 kB tmpfs that fills up (a real
    ENOSPC). The recorder stops recording at once with one clear message, stays up, marks the
    episode, and everything written before the failure reads back as a prefix of what was sent."""
    from pathlib import Path

    limit = 400_000
    out, root = _run_full_disk_child(tmp_path, how, limit)
    assert not out["recording"] and out["sent"] < 5000  # stopped by the failure, not by the loop's end
    reason = "File too large" if how == "efbig" else "No space left on device"
    assert len(out["logs"]) == 1 and f"storage failed ({reason})" in out["logs"][0], out["logs"]
    assert out["status"]["error"] == out["logs"][0] and out["stop"][0] is False  # already ended
    info = json.loads((Path(root) / out["dir"].split("/")[-1] / "episode.json").read_text())
    assert info["status"] == "storage_failed"
    ep = read_episode(out["dir"])
    assert not ep.complete
    got = [bytes(b)[8:14].decode() for b in ep.topics["/chatter"].data]  # CDR header + length, then the text
    assert got == [f"{k:06d}" for k in range(len(got))]  # a prefix, in order, nothing skipped
    size = sum(len(b) for b in ep.topics["/chatter"].data)
    print(f"full disk ({how}): {len(got)} of {out['sent']} messages readable, {size} bytes of {limit}")
    assert size > 0.6 * limit, (size, limit)  # at most the last chunk (50 kB), footer and metadata lost
