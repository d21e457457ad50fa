"""Quadruped locomotion on the MuJoCo backend: terrains, the single-world robot robot_node hosts,
the vectorized env (contract, determinism, reward terms by hand), PPO through rsl-rl on a tiny
budget, the exported policy (same numbers as rsl-rl's actor, same observation as the env), the
setpoint limiter safety passes unchanged, and the fall guard."""

from __future__ import annotations

import json
import math

import mujoco
import numpy as np
import pytest
import torch

from rosmind.checkpoint import load_checkpoint, read_manifest
from rosmind.errors import CheckpointError, SpecError, UnknownNameError
from rosmind.fall_guard import FallGuard, FallGuardConfig, tilt_deg
from rosmind.safety import SafetyConfig, SafetySupervisor
from rosmind.sim.locomotion import (
    LOCOMOTION_TASKS,
    REWARD_TERMS,
    LocomotionConfig,
    LocomotionEnv,
    StepState,
    quat_rotate_inverse,
)
from rosmind.sim.mujoco.models import build_model
from rosmind.sim.mujoco.terrain import Terrain, TerrainConfig
from rosmind.sim.robots import make_sim
from rosmind.spec import load_spec
from rosmind.teleop import TeleopCommand, VelocityTeleopConfig, velocity_command
from rosmind.trajectory import SetpointLimiter

pytestmark = pytest.mark.sim


def small_env(**kw) -> LocomotionEnv:
    return LocomotionEnv(LOCOMOTION_TASKS.get(kw.pop("task", "a1_velocity")).factory(
        **{"num_envs": 6, "threads": 1, **kw}))


@pytest.mark.parametrize("kind", ["rough", "slopes", "stairs"])
def test_terrain_is_seeded_and_the_heightfield_is_where_height_at_says(kind):
    cfg = TerrainConfig(kind=kind, rows=2, cols=2, tile_size=2.0)
    a, b = Terrain.build(cfg, seed=3), Terrain.build(cfg, seed=3)
    assert np.array_equal(a.heights, b.heights)
    model, terrain = build_model("a1", a)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    rng = np.random.default_rng(0)
    ex, ey = terrain.extent
    res = cfg.resolution
    geomid = np.zeros(1, dtype=np.int32)
    floor_group = np.array([1, 0, 0, 0, 0, 0], dtype=np.uint8)
    for _ in range(40):
        # Cell centres: where the heightfield's samples sit.
        j, i = rng.integers(1, terrain.heights.shape[1] - 1), rng.integers(1, terrain.heights.shape[0] - 1)
        x, y = -ex + (j + 0.5) * res, -ey + (i + 0.5) * res
        dist = mujoco.mj_ray(model, data, np.array([x, y, 2.0]), np.array([0, 0, -1.0]), floor_group, 1, -1, geomid)
        assert dist > 0
        assert abs((2.0 - dist) - terrain.height_at(x, y)) < 2e-3, (kind, x, y)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid terrains: flat, rough"):
        TerrainConfig(kind="moon")
    with pytest.raises(SpecError, match="valid terrains"):
        LocomotionConfig(terrain="moon")
    with pytest.raises(UnknownNameError, match="known quadruped models: a1, go2"):
        LocomotionConfig(robot="spot")
    with pytest.raises(UnknownNameError, match="valid backends: pybullet, mujoco"):
        make_sim("a1", "walk", backend="isaac")
    with pytest.raises(SpecError, match="needs backend 'mujoco'"):
        make_sim("a1", "walk", terrain="stairs")
    with pytest.raises(SpecError, match="is for a quadruped"):
        make_sim("panda", "walk")
    with pytest.raises(SpecError, match="unknown term"):
        LocomotionConfig(reward_scales={"flying": 1.0})


@pytest.mark.parametrize("robot, task", [("a1", "stand"), ("go2", "walk")])
def test_mujoco_quadruped_stands_and_reads_like_the_pybullet_one(robot, task):
    """The A1 stands up from lying; the Go2 (a second model, no locomotion code changed) holds
    its stand pose; both read the keys the PyBullet A1 reads."""
    options = {"time_limit_s": 2.0} if task == "walk" else {}
    with make_sim(robot, task, backend="mujoco", **options) as sim:
        obs = sim.reset(0)
        while not sim.task_status()["done"]:
            sim.write(sim.default_setpoint())
            sim.step()
        assert sim.task_status()["success"], sim.read()["odom_pose"]
        obs = sim.read()
        assert obs["joint_pos"].shape == (12,) and np.all(np.isfinite(obs["joint_pos"]))
        # At rest the accelerometer reads +g up and the IMU quaternion is unit (x y z w).
        assert abs(obs["imu_linear_acceleration"][2] - 9.81) < 0.3
        assert abs(np.linalg.norm(obs["imu_orientation"]) - 1) < 1e-9
    if robot == "a1":
        with make_sim("a1", "stand") as bullet:
            assert sorted(bullet.read()) == sorted(obs)
    with make_sim(robot, "walk", backend="mujoco") as sim, pytest.raises(SpecError, match="non-finite"):
        sim.write(np.full(12, np.nan))


def test_env_contract_shapes_finite_and_deterministic_under_a_seed():
    rng = np.random.default_rng(1)
    actions = rng.normal(0, 1.0, (40, 6, 12))
    runs = []
    for threads in (1, 2):
        env = small_env(seed=7, threads=threads)
        obs = env.reset()
        assert obs["policy"].shape == (6, 3 * 45) and obs["critic"].shape == (6, 3 * 45 + 8)
        trace = []
        for a in actions:
            obs, rew, done, info = env.step(a)
            assert np.all(np.isfinite(obs["policy"])) and np.all(np.isfinite(rew))
            assert rew.shape == done.shape == info["time_outs"].shape == (6,)
            trace.append((obs["policy"].copy(), rew.copy(), done.copy()))
        runs.append(trace)
        env.close()
    for (o1, r1, d1), (o2, r2, d2) in zip(*runs, strict=True):
        assert np.array_equal(o1, o2) and np.array_equal(r1, r2) and np.array_equal(d1, d2)
    other = small_env(seed=8)
    assert not np.array_equal(other.reset()["policy"], small_env(seed=7).reset()["policy"])


def test_env_resets_fallen_worlds_and_reports_time_outs_apart():
    env = small_env(episode_s=0.2, seed=0)
    env.reset()
    saw_timeout = False
    for _ in range(12):
        _, _, done, info = env.step(np.zeros((6, 12)))
        saw_timeout |= bool(info["time_outs"].any())
        assert np.all(env.episode_length[done] == 0)
    assert saw_timeout
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.full((6, 12), np.nan))


def _state(**kw) -> StepState:
    n, d = 2, 12
    base = dict(lin_vel=np.zeros((n, 3)), ang_vel=np.zeros((n, 3)), gravity=np.tile([0.0, 0, -1], (n, 1)),
                height=np.full(n, 0.28), command=np.zeros((n, 3)), joint_pos=np.zeros((n, d)),
                joint_vel=np.zeros((n, d)), last_joint_vel=np.zeros((n, d)), torque=np.zeros((n, d)),
                action=np.zeros((n, d)), last_action=np.zeros((n, d)), first_contact=np.zeros((n, 4), bool),
                air_time=np.zeros((n, 4)), collision=np.zeros(n, int), soft_lower=np.full(d, -1.0),
                soft_upper=np.full(d, 1.0), dt=0.02, cfg=LocomotionConfig())
    return StepState(**{**base, **kw})


def test_reward_terms_match_hand_computed_values():
    s = _state(lin_vel=np.array([[0.5, 0.0, 0.1], [1.0, 0.2, 0.0]]), command=np.array([[1.0, 0.0, 0.5], [1.0, 0.0, 0.0]]),
               ang_vel=np.array([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]]))
    # exp(-|(1, 0) - (0.5, 0)|^2 / 0.25) = exp(-1); exp(-0.04 / 0.25)
    assert np.allclose(REWARD_TERMS["tracking_lin_vel"](s), [math.exp(-1.0), math.exp(-0.16)])
    assert np.allclose(REWARD_TERMS["tracking_ang_vel"](s), [math.exp(-0.04 / 0.25), 1.0])
    assert np.allclose(REWARD_TERMS["lin_vel_z"](s), [0.01, 0.0])
    assert np.allclose(REWARD_TERMS["ang_vel_xy"](s), [0.05, 0.0])
    s = _state(first_contact=np.array([[True, False, True, False], [False] * 4]),
               air_time=np.array([[0.7, 0.1, 0.3, 0.0], [0.9] * 4]), command=np.array([[0.5, 0, 0], [0.0, 0, 0]]))
    # (0.7 - 0.5) + (0.3 - 0.5) = 0 for the moving world; no reward when told to stand.
    assert np.allclose(REWARD_TERMS["feet_air_time"](s), [0.0, 0.0])
    s = _state(joint_pos=np.array([[1.5] + [0.0] * 11, [-1.25] + [0.0] * 11]),
               joint_vel=np.array([[0.2] * 12, [0.0] * 12]), action=np.ones((2, 12)), height=np.array([0.15, 0.25]),
               gravity=np.array([[0.6, 0.0, -0.8], [0, 0, -1.0]]), torque=np.array([[2.0] * 12, [0.0] * 12]))
    assert np.allclose(REWARD_TERMS["dof_pos_limits"](s), [0.5, 0.25])
    assert np.allclose(REWARD_TERMS["dof_acc"](s), [12 * (0.2 / 0.02) ** 2, 0.0])
    assert np.allclose(REWARD_TERMS["action_rate"](s), [12.0, 12.0])
    assert np.allclose(REWARD_TERMS["base_height"](s), [0.01, 0.0])
    assert np.allclose(REWARD_TERMS["orientation"](s), [0.36, 0.0])
    assert np.allclose(REWARD_TERMS["torques"](s), [48.0, 0.0])


def test_quat_rotate_inverse_against_mujoco():
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        v = rng.normal(size=3)
        mat = np.empty(9)
        mujoco.mju_quat2Mat(mat, q)
        assert np.allclose(quat_rotate_inverse(q[None], v[None])[0], mat.reshape(3, 3).T @ v)


def test_policy_sees_from_robot_topics_what_the_env_computes(tmp_path):
    """The deployed policy's frame (from joint states, IMU and cmd_vel) is the env's frame."""
    from rosmind.policies.locomotion import LocomotionPolicy, LocomotionPolicyConfig

    env = small_env(seed=2)
    env.reset()
    for _ in range(5):
        env.step(np.random.default_rng(0).normal(0, 0.5, (6, 12)))
    sim = make_sim("a1", "walk", backend="mujoco")
    sim.reset(0)
    sim.data.qpos[:] = env.state[0, env.batch.qpos]
    sim.data.qvel[:] = env.state[0, env.batch.qvel]
    mujoco.mj_forward(sim.model, sim.data)
    obs = sim.read()
    policy = LocomotionPolicy(LocomotionPolicyConfig(robot="a1", default_pose=tuple(env.default_pose)))
    policy._last_action = env.action[0].copy()
    frame = policy.frame({k: obs[k][None] for k in ("joint_pos", "joint_vel", "imu_orientation",
                                                     "imu_angular_velocity")} | {"cmd_vel": env.command[:1]})
    assert np.allclose(frame, env._frame()[0], atol=1e-6)


def test_ppo_smoke_run_exports_what_rsl_rl_trained(tmp_path, one_thread):
    from rosmind.policies.rl import train_rl

    out = tmp_path / "run"
    ckpt = train_rl("a1_velocity", out, ["rl.iterations=2", "rl.num_steps_per_env=4", "env.num_envs=8",
                                         "env.threads=1", "rl.actor_hidden=[32,32]", "rl.critic_hidden=[32,32]",
                                         "rl.save_every=1", "rl.progress=false"])
    assert (out / "checkpoints" / "latest" / "train_state.safetensors").is_file()
    assert not list(out.rglob("*.pt")), "no pickle files"
    policy = load_checkpoint(ckpt, load_spec("a1"))
    # The same numbers as rsl-rl's actor (normalizer + MLP, deterministic mean).
    from rsl_rl.models import MLPModel
    from safetensors.torch import load_file
    from tensordict import TensorDict

    x = torch.randn(5, 135)
    td = TensorDict({"policy": x, "critic": torch.zeros(5, 143)}, batch_size=[5])
    actor = MLPModel(td, {"actor": ["policy"], "critic": ["critic"]}, "actor", 12, hidden_dims=[32, 32],
                     obs_normalization=True, distribution_cfg={"class_name": "GaussianDistribution"})
    state = load_file(str(out / "checkpoints" / "latest" / "train_state.safetensors"))
    actor.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("actor.")})
    actor.eval()
    assert torch.allclose(policy.act_normalized(x), actor.as_jit()(x), atol=1e-5)
    # --resume continues from the saved iteration; a checkpoint for another robot is refused.
    first = json.loads((out / "run.json").read_text())
    train_rl("a1_velocity", out, ["rl.iterations=3"], resume=True)
    run = json.loads((out / "run.json").read_text())  # the run's own command stays; the resume is added
    assert run["command"] == first["command"] and len(run["resumed"]) == 1 and first["resumed"] == []
    rows = [json.loads(x) for x in (out / "progress.jsonl").read_text().splitlines()]
    walls = [r["wall_s"] for r in rows]
    assert [r["iteration"] for r in rows] == [1, 2, 3] and walls == sorted(walls)  # wall time goes on
    assert read_manifest(ckpt)["training"]["wall_s"] >= walls[1]
    with pytest.raises(CheckpointError, match="trained for robot 'a1', not 'go2'"):
        load_checkpoint(ckpt, load_spec("go2"))


def test_policy_clamps_commands_beyond_its_trained_range():
    from rosmind.policies.locomotion import LocomotionPolicy

    policy = LocomotionPolicy()
    obs = {"joint_pos": np.array([policy.config.default_pose]), "joint_vel": np.zeros((1, 12)),
           "imu_orientation": np.array([[0, 0, 0, 1.0]]), "imu_angular_velocity": np.zeros((1, 3)),
           "cmd_vel": np.array([[3.0, 0.0, 0.0]])}
    out = policy.infer(obs)
    assert policy.last_clamped and out["action"].shape == (1, 12)
    policy.infer({**obs, "cmd_vel": np.array([[0.5, 0.1, -0.2]])})
    assert not policy.last_clamped
    with pytest.raises(ValueError, match="non-finite observation 'imu_orientation'"):
        policy.infer({**obs, "imu_orientation": np.array([[np.nan, 0, 0, 1]])})


def test_limited_setpoints_pass_safety_unchanged():
    spec = load_spec("a1")
    lim = SetpointLimiter(spec, 0.9)
    now = [0.0]
    # rearm_tolerance_rad as launch/sim_a1_walk.launch.yaml sets it for the A1 (its first step from
    # rest may change by 0.9 x 1000 rad/s^2 x dt^2 = 0.36 rad).
    sup = SafetySupervisor(spec, SafetyConfig(robot="a1", max_jump_rad=0.5, rearm_tolerance_rad=0.4),
                           lambda: now[0], lambda m: None)
    q = np.array(spec.extra["stand_pose"])
    sup.update_measured(q)
    lim.reset(q)
    rng = np.random.default_rng(0)
    sent = []
    for k in range(200):
        now[0] = k * spec.control_period
        target = q + rng.normal(0, 0.4, 12)  # a jittery, untrained policy
        point = lim(target)
        out = sup.filter_timed_trajectory(spec.joint_names, np.array([0.0]), point[None], now[0], None, False)
        assert out is not None
        sent.append(np.allclose(out[0], point))
        sup.update_measured(point)
    assert all(sent) and sup.interventions_total == 0


def test_fall_guard_trips_on_tilt_and_folds_slowly():
    spec = load_spec("a1")
    guard = FallGuard(spec, FallGuardConfig(max_tilt_deg=50, crouch_speed=1.0))
    assert tilt_deg([0, 0, 0, 1]) == pytest.approx(0.0)
    s = math.sin(math.radians(30)), math.cos(math.radians(30))  # 60 deg about x
    assert tilt_deg([s[0], 0, 0, s[1]]) == pytest.approx(60.0)
    assert not guard.update_imu([0, 0, 0, 1])
    assert guard.update_imu([s[0], 0, 0, s[1]]) and guard.fallen
    assert not guard.update_imu([s[0], 0, 0, s[1]]), "trips once"
    q = np.array(spec.extra["stand_pose"])
    nxt = guard.setpoint(q)
    assert np.max(np.abs(nxt - q)) <= 1.0 * spec.control_period + 1e-12
    for _ in range(200):
        nxt = guard.setpoint(nxt)
    assert np.allclose(nxt, spec.extra["crouch_pose"])
    past = np.array(spec.limits("upper")) + 0.1  # a measured position past every limit
    assert np.all(guard.setpoint(past) <= np.array(spec.limits("upper")))
    guard.reset()
    assert not guard.fallen and FallGuard(spec).update_imu([np.nan, 0, 0, 1])
    panda = load_spec("panda")
    with pytest.raises(SpecError, match="extra.crouch_pose"):
        FallGuard(panda)


def test_teleop_velocity_command_needs_the_deadman():
    cfg = VelocityTeleopConfig(max_vx=1.0, max_vy=0.5, max_yaw_rate=1.0)
    tw = np.array([0.5, -1.0, 0.3, 0.0, 0.0, 2.0])
    assert velocity_command(TeleopCommand(twist=np.clip(tw, -1, 1), deadman=False), cfg) is None
    assert velocity_command(None, cfg) is None
    v = velocity_command(TeleopCommand(twist=np.clip(tw, -1, 1), deadman=True), cfg)
    assert np.allclose(v, [0.5, -0.5, 1.0])


def test_warp_path_agrees_with_the_c_backend_on_a_few_worlds():
    """mujoco-warp (float32, its own solver) on CPU, 3 worlds: after 10 policy steps of the same
    targets, the same states as mujoco.rollout to within float32 physics."""
    pytest.importorskip("mujoco_warp")
    envs = {p: small_env(num_envs=3, seed=4, physics=p, randomize=False, warp_device="cpu") for p in ("c", "warp")}
    for env in envs.values():
        env.reset()
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = rng.normal(0, 0.5, (3, 12))
        for env in envs.values():
            env.step(a)
    c, w = envs["c"].state, envs["warp"].state
    assert np.abs(c[:, envs["c"].batch.qpos] - w[:, envs["warp"].batch.qpos]).max() < 5e-3
    assert np.abs(c[:, envs["c"].batch.qvel] - w[:, envs["warp"].batch.qvel]).max() < 0.1
    with pytest.raises(SpecError, match="needs physics='c'"):
        LocomotionConfig(physics="warp")
