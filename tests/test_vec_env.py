"""The vectorized env (rosmind.sim.vec_env): worker processes that run exactly what make_sim
runs in process, seeded, with auto-reset onto the next seeds; bad actions are refused."""

from __future__ import annotations

import numpy as np
import pytest

from rosmind.errors import SpecError, UserError
from rosmind.sim.robots import make_sim
from rosmind.sim.vec_env import VecSimEnv, pack, unpack

pytestmark = pytest.mark.sim

OPTIONS = {"time_limit_s": 0.5}  # 10 ticks an episode: auto-reset comes quickly


def _actions(obs: dict, k: int) -> np.ndarray:
    """A fixed open-loop motion from the measured joints: deterministic, and moving."""
    a = obs["joint_pos"].copy()
    a[..., 0] += 0.02 * np.sin(0.3 * k)
    return a


def _direct(seed: int, ticks: int) -> list[np.ndarray]:
    sim = make_sim("panda", "pick_place", **OPTIONS)
    sim.connect()
    try:
        obs, out = sim.reset(seed), []
        for k in range(ticks):
            sim.write(_actions(obs, k))
            sim.step()
            obs = sim.read()
            out.append(obs["joint_pos"].copy())
        return out
    finally:
        sim.disconnect()


def test_pack_roundtrip_without_pickle():
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([True, False]), "c": np.zeros((0, 7))}
    h, back = unpack(pack({"cmd": "x", "n": 3}, arrays))
    assert h == {"cmd": "x", "n": 3}
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v)


def test_workers_match_make_sim_and_auto_reset_onto_the_next_seeds():
    with VecSimEnv("panda", "pick_place", n_envs=2, options=OPTIONS) as env:
        obs = env.reset(seed=40)
        assert env.seeds == [40, 41] and obs["joint_pos"].shape == (2, env.dof)
        traj, dones = [], []
        for k in range(12):
            obs, reward, done, info = env.step(_actions(obs, k if k < 10 else k - 10))
            traj.append(obs["joint_pos"].copy())
            dones.append(done.copy())
            if done.any():  # info: the episodes that ended
                assert list(info["seed"]) == [40, 41]
                assert np.all(info["ticks"][done] == 10) and np.all(reward[done] == info["success"][done])
        assert [bool(d.all()) for d in dones] == [False] * 9 + [True] + [False] * 2
        assert env.seeds == [42, 43]  # the next seeds, in env order
    for i, seed in enumerate((40, 41)):
        want = _direct(seed, 9)
        for k in range(9):
            np.testing.assert_array_equal(traj[k][i], want[k])
    start = make_sim("panda", "pick_place", **OPTIONS)
    start.connect()
    try:  # after the auto-reset, env 0 runs seed 42 exactly as make_sim does
        first = start.reset(42)["joint_pos"]
        start.write(_actions({"joint_pos": first}, 0))
        start.step()
        np.testing.assert_array_equal(traj[10][0], start.read()["joint_pos"])
    finally:
        start.disconnect()


def test_bad_actions_and_bad_tasks_are_refused():
    with VecSimEnv("panda", "pick_place", n_envs=1, options=OPTIONS) as env:
        obs = env.reset(seed=0)
        with pytest.raises(SpecError, match=r"shape \[8\], expected \[1, 8\]"):
            env.step(obs["joint_pos"][0])
        bad = obs["joint_pos"].copy()
        bad[0, 3] = np.nan
        with pytest.raises(SpecError, match=r"non-finite action for env\(s\) \[0\]"):
            env.step(bad)
    with pytest.raises(UserError, match="no_such_task"):
        VecSimEnv("panda", "no_such_task", n_envs=1)
