"""Relative action chunks (DiffusionConfig.relative_actions): per-row stats from the dataset,
and chunks re-anchored on the newest joint_pos at inference."""

import numpy as np
import pytest
import torch

from rosmind.dataset import ReplayBuffer, SequenceDataset
from rosmind.policies.diffusion import DiffusionConfig, DiffusionPolicy

pytestmark = pytest.mark.unit

KEYS = ("joint_pos", "ee_pose", "object_poses", "goal_pose")


def _ramp_dataset(path, v=0.01, lengths=(30, 25)):
    """joint j moves at (j+1)*v rad per tick; action[t] = joint_pos[t+1]."""
    buf = ReplayBuffer.open(path, "w")
    for n in lengths:
        t = np.arange(n + 1, dtype=np.float32)[:, None]
        q = t * v * np.arange(1, 9, dtype=np.float32)
        buf.add_episode({"joint_pos": q[:-1], "ee_pose": np.zeros((n, 7), np.float32),
                         "object_poses": np.zeros((n, 1, 7), np.float32),
                         "goal_pose": np.zeros((n, 7), np.float32), "action": q[1:]})
    return path


def test_relative_stats_by_hand(tmp_path):
    ds = SequenceDataset(_ramp_dataset(tmp_path / "r.zarr"), KEYS, horizon=8, n_obs_steps=2, n_action_steps=4)
    rel = ds.stats()["action_relative"]
    assert rel["min"].shape == (8, 8)
    speed = 0.01 * np.arange(1, 9)
    # Row i is the command for tick (newest - 1 + i) = joint_pos of tick newest + i, i.e. i ticks
    # of motion after the newest observation; at an episode start the observation is padded
    # (both steps are tick 0), so row 0 is then one tick of motion.
    for i in range(8):
        np.testing.assert_allclose(rel["max"][i], max(i, 1) * speed, atol=1e-6)
    np.testing.assert_allclose(rel["min"][0], 0.0, atol=1e-6)


def test_relative_chunk_is_anchored_on_newest_joint_pos(tmp_path):
    ds = SequenceDataset(_ramp_dataset(tmp_path / "r.zarr"), KEYS, horizon=8, n_obs_steps=2, n_action_steps=4)
    cfg = DiffusionConfig(relative_actions=True, horizon=8, n_action_steps=4, down_dims=(16, 32),
                          step_embed_dim=16)
    pol = DiffusionPolicy(cfg)
    stats = ds.stats()
    pol.fit_normalizer(stats)
    lo, hi = pol.normalizer.bounds("action")
    np.testing.assert_allclose(lo.numpy(), stats["action_relative"]["min"])
    # A sampler returning 0 (mid-range in normalized units) must give newest q + mid of each row.
    pol.sample = lambda cond: torch.zeros(cond.shape[0], cfg.horizon, cfg.action_dim)
    q = np.full((2, 8), 0.3)
    q[0] = 0.1  # the older step must not be the anchor
    obs = {"joint_pos": q, "ee_pose": np.zeros((2, 7)), "object_poses": np.zeros((2, 1, 7)),
           "goal_pose": np.zeros((2, 7))}
    a = pol.infer(obs)["action"]
    mid = (stats["action_relative"]["min"] + stats["action_relative"]["max"]) / 2
    np.testing.assert_allclose(a, 0.3 + mid[1:5], atol=1e-5)
    b = pol.infer_batch({k: v[None] for k, v in obs.items()})["action"][0]
    np.testing.assert_allclose(a, b, atol=1e-6)
    loss = pol.train().compute_loss({k: torch.as_tensor(np.stack([ds[0][k].numpy()] * 2)) for k in (*KEYS, "action")})
    assert torch.isfinite(loss)


def test_relative_needs_joint_pos():
    with pytest.raises(Exception, match="relative_actions"):
        DiffusionConfig(relative_actions=True, obs_keys=("ee_pose",), obs_shapes={"ee_pose": (7,)})
