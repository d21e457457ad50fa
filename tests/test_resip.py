"""ResiP's composition (issue 16, item 4): a residual on a frozen chunked base, run by
``ResidualExecutor`` around the base's own executor. An untrained residual returns every base
action exactly; a trained one's command (base + correction) is held inside the robot's limits
as safety_node would hold it, and it adds its correction per tick and only while enabled; the
checkpoint pins its base by hash and refuses a changed, missing or wrong base."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from rosmind.checkpoint import load_checkpoint, read_manifest, save_checkpoint
from rosmind.errors import CheckpointError, SpecError
from rosmind.policies.executors import ResidualExecutor, make_executor
from rosmind.policies.resip import ResidualPolicy, ResipConfig
from rosmind.sim.robots import make_sim
from rosmind.sim.rollout import run_episode
from rosmind.spec import load_spec
from rosmind.trajectory import SetpointLimiter

pytestmark = pytest.mark.sim

BASE = "checkpoints/diffusion_pick_place"


def _actions(policy, seed: int, task: str = "pick_place", time_limit_s: float = 1.5) -> np.ndarray:
    out = []
    sim = make_sim("panda", task, time_limit_s=time_limit_s)
    try:
        run_episode(sim, policy, seed, on_tick=lambda t, o, a: out.append(sim.setpoint.copy()), noise="episode")
    finally:
        sim.disconnect()
    return np.array(out)


def test_an_untrained_residual_returns_every_base_action_exactly(repo, one_thread):
    res = ResidualPolicy(ResipConfig(base=str(repo / BASE)))
    assert isinstance(make_executor(res), ResidualExecutor)
    assert res.config.obs_keys == res.base.config.obs_keys and res.config.residual_keys == res.base.config.obs_keys
    base = load_checkpoint(repo / BASE)
    a, b = _actions(res, 11), _actions(base, 11)
    assert a.shape == b.shape == (30, 8)
    # (this base moves the wrist faster than its acceleration limit allows from rest at tick 0:
    # a correction of exactly zero still sends the base's row as it is, and safety clamps it)
    np.testing.assert_array_equal(a, b)


def test_a_residual_adds_its_correction_per_tick_and_the_switch_turns_it_off(repo, one_thread):
    res = ResidualPolicy(ResipConfig(base=str(repo / BASE), action_scale=0.1))
    with torch.no_grad():
        res.mlp[-1].bias.fill_(0.5)  # last weights are zero: the MLP outputs its bias, 0.5 units
    ex = make_executor(res)
    sim = make_sim("panda", "pick_place")
    try:
        obs = sim.reset(3)
        stacked = {k: np.repeat(np.asarray(obs[k])[None], res.config.n_obs_steps, axis=0) for k in res.config.obs_keys}
        on = ex.step(stacked, 0)
        base = ex.inner.action(0)
        lim = SetpointLimiter(load_spec("panda"), 1.0)
        lim.reset(np.asarray(obs["joint_pos"]))
        np.testing.assert_array_equal(on, lim(base + 0.5 * res.scale))
        free = np.abs(on - (base + 0.5 * res.scale)) < 1e-12
        assert free.sum() >= 6, (on, base)  # most joints: exactly the correction
        assert 0.005 < res.scale[0] < 0.02 and res.scale[7] < 0.002  # radians for the arm, metres for a finger
        np.testing.assert_array_equal(ex.planned(0)[0], on)  # the published plan starts with it
        np.testing.assert_array_equal(ex.planned(0)[1:], ex.inner.planned(0)[1:])
        ex.enabled = False
        ex.observe(stacked, 1)
        np.testing.assert_array_equal(ex.action(1), ex.inner.action(1))
    finally:
        sim.disconnect()


def test_the_checkpoint_pins_its_base(repo, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(repo / BASE, base)
    res = ResidualPolicy(ResipConfig(base=str(base)))
    with torch.no_grad():
        res.mlp[-1].bias.fill_(0.25)
    save_checkpoint(res, tmp_path / "resip")
    m = read_manifest(tmp_path / "resip")
    assert m["family"] == "resip" and m["config"]["base"] == str(base) and len(m["config"]["base_sha256"]) == 64
    again = load_checkpoint(tmp_path / "resip")
    assert torch.equal(again.mlp[-1].bias, res.mlp[-1].bias) and again.base.config.obs_keys == res.base.config.obs_keys
    # the base's weights change: refused, naming it
    other = load_checkpoint(base)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    save_checkpoint(other, base)
    with pytest.raises(CheckpointError, match="changed since this residual was trained"):
        load_checkpoint(tmp_path / "resip")
    shutil.rmtree(base)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "resip")
    with pytest.raises(CheckpointError, match="not a chunked imitation policy"):
        ResidualPolicy(ResipConfig(base=str(repo / "checkpoints/a1_walk")))
    with pytest.raises(SpecError, match="base checkpoint folder is required"):
        ResipConfig(base="")


def test_ppo_smoke_run_through_the_one_rl_entry_point(repo, tmp_path):
    """rsl-rl's PPO on a tiny budget (2 envs, 2 iterations of 4 steps) through `rosmind train`:
    the run exports a resip checkpoint on its base, with the normalizer PPO fitted inside."""
    import subprocess
    import sys

    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "rosmind.cli", "train", "--policy", "resip", "--base", str(repo / BASE),
                        "--task", "pick_place", "--out", str(out), "rl.iterations=2", "rl.num_steps_per_env=4",
                        "env.num_envs=2", "rl.progress=false", "rl.save_every=1", "rl.critic_warmup_iterations=1",
                        "rl.critic_learning_rate=0.005"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    # the warm-up iteration trained the critic only: the actor (its std too) is as it started
    from safetensors.torch import load_file

    first, last = (load_file(str(f / "train_state.safetensors")) for f in sorted((out / "checkpoints").glob("iter_*")))
    actor = [k for k in first if k.startswith("actor.") and "normalizer" not in k]
    last_layer = max((k for k in actor if k.endswith(".weight")), key=lambda k: int(k.split(".")[-2]))
    assert torch.count_nonzero(first[last_layer]) == 0 and torch.count_nonzero(last[last_layer]) > 0
    critic = [k for k in first if k.startswith("critic.") and k.endswith("weight")]
    assert any(not torch.equal(first[k], last[k]) for k in critic)
    groups = json.loads((out / "checkpoints" / "latest" / "train_state.json").read_text())["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == [1e-4, 0.005]  # the actor's rate, the critic's own
    m = read_manifest(out / "checkpoint")
    assert m["family"] == "resip" and m["training"]["iterations"] == 2 and m["training"]["env_steps"] == 16
    res = load_checkpoint(out / "checkpoint")
    assert res.obs_mean.abs().sum() > 0 and torch.all(res.obs_std > 0)  # fitted on the rollouts
    assert (out / "checkpoints" / "latest" / "train_state.safetensors").is_file()
    # progress.jsonl: one line per block (save_every=1), the env's episode counts in it
    lines = [json.loads(x) for x in (out / "progress.jsonl").read_text().splitlines()]
    assert [(x["iteration"], x["env_steps"]) for x in lines] == [(1, 8), (2, 16)]
    assert all(x["episodes"] == 0 and x["successes"] == 0 for x in lines)  # 8 ticks: none ended yet
    from rosmind.bench.resip import learning_curve

    assert learning_curve(out) == {"env_steps": [], "success_rate": [], "episodes": []}
    bad = subprocess.run([sys.executable, "-m", "rosmind.cli", "train", "--policy", "diffusion", "--base", str(repo / BASE),
                          "--dataset", "x.zarr", "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--base: only for residual RL" in bad.stderr


def test_bench_resip_refuses_a_checkpoint_that_is_not_resip(repo):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "rosmind.cli", "bench", "resip", "--checkpoint", str(repo / BASE)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "a 'diffusion' checkpoint, not a resip one" in r.stderr


def test_learning_curve_per_block_and_its_png(tmp_path):
    from rosmind.bench.plot import line_chart
    from rosmind.bench.resip import learning_curve
    from rosmind.errors import UserError

    rows = [{"iteration": 10, "env_steps": 2560, "episodes": 0, "successes": 0},
            {"iteration": 20, "env_steps": 5120, "episodes": 8, "successes": 2},
            {"iteration": 30, "env_steps": 7680, "episodes": 20, "successes": 11}]
    (tmp_path / "progress.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = learning_curve(tmp_path)
    assert c == {"env_steps": [5120, 7680], "success_rate": [0.25, 0.75], "episodes": [8, 12]}
    assert learning_curve(tmp_path, min_episodes=10) == {"env_steps": [7680], "success_rate": [0.55], "episodes": [20]}
    png = line_chart(tmp_path / "c.png", {"train": (c["env_steps"], c["success_rate"])}, "t", "x", "y", (0, 1))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UserError, match="does not exist"):
        learning_curve(tmp_path / "nothing")
    with pytest.raises(ValueError, match="no points"):
        line_chart(tmp_path / "e.png", {"train": ([], [])}, "t", "x", "y")


def test_resip_trains_with_a_fixed_learning_rate():
    from rosmind.policies.rl import RL_FAMILIES, RLConfig

    cfg = RLConfig(**RL_FAMILIES["resip"].rl_defaults)
    algo = cfg.runner_cfg()["algorithm"]
    assert algo["schedule"] == "fixed" and algo["learning_rate"] == 1e-4 and algo["gamma"] == 0.999
    assert RLConfig().runner_cfg()["algorithm"]["schedule"] == "adaptive"  # locomotion: legged_gym's
    with pytest.raises(SpecError, match="RLConfig.schedule"):
        RLConfig(schedule="cosine")
    with pytest.raises(SpecError, match="critic_warmup_iterations"):
        RLConfig(iterations=5, critic_warmup_iterations=5)
    with pytest.raises(SpecError, match="critic_learning_rate"):
        RLConfig(critic_learning_rate=5e-3)  # the adaptive schedule sets one rate for all


def test_colored_exploration_noise_keeps_the_gaussian_and_correlates_in_time():
    """``rl.noise_correlation``: rollout samples (inference mode) are mean + std * an AR(1) process
    per env, each step still N(mean, std); PPO's recomputation (gradients on) samples plainly
    and leaves the process alone; log-probabilities are rsl-rl's."""
    from rosmind.policies.colored_noise import ColoredGaussianDistribution
    from rosmind.policies.rl import RLConfig

    torch.manual_seed(0)
    d = ColoredGaussianDistribution(3, init_std=0.5, correlation=0.9)
    mean = torch.tensor([1.0, -2.0, 0.0])
    xs = []
    with torch.inference_mode():
        for _ in range(4000):
            d.update(mean.expand(64, 3))
            xs.append(d.sample())
    eps = (torch.stack(xs) - mean) / 0.5  # [T, envs, 3]
    assert abs(eps.std().item() - 1.0) < 0.03 and abs(eps.mean().item()) < 0.05
    lag1 = (eps[1:] * eps[:-1]).mean().item()
    assert abs(lag1 - 0.9) < 0.03
    white = ColoredGaussianDistribution(3, init_std=0.5, correlation=0.0)
    with torch.inference_mode():
        ws = []
        for _ in range(2000):
            white.update(mean.expand(64, 3))
            ws.append(white.sample())
    w = (torch.stack(ws) - mean) / 0.5
    assert abs((w[1:] * w[:-1]).mean().item()) < 0.03
    state = d._eps.clone()
    d.update(mean.expand(16, 3))  # an update's minibatch, gradients on
    assert d.sample().shape == (16, 3) and torch.equal(d._eps, state)
    a = torch.zeros(16, 3)
    ref = torch.distributions.Normal(mean, 0.5).log_prob(a).sum(-1)
    torch.testing.assert_close(d.log_prob(a), ref)
    cfg = RLConfig(noise_correlation=0.95).runner_cfg()["actor"]["distribution_cfg"]
    assert cfg["class_name"].endswith(":ColoredGaussianDistribution") and cfg["correlation"] == 0.95
    assert RLConfig().runner_cfg()["actor"]["distribution_cfg"]["class_name"] == "GaussianDistribution"
    with pytest.raises(SpecError, match="noise_correlation"):
        RLConfig(noise_correlation=1.0)


def test_residual_env_keeps_the_envs_base_plans_on_one_beat(repo, one_thread):
    """After an auto-reset mid-beat, an env's first chunk runs only up to the next beat, where it
    plans again with the others: one batched base call a beat, not one per env per phase."""
    from rosmind.policies.resip.env import ResidualEnv, ResidualEnvConfig

    env = ResidualEnv(ResidualEnvConfig(base=str(repo / BASE), task="pick_place", num_envs=2,
                                        task_options={"time_limit_s": 0.35}))  # 7 ticks an episode
    calls: list[tuple[int, int]] = []  # (tick, batch size)
    infer = env.policy.base.infer_batch
    env.policy.base.infer_batch = lambda obs: calls.append((env._tick, len(obs["joint_pos"]))) or infer(obs)
    try:
        env.reset()
        beat = env._ex[0].n_action_steps
        for _ in range(2 * beat + 2):
            _, _, done, info = env.step(np.zeros((2, env.num_actions)))
            # running out of time is a failure, not bootstrapped (ResiP's code: truncation is done)
            assert not info["time_outs"].any()
        assert beat == 8 and env.finished["episodes"] == 4  # both ended at ticks 7 and 14
        # tick 0: both; 7: both reset; 8: the beat, both again; 14: reset; 16: the beat
        assert calls == [(0, 2), (7, 2), (8, 2), (14, 2), (16, 2)]
        assert all(t % beat == 0 for t in env._planned_at)
    finally:
        env.close()


def test_shaping_pays_the_drop_in_the_tasks_error(repo, one_thread):
    """``shaping``: a tick's reward is the success indicator plus shaping x (the task's error
    before the tick - after it), the vectorized env reporting both; 0 leaves the sparse reward."""
    from rosmind.policies.resip.env import ResidualEnv, ResidualEnvConfig

    env = ResidualEnv(ResidualEnvConfig(base=str(repo / "checkpoints/dp_peg_insert"), task="peg_insert", num_envs=2,
                                        shaping=5.0, task_options={"time_limit_s": 0.5}))
    try:
        env.reset()
        assert np.all(np.isfinite(env.vec.errors)) and np.all(env.vec.errors > 0.05)  # the peg starts far off
        total = np.zeros(2)
        for _ in range(12):  # 10 ticks an episode: both end (time out) and restart at tick 10
            before = env.vec.errors.copy()
            _, reward, done, _ = env.step(np.zeros((2, env.num_actions)))
            if not done.any():
                np.testing.assert_allclose(reward, 5.0 * (before - env.vec.errors), rtol=1e-5, atol=1e-7)
            total += reward
        assert np.all(total > 0)  # the base moves the peg towards the hole
    finally:
        env.close()
    with pytest.raises(SpecError, match="shaping: must be >= 0"):
        ResidualEnvConfig(shaping=-1.0)


def test_goal_frame_features_and_an_untrained_goal_frame_residual(repo, tmp_path, one_thread):
    """``goal_frame``: the hand's pose in the goal's frame joins the residual's input (ee_pose is
    subscribed though the base does not read it); the features ignore a quaternion's sign, and
    an untrained residual is still the base to the bit."""
    import math

    from rosmind.policies.resip.policy import goal_frame_features

    def pose(x, y, z, yaw, flip=1.0):  # a hand pointing down (pi about x), then yaw about z
        q = np.array([math.cos(yaw / 2), math.sin(yaw / 2), 0.0, 0.0]) * flip
        return np.array([x, y, z, *q])

    goal = np.array([0.5, 0.1, 0.03, 0.0, 0.0, math.sin(0.25), math.cos(0.25)])  # yaw 0.5 about z
    ee = pose(0.5 + 0.01 * math.cos(0.5), 0.1 + 0.01 * math.sin(0.5), 0.1, 0.5 + math.pi / 2 + 0.02)
    f = goal_frame_features(ee, goal, math.pi / 2)
    np.testing.assert_allclose(f, [0.01, 0.0, 0.07, 0.02], atol=1e-12)  # 1 cm along the hole's x
    ee[3:] *= -1  # the same orientation
    np.testing.assert_allclose(goal_frame_features(ee, goal, math.pi / 2), f, atol=1e-12)
    # goal_tilt: the hand's z axis in the goal's frame, (0, 0) pointing straight down ...
    np.testing.assert_allclose(goal_frame_features(ee, goal, math.pi / 2, tilt=True)[4:], [0.0, 0.0], atol=1e-12)
    tilted = np.array([0.5, 0.1, 0.1, 0.0, math.sin((math.pi - 0.1) / 2), 0.0, math.cos((math.pi - 0.1) / 2)])
    for sign in (1.0, -1.0):  # ... and 0.1 rad off it towards the world's x, turned into the goal's yaw
        tilted[3:] *= sign
        np.testing.assert_allclose(goal_frame_features(tilted, goal, math.pi / 2, tilt=True)[4:],
                                   [math.sin(0.1) * math.cos(0.5), -math.sin(0.1) * math.sin(0.5)], atol=1e-12)
    with pytest.raises(SpecError, match="goal_tilt: needs goal_frame"):
        ResipConfig(base="x", goal_tilt=True)

    peg = "checkpoints/dp_peg_insert"
    res = ResidualPolicy(ResipConfig(base=str(repo / peg), goal_frame=True))
    assert "ee_pose" not in res.base.config.obs_keys and res.config.obs_keys[-1] == "ee_pose"
    assert res.config.obs_dim == sum(res._sizes) + 4 + 8
    assert ResidualPolicy(ResipConfig(base=str(repo / peg), goal_frame=True, goal_tilt=True)).config.obs_dim == \
        res.config.obs_dim + 2
    save_checkpoint(res, tmp_path / "gf")
    assert read_manifest(tmp_path / "gf")["observations"]["ee_pose"]["topic"] == "ee_pose"
    a, b = (_actions(p, 5, "peg_insert", 1.0) for p in (load_checkpoint(tmp_path / "gf"), load_checkpoint(repo / peg)))
    assert a.shape == (20, 8)
    np.testing.assert_array_equal(a, b)


def test_an_ee_space_residual_moves_the_hand_by_its_twist(repo, tmp_path, one_thread):
    """``residual_space="ee"`` (the paper's end-effector space): a unit of mu's first three moves
    the hand ``action_scale * ee_speed * period`` along that base axis, a unit of the next three
    turns it ``action_scale * ee_rate * period`` about it (through the Jacobian: first order),
    the last unit moves the fingers as in joint space; zero units are zero to the bit, and an
    untrained ee residual is still the base."""
    from rosmind.teleop import make_kinematics

    res = ResidualPolicy(ResipConfig(base=str(repo / BASE), residual_space="ee"))
    assert res.config.residual_dim == 7 and res.mlp[-1].out_features == 7
    kin = make_kinematics(res.spec)
    q = np.array([0.1, 0.3, -0.1, -2.0, 0.05, 2.3, 0.785, 0.04])
    p0, r0 = kin.fk_pose(q[:7])
    step = 0.1 * 1.0 * res.spec.control_period  # 5 mm at 20 Hz
    for axis in range(3):
        mu = np.zeros(7)
        mu[axis] = 1.0
        dq = res.to_joint(mu, np.stack([q * 0.5, q]))  # the newest row of a history
        moved = kin.fk_pose(q[:7] + dq[:7])[0] - p0
        want = np.eye(3)[axis] * step
        np.testing.assert_allclose(moved, want, atol=0.03 * step)
        assert dq[7] == 0.0
    import pybullet as pb

    mu = np.zeros(7)
    mu[5] = 1.0  # about the base's z
    turned = kin.fk_pose(q[:7] + res.to_joint(mu, q)[:7])[1]
    rel = pb.getEulerFromQuaternion(pb.multiplyTransforms([0, 0, 0], turned, [0, 0, 0], pb.invertTransform([0, 0, 0], r0)[1])[1])
    np.testing.assert_allclose(rel, [0.0, 0.0, 0.1 * 2.0 * res.spec.control_period], atol=5e-4)
    mu = np.zeros(7)
    mu[6] = 1.0
    np.testing.assert_array_equal(res.to_joint(mu, q), np.r_[np.zeros(7), res.scale[7]])
    assert not np.any(res.to_joint(np.zeros(7), q))
    with pytest.raises(SpecError, match="residual_space: 'cartesian' is not one of"):
        ResipConfig(base="x", residual_space="cartesian")
    save_checkpoint(res, tmp_path / "ee")
    back = load_checkpoint(tmp_path / "ee")
    assert back.config.residual_space == "ee" and back.mlp[-1].out_features == 7
    np.testing.assert_array_equal(_actions(back, 11), _actions(load_checkpoint(repo / BASE), 11))


def test_a_base_for_another_task_is_refused(repo, tmp_path):
    """By the task its training episodes ran (the base's manifest), and by what the task observes:
    a pick_place base reads one object pose, peg_insert publishes two."""
    import subprocess
    import sys

    from rosmind.policies.resip.env import ResidualEnv, ResidualEnvConfig

    r = subprocess.run([sys.executable, "-m", "rosmind.cli", "train", "--policy", "resip", "--base",
                        str(repo / "checkpoints/dp_peg_insert"), "--task", "pick_place", "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "was trained on 'peg_insert' episodes, not task 'pick_place'" in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()
    with pytest.raises(SpecError, match=r"object_poses is \[2, 7\] here, \[1, 7\] for the policy"):
        ResidualEnv(ResidualEnvConfig(base=str(repo / BASE), task="peg_insert", num_envs=1))


def test_a_resumed_run_counts_its_episodes_on(repo, tmp_path):
    """progress.jsonl's episode counts (the learning curve) go on across a resume, as its wall time does."""
    from rosmind.policies.rl import train_rl

    out = tmp_path / "run"
    args = ["rl.num_steps_per_env=4", "env.num_envs=2", "rl.progress=false", "rl.save_every=1",
            'env.task_options={"time_limit_s": 0.15}']  # 3-tick episodes: some end every iteration
    train_rl("pick_place", out, ["rl.iterations=1", *args], family="resip")
    train_rl("pick_place", out, ["rl.iterations=2"], resume=True, family="resip")
    rows = [json.loads(x) for x in (out / "progress.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]
    assert 0 < rows[0]["episodes"] < rows[1]["episodes"] and rows[0]["wall_s"] <= rows[1]["wall_s"]


@pytest.mark.parametrize("target_kl, passes", [(1e-9, 1), (1e9, 6)])
def test_ppo_stops_its_passes_at_the_target_kl(target_kl, passes):
    """``rl.target_kl`` (ResiP's code: up to 50 passes, stopped at KL 0.1): a pass after the first
    runs only while the policy's KL from the one that collected the batch is within it."""
    from types import SimpleNamespace

    from tensordict import TensorDict

    from rosmind.policies.ppo_kl import KLStopPPO
    from rosmind.policies.rl import RLConfig

    torch.manual_seed(0)
    n_envs, steps, dim, act = 4, 8, 5, 3
    cfg = RLConfig(target_kl=target_kl, num_learning_epochs=6, num_mini_batches=2,
                   num_steps_per_env=steps, actor_hidden=(16,), critic_hidden=(16,), init_std=0.3).runner_cfg()
    cfg["multi_gpu"] = None
    assert cfg["algorithm"]["class_name"].endswith("KLStopPPO")

    def obs():
        x = torch.randn(n_envs, dim)
        return TensorDict({"policy": x, "critic": x}, batch_size=[n_envs])

    env = SimpleNamespace(num_envs=n_envs, num_actions=act, cfg={})
    alg = KLStopPPO.construct_algorithm(obs(), env, cfg, "cpu")
    before = [p.clone() for p in alg.actor.parameters()]
    for _ in range(steps):
        o = obs()
        a = alg.act(o)
        alg.process_env_step(o, -a.pow(2).sum(1), torch.zeros(n_envs, dtype=torch.long), {})
    alg.compute_returns(obs())
    losses = alg.update()
    assert alg.epochs_run == passes and losses["epochs"] == passes
    assert any(not torch.equal(b, p) for b, p in zip(before, alg.actor.parameters(), strict=True))
    assert "mini_batch_generator" not in vars(alg.storage)  # the method is the storage's own again
    with pytest.raises(SpecError, match="target_kl"):
        RLConfig(target_kl=-0.1)
    assert RLConfig().runner_cfg()["algorithm"]["class_name"] == "PPO"
