"""CARP family: tokenizer round trip, block-causal KV-cache inference, two-stage training
through the one loop, and clear errors on bad input."""

import dataclasses

import numpy as np
import pytest
import torch

from rosmind.errors import CheckpointError, SpecError, UserError
from rosmind.policies.carp import CarpConfig, CarpPolicy

pytestmark = pytest.mark.unit

# Stated bound: after 300 tokenizer steps on smooth synthetic chunks the round-trip MSE in
# normalized units ([-1, 1]) is below 1e-2 (RMS error < 0.1, i.e. < 5% of the range; measured 5.2e-3).
ROUND_TRIP_MSE_BOUND = 1e-2


def small_config(**kw) -> CarpConfig:
    base = dict(obs_keys=("joint_pos",), obs_shapes={"joint_pos": (2,)}, action_dim=2, n_obs_steps=1,
                horizon=16, n_action_steps=8, codebook_size=64, latent_dim=4, tokenizer_hidden=16,
                d_model=32, n_layers=2, n_heads=2, dropout=0.0, tokenizer_steps=10, relative_actions=False)
    base.update(kw)
    return CarpConfig(**base)


def smooth_chunks(n: int, horizon: int, dim: int, rng: np.random.Generator) -> torch.Tensor:
    t = np.linspace(0, 1, horizon)[None, :, None]
    a = rng.uniform(-0.8, 0.8, (n, 1, dim))
    b = rng.uniform(-0.5, 0.5, (n, 1, dim))
    w = rng.uniform(1, 3, (n, 1, dim))
    return torch.tensor(a + b * np.sin(w * t), dtype=torch.float32)


def test_tokenizer_round_trip_within_bound():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    policy = CarpPolicy(small_config(tokenizer_steps=10_000))
    policy.train()
    opt = torch.optim.Adam(policy.tokenizer.parameters(), lr=2e-3)
    obs = torch.zeros(64, 1, 2)
    for _ in range(300):
        loss, logs = policy.compute_loss({"joint_pos": obs, "action": smooth_chunks(64, 16, 2, rng)})
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert "recon_mse" in logs and policy.stage == 1
    x = smooth_chunks(256, 16, 2, np.random.default_rng(1))
    recon = policy.reconstruct(x)  # identity normalizer: action units == normalized units
    mse = float(((recon - x) ** 2).mean())
    assert mse < ROUND_TRIP_MSE_BOUND, mse
    codes = policy.tokenizer.tokenize(x)
    assert [c.shape for c in codes] == [(256 * 2, s) for s in policy.config.scales]
    assert int(torch.unique(torch.cat([c.flatten() for c in codes])).numel()) > 8  # no collapse


@pytest.mark.parametrize("dim_ar", [False, True])
def test_kv_cache_equals_full_recomputation(dim_ar):
    torch.manual_seed(0)
    policy = CarpPolicy(small_config(sampling="top_k", top_k=5, dim_autoregressive=dim_ar)).eval()
    cond = torch.randn(6, policy.transformer.cond[0].in_features)
    _, cached, codes = policy.generate(cond, return_logits=True)
    b, da = cond.shape[0], policy.config.action_dim
    flat = [c.permute(0, 2, 1).reshape(b * da, -1) for c in codes]
    inputs = [policy._word_inputs(t, b) for t in policy.tokenizer.teacher_inputs(flat)]
    with torch.no_grad():
        full = policy.transformer(cond, inputs, torch.cat(codes, dim=1))
    torch.testing.assert_close(torch.cat(cached, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dim_ar", [False, True])
def test_attention_is_block_causal_over_scales(dim_ar):
    torch.manual_seed(0)
    policy = CarpPolicy(small_config(dim_autoregressive=dim_ar)).eval()
    tf, scales = policy.transformer, policy.config.scales
    cond = torch.randn(3, tf.cond[0].in_features)
    width = policy.config.action_dim * policy.config.latent_dim
    inputs = [torch.randn(3, s, width) for s in scales[1:]]
    codes = torch.randint(0, policy.config.codebook_size, (3, sum(scales), policy.config.action_dim))
    with torch.no_grad():
        base = tf(cond, inputs, codes)
        inputs[-1] = inputs[-1] + 1.0  # change the last scale only
        moved = tf(cond, inputs, codes)
    n_before = sum(scales[:-1])
    torch.testing.assert_close(base[:, :n_before], moved[:, :n_before])
    assert not torch.allclose(base[:, n_before:], moved[:, n_before:])


def test_dim_autoregressive_head_is_causal_over_dimensions():
    torch.manual_seed(0)
    policy = CarpPolicy(small_config(dim_autoregressive=True, action_dim=3)).eval()
    head = policy.transformer.dim_head
    h = torch.randn(2, 5, 32)
    codes = torch.randint(0, 64, (2, 5, 3))
    with torch.no_grad():
        base = head.teacher(h, codes)
        codes[..., 1] = (codes[..., 1] + 1) % 64  # change dimension 1's code
        moved = head.teacher(h, codes)
    torch.testing.assert_close(base[:, :, :2], moved[:, :, :2])  # dims 0 and 1 do not see it
    assert not torch.allclose(base[:, :, 2], moved[:, :, 2])  # dim 2 does


def test_generation_is_seeded_and_greedy_is_deterministic():
    policy = CarpPolicy(small_config(top_k=8, temperature=5.0)).eval()
    obs = {"joint_pos": np.zeros((1, 2), np.float32)}
    policy.reseed()
    a = [policy.infer(obs)["action"] for _ in range(4)]
    policy.reseed()
    b = [policy.infer(obs)["action"] for _ in range(4)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert a[0].shape == (8, 2)
    policy.set_sampling("greedy")
    g = [policy.infer(obs)["action"] for _ in range(3)]
    np.testing.assert_array_equal(g[0], g[1])
    np.testing.assert_array_equal(g[0], g[2])
    batched = policy.infer_batch({"joint_pos": np.zeros((5, 1, 2), np.float32)})["action"]
    assert batched.shape == (5, 8, 2)
    np.testing.assert_allclose(batched[3], g[0], atol=1e-5)


@pytest.mark.parametrize("dim_ar", [False, True])
def test_expected_decoding_adds_the_probability_weighted_codes(dim_ar):
    from rosmind.policies.carp.tokenizer import resize

    torch.manual_seed(3)
    policy = CarpPolicy(small_config(sampling="expected", temperature=2.0, dim_autoregressive=dim_ar)).eval()
    tok, cond = policy.tokenizer, torch.randn(4, policy.transformer.cond[0].in_features)
    x, logits, codes = policy.generate(cond, return_logits=True)
    f_hat = torch.zeros(4 * 2, tok.latent_dim, tok.length)
    for k, lk in enumerate(logits):  # [B, s_k, Da, V]: recorded along the expected prefix
        assert torch.equal(codes[k], lk.argmax(-1))  # the codes the dimension head conditions on
        z = torch.softmax(lk / 2.0, -1) @ tok.codebook.weight
        f_hat = f_hat + tok.phis[k](resize(z.permute(0, 2, 3, 1).reshape(8, tok.latent_dim, -1), tok.length, False))
    torch.testing.assert_close(x, tok.decode(f_hat, 2))
    torch.testing.assert_close(policy.generate(cond), x)  # deterministic: no draws used
    policy.set_sampling("greedy")
    assert not torch.allclose(policy.generate(cond), x)


def test_two_stages_switch_by_step_and_resume_keeps_stage():
    policy = CarpPolicy(small_config(tokenizer_steps=2)).train()
    batch = {"joint_pos": torch.zeros(4, 1, 2), "action": smooth_chunks(4, 16, 2, np.random.default_rng(0))}
    logs = [policy.compute_loss(batch)[1] for _ in range(3)]
    assert "recon_mse" in logs[0] and "recon_mse" in logs[1] and "token_acc" in logs[2]
    again = CarpPolicy(small_config(tokenizer_steps=2))
    again.load_state_dict(policy.state_dict())
    assert again.stage == 2 and int(again.train_step) == 3
    # Stage 2 leaves the tokenizer alone: no gradient reaches it.
    policy.zero_grad(set_to_none=True)
    policy.compute_loss(batch)[0].backward()
    assert all(p.grad is None for p in policy.tokenizer.parameters())
    assert any(p.grad is not None for p in policy.transformer.parameters())


def test_prefix_noise_slips_prefix_codes_and_targets_what_they_leave_and_obs_noise_only_trains():
    from rosmind.policies.carp.tokenizer import resize

    torch.manual_seed(0)
    tok = CarpPolicy(small_config()).tokenizer
    f = tok.encode(smooth_chunks(200, 16, 2, np.random.default_rng(0)))
    clean = tok.tokenize(smooth_chunks(200, 16, 2, np.random.default_rng(0)))
    used, targets = tok.perturbed_codes(f, 0.0, 3)
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(used, targets, clean, strict=True))

    used, targets = tok.perturbed_codes(f, 0.3, 3, torch.Generator().manual_seed(0))
    last = len(tok.scales) - 1
    for k in range(len(tok.scales)):
        slipped = (used[k] != targets[k]).float().mean().item()
        assert (slipped == 0.0) if k == last else (0.2 < slipped < 0.4), (k, slipped)
        # A slipped code is one of the 2nd/3rd nearest of its residual; the target is the nearest
        # of what the used (slipped) prefix leaves.
        f_hat = torch.zeros_like(f)
        for j in range(k):
            f_hat = tok.add_scale(f_hat, used[j], j)
        d = tok.distances(resize(f - f_hat, tok.scales[k], down=True))
        order = d.argsort(1)
        assert torch.equal(targets[k].flatten(), order[:, 0])
        rank = (order == used[k].flatten()[:, None]).float().argmax(1)
        assert int(rank.max()) <= 2

    # Only training slips: the stage-2 loss in eval mode is the unperturbed one.
    policy = CarpPolicy(small_config(tokenizer_steps=0, prefix_noise=0.5))
    batch = {"joint_pos": torch.zeros(8, 1, 2), "action": smooth_chunks(8, 16, 2, np.random.default_rng(1))}
    with torch.no_grad():
        policy.eval()
        ref = policy.compute_loss(batch)[0]
        clean_policy = CarpPolicy(small_config(tokenizer_steps=0))
        clean_policy.load_state_dict(policy.state_dict())
        assert torch.allclose(ref, clean_policy.train().compute_loss(batch)[0])
        assert not torch.allclose(ref, policy.train().compute_loss(batch)[0])
        noisy_obs = CarpPolicy(small_config(tokenizer_steps=0, obs_noise=0.5))
        noisy_obs.load_state_dict(policy.state_dict())
        assert torch.allclose(ref, noisy_obs.eval().compute_loss(batch)[0])
        assert not torch.allclose(ref, noisy_obs.train().compute_loss(batch)[0])


def test_train_loop_runs_both_stages(tmp_path):
    from rosmind.checkpoint import load_checkpoint
    from rosmind.policies.train import train
    from tests.synthetic_data import make_dataset

    ds = make_dataset(tmp_path / "d.zarr", n_episodes=4, length=30)
    res = train("carp", ds, tmp_path / "run", overrides=[
        "train.steps=6", "train.batch_size=8", "train.warmup_steps=1", "train.val_every=0",
        "train.progress=false", "train.checkpoint_every=3", "policy.tokenizer_steps=3", "policy.d_model=32",
        "policy.n_layers=1", "policy.n_heads=2", "policy.codebook_size=32"])
    assert res.step == 6
    policy = load_checkpoint(res.checkpoint)
    assert type(policy) is CarpPolicy and policy.stage == 2 and int(policy.train_step) == 6
    assert policy.config.obs_shapes["object_poses"] == (1, 7)  # filled in from the dataset
    obs = {k: np.zeros((2, *s), np.float32) for k, s in policy.config.obs_shapes.items()}
    assert policy.infer(obs)["action"].shape == (8, 8)


def test_resume_may_change_only_resumable_fields(tmp_path):
    import json

    from rosmind.checkpoint import load_checkpoint
    from rosmind.policies.train import train
    from tests.synthetic_data import make_dataset

    ds = make_dataset(tmp_path / "d.zarr", n_episodes=2, length=30)
    small = ["train.batch_size=4", "train.warmup_steps=1", "train.val_every=0", "train.progress=false",
             "policy.tokenizer_steps=2", "policy.d_model=32", "policy.n_layers=1", "policy.n_heads=2",
             "policy.codebook_size=32"]
    train("carp", ds, tmp_path / "run", overrides=["train.steps=3", "train.checkpoint_every=3", *small])
    with pytest.raises(UserError, match=r"would change the saved model: \['d_model'\].*prefix_noise"):
        train("carp", ds, tmp_path / "run", overrides=["train.steps=5", "policy.d_model=64"], resume=True)
    res = train("carp", ds, tmp_path / "run", resume=True,
                overrides=["train.steps=5", "policy.prefix_noise=0.3", "policy.obs_noise=0.02"])
    assert res.step == 5
    saved = json.loads((tmp_path / "run" / "run.json").read_text())["policy_config"]
    assert saved["prefix_noise"] == 0.3 and saved["obs_noise"] == 0.02 and saved["d_model"] == 32
    # Zero more steps: the checkpoint is exported again with the new decoding.
    res = train("carp", ds, tmp_path / "run", resume=True, overrides=["policy.sampling=expected"])
    assert res.step == 5 and load_checkpoint(res.checkpoint).config.sampling == "expected"


@pytest.mark.parametrize("kw, field", [
    (dict(scales=(1, 2, 3)), "scales"),  # last scale must be horizon/downsample = 4
    (dict(scales=(2, 1, 4)), "scales"),
    (dict(downsample=3), "downsample"),
    (dict(sampling="beam"), "sampling"),
    (dict(top_k=0), "top_k"),
    (dict(d_model=30, n_heads=4), "d_model"),
    (dict(obs_keys=("ee_pose",)), "relative_actions"),  # relative chunks need joint_pos
    (dict(action_dim=7), "relative_actions"),
    (dict(delta_limit_fraction=0.0), "delta_limit_fraction"),
    (dict(obs_min_range=-0.1), "obs_min_range"),
    (dict(prefix_noise=1.0), "prefix_noise"),
    (dict(obs_noise=-0.01), "obs_noise"),
    (dict(obs_keys=("joint_pos", "camera/wrist/rgb"), obs_shapes={"joint_pos": (8,), "camera/wrist/rgb": (8, 8, 3)}),
     "obs_keys"),
])
def test_config_rejects_bad_values_naming_the_field(kw, field):
    with pytest.raises(SpecError, match=f"CarpConfig.{field}"):
        CarpConfig(**kw)


@pytest.mark.parametrize("dim_ar", [False, True])
def test_frozen_sampling_matches_eager_and_is_dropped_on_weight_changes(dim_ar):
    torch.manual_seed(2)
    p = CarpPolicy(small_config(top_k=6, temperature=3.0, dim_autoregressive=dim_ar)).eval()
    rng = np.random.default_rng(0)
    obs = {"joint_pos": rng.normal(size=(1, 2)).astype(np.float32)}
    batch = {"joint_pos": rng.normal(size=(3, 1, 2)).astype(np.float32)}
    p.reseed()
    eager = [p.infer(obs)["action"] for _ in range(3)] + [p.infer_batch(batch)["action"]]
    p.freeze_for_inference()
    p.reseed()
    frozen = [p.infer(obs)["action"] for _ in range(3)] + [p.infer_batch(batch)["action"]]
    assert sorted(p._frozen.graphs) == [1, 3]  # graphs per batch size, used (not a silent fallback)
    for e, f in zip(eager, frozen, strict=True):  # same draws from the generator, same codes
        np.testing.assert_allclose(f, e, atol=1e-5)
    assert not np.allclose(frozen[0], frozen[1])  # top-k still samples
    assert not any("jit" in k or "frozen" in k for k in p.state_dict())
    state = {k: v + 0.05 if v.is_floating_point() else v for k, v in p.state_dict().items()}
    p.load_state_dict(state)
    assert p._frozen is None
    p.reseed()
    assert not np.allclose(p.infer(obs)["action"], frozen[0], atol=1e-4)
    p.freeze_for_inference()
    p.set_sampling("greedy")  # the graph is rebuilt for the new setting
    np.testing.assert_allclose(p.infer(obs)["action"], p.infer(obs)["action"])
    p._freeze, p._frozen = False, None
    eager_greedy = p.infer(obs)["action"]
    p.freeze_for_inference()
    np.testing.assert_allclose(p.infer(obs)["action"], eager_greedy, atol=1e-5)
    assert p._frozen.net.greedy
    p.set_sampling("expected")
    frozen_expected = p.infer(obs)["action"]
    p._freeze, p._frozen = False, None
    np.testing.assert_allclose(frozen_expected, p.infer(obs)["action"], atol=1e-5)
    assert not np.allclose(frozen_expected, eager_greedy, atol=1e-4)
    p.train()
    assert p._frozen is None and not p._freeze and p.training


def test_bad_observations_raise_user_errors():
    policy = CarpPolicy(small_config())
    with pytest.raises(UserError, match="lacks key 'joint_pos'"):
        policy.infer({"ee_pose": np.zeros((1, 7))})
    with pytest.raises(UserError, match="has shape"):
        policy.infer({"joint_pos": np.zeros((1, 3))})
    with pytest.raises(UserError, match="NaN or inf"):
        policy.infer({"joint_pos": np.full((1, 2), np.nan)})
    with pytest.raises(UserError, match="top_k"):
        policy.set_sampling("top_k", top_k=10_000)


def test_unknown_option_and_wrong_checkpoint_or_robot(tmp_path):
    from rosmind.checkpoint import MANIFEST, load_checkpoint, save_checkpoint
    from rosmind.policies.presets import build_configs
    from rosmind.policies.train import TrainConfig
    from rosmind.spec import load_spec

    with pytest.raises(UserError, match="unknown override key policy.n_scales"):
        build_configs(CarpConfig, TrainConfig, None, ["policy.n_scales=3"], "carp")
    with pytest.raises(UserError, match="preset 'pick_place_state' is for diffusion"):
        build_configs(CarpConfig, TrainConfig, "pick_place_state", [], "carp")
    policy = CarpPolicy(small_config(action_dim=8))
    ckpt = save_checkpoint(policy, tmp_path / "ckpt", load_spec("panda"))
    with pytest.raises(CheckpointError, match="trained for robot 'panda', not 'a1'"):
        load_checkpoint(ckpt, load_spec("a1"))
    import json

    mf = json.loads((ckpt / MANIFEST).read_text())
    mf["config"]["codebook_size"] = 128  # weights no longer fit the config
    (ckpt / MANIFEST).write_text(json.dumps(mf))
    with pytest.raises(CheckpointError, match="codebook"):
        load_checkpoint(ckpt)
    mf["config"]["n_scales"] = 3
    (ckpt / MANIFEST).write_text(json.dumps(mf))
    with pytest.raises(CheckpointError, match="unknown field"):
        load_checkpoint(ckpt)


def test_relative_chunks_round_trip_and_scale_from_the_spec():
    from rosmind.spec import load_spec

    policy = CarpPolicy(CarpConfig())
    spec = load_spec("panda")
    want = torch.tensor(spec.limits("velocity")) * spec.control_period * 16 * 0.5
    torch.testing.assert_close(policy.delta_scale, want)
    q = torch.randn(3, 8)
    a = q[:, None] + 0.1 * torch.randn(3, 16, 8)
    x = policy.to_chunk_space(a, q)
    torch.testing.assert_close(x, (a - q[:, None]) / want)
    torch.testing.assert_close(policy.from_chunk_space(x, q), a)


def test_config_round_trips_through_json():
    from rosmind.checkpoint import config_from_json, config_to_json

    cfg = CarpConfig(scales=(1, 2, 4), sampling="greedy")
    again = config_from_json(CarpConfig, config_to_json(cfg), "test")
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg)
