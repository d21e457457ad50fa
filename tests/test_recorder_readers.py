"""Recordings every reader reads completely: the sim pick_place graph with cameras, recorded
for three back-to-back lockstep episodes (resets between them), read with rosbags' AnyReader
(the directory, as ``ros2 bag``-style tools open it, and the bare MCAP file) and the ``mcap``
reader; every count must equal metadata.yaml's, from the first episode on, and every episode
must convert with the same command-to-tick alignment."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from procs import stop_process
from test_recorder_sim import _wait_for_line

from rosmind.convert import convert
from rosmind.dataset import ReplayBuffer
from rosmind.episodes import find_episodes

pytestmark = pytest.mark.ros

EPISODES = 3
SEED = 1000  # the launch file's default seed of episode 0


def _counts_anyreader(path: Path) -> Counter:
    from rosbags.highlevel import AnyReader

    with AnyReader([path]) as r:
        return Counter(c.topic for c, _, _ in r.messages(connections=r.connections))


def _counts_mcap(path: Path) -> Counter:
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        return Counter(ch.topic for _, ch, _ in make_reader(f).iter_messages())


def test_every_reader_reads_every_message_of_every_episode(ros_env, repo, tmp_path):
    out = tmp_path / "episodes"
    rec = subprocess.Popen([sys.executable, "-m", "rosmind_ros.recorder_node", "--ros-args",
                            "-p", f"out_dir:={out}", "-p", "auto_start:=true", "-p", "stop_on_outcome:=true",
                            "-p", "use_sim_time:=true", "-p", "task:=pick_place"], env=ros_env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    launch = None
    try:
        _wait_for_line(rec, "recording [", 60.0)
        launch = subprocess.run([sys.executable, "-m", "rosmind.cli", "launch",
                                 str(repo / "launch/sim_pick_place.launch.yaml"), f"episodes:={EPISODES}",
                                 "cameras:=true", "wait_for_recorder:=true", "min_subscribers:=3"],
                                env=ros_env, cwd=repo, capture_output=True, text=True, timeout=300)
        assert launch.returncode == 0, launch.stdout[-3000:] + launch.stderr[-2000:]
    finally:
        stop_process(rec)
    ticks = [int(ln.split("ticks")[1].split()[0]) for ln in launch.stdout.splitlines() if " seed " in ln
             and "ticks" in ln and ln.split("] ", 1)[-1].startswith("episode ")]
    assert len(ticks) == EPISODES, launch.stdout[-3000:]
    eps = [d for d in find_episodes(out)
           if yaml.safe_load((d / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["message_count"]]
    assert len(eps) >= EPISODES, [d.name for d in eps]
    for i, d in enumerate(eps[:EPISODES]):
        info = json.loads((d / "episode.json").read_text())
        if i > 0:  # episode 0 opened before the graph was up; the later ones once the sensors matched
            # (a command topic is now and then reported unmatched at a later episode's start, in
            # about 1 of 3 fresh-clone runs on 2026-12-04: the recorder's DDS graph learning of the
            # policy's and safety's participants seconds late. Since 2026-12-06 robot_node's
            # wait_for_recorder also compares the recorder's matched publishers with its own, and
            # 13 runs in a row had none; the tolerance stays for the discovery of later episodes)
            sensors = [t for t in info["extra"]["unmatched_at_start"]
                       if t in ("/joint_states", "/clock") or t.startswith("/camera/")]
            assert sensors == [], info
        meta = yaml.safe_load((d / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        want = Counter({t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]})
        mcap_file = d / meta["relative_file_paths"][0]
        assert _counts_mcap(mcap_file) == want, f"episode {i}: mcap reader"
        assert _counts_anyreader(d) == want, f"episode {i}: rosbags AnyReader on the directory"
        assert _counts_anyreader(mcap_file) == want, f"episode {i}: rosbags AnyReader on the file"
        unmatched = set(info["extra"]["unmatched_at_start"])
        for t in meta["topics_with_message_count"]:  # QoS learned in discovery, in both places
            # (a topic nobody publishes, e.g. teleop's, has no offer; nor has a command topic the
            # recorder itself reported unmatched at the episode's start: the open item above)
            if t["message_count"] and t["topic_metadata"]["name"] not in unmatched:
                assert t["topic_metadata"]["offered_qos_profiles"], f"episode {i}: {t['topic_metadata']['name']}"
        # Every tick and every camera frame (every 2nd tick at 10 Hz) is in the episode.
        assert want["/joint_states"] >= ticks[i], (i, want["/joint_states"], ticks[i])
        for cam in ("wrist", "scene"):
            assert want[f"/camera/{cam}/image_raw"] >= (ticks[i] + 1) // 2, (i, cam, want)
        report = convert(d, tmp_path / f"ep{i}.zarr")
        r = report["episodes"][0]
        assert r["ticks"] == ticks[i]
        data = ReplayBuffer.open(tmp_path / f"ep{i}.zarr").get_episode(0)
        # Tick for tick, the converted episode is the in-process episode of the same seed: the
        # observation of tick k and the command that answered it (what the robot then executed),
        # in the later episodes as in the first. (action[k] vs joint_pos[k+1] is no test of
        # alignment: on seeds whose cube needs a large wrist turn, joint 7 itself lags and
        # overshoots its setpoint by up to 0.2 rad in PyBullet, in process too.)
        q, a = _direct_episode(SEED + i)
        assert len(q) == ticks[i]
        np.testing.assert_allclose(data["joint_pos"], q, atol=1e-9, err_msg=f"episode {i}: joint_pos")
        off = np.flatnonzero(np.abs(data["action"] - a).max(axis=1) >= 1e-5)
        # The open item above, at the start of an episode that opened with topics unmatched: the
        # first command messages can be missed until discovery completes, and convert then holds
        # the previous command for those ticks (seen once in ~10 runs, episode 0, on 2026-12-06).
        # Only such a prefix of a few ticks is tolerated; every later tick must be exact.
        prefix = bool(unmatched) and len(off) <= 10 and np.array_equal(off, np.arange(len(off)))
        assert len(off) == 0 or prefix, (f"episode {i}: converted actions differ from the executed setpoints "
                                         f"at ticks {off.tolist()[:20]} (unmatched at start: {sorted(unmatched)}; "
                                         f"counts {dict(want)}; convert's action report {r['action']}; "
                                         f"largest difference {np.abs(data['action'] - a).max():.4g})")


def _direct_episode(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(joint_pos [T, D], setpoint written at each tick [T, D]) of the expert, in process."""
    from rosmind.registry import POLICIES
    from rosmind.sim.robots import make_sim
    from rosmind.sim.rollout import run_episode

    entry = POLICIES.get("expert")
    qs, acts = [], []
    with make_sim("panda", "pick_place") as sim:
        run_episode(sim, entry.factory(entry.config()), seed,
                    on_tick=lambda t, o, a: (qs.append(o["joint_pos"].copy()), acts.append(sim.setpoint.copy())))
    return np.array(qs), np.array(acts)
