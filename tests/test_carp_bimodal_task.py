"""The bimodal sim task (``reach_either``) and its scripted demonstrations split by seed parity."""

import numpy as np
import pytest

from rosmind.dataset import ReplayBuffer
from rosmind.errors import SpecError
from rosmind.sim.robots import make_sim
from rosmind.sim.rollout import run_episode
from rosmind.sim.tasks_bimodal import ReachEitherConfig, ReachEitherExpert, collect_reach_either

pytestmark = pytest.mark.sim


def test_expert_reaches_the_target_it_is_told():
    for target in (0, 1):
        expert = ReachEitherExpert(target)
        try:
            with make_sim("panda", "reach_either") as sim:
                r = run_episode(sim, expert, seed=5)
                assert r.success
                assert sim.task_status()["mode"] == target
        finally:
            expert.close()


def test_demos_split_by_seed_parity(tmp_path):
    out = collect_reach_either(tmp_path / "re.zarr", episodes=2, seed_start=10)
    assert out["modes"] == [1, 1]
    buf = ReplayBuffer.open(tmp_path / "re.zarr")
    assert buf.n_episodes == 2
    ends = buf.episode_ends
    act = np.asarray(buf.root["data"]["action"][:])
    poses = np.asarray(buf.root["data"]["object_poses"][:])
    assert poses.shape[1:] == (2, 7)
    # Episode 0 (seed 10, even) heads left (+y of the first joint's turn), episode 1 right.
    assert act[ends[0] - 1, 0] > act[0, 0] and act[ends[1] - 1, 0] < act[ends[0], 0]


def test_paired_demos_reach_both_sides_from_one_scene_and_hold(tmp_path):
    out = collect_reach_either(tmp_path / "p.zarr", episodes=2, seed_start=7, after_success_ticks=4, paired=True)
    assert out["modes"] == [1, 1]
    buf = ReplayBuffer.open(tmp_path / "p.zarr")
    assert buf.episode_meta("seed").tolist() == [7, 7]
    ends = buf.episode_ends
    poses = np.asarray(buf.root["data"]["object_poses"][:])
    np.testing.assert_allclose(poses[0], poses[ends[0]])  # same scene, both episodes
    act = np.asarray(buf.root["data"]["action"][:])
    assert act[ends[0] - 1, 0] > act[0, 0] and act[ends[1] - 1, 0] < act[ends[0], 0]  # left, then right
    ee = np.asarray(buf.root["data"]["ee_pose"][:])[:, :3]
    held = np.linalg.norm(ee[ends[0] - 4:ends[0]] - poses[0, 0, :3], axis=1)
    assert np.all(held < 0.03), held  # the hand stays at the left sphere after touching it


def test_config_is_validated():
    with pytest.raises(SpecError, match="ReachEitherConfig.target_y"):
        ReachEitherConfig(target_y=(0.01, 0.2))
    with pytest.raises(SpecError, match="ReachEitherConfig.hold_ticks"):
        ReachEitherConfig(hold_ticks=0)
