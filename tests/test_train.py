"""The training loop: presets/overrides, LR schedule, a short run that learns, resume, CLI, DDP."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from synthetic_data import make_dataset
from torch.utils.data import DataLoader

from rosmind.checkpoint import load_checkpoint
from rosmind.cli import main as cli_main
from rosmind.dataset import SequenceDataset
from rosmind.errors import UserError
from rosmind.policies.diffusion import DiffusionConfig
from rosmind.policies.presets import PRESETS, build_configs
from rosmind.policies.train import TrainConfig, lr_at, train
from rosmind.registry import POLICIES
from rosmind.spec import load_spec

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "syn.zarr", n_episodes=6, length=40)


def test_presets_and_typed_overrides():
    assert {"pick_place_state", "tiny"} <= set(PRESETS)
    pcfg, tcfg = build_configs(DiffusionConfig, TrainConfig, "tiny",
                               ["train.steps=7", "policy.horizon=16", "policy.down_dims=[8,16]",
                                "train.lr=1e-3", "policy.sampler=ddpm", "train.progress=true"], "diffusion")
    assert (tcfg.steps, tcfg.lr, tcfg.progress) == (7, 1e-3, True)
    assert (pcfg.horizon, pcfg.down_dims, pcfg.sampler) == (16, (8, 16), "ddpm")
    with pytest.raises(UserError, match="unknown preset 'huge'; known presets: .*pick_place_state.*tiny"):
        build_configs(DiffusionConfig, TrainConfig, "huge", [], "diffusion")
    with pytest.raises(UserError, match=r"unknown override key train.stpes; valid train.\* keys: .*steps"):
        build_configs(DiffusionConfig, TrainConfig, None, ["train.stpes=3"], "diffusion")
    with pytest.raises(UserError, match="policy.horizon=long: policy.horizon: expected an integer"):
        build_configs(DiffusionConfig, TrainConfig, None, ["policy.horizon=long"], "diffusion")
    with pytest.raises(UserError, match="expected train.<field>=<value>"):
        build_configs(DiffusionConfig, TrainConfig, None, ["steps=3"], "diffusion")
    with pytest.raises(UserError, match="DiffusionConfig.horizon"):
        build_configs(DiffusionConfig, TrainConfig, None, ["policy.horizon=9"], "diffusion")


def test_lr_warmup_then_cosine():
    cfg = TrainConfig(steps=110, lr=1.0, warmup_steps=10)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.5)
    assert lr_at(110, cfg) == pytest.approx(0.0, abs=1e-12)


def _fixed_batch_loss(policy, dataset_path) -> float:
    cfg = policy.config
    ds = SequenceDataset(dataset_path, cfg.obs_keys, cfg.horizon, cfg.n_obs_steps, cfg.n_action_steps)
    batch = next(iter(DataLoader(ds, batch_size=256, shuffle=False)))
    torch.manual_seed(0)
    policy.eval()
    with torch.no_grad():
        return float(np.mean([policy.compute_loss(batch).item() for _ in range(4)]))


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = train("diffusion", dataset, out, preset="tiny",
                   overrides=["train.steps=40", "train.lr=3e-3", "train.checkpoint_every=20",
                              "train.val_every=20", "train.val_ratio=0.2"])
    return result


def test_short_run_learns_and_writes_checkpoints(run, dataset):
    out = run.run_dir
    assert run.step == 40 and len(run.losses) == 40 and np.isfinite(run.losses).all()
    assert (out / "checkpoints" / "latest").resolve() == (out / "checkpoints" / "step_000040").resolve()
    assert (out / "checkpoints" / "step_000020" / "model.safetensors").is_file()
    assert (out / "checkpoints" / "step_000040" / "train_state.safetensors").is_file()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    trained = load_checkpoint(out / "checkpoint", robot_spec=load_spec("panda"))
    assert trained.manifest["training"]["dataset"]["path"] == str(dataset)
    assert trained.manifest["training"]["step"] == 40
    for k, v in run.ema_policy.state_dict().items():  # the export holds the EMA weights
        assert torch.equal(v, trained.state_dict()[k])
    fresh = POLICIES.get("diffusion").factory(trained.config)
    fresh.normalizer.load_state_dict(trained.normalizer.state_dict())
    before, after = _fixed_batch_loss(fresh, dataset), _fixed_batch_loss(trained, dataset)
    assert after < 0.95 * before, (before, after)
    assert trained.infer({k: np.zeros((2, *s)) for k, s in trained.config.obs_shapes.items()})["action"].shape == (4, 8)


def test_resume_continues_from_latest(run, dataset):
    raw = load_file(str(run.run_dir / "checkpoints" / "latest" / "train_state.safetensors"))
    assert any(k.startswith("optim.") and k.endswith("exp_avg") for k in raw)
    resumed = train("diffusion", dataset, run.run_dir, resume=True, overrides=["train.steps=46"])
    assert resumed.step == 46 and len(resumed.losses) == 6
    assert resumed.policy.config == run.policy.config
    assert (run.run_dir / "checkpoints" / "step_000046").is_dir()
    with pytest.raises(UserError, match="a run already exists there; pass --resume"):
        train("diffusion", dataset, run.run_dir, preset="tiny")
    with pytest.raises(UserError, match="no checkpoint"):
        train("diffusion", dataset, run.run_dir.parent / "fresh", resume=True, preset="tiny")


def test_cli_reports_user_errors_without_traceback(dataset, tmp_path, capsys):
    rc = cli_main(["train", "--policy", "diffusion", "--dataset", str(dataset), "--out", str(tmp_path / "r"),
                   "--preset", "nope"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown preset 'nope'" in err and "Traceback" not in err
    rc = cli_main(["train", "--policy", "diffusion", "--dataset", str(tmp_path / "missing.zarr"),
                   "--out", str(tmp_path / "r"), "--preset", "tiny"])
    assert rc == 2 and "missing.zarr: dataset does not exist" in capsys.readouterr().err
    rc = cli_main(["train", "--policy", "diffusion", "--dataset", str(dataset), "--out", str(tmp_path / "r"),
                   "--preset", "tiny", "train.steps=3", "train.checkpoint_every=3"])
    assert rc == 0 and (tmp_path / "r" / "checkpoint" / "manifest.json").is_file()


DDP_SCRIPT = textwrap.dedent("""
    import os, sys
    from safetensors.torch import save_file
    from rosmind.policies.train import train
    r = train("diffusion", sys.argv[1], sys.argv[2], preset="tiny",
              overrides=["train.steps=6", "train.checkpoint_every=3", "train.batch_size=16"])
    rank = int(os.environ["RANK"])
    save_file({k: v.contiguous() for k, v in r.policy.state_dict().items()}, f"{sys.argv[3]}/rank{rank}.safetensors")
""")


def test_ddp_two_ranks_gloo_keep_identical_weights(dataset, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(dataset), str(tmp_path / "run"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step_000006").is_dir()
    a, b = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint")
    assert ckpt.manifest["training"]["world_size"] == 2
