"""Zarr replay buffer layout (diffusion_policy's), SequenceDataset windows, splits, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from synthetic_data import episode, make_dataset

from rosmind.dataset import ReplayBuffer, SequenceDataset, sequence_indices, val_mask
from rosmind.errors import DatasetError

pytestmark = pytest.mark.unit


def test_layout_is_diffusion_policy_zarr_v2(tmp_path):
    path = make_dataset(tmp_path / "d.zarr", n_episodes=3, length=12, image_hw=(16, 20))
    root = zarr.open_group(str(path), mode="r", zarr_format=2)
    assert (path / ".zgroup").is_file() and (path / "data" / "joint_pos" / ".zarray").is_file()
    ends = root["meta/episode_ends"][:]
    assert ends.dtype == np.int64 and ends.tolist() == [12, 24, 36]
    assert root["data/joint_pos"].shape == (36, 8) and root["data/object_poses"].shape == (36, 1, 7)
    img = root["data/camera/wrist/rgb"]
    assert img.shape == (36, 16, 20, 3) and img.dtype == np.uint8 and img.chunks == (1, 16, 20, 3)
    assert json.loads((path / "data" / "camera" / "wrist" / "rgb" / ".zarray").read_text())["zarr_format"] == 2
    assert root["meta/episode_seed"][:].tolist() == [0, 1, 2]


def test_replay_buffer_round_trip_and_append(tmp_path):
    path = make_dataset(tmp_path / "d.zarr", n_episodes=2, length=10)
    buf = ReplayBuffer.open(path, "a")
    ep = episode(7, length=5)
    buf.add_episode(ep, {"seed": 7, "success": False})
    buf = ReplayBuffer.open(path, "r")
    assert buf.n_episodes == 3 and buf.n_steps == 25
    assert buf.keys() == sorted(["action", "ee_pose", "goal_pose", "joint_pos", "object_poses"])
    assert buf.episode_slice(2) == slice(20, 25) and buf.episode_slice(-1) == slice(20, 25)
    got = buf.get_episode(2)
    for k, v in ep.items():
        np.testing.assert_array_equal(got[k], v)
    assert buf.episode_meta("seed").tolist() == [0, 1, 7]
    assert buf.episode_meta("success").tolist() == [True, True, False]
    with pytest.raises(IndexError):
        buf.episode_slice(3)


def test_add_episode_rejects_inconsistent_episodes(tmp_path):
    buf = ReplayBuffer.open(tmp_path / "d.zarr", "w")
    buf.add_episode(episode(0, 6), {"seed": 0})
    bad = episode(1, 6)
    bad["action"] = bad["action"][:4]
    with pytest.raises(DatasetError, match="share a nonzero length"):
        buf.add_episode(bad, {"seed": 1})
    bad = episode(1, 6)
    del bad["goal_pose"]
    with pytest.raises(DatasetError, match="differ"):
        buf.add_episode(bad, {"seed": 1})
    bad = episode(1, 6)
    bad["joint_pos"] = bad["joint_pos"][:, :7]
    with pytest.raises(DatasetError, match="data/joint_pos"):
        buf.add_episode(bad, {"seed": 1})
    with pytest.raises(DatasetError, match="meta fields"):
        buf.add_episode(episode(1, 6), {"seed": 1, "success": True})
    bad = episode(1, 6)
    bad["object_poses"] = bad["object_poses"].astype(np.complex64)
    with pytest.raises(DatasetError, match="data/object_poses': episode dtype complex64"):
        buf.add_episode(bad, {"seed": 1})
    buf = ReplayBuffer.open(tmp_path / "d.zarr")  # refused episodes left nothing behind
    assert buf.n_episodes == 1 and all(buf.array(k).shape[0] == 6 for k in buf.keys())
    ok = {k: v.astype(np.float64) for k, v in episode(1, 6).items()}  # float64 fits float32 arrays
    ReplayBuffer.open(tmp_path / "d.zarr", "a").add_episode(ok, {"seed": 1})
    assert ReplayBuffer.open(tmp_path / "d.zarr").array("action").dtype == np.float32


def test_append_mode_drops_the_tail_of_an_interrupted_write(tmp_path):
    path = make_dataset(tmp_path / "d.zarr", n_episodes=2, length=10)
    root = zarr.open_group(str(path), mode="a", zarr_format=2)
    root["data/joint_pos"].append(np.zeros((4, 8), np.float32))  # a crash before episode_ends
    root["meta/episode_seed"].append(np.array([9]))
    with pytest.raises(DatasetError, match="has 24 steps but meta/episode_ends says 20.*interrupted"):
        ReplayBuffer.open(path)
    buf = ReplayBuffer.open(path, "a")
    assert buf.array("joint_pos").shape[0] == 20 and buf.episode_meta("seed").tolist() == [0, 1]
    assert ReplayBuffer.open(path).n_steps == 20


def _reference_window(ep: np.ndarray, start: int, length: int) -> np.ndarray:
    """Edge-repeat padding: step k of a window starting at ``start`` reads ep[clip(start+k)]."""
    return ep[np.clip(np.arange(start, start + length), 0, len(ep) - 1)]


def test_sequence_windows_match_diffusion_policy_sampler_semantics(tmp_path):
    lengths, horizon, to, ta = [9, 5, 7], 6, 3, 2
    buf = ReplayBuffer.open(tmp_path / "d.zarr", "w")
    for i, n in enumerate(lengths):
        a = (100 * i + np.arange(n, dtype=np.float32))[:, None].repeat(2, 1)
        buf.add_episode({"joint_pos": a, "action": a + 0.5}, {"seed": i})
    ds = SequenceDataset(tmp_path / "d.zarr", ("joint_pos",), horizon, to, ta)
    expected = []
    for i, n in enumerate(lengths):
        ep = (100 * i + np.arange(n, dtype=np.float32))[:, None].repeat(2, 1)
        for start in range(-(to - 1), n - horizon + (ta - 1) + 1):
            expected.append((_reference_window(ep, start, to), _reference_window(ep + 0.5, start, horizon)))
    assert len(ds) == len(expected) == sum(n - horizon + to - 1 + ta - 1 + 1 for n in lengths)
    for j, (obs, act) in enumerate(expected):
        item = ds[j]
        np.testing.assert_array_equal(item["joint_pos"].numpy(), obs)
        np.testing.assert_array_equal(item["action"].numpy(), act)
    # first window of episode 0: two padded obs then the first action repeated twice
    assert ds[0]["action"][:, 0].tolist() == [0.5, 0.5, 0.5, 1.5, 2.5, 3.5]


def test_sequence_indices_skip_masked_episodes():
    rows = sequence_indices(np.array([4, 8]), 4, 0, 0, np.array([False, True]))
    assert rows.tolist() == [[4, 8, 0, 4]]


def test_image_windows_are_uint8_and_stats_cover_low_dim_keys(tmp_path):
    path = make_dataset(tmp_path / "d.zarr", n_episodes=2, length=10, image_hw=(8, 8))
    ds = SequenceDataset(path, ("joint_pos", "camera/wrist/rgb", "object_poses"), 8, 2, 4)
    item = ds[0]
    assert item["camera/wrist/rgb"].dtype.is_floating_point is False
    assert tuple(item["camera/wrist/rgb"].shape) == (2, 8, 8, 3)
    assert tuple(item["object_poses"].shape) == (2, 1, 7) and tuple(item["action"].shape) == (8, 8)
    st = ds.stats()
    assert {"joint_pos", "object_poses", "action"} <= set(st) and "camera/wrist/rgb" not in st
    jp = ReplayBuffer.open(path).array("joint_pos")[:]
    np.testing.assert_array_equal(st["joint_pos"]["min"], jp.min(0))
    assert ds.shapes()["camera/wrist/rgb"] == (8, 8, 3)


def test_episode_level_split_is_seeded_and_disjoint(tmp_path):
    path = make_dataset(tmp_path / "d.zarr", n_episodes=10, length=20)
    train = SequenceDataset(path, ("joint_pos",), 8, 2, 4, val_ratio=0.3, split_seed=1)
    val = SequenceDataset(path, ("joint_pos",), 8, 2, 4, val_ratio=0.3, split_seed=1, split="val")
    assert val.episode_mask.sum() == 3 and train.episode_mask.sum() == 7
    assert not np.any(train.episode_mask & val.episode_mask)
    again = SequenceDataset(path, ("joint_pos",), 8, 2, 4, val_ratio=0.3, split_seed=1, split="val")
    assert again.episode_mask.tolist() == val.episode_mask.tolist()
    assert len(train) + len(val) == len(SequenceDataset(path, ("joint_pos",), 8, 2, 4))
    assert val_mask(1, 0.5, 0).tolist() == [False]  # never leaves training empty
    assert val_mask(5, 0.0, 0).sum() == 0 and val_mask(5, 0.01, 0).sum() == 1


def test_missing_empty_corrupt_and_key_missing_datasets_raise_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        ReplayBuffer.open(tmp_path / "nope.zarr")
    ReplayBuffer.open(tmp_path / "empty.zarr", "w")
    with pytest.raises(DatasetError, match=r"empty\.zarr: dataset has no episodes"):
        SequenceDataset(tmp_path / "empty.zarr", ("joint_pos",), 8, 2, 4)
    path = make_dataset(tmp_path / "d.zarr", n_episodes=2, length=10)
    with pytest.raises(DatasetError, match=r"d\.zarr: missing key 'data/camera/wrist/rgb'"):
        SequenceDataset(path, ("joint_pos", "camera/wrist/rgb"), 8, 2, 4)
    with pytest.raises(DatasetError, match="no window of horizon 32"):
        SequenceDataset(path, ("joint_pos",), 32, 1, 1)
    (tmp_path / "junk.zarr").mkdir()
    (tmp_path / "junk.zarr" / ".zgroup").write_text("{not json")
    with pytest.raises(DatasetError, match=r"junk\.zarr"):
        ReplayBuffer.open(tmp_path / "junk.zarr")
    (tmp_path / "bare.zarr").mkdir()
    zarr.open_group(str(tmp_path / "bare.zarr"), mode="w", zarr_format=2).require_group("data")
    with pytest.raises(DatasetError, match=r"bare\.zarr: missing group 'meta'"):
        ReplayBuffer.open(tmp_path / "bare.zarr")
    chunk = next((path / "data" / "ee_pose").glob("0.*"))
    chunk.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"d\.zarr: key 'data/ee_pose' is unreadable"):
        SequenceDataset(path, ("joint_pos", "ee_pose"), 8, 2, 4)
    root = zarr.open_group(str(path), mode="a", zarr_format=2)
    root["data/joint_pos"][3, 2] = np.nan
    with pytest.raises(DatasetError, match="'data/joint_pos' contains NaN"):
        SequenceDataset(path, ("joint_pos",), 8, 2, 4)
    root["meta/episode_ends"][1] = 15  # claims 15 steps, arrays hold 20
    with pytest.raises(DatasetError, match="data/action' has 20 steps"):
        ReplayBuffer.open(path)
