"""Record the sim pick_place graph (robot_node -> policy_node -> safety_node, lockstep, the
scripted expert) with recorder_node, convert the episode, and train the diffusion policy for
5 steps on it (``--preset tiny``): recorded demonstrations feed ``rosmind train`` unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from procs import stop_process

from rosmind.cli import main as cli
from rosmind.convert import convert
from rosmind.dataset import ReplayBuffer
from rosmind.episodes import cdr_stamp_ns, find_episodes, read_episode

pytestmark = pytest.mark.ros



def _wait_for_line(proc: subprocess.Popen, marker: str, timeout: float) -> None:
    """Read ``proc``'s output until a line contains ``marker`` (then keep draining it)."""
    seen = threading.Event()
    lines: list[str] = []

    def pump():
        for ln in proc.stdout:
            lines.append(ln)
            if marker in ln:
                seen.set()

    threading.Thread(target=pump, daemon=True).start()
    if not seen.wait(timeout):
        raise AssertionError(f"no line with {marker!r} within {timeout} s:\n{''.join(lines)[-3000:]}")


def test_record_sim_graph_convert_and_train(ros_env, repo, tmp_path):
    episodes = tmp_path / "episodes"
    rec = subprocess.Popen([sys.executable, "-m", "rosmind_ros.recorder_node", "--ros-args",
                            "-p", f"out_dir:={episodes}", "-p", "auto_start:=true",
                            "-p", "stop_on_outcome:=true", "-p", "use_sim_time:=true",
                            "-p", "task:=pick_place", "-p", "operator:=expert"], env=ros_env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    launch = None
    try:
        # The recorder is subscribed before the robot's first tick (a fixed sleep was too short
        # on a fresh clone, where nothing is byte-compiled yet). Its subscriptions must also have
        # matched safety_node's publisher, which min_subscribers cannot see: start_delay_s leaves
        # discovery 5 s (more than one of Fast DDS's 3 s participant announcement periods).
        _wait_for_line(rec, "recording [", 60.0)
        launch = subprocess.Popen([sys.executable, "-m", "rosmind.cli", "launch",
                                   str(repo / "launch/sim_pick_place.launch.yaml"), "episodes:=1",
                                   "min_subscribers:=3", "start_delay_s:=5.0"],
                                  env=ros_env, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        out, _ = launch.communicate(timeout=180)
        assert launch.returncode == 0, out[-3000:]
        line = next(ln for ln in out.splitlines() if "episode 0 seed" in ln)
        ticks = int(line.split("ticks")[1].split()[0])
        time.sleep(1.0)
    finally:
        if launch is not None and launch.poll() is None:
            stop_process(launch)
        stop_process(rec)

    # The outcome ended episode 000 and started 001 (auto_start), which holds the graph's
    # shutdown (diagnostics, safety's setpoints) or nothing (then it is not kept).
    ep_dir = find_episodes(episodes)
    info = json.loads((ep_dir[0] / "episode.json").read_text())
    assert info["task"] == "pick_place" and info["operator"] == "expert" and info["success"] is True
    ep = read_episode(ep_dir[0])
    assert ep.complete
    assert len(ep.topics["/episode/outcome"].data) == 1

    report = convert(ep_dir[0], tmp_path / "demo.zarr")
    r = report["episodes"][0]
    assert r["ticks"] == ticks  # lockstep re-sends of a tick share its stamp: one tick each
    # DDS never delivers what a volatile publisher sent before it matched the recorder's
    # subscription (CI once saw safety_node matched 6 ticks late even after 2 s): the conversion
    # falls back to the measured joint_pos for the ticks before the first recorded command and
    # counts exactly those.
    tick_ns = sorted({cdr_stamp_ns(m) for m in ep.topics["/joint_states"].data})
    first_cmd = min(cdr_stamp_ns(m) for m in ep.topics["/joint_trajectory"].data)
    missed = sum(t < first_cmd for t in tick_ns)
    assert r["action"]["ticks_before_first_command"] == missed, (r["action"], missed)
    assert missed < ticks // 4, f"the recorder matched safety_node's commands only after {missed} ticks"
    buf = ReplayBuffer.open(tmp_path / "demo.zarr")
    assert {"joint_pos", "joint_vel", "ee_pose", "wrench", "object_poses", "goal_pose", "action"} <= set(buf.keys())
    data = buf.get_episode(0)
    assert data["object_poses"].shape == (ticks, 1, 7)
    # The command answering tick k is what the robot executed next: it tracks it closely.
    assert np.abs(data["action"][:-1, :7] - data["joint_pos"][1:, :7]).max() < 0.05

    run_dir = tmp_path / "run"
    assert cli(["train", "--policy", "diffusion", "--dataset", str(tmp_path / "demo.zarr"),
                "--out", str(run_dir), "--preset", "tiny", "train.steps=5", "train.checkpoint_every=5",
                "train.batch_size=8"]) == 0
    assert any(run_dir.rglob("*.safetensors"))
