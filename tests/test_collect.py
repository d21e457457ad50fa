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
    # the buffer names the task its episodes ran (a policy trained on it records it); another
    # task's episodes are refused
    assert ra.root.attrs["task"] == {"task": "pick_place", "robot": "panda"}
    from rosmind.errors import SpecError

    with pytest.raises(SpecError, match="its episodes ran .*pick_place.*not .*peg_insert"):
        collect(CollectConfig(task="peg_insert", policy="peg_expert", episodes=1), a, progress=False)


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


def test_action_noise_is_an_ou_offset_on_the_arm_joints_only_drawn_from_the_seed():
    from rosmind.sim.collect import ActionNoise
    from rosmind.spec import load_spec

    spec = load_spec("panda")
    a = ActionNoise(spec, 0.01, 0.5, seed=4)
    cmd = np.linspace(-0.5, 0.5, spec.dof)
    off = np.stack([a(cmd) - cmd for _ in range(4000)])
    assert np.all(off[:, 7] == 0)  # the finger is left alone
    std = off[400:, :7].std(0)
    assert np.all((std > 0.007) & (std < 0.013)), std  # stationary std ~ sigma
    # Correlated over tau = 0.5 s = 10 ticks: neighbours alike, 2 s apart nearly independent.
    r1 = np.mean([np.corrcoef(off[400:-1, j], off[401:, j])[0, 1] for j in range(7)])
    r40 = np.mean([np.corrcoef(off[400:-40, j], off[440:, j])[0, 1] for j in range(7)])
    assert r1 > 0.85 and abs(r40) < 0.2, (r1, r40)
    b = ActionNoise(spec, 0.01, 0.5, seed=4)
    np.testing.assert_array_equal(np.stack([b(cmd) - cmd for _ in range(5)]), off[:5])
    assert not np.array_equal(ActionNoise(spec, 0.01, 0.5, seed=5)(cmd), off[0] + cmd)


def test_dart_demos_record_the_clean_commands_while_the_robot_runs_noisy_ones(tmp_path):
    from rosmind.errors import SpecError

    clean, noisy = tmp_path / "c.zarr", tmp_path / "n.zarr"
    opts = dict(task="wipe", policy="wipe_expert", episodes=1, seed_start=2, keep_failed=True)
    collect(CollectConfig(**opts), clean, progress=False)
    collect(CollectConfig(**opts, action_noise=0.01, action_noise_tau=0.5, workers=1), noisy, progress=False)
    rc, rn = ReplayBuffer.open(clean), ReplayBuffer.open(noisy)
    assert rn.root.attrs["action_noise"] == {"2": [0.01, 0.5]} and not rc.root.attrs.get("action_noise")

    def gap(buf):  # how far the arm is from the command it was sent the tick before
        q, act = buf.array("joint_pos")[:], buf.array("action")[:]
        return np.abs(q[1:, :7] - act[:-1, :7]).mean()

    assert gap(rn) > 2 * gap(rc), (gap(rn), gap(rc))  # the robot ran something else than what was recorded
    # Settings mix in one buffer (DART data aggregated with clean demos): each seed keeps its own.
    collect(CollectConfig(**{**opts, "episodes": 2}, action_noise=0.02), noisy, progress=False)
    collect(CollectConfig(**{**opts, "episodes": 3}), noisy, progress=False)
    rn = ReplayBuffer.open(noisy)
    assert rn.n_episodes == 3 and list(rn.episode_meta("seed")) == [2, 3, 4]
    assert rn.root.attrs["action_noise"] == {"2": [0.01, 0.5], "3": [0.02, 1.0]}
    # A buffer whose attribute is not a per-seed map (the one-pair format) is refused, nothing appended.
    ReplayBuffer.open(noisy, "a").root.attrs["action_noise"] = [0.01, 0.5]
    with pytest.raises(SpecError, match="seed -> \\[sigma, tau\\]"):
        collect(CollectConfig(**{**opts, "episodes": 4}), noisy, progress=False)
    assert ReplayBuffer.open(noisy).n_episodes == 3
    with pytest.raises(SpecError, match="action-noise"):
        CollectConfig(action_noise=-0.1)
    with pytest.raises(SpecError, match="action-noise-tau"):
        CollectConfig(action_noise=0.01, action_noise_tau=0.0)
