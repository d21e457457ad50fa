"""Training-time observation noise in the observations' units, and fine-tuning from an
exported checkpoint (``train.init_from``)."""

from __future__ import annotations

import pytest
import torch
from synthetic_data import make_dataset

from rosmind.checkpoint import load_checkpoint
from rosmind.errors import SpecError, UserError
from rosmind.policies.augment import add_state_noise, check_state_noise
from rosmind.policies.diffusion import DiffusionConfig
from rosmind.policies.train import train

SHAPES = {"joint_pos": (8,), "ee_pose": (7,)}
STD = (0.005,) * 7 + (0.001,)


pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]


def test_noise_has_the_per_element_std_and_touches_nothing_else():
    b = {"joint_pos": torch.zeros(20000, 2, 8), "ee_pose": torch.ones(20000, 2, 7), "action": torch.zeros(20000, 4, 8)}
    out = add_state_noise(b, {"joint_pos": STD}, torch.Generator().manual_seed(0))
    std = out["joint_pos"].reshape(-1, 8).std(0)
    torch.testing.assert_close(std, torch.tensor(STD), rtol=0.03, atol=0)
    assert torch.equal(out["ee_pose"], b["ee_pose"]) and torch.equal(out["action"], b["action"])
    assert torch.equal(b["joint_pos"], torch.zeros(20000, 2, 8))  # the batch itself is left alone
    assert add_state_noise(b, {}) is b


@pytest.mark.parametrize("noise, msg", [
    ({"wrench": (0.1,)}, "not a low-dim obs key"), ({"joint_pos": (0.1, 0.2)}, "1 or 8"),
    ({"joint_pos": (-0.1,)}, "finite and >= 0"),
])
def test_bad_state_noise_is_refused_by_name(noise, msg):
    with pytest.raises(SpecError, match=msg):
        check_state_noise(noise, ("joint_pos", "ee_pose"), SHAPES, "DiffusionConfig")
    with pytest.raises(SpecError, match="state_noise"):
        DiffusionConfig(state_noise=noise)


def test_diffusion_loss_sees_the_noise_only_while_training():
    from rosmind.policies.diffusion.policy import DiffusionPolicy

    cfg = DiffusionConfig(horizon=8, n_action_steps=4, down_dims=(16, 32), step_embed_dim=16, n_groups=4,
                          relative_actions=True, state_noise={"joint_pos": (0.5,)})
    pol = DiffusionPolicy(cfg)
    batch = {k: torch.randn(4, cfg.n_obs_steps, *cfg.obs_shapes[k]) for k in cfg.obs_keys}
    batch["action"] = torch.randn(4, cfg.horizon, cfg.action_dim)

    def loss(train_mode: bool) -> float:
        pol.train(train_mode)
        torch.manual_seed(1)
        return pol.compute_loss(batch).item()

    assert loss(False) == loss(False)
    assert loss(True) != loss(False)  # same draws of t and eps: only the observation noise differs


def test_init_from_continues_a_checkpoint_and_refuses_another_model(tmp_path):
    data = make_dataset(tmp_path / "syn.zarr", n_episodes=4, length=30)
    base = train("diffusion", data, tmp_path / "base", preset="tiny",
                 overrides=["train.steps=10", "train.lr=3e-3", "train.val_every=0"])
    ft = train("diffusion", data, tmp_path / "ft", preset="tiny",
               overrides=["train.steps=1", "train.lr=1e-12", "train.val_every=0", "train.warmup_steps=0",
                          f"train.init_from={base.checkpoint}", 'policy.state_noise={"joint_pos": [0.005]}'])
    a = load_checkpoint(base.checkpoint).state_dict()
    b = load_checkpoint(ft.checkpoint)
    assert b.config.state_noise == {"joint_pos": (0.005,)}
    for k, v in b.state_dict().items():
        torch.testing.assert_close(v, a[k], rtol=0, atol=1e-6, msg=k)
    with pytest.raises(UserError, match=r"differs in \['horizon'"):
        train("diffusion", data, tmp_path / "bad", preset="tiny",
              overrides=["train.steps=1", f"train.init_from={base.checkpoint}", "policy.horizon=16"])
    with pytest.raises(UserError, match="'diffusion' checkpoint, not 'carp'"):
        train("carp", data, tmp_path / "bad2", overrides=["train.steps=1", f"train.init_from={base.checkpoint}"])


def test_reexport_changes_run_time_fields_only(tmp_path, repo):
    import subprocess
    import sys

    from safetensors.torch import load_file

    data = make_dataset(tmp_path / "syn.zarr", n_episodes=2, length=30)
    base = train("diffusion", data, tmp_path / "base", preset="tiny",
                 overrides=["train.steps=2", "train.val_every=0", "policy.relative_actions=true"])
    out = tmp_path / "cmd"
    script = [sys.executable, str(repo / "scripts/reexport_checkpoint.py"), str(base.checkpoint), str(out)]
    r = subprocess.run(script + ["policy.action_anchor=command"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(out).config.action_anchor == "command"
    a, b = load_file(str(base.checkpoint / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    bad = subprocess.run(script + ["policy.horizon=4"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "action_anchor" in bad.stderr


def _aux_overrides(*extra: str) -> list[str]:
    return ["train.val_every=0", "train.warmup_steps=0", 'policy.obs_keys=["joint_pos","camera/wrist/rgb"]',
            "policy.relative_actions=true", *extra]


def test_the_aux_pose_head_learns_hand_relative_positions_from_unobserved_dataset_keys(tmp_path):
    from rosmind.policies.diffusion.encoders import relative_positions

    data = make_dataset(tmp_path / "syn.zarr", n_episodes=4, length=30, image_hw=(32, 32))
    base = train("diffusion", data, tmp_path / "base", preset="tiny", overrides=_aux_overrides("train.steps=2"))
    assert load_checkpoint(base.checkpoint).aux_head is None  # off by default: nothing more in the checkpoint
    # Fine-tuning a checkpoint made without the head: the head starts fresh, the rest is loaded.
    ft = train("diffusion", data, tmp_path / "ft", preset="tiny",
               overrides=_aux_overrides("train.steps=1", "train.lr=1e-12", "policy.aux_pose_weight=1.0",
                                        f"train.init_from={base.checkpoint}"))
    policy = load_checkpoint(ft.checkpoint)
    a = load_checkpoint(base.checkpoint).state_dict()
    for k, v in policy.state_dict().items():
        if not k.startswith("aux_head."):
            torch.testing.assert_close(v, a[k], rtol=0, atol=1e-6, msg=k)
    # The observed keys stay joint_pos + camera; the dataset's pose keys are only targets.
    assert policy.config.obs_keys == ("joint_pos", "camera/wrist/rgb")
    assert policy.config.obs_shapes["object_poses"] == (1, 7)

    from rosmind.dataset import SequenceDataset

    c = policy.config
    ds = SequenceDataset(data, c.obs_keys, c.horizon, c.n_obs_steps, c.n_action_steps, future_keys=c.aux_keys)
    batch = {k: torch.stack([ds[i][k] for i in range(8)]) for k in ds[0]}
    policy.train()
    loss, logs = policy.compute_loss(batch)
    torch.testing.assert_close(loss, logs["diffusion_loss"] + logs["aux_pose_loss"])
    i = c.n_obs_steps - 1  # the newest observation's row of the window
    want = relative_positions(*(batch[f"future/{k}"][:, i:i + 1] for k in ("ee_pose", "object_poses", "goal_pose")),
                              0.2)[:, 0]
    got = policy._aux_target(batch)
    torch.testing.assert_close(got, want)
    # The target is the newest observation's: object - ee of that very row, in RELATIVE_OBS_SCALE units.
    torch.testing.assert_close(got[:, :3], (batch["future/object_poses"][:, i, 0, :3] - batch["future/ee_pose"][:, i, :3]) / 0.2)
    # The aux term trains the camera encoder (that is its point) and never the UNet.
    policy.zero_grad()
    aux = torch.nn.functional.mse_loss(policy._aux_prediction(policy._encode(batch, augment=False)), got)
    aux.backward()
    cam = policy.obs_encoder.cameras["camera__wrist__rgb"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in cam.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in policy.unet.parameters())
    obs = {"joint_pos": batch["joint_pos"].numpy(), "camera/wrist/rgb": batch["camera/wrist/rgb"].numpy()}
    policy.eval()
    assert policy.predict_positions(obs).shape == (8, 9)
    with pytest.raises(UserError, match="aux_pose_weight"):
        load_checkpoint(base.checkpoint).predict_positions(obs)


def test_the_aux_pose_head_refuses_bad_weights_and_datasets_without_poses(tmp_path):
    with pytest.raises(SpecError, match="aux_pose_weight: must be a finite number >= 0"):
        DiffusionConfig(aux_pose_weight=-1.0)
    with pytest.raises(SpecError, match=r"aux_pose_weight: needs the pose keys \['goal_pose'\] in the dataset"):
        DiffusionConfig(obs_keys=("joint_pos",), obs_shapes={"joint_pos": (8,), "ee_pose": (7,), "object_poses": (1, 7)},
                        aux_pose_weight=1.0)
    from synthetic_data import episode

    from rosmind.dataset import ReplayBuffer

    path = tmp_path / "noposes.zarr"
    buf = ReplayBuffer.open(path, "w")
    for seed in range(2):
        ep = episode(seed, 30)
        buf.add_episode({k: ep[k] for k in ("joint_pos", "action")}, {"seed": seed, "success": True})
    with pytest.raises(UserError, match=r"aux_pose_weight: needs the pose keys \['ee_pose', 'object_poses', 'goal_pose'\]"):
        train("diffusion", path, tmp_path / "run", preset="tiny",
              overrides=["train.steps=1", "train.val_every=0", 'policy.obs_keys=["joint_pos"]', "policy.aux_pose_weight=1"])
