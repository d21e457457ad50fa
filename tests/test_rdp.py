"""RDP: the asymmetric tokenizer, the slow-fast executor's scheduling under a fake clock, the
wipe task and its force-control expert, and a tiny collect -> train -> eval run."""

import numpy as np
import pytest
import torch

from rosmind.errors import SpecError
from rosmind.policies.executors import ChunkExecutorConfig, SlowFastExecutor, make_executor
from rosmind.policies.rdp import RDPConfig, RDPPolicy
from rosmind.policies.rdp.tokenizer import AsymmetricTokenizer, time_shift

SMALL = dict(down_dims=(16, 32), n_groups=4, step_embed_dim=16, num_inference_steps=4)


def _obs(force_z: float = 0.0, q=None) -> dict[str, np.ndarray]:
    q = np.zeros(8) if q is None else q
    return {"joint_pos": q[None], "ee_pose": np.array([[0.5, 0, 0.1, 1, 0, 0, 0]]),
            "wrench": np.array([[0, 0, force_z, 0, 0, 0]], dtype=np.float64),
            "goal_pose": np.array([[0.5, 0.15, 0, 0, 0, 0, 1]])}


def _policy(**kw) -> RDPPolicy:
    torch.manual_seed(0)
    p = RDPPolicy(RDPConfig(**{**SMALL, **kw}))
    # A fitted normalizer with a force range, so force changes reach the decoder.
    stats = {"joint_pos": {"min": -np.ones(8), "max": np.ones(8)}, "ee_pose": {"min": -np.ones(7), "max": np.ones(7)},
             "goal_pose": {"min": -np.ones(7), "max": np.ones(7)},
             "wrench": {"min": np.full(6, -20.0), "max": np.full(6, 20.0)},
             "action_relative": {"min": -0.1 * np.ones((32, 8)), "max": 0.1 * np.ones((32, 8))}}
    p.fit_normalizer(stats)
    return p


def test_tokenizer_decoder_is_causal_and_steps_match_the_whole_chunk():
    torch.manual_seed(0)
    tok = AsymmetricTokenizer(action_dim=8, fast_dim=6, chunk=16)
    x = torch.randn(2, 16, 8)
    fast = torch.randn(2, 16, 6)
    mean, logvar = tok.encode(x)
    assert mean.shape == logvar.shape == (2, 4, 4) and mean.abs().max() < 1
    whole = tok.decode(mean, fast)
    h, feats = tok.start(mean)
    rows = []
    for i in range(16):
        y, h = tok.step(feats[:, i], fast[:, i], h)
        rows.append(y)
    torch.testing.assert_close(torch.stack(rows, 1), whole, rtol=1e-5, atol=1e-5)
    later = fast.clone()
    later[:, 9:] += 5.0  # a force change at step 9 leaves steps 0..8 alone and changes step 9
    changed = tok.decode(mean, later)
    torch.testing.assert_close(changed[:, :9], whole[:, :9])
    assert (changed[:, 9] - whole[:, 9]).abs().max() > 1e-4


def test_tokenizer_learns_to_reconstruct_chunks():
    torch.manual_seed(0)
    t = torch.linspace(0, 1, 16)
    # Smooth chunks of 8 coupled joints with 4 degrees of freedom (like an arm's motions).
    basis = torch.cos(np.pi * t[:, None] * torch.arange(4)[None])  # [16, 4]
    u = torch.rand(256, 1, 4) * 2 - 1
    x = (u * basis[None]) @ (torch.randn(4, 8) * 0.5)
    fast = torch.randn(256, 16, 6) * 0.1
    tok = AsymmetricTokenizer(action_dim=8, fast_dim=6, chunk=16)
    opt = torch.optim.Adam(tok.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        loss, logs = tok.loss(x, fast, 1e-6)
        first = logs["recon_l1"] if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logs["recon_l1"] < 0.3 * first, (first, logs)


def test_config_rejects_what_the_tokenizer_cannot_do():
    with pytest.raises(SpecError, match="multiple of 4"):
        RDPConfig(horizon=30)
    with pytest.raises(SpecError, match="fast_keys"):
        RDPConfig(fast_keys=())
    with pytest.raises(SpecError, match="fast_input"):
        RDPConfig(fast_input="sometimes")
    with pytest.raises(SpecError, match="latent_time_shift"):
        RDPConfig(latent_time_shift=32)  # the whole chunk
    with pytest.raises(SpecError, match="latent_time_shift"):
        RDPConfig(latent_time_shift=-1)
    with pytest.raises(SpecError, match="obs_quantile"):
        RDPConfig(obs_quantile=-0.1)
    with pytest.raises(SpecError, match="low-dimensional"):
        RDPConfig(fast_keys=("camera/wrist/rgb",), obs_shapes={"camera/wrist/rgb": (8, 8, 3), "joint_pos": (8,),
                                                               "ee_pose": (7,), "wrench": (6,), "goal_pose": (7,)})


def test_time_shift_moves_rows_and_repeats_the_edges():
    t = torch.arange(6.0).reshape(1, 6, 1).repeat(3, 1, 2)
    out = time_shift(t, torch.tensor([0, 2, -1]))
    assert out[0, :, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert out[1, :, 0].tolist() == [2, 3, 4, 5, 5, 5]  # later rows now, the last one held
    assert out[2, :, 1].tolist() == [0, 0, 1, 2, 3, 4]  # earlier, the first one held


class _Counting:
    """Counts the slow calls of a slow-fast policy (the fast ones go straight through)."""

    def __init__(self, policy):
        self.policy, self.config, self.fast, self.calls = policy, policy.config, True, []

    def reset(self):
        self.policy.reset()

    def infer(self, obs):
        self.calls.append(obs)
        return self.policy.infer(obs)

    def __getattr__(self, name):
        if name == "policy":
            raise AttributeError(name)
        return getattr(self.policy, name)


def _run(ex, forces, ticks=40):
    ex.reset(noise_seed=7)
    return [ex.step(_obs(forces(k)), k) for k in range(ticks)]


def test_fast_loop_reacts_at_the_tick_of_a_force_change_slow_loop_every_n_action_steps():
    policy = _Counting(_policy())
    ex = make_executor(policy)
    assert isinstance(ex, SlowFastExecutor)
    base = _run(ex, lambda k: 2.0)
    assert len(policy.calls) == 3  # ticks 0, 16, 32: the slow loop runs every n_action_steps
    policy.calls.clear()
    k = 5  # mid-chunk: the slow loop does not run again until tick 16
    stepped = _run(ex, lambda t: 2.0 if t < k else 15.0)
    assert len(policy.calls) == 3
    for t in range(k):
        np.testing.assert_array_equal(stepped[t], base[t])
    assert np.abs(stepped[k] - base[k]).max() > 1e-6  # the command of tick k already differs
    assert all(np.all(np.isfinite(a)) for a in stepped)


def test_held_input_ablation_does_not_react_inside_the_chunk():
    ex = make_executor(_policy(fast_input="held"))
    base = _run(ex, lambda k: 2.0, 16)
    stepped = _run(ex, lambda t: 2.0 if t < 5 else 15.0, 16)
    np.testing.assert_array_equal(np.stack(base), np.stack(stepped))


def test_nan_force_holds_the_last_good_command_and_never_passes_nan():
    ex = make_executor(_policy())
    ex.reset(noise_seed=1)
    out = [ex.step(_obs(3.0), k) for k in range(6)]
    held = ex.step(_obs(float("nan")), 6)
    np.testing.assert_array_equal(held, out[-1])
    assert ex.held_ticks == 1 and ex.fast_stale
    after = ex.step(_obs(3.0), 7)
    assert np.all(np.isfinite(after)) and not ex.fast_stale


def test_late_plan_skips_the_rows_whose_tick_passed():
    policy = _policy()
    on_time = make_executor(policy)
    on_time.reset(noise_seed=3)
    late = SlowFastExecutor(policy, ChunkExecutorConfig())
    late.reset(noise_seed=3)
    # The decoder's state is what this checks: without the rate limit, which starts a late plan
    # from where the robot stands (test_decoded_rows_stay_inside_the_robot_limits).
    on_time._limiter = late._limiter = None
    rows = []
    for k in range(4):
        on_time.observe(_obs(1.0 + k), k)
        late.observe(_obs(1.0 + k), k)
        if k == 0:
            from rosmind.policy import infer_seeded

            out = infer_seeded(policy, _obs(1.0), 3, 0)
            on_time.add_output(out, _obs(1.0), 0)
        rows.append(on_time.action(k))
    late.add_output(out, _obs(1.0), 0, now_tick=3)  # landed 3 ticks after its observation
    assert late.dropped_rows == 3
    np.testing.assert_array_equal(late.action(3), rows[3])
    assert late.planned(3).shape == (16 - 3, 8)  # this tick's row, then the plan's rows to run


def test_decoded_rows_stay_inside_the_robot_limits():
    # An untrained decoder's rows jump anywhere; the executor keeps every command (and every row
    # of the published plan) inside the Panda's position, velocity and acceleration limits.
    from rosmind.spec import load_spec

    spec = load_spec("panda")
    lower, upper = np.array(spec.limits("lower")), np.array(spec.limits("upper"))
    vmax = np.array(spec.limits("velocity")) * spec.control_period
    policy = _policy()
    ex = make_executor(policy)
    ex.reset(noise_seed=5)
    sent, plan = [], None
    for k in range(20):
        ex.observe(_obs(3.0 * k), k)
        if ex.wants_inference(k):
            from rosmind.policy import infer_seeded

            ex.add_output(infer_seeded(policy, _obs(3.0 * k), 5, k), _obs(3.0 * k), k)
        sent.append(ex.action(k))
        if k == 4:
            plan = ex.planned(k)
    q = np.stack(sent)
    assert np.all(q >= lower - 1e-9) and np.all(q <= upper + 1e-9)
    assert np.all(np.abs(np.diff(q, axis=0)) <= vmax + 1e-9)
    assert np.all(np.abs(np.diff(plan, axis=0)) <= vmax + 1e-9) and np.all(plan <= upper + 1e-9)


@pytest.mark.sim
def test_wipe_expert_keeps_the_force_window_and_the_sensor_reads_the_contact():
    from rosmind.registry import POLICIES
    from rosmind.sim.robots import make_sim
    from rosmind.sim.rollout import run_episode

    sim = make_sim("panda", "wipe")
    entry = POLICIES.get("wipe_expert")
    expert = entry.factory(entry.config())
    gaps = []

    def on_tick(t, obs, a):
        if sim.task.force_now > 3.0:
            gaps.append(abs(obs["wrench"][2] - sim.task.force_now))

    try:
        for seed in (0, 1):
            r = run_episode(sim, expert, seed, on_tick=on_tick)
            st = sim.task_status()
            assert r.success and st["in_window"] >= 0.8 and st["max_force"] < 40, st
        # The tared, filtered, noisy F/T z reading follows the true normal force (previous tick's).
        assert np.median(gaps) < 1.5
    finally:
        sim.disconnect()
        expert.close()


@pytest.mark.sim
def test_wipe_bump_at_a_known_tick_changes_the_contact_force():
    from rosmind.sim.robots import make_sim

    with make_sim("panda", "wipe", push_tick=3, push_height=(0.01, 0.01)) as sim:
        sim.reset(seed=4)
        before = sim.task.board_height(0.0)
        for _ in range(4):
            sim.write(sim.read()["joint_pos"])
            sim.step()
        assert sim.task.pushed and abs(abs(sim.task.board_height(0.0) - before) - 0.01) < 1e-9


def test_wipe_config_rejects_bad_values():
    from rosmind.sim.tasks_contact import WipeConfig

    with pytest.raises(SpecError, match="force_target"):
        WipeConfig(force_target=30.0)
    with pytest.raises(SpecError, match="path_y"):
        WipeConfig(path_y=(0.2, -0.2))
    with pytest.raises(SpecError, match="ft_force_noise"):
        WipeConfig(ft_force_noise=-1.0)


@pytest.mark.sim
def test_tiny_wipe_collect_train_eval(tmp_path):
    from rosmind.checkpoint import load_checkpoint
    from rosmind.policies.train import train
    from rosmind.sim.collect import CollectConfig, collect
    from rosmind.sim.evaluate import evaluate
    from rosmind.sim.robots import make_sim

    data = tmp_path / "wipe.zarr"
    summary = collect(CollectConfig(task="wipe", policy="wipe_expert", episodes=2), data, progress=False)
    assert summary["kept"] == 2
    res = train("rdp", data, tmp_path / "run", overrides=[
        "train.steps=12", "train.batch_size=8", "train.warmup_steps=1", "train.checkpoint_every=6",
        "train.val_every=0", "train.progress=false", "policy.tokenizer_steps=6", "policy.down_dims=[16,32]",
        "policy.n_groups=4", "policy.step_embed_dim=16", "policy.num_inference_steps=2",
        "policy.obs_quantile=0.05", "policy.latent_time_shift=3"])
    assert res.step == 12 and np.isfinite(res.losses).all()
    policy = load_checkpoint(res.checkpoint)
    assert int(policy.train_step) == 12 and policy.stage == 2
    # The wrench (fast and slow) is normalized between its 5 % quantiles, kept in the checkpoint.
    from rosmind.dataset import SequenceDataset

    q = SequenceDataset(data, ["wrench"], 32, 1, 16).stats(quantile=0.05)["wrench"]
    for n in (policy.normalizer, policy.latent_dp.normalizer):
        lo, hi = n.bounds("wrench")
        np.testing.assert_allclose(lo.numpy(), q["q_min"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(hi.numpy(), q["q_max"], rtol=1e-5, atol=1e-5)
        assert n.clip["wrench"] == 1.5
    out = evaluate(lambda: make_sim("panda", "wipe", time_limit_s=1.0), policy, [5])
    assert len(out.successes) == 1 and out.lengths[0] == 20


@pytest.mark.sim
def test_tactile_pad_reads_the_contact_and_leaves_the_episode_alone():
    from rosmind.registry import POLICIES
    from rosmind.sim.robots import make_sim
    from rosmind.sim.rollout import run_episode

    entry = POLICIES.get("wipe_expert")
    results = {}
    for tactile in (False, True):
        expert = entry.factory(entry.config())
        pads: list = []
        with make_sim("panda", "wipe", tactile=tactile) as sim:
            r = run_episode(sim, expert, 2, on_tick=lambda t, o, a, pads=pads, sim=sim: pads.append(
                (sim.task.force_now, o.get("tactile/pad"))))
            results[tactile] = (r.ticks, sim.task_status()["force_rmse"])
        expert.close()
    assert results[True] == results[False]  # the pad is drawn last: the same episode
    touching = [(f, pad) for f, pad in pads if f > 5.0]
    free = [pad for f, pad in pads if f == 0.0]
    assert touching and free and all(p.shape == (4, 4, 3) for _, p in touching)
    # Pressure sums over the pad with the normal force; in free air it is noise only.
    ratio = np.median([pad[..., 0].sum() / f for f, pad in touching])
    assert 2.0 < ratio < 10.0 and np.median([abs(p[..., 0].sum()) for p in free]) < 1.0


@pytest.mark.sim
def test_rdp_with_a_tactile_pad_through_its_pca(tmp_path):
    from rosmind.checkpoint import load_checkpoint
    from rosmind.dataset import ReplayBuffer
    from rosmind.policies.train import train
    from rosmind.sim.collect import CollectConfig, collect
    from rosmind.sim.evaluate import evaluate
    from rosmind.sim.robots import make_sim

    data = tmp_path / "wipe_tactile.zarr"
    collect(CollectConfig(task="wipe", policy="wipe_expert", episodes=2, task_options={"tactile": True}), data,
            progress=False)
    assert ReplayBuffer.open(data, "r").array("tactile/pad").shape[1:] == (4, 4, 3)
    res = train("rdp", data, tmp_path / "run", overrides=[
        "train.steps=8", "train.batch_size=8", "train.warmup_steps=1", "train.checkpoint_every=8",
        "train.val_every=0", "train.progress=false", "policy.tokenizer_steps=4", "policy.down_dims=[16,32]",
        "policy.n_groups=4", "policy.step_embed_dim=16", "policy.num_inference_steps=2",
        'policy.fast_keys=["tactile/pad"]', "policy.tactile_pca_dim=6"])
    policy = load_checkpoint(res.checkpoint)
    comp = policy.pca_components__tactile__pad.numpy()
    assert comp.shape == (6, 48)
    np.testing.assert_allclose(comp @ comp.T, np.eye(6), atol=1e-4)  # orthonormal principal axes
    out = evaluate(lambda: make_sim("panda", "wipe", tactile=True, time_limit_s=1.0), policy, [5])
    assert out.lengths[0] == 20


@pytest.mark.sim
def test_extra_pushes_bump_the_board_during_the_wipe_and_leave_the_layout_alone():
    from rosmind.registry import POLICIES
    from rosmind.sim.robots import make_sim
    from rosmind.sim.rollout import run_episode

    entry = POLICIES.get("wipe_expert")
    layouts = []
    for extra in (0, 3):
        expert = entry.factory(entry.config())
        with make_sim("panda", "wipe", extra_pushes=extra) as sim:
            sim.reset(seed=6)
            t = sim.task
            layouts.append((t.surface, t.step, t.step_y, t.push, t.push_y))
            planned = [dz for _, dz in t.extra]
            run_episode(sim, expert, 6)
            assert not t.extra and t.pushed  # every bump happened during the wipe
            assert t.offset == pytest.approx(t.push + sum(planned))
        expert.close()
    assert layouts[0] == layouts[1]
