"""Diffusion Policy: UNet and policy shapes, the policy contract, normalizer, EMA, encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rosmind.errors import SpecError, UserError
from rosmind.policies.diffusion import DiffusionConfig, DiffusionPolicy
from rosmind.policies.diffusion.encoders import ImageEncoder
from rosmind.policies.diffusion.unet import ConditionalUnet1D, inference_copy
from rosmind.policies.ema import EMAModel
from rosmind.policies.normalizer import Normalizer
from rosmind.registry import POLICIES

pytestmark = pytest.mark.unit

SMALL = dict(down_dims=(16, 32), step_embed_dim=16, n_groups=4, horizon=8, n_action_steps=4,
             num_inference_steps=3)


def _obs(cfg: DiffusionConfig, batch: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lead = (cfg.n_obs_steps,) if batch is None else (batch, cfg.n_obs_steps)
    out = {}
    for k in cfg.obs_keys:
        shape = cfg.obs_shapes[k]
        out[k] = (rng.integers(0, 255, lead + shape, dtype=np.uint8) if k.startswith("camera/")
                  else rng.normal(size=lead + shape))
    return out


@pytest.fixture(scope="module")
def policy() -> DiffusionPolicy:
    torch.manual_seed(0)
    return DiffusionPolicy(DiffusionConfig(**SMALL))


@pytest.mark.parametrize("down_dims,horizon", [((16, 32), 8), ((16, 32, 64), 16), ((16,), 5)])
def test_unet_maps_trajectory_to_same_shape(down_dims, horizon):
    net = ConditionalUnet1D(8, 30, down_dims, step_embed_dim=16, kernel_size=5, n_groups=4)
    x = torch.randn(3, horizon, 8)
    out = net(x, torch.tensor([0, 5, 99]), torch.randn(3, 30))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert net(x[:1], torch.tensor(7), torch.randn(1, 30)).shape == (1, horizon, 8)


def test_unet_output_depends_on_step_and_condition():
    torch.manual_seed(0)
    net = ConditionalUnet1D(4, 6, (8, 16), 8, 3, 4)
    x, c = torch.randn(2, 8, 4), torch.randn(2, 6)
    t = torch.tensor([3, 3])
    assert not torch.allclose(net(x, t, c), net(x, t + 40, c))
    assert not torch.allclose(net(x, t, c), net(x, t, c + 1))
    with pytest.raises(ValueError, match="divisible"):
        net(torch.randn(1, 7, 4), torch.tensor([0]), torch.randn(1, 6))


@pytest.mark.parametrize("kw,field", [
    (dict(horizon=10, down_dims=(16, 32, 64)), "horizon"),
    (dict(n_action_steps=16, n_obs_steps=2), "horizon"),
    (dict(sampler="euler"), "sampler"),
    (dict(num_inference_steps=101), "num_inference_steps"),
    (dict(obs_keys=("joint_pos", "wrench")), "obs_shapes"),
    (dict(down_dims=(12, 32)), "down_dims"),
    (dict(obs_keys=("camera/wrist/rgb",), obs_shapes={"camera/wrist/rgb": (64, 64)}), "obs_shapes"),
    (dict(n_samples=0), "n_samples"),
])
def test_config_validation_names_the_field(kw, field):
    with pytest.raises(SpecError, match=f"DiffusionConfig.{field}"):
        DiffusionConfig(**kw)


def test_registered_and_builds_from_defaults():
    entry = POLICIES.get("diffusion")
    assert entry.factory is DiffusionPolicy and entry.config is DiffusionConfig
    cfg = entry.config()
    assert (cfg.n_obs_steps, cfg.horizon, cfg.n_action_steps) == (2, 16, 8)
    assert cfg.obs_keys == ("joint_pos", "ee_pose", "object_poses", "goal_pose")
    assert (cfg.num_train_timesteps, cfg.beta_schedule, cfg.prediction_type, cfg.sampler,
            cfg.num_inference_steps) == (100, "squaredcos_cap_v2", "epsilon", "ddim", 10)
    p = entry.factory(cfg)
    out = p.infer(_obs(cfg))
    assert out["action"].shape == (8, 8) and out["action"].dtype == np.float32
    assert np.isfinite(out["action"]).all()


def test_infer_and_infer_batch_shapes(policy):
    cfg = policy.config
    assert policy.infer(_obs(cfg))["action"].shape == (cfg.n_action_steps, cfg.action_dim)
    batch = policy.infer_batch(_obs(cfg, batch=5))["action"]
    assert batch.shape == (5, cfg.n_action_steps, cfg.action_dim) and np.isfinite(batch).all()


def test_reseed_makes_inference_repeatable_and_reset_keeps_drawing_fresh_noise(policy):
    obs = _obs(policy.config)
    policy.reseed()
    a1, a2 = policy.infer(obs)["action"], policy.infer(obs)["action"]
    policy.reseed()
    policy.reset()
    policy.reset()
    b1, b2 = policy.infer(obs)["action"], policy.infer(obs)["action"]
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # fresh noise each call
    # A new episode must not replay the last one's noise: every episode drawing the same
    # stream made sequential evaluation one correlated sample (10/20 against 15-17/20).
    policy.reset()
    assert not np.array_equal(policy.infer(obs)["action"], a1)
    policy.reseed(7)
    c = policy.infer(obs)["action"]
    policy.reseed(7)
    np.testing.assert_array_equal(c, policy.infer(obs)["action"])
    assert not np.array_equal(c, a1)


def test_n_samples_executes_the_medoid_of_its_draws():
    torch.manual_seed(0)
    p = DiffusionPolicy(DiffusionConfig(**SMALL, n_samples=5))
    cfg, b, k = p.config, 3, 5
    cond = p._encode(p._obs_tensors(_obs(cfg, batch=b), batched=True), augment=False)
    p.reseed(3)
    chosen = p.sample_chunks(cond).numpy()
    p.reseed(3)  # the same noise: every draw, row-major per observation
    draws = p.sample(cond.repeat_interleave(k, dim=0)).numpy().reshape(b, k, cfg.horizon, cfg.action_dim)
    rows = draws[:, :, cfg.n_obs_steps - 1:cfg.n_obs_steps - 1 + cfg.n_action_steps]
    for i in range(b):
        cost = [sum(np.linalg.norm(rows[i, a] - rows[i, c]) for c in range(k)) for a in range(k)]
        np.testing.assert_array_equal(chosen[i], draws[i, int(np.argmin(cost))])
        assert len({round(float(c), 6) for c in cost}) == k  # distinct draws: the choice is real
    # One draw (the default) is the plain sampler, the same noise as before the option existed.
    p.config.n_samples = 1
    p.reseed(3)
    one = p.sample_chunks(cond).numpy()
    p.reseed(3)
    np.testing.assert_array_equal(one, p.sample(cond).numpy())
    assert "n_samples" in DiffusionConfig.resumable_fields  # run time only: init_from may change it


def test_frozen_sampling_matches_eager_and_is_dropped_on_weight_changes():
    torch.manual_seed(1)
    p = DiffusionPolicy(DiffusionConfig(**SMALL))
    obs, batch = _obs(p.config), _obs(p.config, batch=3)
    p.reseed()
    eager, eager_b = p.infer(obs)["action"], p.infer_batch(batch)["action"]
    p.freeze_for_inference()
    p.reseed()
    frozen, frozen_b = p.infer(obs)["action"], p.infer_batch(batch)["action"]
    assert sorted(p._frozen) == [1, 3]  # one traced graph per batch size
    np.testing.assert_allclose(frozen, eager, atol=1e-5)
    np.testing.assert_allclose(frozen_b, eager_b, atol=1e-5)
    assert not any("jit" in k or "frozen" in k for k in p.state_dict())
    # New weights must not be sampled through a graph that holds the old ones as constants.
    state = {k: v + 0.05 if v.is_floating_point() else v for k, v in p.state_dict().items()}
    p.load_state_dict(state)
    assert p._frozen is None
    p.reseed()
    changed = p.infer(obs)["action"]
    assert not np.allclose(changed, frozen, atol=1e-4)
    p.freeze_for_inference()
    p.eval()  # already in eval mode: keeps the frozen graphs
    assert p._frozen == {}
    p.train()
    assert p._frozen is None and p.training
    p.eval()


def test_relative_obs_features_are_hand_relative_positions():
    from rosmind.policies.diffusion.encoders import relative_positions

    ee = torch.tensor([[[0.5, 0.0, 0.2, 0, 0, 0, 1.0]]])
    obj = torch.tensor([[[[0.4, 0.1, 0.02, 0, 0, 0, 1.0], [0.6, -0.1, 0.02, 0, 0, 0, 1.0]]]])
    goal = torch.tensor([[[0.45, -0.15, 0.02, 0, 0, 0, 1.0]]])
    f = relative_positions(ee, obj, goal, scale=0.1)
    assert f.shape == (1, 1, 15)
    np.testing.assert_allclose(f[0, 0, :6].numpy(), [-1, 1, -1.8, 1, -1, -1.8], atol=1e-6)  # obj - ee
    np.testing.assert_allclose(f[0, 0, 6:9].numpy(), [-0.5, -1.5, -1.8], atol=1e-6)  # goal - ee
    np.testing.assert_allclose(f[0, 0, 9:].numpy(), [0.5, -2.5, 0, -1.5, -0.5, 0], atol=1e-6)  # goal - obj
    p = DiffusionPolicy(DiffusionConfig(**SMALL, relative_obs=True))
    base = DiffusionPolicy(DiffusionConfig(**SMALL))
    assert p.obs_encoder.out_per_step == base.obs_encoder.out_per_step + 9
    assert p.infer(_obs(p.config))["action"].shape == (4, 8)
    with pytest.raises(SpecError, match=r"relative_obs.*goal_pose"):
        DiffusionConfig(**SMALL, relative_obs=True, obs_keys=("joint_pos", "ee_pose", "object_poses"))


def test_row_zero_is_the_newest_observation_tick(monkeypatch):
    cfg = DiffusionConfig(**{**SMALL, "n_obs_steps": 3, "n_action_steps": 4})
    p = DiffusionPolicy(cfg)
    traj = torch.arange(cfg.horizon, dtype=torch.float32)[None, :, None].expand(1, cfg.horizon, cfg.action_dim)
    monkeypatch.setattr(p, "sample", lambda cond: traj.expand(cond.shape[0], -1, -1) / 10)
    act = p.infer(_obs(cfg))["action"]
    np.testing.assert_allclose(act[:, 0], np.arange(2, 6) / 10)  # rows n_obs_steps-1 ..
    np.testing.assert_allclose(p.infer_batch(_obs(cfg, batch=2))["action"][1, :, 3], np.arange(2, 6) / 10)


def test_bad_observations_raise_user_errors(policy):
    cfg = policy.config
    obs = _obs(cfg)
    with pytest.raises(UserError, match="lacks key 'goal_pose'"):
        policy.infer({k: v for k, v in obs.items() if k != "goal_pose"})
    with pytest.raises(UserError, match="NaN"):
        policy.infer({**obs, "ee_pose": np.full((2, 7), np.nan)})
    with pytest.raises(UserError, match="'joint_pos' has shape"):
        policy.infer({**obs, "joint_pos": np.zeros((2, 6))})
    short = {k: v[-1:] for k, v in obs.items()}  # first tick: fewer than n_obs_steps
    padded = {k: np.concatenate([v[-1:], v[-1:]]) for k, v in obs.items()}
    policy.reseed()
    a = policy.infer(short)["action"]
    policy.reseed()
    np.testing.assert_array_equal(a, policy.infer(padded)["action"])
    flat = {**obs, "object_poses": obs["object_poses"].reshape(2, 7)}  # [To, 7] accepted for [To, 1, 7]
    policy.reseed()
    b = policy.infer(flat)["action"]
    policy.reseed()
    np.testing.assert_array_equal(b, policy.infer(obs)["action"])


def test_compute_loss_is_finite_and_trains_every_parameter(policy):
    cfg = policy.config
    batch = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in _obs(cfg, batch=4).items()}
    batch["action"] = torch.randn(4, cfg.horizon, cfg.action_dim)
    policy.train()
    try:
        loss = policy.compute_loss(batch)
        loss.backward()
    finally:
        policy.eval()
        grads = [p.grad for p in policy.parameters()]
        policy.zero_grad(set_to_none=True)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(g is not None for g in grads)


def test_image_policy_uses_groupnorm_and_center_crop_at_eval():
    cfg = DiffusionConfig(**SMALL, obs_keys=("joint_pos", "camera/wrist/rgb"),
                          obs_shapes={"joint_pos": (8,), "camera/wrist/rgb": (24, 32, 3)},
                          image_feature_dim=16, image_channels=(8, 16))
    p = DiffusionPolicy(cfg)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in p.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in p.obs_encoder.modules())
    obs = _obs(cfg)
    assert p.infer(obs)["action"].shape == (4, 8)
    assert p.infer_batch(_obs(cfg, batch=3))["action"].shape == (3, 4, 8)
    enc = ImageEncoder(24, 32, 16, (8, 16), crop_ratio=0.75)
    img = torch.randint(0, 255, (6, 24, 32, 3), dtype=torch.uint8)
    center = enc.crop(img, random=False)
    assert center.shape == (6, 18, 24, 3)
    torch.testing.assert_close(center, img[:, 3:21, 4:28])
    torch.manual_seed(0)
    crops = enc.crop(img[:1].expand(64, -1, -1, -1).clone(), random=True)
    assert len({c.sum().item() for c in crops}) > 1  # different offsets per image


def test_normalizer_min_max_to_unit_range_with_zero_range_guard():
    n = Normalizer({"a": (3,)})
    n.fit({"a": {"min": np.array([0.0, -2.0, 5.0]), "max": np.array([1.0, 2.0, 5.0])}})
    x = torch.tensor([[0.0, -2.0, 5.0], [1.0, 2.0, 5.0], [0.5, 0.0, 5.0]])
    y = n.normalize("a", x)
    torch.testing.assert_close(y, torch.tensor([[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(n.unnormalize("a", y), x)
    assert n.stats()["a"]["max"] == [1.0, 2.0, 5.0]
    with pytest.raises(KeyError):
        n.fit({})
    ident = Normalizer({"b": (2,)})
    torch.testing.assert_close(ident.normalize("b", torch.tensor([0.3, -0.7])), torch.tensor([0.3, -0.7]))


def test_normalizer_range_floor_does_not_amplify_barely_varying_elements():
    # A gripper quaternion component that spanned 0.001 in the demos: plain min-max multiplies a
    # 0.005 run-time tilt by 2000 (to 9); with a 0.1 floor it moves the input by 0.1.
    lo, hi = np.array([0.0, 0.0, 2.0]), np.array([1.0, 0.001, 2.0])
    plain, floored = Normalizer({"q": (3,)}), Normalizer({"q": (3,)}, min_range={"q": 0.1})
    for n in (plain, floored):
        n.fit({"q": {"min": lo, "max": hi}})
    x = torch.tensor([[0.0, 0.0055, 2.0], [1.0, 0.0005, 2.0]])
    assert plain.normalize("q", x)[0, 1] > 9
    y = floored.normalize("q", x)
    torch.testing.assert_close(y, torch.tensor([[-1.0, 0.1, 0.0], [1.0, 0.0, 0.0]]))  # wide ranges as before
    torch.testing.assert_close(floored.unnormalize("q", y), x)


def test_obs_quantile_spreads_the_working_band_a_rare_spike_set_aside(tmp_path):
    # A force sensor reads 0-15 N while wiping and 300 N on 2 % of the ticks (contact spikes):
    # min-max puts the whole working band inside 0.08 of the [-1, 1] range; quantile limits
    # spread it and a spike saturates at OBS_CLIP. The stats come from a real dataset.
    from rosmind.dataset import SequenceDataset
    from rosmind.policies.normalizer import OBS_CLIP, quantile_limits
    from tests.synthetic_data import make_dataset

    path = make_dataset(tmp_path / "d.zarr", n_episodes=4, length=50)
    ds = SequenceDataset(path, ["joint_pos"], 8, 1, 4)
    rng = np.random.default_rng(0)
    force = rng.uniform(0.0, 15.0, size=ds.arrays["joint_pos"].shape)
    force[rng.random(len(force)) < 0.02] = 300.0
    ds.arrays["joint_pos"] = force.astype(np.float32)
    stats = ds.stats(quantile=0.05)
    assert stats["joint_pos"]["max"].max() == pytest.approx(300.0)
    assert (stats["joint_pos"]["q_max"] < 15.0).all() and (stats["joint_pos"]["q_min"] > 0.0).all()
    shape = {"joint_pos": force.shape[1:]}
    plain, robust = Normalizer(shape), Normalizer(shape, clip={"joint_pos": OBS_CLIP})
    plain.fit(stats)
    robust.fit(quantile_limits(stats, ["joint_pos"], 0.05))
    band = torch.tensor([[5.0] * force.shape[1], [15.0] * force.shape[1]])
    spread = lambda n: (n.normalize("joint_pos", band)[1] - n.normalize("joint_pos", band)[0]).min()  # noqa: E731
    assert spread(plain) < 0.08 and spread(robust) > 1.0
    assert robust.normalize("joint_pos", torch.full((force.shape[1],), 300.0)).max() == pytest.approx(OBS_CLIP)
    with pytest.raises(KeyError, match="quantiles"):  # stats made without (or at another) quantile
        quantile_limits(ds.stats(), ["joint_pos"], 0.05)
    with pytest.raises(SpecError, match="obs_quantile"):
        DiffusionConfig(obs_quantile=0.3)


def test_ema_decay_schedule_and_update():
    a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    ema = EMAModel(a, b, power=0.75, max_decay=0.9999)
    assert ema.decay(0) == 0.0 and ema.decay(1) == 0.0
    assert ema.decay(11) == pytest.approx(1 - 11 ** -0.75)
    assert ema.decay(10**9) == 0.9999
    ema.step(a)  # decay 0: copy
    torch.testing.assert_close(b.weight, a.weight)
    ema.optimization_step = 11
    old = b.weight.detach().clone()
    with torch.no_grad():
        a.weight.add_(1.0)
    ema.step(a)
    d = 1 - 11 ** -0.75
    torch.testing.assert_close(b.weight, d * old + (1 - d) * a.weight.detach())
    assert ema.state() == {"optimization_step": 12}


@pytest.mark.parametrize("conv", [nn.Conv1d(8, 64, 5, padding=2), nn.Conv1d(64, 64, 3, stride=2, padding=1),
                                  nn.Conv1d(64, 128, 1), nn.ConvTranspose1d(64, 64, 4, 2, 1)],
                         ids=["k5", "k3s2", "k1", "transposed"])
def test_inference_copy_convolutions_equal_torch(conv):
    torch.manual_seed(0)
    fast = inference_copy(nn.Sequential(conv))
    assert not any(type(m) in (nn.Conv1d, nn.ConvTranspose1d) for m in fast.modules())
    for batch, length in [(1, 16), (3, 8), (2, 5)]:
        x = torch.randn(batch, conv.in_channels, length)
        with torch.no_grad():
            want = conv(x)
            got = fast(x)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="unsupported"):
        inference_copy(nn.Sequential(nn.Conv1d(8, 8, 3, groups=2)))


def test_films_for_all_steps_at_once_equal_the_per_step_forward():
    torch.manual_seed(0)
    net = ConditionalUnet1D(4, 6, (8, 16), 8, 3, 4).eval()
    x, c = torch.randn(2, 8, 4), torch.randn(2, 6)
    steps = torch.tensor([90, 40, 0])
    with torch.no_grad():
        films = net.films(steps.repeat_interleave(2), c.repeat(len(steps), 1))
        assert len(films) == len(net.film_blocks()) == 8  # 2 levels down x 2, mid 2, 1 level up x 2
        for i, t in enumerate(steps):
            got = net.denoise(x, [f[2 * i:2 * i + 2] for f in films])
            torch.testing.assert_close(got, net(x, t.expand(2), c), atol=1e-6, rtol=1e-5)
