"""Corrective demonstrations (``rosmind collect --takeover-from``): a learner drives, the expert
takes over from the state it left, and only the expert's part is recorded."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rosmind.dataset import ReplayBuffer
from rosmind.sim.collect import TAKEOVER_ATTR, CollectConfig, collect

pytestmark = pytest.mark.sim

LEARNER = "checkpoints/diffusion_pick_place"  # the state checkpoint: fast, no cameras


def _obs(ee_z: float, cube_z: float, width: float, xy_off: float = 0.0) -> dict[str, np.ndarray]:
    half = 0.02
    return {"joint_pos": np.r_[np.zeros(7), width], "ee_pose": np.r_[0.5 + xy_off, 0.0, ee_z, 1.0, 0, 0, 0],
            "object_poses": np.r_[0.5, 0.0, cube_z, 0, 0, 0, 1.0][None], "goal_pose": np.r_[0.4, 0.2, half, 0, 0, 0, 1.0]}


def test_the_expert_picks_its_phase_from_the_state_it_takes_over():
    from rosmind.sim.experts import REST_POSE, PickPlaceExpert
    from rosmind.spec import load_spec

    ex = PickPlaceExpert(load_spec("panda"))
    try:
        assert ex.take_over(_obs(0.035, 0.035, 0.021)) == "lift"  # holding the cube, low
        assert np.allclose(ex.carry_xy, [0.5, 0.0])
        assert ex.take_over(_obs(0.16, 0.16, 0.021)) == "carry"  # holding it at carry height
        assert ex.take_over(_obs(0.05, 0.02, 0.04)) == "descend"  # open, right over it
        assert ex.take_over(_obs(0.05, 0.02, 0.04, xy_off=0.015)) == "descend"  # within a descent's 2 cm
        assert ex.take_over(_obs(0.02, 0.02, 0.03)) == "descend"  # closing, not yet on it: then grasp
        assert ex.take_over(_obs(0.05, 0.02, 0.04, xy_off=0.03)) == "approach"  # open, beside it
        assert ex.take_over(_obs(0.15, 0.02, 0.04)) == "approach"  # above the hover height
        assert ex.take_over(_obs(0.02, 0.02, 0.010)) == "approach"  # closed on nothing: a missed grasp
        last = np.r_[REST_POSE, 0.021]  # inside the joint limits (rows are clipped to them)
        obs = _obs(0.035, 0.035, 0.021)
        obs["joint_pos"][:7] = np.asarray(REST_POSE) - 0.05  # the arm a little behind the learner's command
        ex.take_over(obs, last_cmd=last, last_step=np.full(8, 0.01))
        rows = ex.act(obs)
        # Rate-limited from the learner's last command, not from a standstill at the measured pose.
        assert np.all(np.abs(rows[0] - last - 0.01) <= ex.max_dstep + 1e-12)
        # A learner's command that never ran (the arm far from it: refused downstream): the
        # expert plans from where the arm is, as PickPlaceExpertConfig.resync_rad says.
        obs["joint_pos"][:7] = np.asarray(REST_POSE) - 0.5
        ex.take_over(obs, last_cmd=last, last_step=np.full(8, 0.01))
        rows = ex.act(obs)
        assert np.all(np.abs(rows[0, :7] - obs["joint_pos"][:7]) <= ex.max_step[:7] + 1e-12) and ex.resyncs == 1
    finally:
        ex.close()


def test_takeover_episodes_start_where_the_learner_left_and_are_the_experts(tmp_path):
    from rosmind.checkpoint import load_checkpoint
    from rosmind.sim.robots import make_sim
    from rosmind.sim.rollout import run_episode

    out = tmp_path / "t.zarr"
    cfg = CollectConfig(episodes=2, seed_start=7000, takeover_from=LEARNER, takeover_ticks=(30, 70))
    s = collect(cfg, out, progress=False)
    buf = ReplayBuffer.open(out)
    assert s["new"] == 2 and s["kept"] == buf.n_episodes == 2, s
    taken = buf.root.attrs[TAKEOVER_ATTR]
    learner = load_checkpoint(LEARNER)
    sim = make_sim("panda", "pick_place")
    sim.connect()
    try:
        for i, seed in enumerate(buf.episode_meta("seed")):
            ck, k = taken[str(int(seed))]
            assert ck == LEARNER and 30 <= k <= 70 and k == cfg.takeover_tick(int(seed))
            seen = {}

            def hook(tick, obs, action, seen=seen, k=k):
                if tick == k:
                    seen.update(obs)

            run_episode(sim, learner, int(seed), max_ticks=k + 1, on_tick=hook, noise="episode")
            sl = buf.episode_slice(i)
            # The episode's first row is the learner's state at the takeover tick, exactly.
            np.testing.assert_array_equal(buf.array("joint_pos")[sl][0], seen["joint_pos"])
            np.testing.assert_array_equal(buf.array("object_poses")[sl][0], seen["object_poses"])
            # ... and from there the expert finishes the task.
            assert buf.episode_meta("success")[i] == 1
    finally:
        sim.disconnect()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rosmind.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_takeover_refuses_a_learner_the_robot_or_cameras_cannot_host(tmp_path):
    out = tmp_path / "bad.zarr"
    base = ["collect", "--task", "pick_place", "--episodes", "1", "--out", out]
    cases = [
        (["--takeover-from", "checkpoints/diffusion_pick_place_rgb"], "reads camera(s) ['gripper', 'scene']; add them to --cameras"),
        (["--takeover-from", "checkpoints/a1_walk"], "robot 'a1', not 'panda'"),
        (["--takeover-from", LEARNER, "--takeover-ticks", "50"], "--takeover-ticks: expected LO,HI"),
        (["--takeover-from", LEARNER, "--takeover-ticks", "60,50"], "1 <= LO <= HI"),
    ]
    for extra, needle in cases:
        r = _cli(*base, *extra)
        assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr, (extra, r.stderr)
    assert not out.exists()  # nothing written
    r = _cli("collect", "--task", "wipe", "--policy", "wipe_expert", "--episodes", "1", "--out", tmp_path / "w.zarr",
             "--takeover-from", LEARNER, "--takeover-ticks", "5,5")
    assert r.returncode != 0 and "cannot take over an episode" in r.stderr, r.stderr
