import numpy as np
import pytest

from rosmind.dataset import ReplayBuffer
from rosmind.sim.collect import CollectConfig, collect

pytestmark = pytest.mark.sim


def test_collect_parallel_matches_serial_and_resumes(tmp_path):
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    s1 = collect(CollectConfig(episodes=2, seed_start=7, workers=2), a, progress=False)
    assert s1["new"] == 2 and s1["episodes_in_buffer"] == s1["kept"]
    collect(CollectConfig(episodes=2, seed_start=7, workers=1), b, progress=False)
    ra, rb = ReplayBuffer.open(a), ReplayBuffer.open(b)
    assert ra.keys() == rb.keys()
    for k in ra.keys():
        np.testing.assert_array_equal(ra.array(k)[:], rb.array(k)[:])
    # Resume: seeds 7, 8 are skipped; only 9 runs.
    s2 = collect(CollectConfig(episodes=3, seed_start=7), a, progress=False)
    assert s2["skipped"] == 2 and s2["new"] == 1
    ra = ReplayBuffer.open(a)
    assert list(ra.episode_meta("seed")) == [7, 8, 9][: ra.n_episodes]
    ends = ra.episode_ends
    assert ends[-1] == ra.array("action").shape[0] == ra.array("joint_pos").shape[0]
    assert ra.array("object_poses").shape[1:] == (1, 7)
    assert np.all(np.isfinite(ra.array("action")[:]))


def test_demos_run_on_after_success_so_the_release_is_learnable(tmp_path):
    from rosmind.errors import SpecError

    short, long = tmp_path / "s.zarr", tmp_path / "l.zarr"
    collect(CollectConfig(episodes=1, seed_start=3, after_success_ticks=0), short, progress=False)
    collect(CollectConfig(episodes=1, seed_start=3, after_success_ticks=8), long, progress=False)
    rs, rl = ReplayBuffer.open(short), ReplayBuffer.open(long)
    n = rs.episode_ends[-1]
    assert rl.episode_ends[-1] == n + 8 and list(rl.episode_meta("success")) == [1]
    np.testing.assert_array_equal(rl.array("action")[:n], rs.array("action")[:n])  # same episode up to success
    tail_q, tail_ee = rl.array("joint_pos")[n:], rl.array("ee_pose")[n:]
    assert tail_q[-1, 7] > 0.035  # fingers open
    assert tail_ee[-1, 2] > tail_ee[0, 2] + 0.02  # and the hand backs off upwards
    with pytest.raises(SpecError, match="after-success-ticks"):
        CollectConfig(after_success_ticks=-1)
