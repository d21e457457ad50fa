"""The one training loop for every imitation policy family.

A family provides ``compute_loss(batch) -> scalar tensor`` (or ``(loss, {name: float})``)
and, optionally, ``fit_normalizer(stats)``. Its config may declare ``obs_shapes`` and
``action_dim``; the loop fills them in from the dataset. The loop owns everything else:
AdamW, cosine LR with linear warmup, gradient clipping, EMA, progress bar, tensorboard
scalars, periodic checkpoints, resume, DDP, and the final export.

Run folder::

    runs/NAME/run.json                     family, preset, overrides, both configs, dataset
    runs/NAME/tb/                          tensorboard scalars (train/loss, train/lr, val/loss)
    runs/NAME/checkpoints/step_000100/     checkpoint format (EMA weights) + train_state.*
    runs/NAME/checkpoints/latest -> step_000100
    runs/NAME/checkpoint/                  final export (what policy_node loads)

``train_state.safetensors`` holds the raw (non-EMA) weights and the AdamW moments;
``train_state.json`` the step, EMA counter and optimizer hyper-parameters. No pickle.

DDP: launched by ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the loop joins a gloo process
group, shards batches with ``DistributedSampler`` (``batch_size`` is global) and only rank 0
writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rosmind.checkpoint import config_from_json, config_to_json, save_checkpoint
from rosmind.dataset import SequenceDataset
from rosmind.errors import SpecError, UserError
from rosmind.registry import POLICIES


@dataclass
class TrainConfig:
    steps: int = 20000
    batch_size: int = 64  # global, split over DDP ranks
    lr: float = 1e-4
    weight_decay: float = 1e-6
    adam_betas: tuple[float, float] = (0.95, 0.999)
    warmup_steps: int = 500
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3  # newest step_* folders kept; 0 keeps all
    log_every: int = 50
    val_every: int = 1000  # 0 disables validation
    val_ratio: float = 0.05
    val_batches: int = 8
    split_seed: int = 42
    seed: int = 0
    num_workers: int = 0
    torch_threads: int = 0  # intra-op threads per process; 0 keeps torch's default (DDP: cores/ranks)
    progress: bool = True
    # Fine-tune: start from this exported checkpoint's (EMA) weights instead of random ones. Its
    # family and policy config must be the run's, except training-only fields (``state_noise``
    # and the family's ``resumable_fields``), so that e.g. observation-noise augmentation can be
    # added to a shipped checkpoint without retraining it from scratch.
    init_from: str = ""

    def __post_init__(self):
        for f in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, f) < 1:
                raise SpecError(f"TrainConfig.{f}: must be >= 1, got {getattr(self, f)}")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise SpecError(f"TrainConfig.lr: must be a positive number, got {self.lr}")
        if not 0 <= self.val_ratio < 1:
            raise SpecError(f"TrainConfig.val_ratio: must be in [0, 1), got {self.val_ratio}")
        for f in ("warmup_steps", "grad_clip", "val_every", "num_workers", "torch_threads"):
            if getattr(self, f) < 0:
                raise SpecError(f"TrainConfig.{f}: must be >= 0, got {getattr(self, f)}")
        self.adam_betas = tuple(self.adam_betas)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup over ``warmup_steps`` then cosine decay to 0 at ``steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    losses: list[float]  # per-step training loss on this rank
    policy: nn.Module | None = None  # the raw trained weights on this rank
    ema_policy: nn.Module | None = None  # the EMA weights (what was exported)


class _LossModule(nn.Module):
    """Makes ``compute_loss`` the forward pass so DDP can hook its gradients."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, torch.Tensor]):
        return self.policy.compute_loss(batch)


def _dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as safetensors-ready tensors (``optim.<param id>.<name>``) and a JSON
    part (param groups, scalar state): what ``load_optimizer_state`` puts back. No pickle."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{name}"] = v.detach().contiguous().clone()
            else:
                scalars[f"{pid}.{name}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for k, v in meta["scalars"].items():
        pid, name = k.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _save_train_state(path: Path, policy: nn.Module, opt: torch.optim.Optimizer, step: int, epoch: int,
                      ema_state: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous().clone() for k, v in policy.state_dict().items()}
    opt_tensors, opt_meta = optimizer_state(opt)
    save_file(tensors | opt_tensors, str(path / "train_state.safetensors"))
    (path / "train_state.json").write_text(json.dumps({
        "step": step, "epoch": epoch, "ema": ema_state, "optimizer": opt_meta}, indent=1))


def _load_train_state(path: Path, policy: nn.Module, opt: torch.optim.Optimizer) -> dict:
    from safetensors.torch import load_file

    try:
        meta = json.loads((path / "train_state.json").read_text())
        tensors = load_file(str(path / "train_state.safetensors"))
    except (OSError, json.JSONDecodeError, ValueError) as e:
        raise UserError(f"{path}: cannot resume, train state unreadable: {e}") from None
    policy.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    load_optimizer_state(opt, tensors, meta["optimizer"])
    return meta


# Fields train.init_from may change: training noise, and the aux head, which starts fresh.
TRAINING_ONLY_FIELDS = ("state_noise", "aux_pose_weight")


def _init_from(policy: nn.Module, ema, family: str, entry, pcfg, path: Path) -> None:
    """Load an exported checkpoint's weights into ``policy`` and the EMA copy (fine-tuning)."""
    from rosmind.checkpoint import load_checkpoint, read_manifest

    where = f"train.init_from={path}"
    manifest = read_manifest(path)
    if manifest["family"] != family:
        raise UserError(f"{where}: a {manifest['family']!r} checkpoint, not {family!r}")
    free = set(TRAINING_ONLY_FIELDS) | set(getattr(entry.config, "resumable_fields", ()))
    saved = config_from_json(entry.config, manifest["config"], f"{where}: config")
    mine, theirs = config_to_json(pcfg), config_to_json(saved)
    if "obs_shapes" in mine:  # shapes of the keys both have (an aux head adds dataset keys)
        both = mine["obs_shapes"].keys() & theirs["obs_shapes"].keys()
        mine["obs_shapes"], theirs["obs_shapes"] = ({k: d[k] for k in sorted(both)}
                                                    for d in (mine["obs_shapes"], theirs["obs_shapes"]))
    differ = sorted(k for k in mine if k not in free and mine[k] != theirs.get(k))
    if differ:
        raise UserError(f"{where}: the checkpoint's policy config differs in {differ}; give the same "
                        f"policy.* values (only {sorted(free)} may differ)")
    weights = load_checkpoint(path).state_dict()
    # A training-only head the checkpoint was made without (aux_pose_weight) starts fresh.
    fresh = ("aux_head.",) if getattr(policy, "aux_head", None) is not None else ()
    for net in (policy, ema.averaged):
        missing, unexpected = net.load_state_dict(weights, strict=False)
        wrong = [k for k in missing if not k.startswith(fresh)] + list(unexpected)
        if wrong:
            raise UserError(f"{where}: the checkpoint's weights do not fit this policy: {sorted(wrong)[:5]}")


def update_latest(ckpt_root: Path, name: str, keep: int, pattern: str = "step_*") -> None:
    """Point ``ckpt_root/latest`` at ``name`` (atomically) and keep the newest ``keep`` folders
    matching ``pattern`` (0 keeps all)."""
    tmp = ckpt_root / ".latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(name)
    tmp.replace(ckpt_root / "latest")
    if keep > 0:
        import shutil

        for old in sorted(p for p in ckpt_root.glob(pattern) if p.is_dir())[:-keep]:
            shutil.rmtree(old)


def _resolve_configs(family: str, dataset: str, out: Path, preset: str | None, overrides: list[str],
                     resume: bool):
    from rosmind.policies.presets import build_configs, split_overrides

    entry = POLICIES.get(family)
    run_json = out / "run.json"
    if resume and run_json.is_file():
        saved = json.loads(run_json.read_text())
        if saved["family"] != family:
            raise UserError(f"{run_json}: run was trained with --policy {saved['family']}, not {family}")
        pcfg = config_from_json(entry.config, saved["policy_config"], f"{run_json}: policy_config")
        tcfg = config_from_json(TrainConfig, saved["train_config"], f"{run_json}: train_config")
        ov = split_overrides(overrides)
        from rosmind.policies.presets import apply_overrides

        # Fields that leave the weights' shapes and meaning alone (training noise, decoding) may change.
        free = set(getattr(entry.config, "resumable_fields", ()))
        fixed = sorted(k for k in ov["policy"] if k not in free)
        if fixed:
            raise UserError(f"--resume: policy.* overrides would change the saved model: {fixed}"
                            + (f" (only {sorted(free)} may change on resume)" if free else ""))
        if ov["policy"]:
            pkw = apply_overrides(entry.config, config_to_json(pcfg), ov["policy"], "policy")
            pcfg = config_from_json(entry.config, pkw, "policy")
        tkw = apply_overrides(TrainConfig, config_to_json(tcfg), ov["train"], "train")
        return entry, pcfg, config_from_json(TrainConfig, tkw, "train")
    pcfg, tcfg = build_configs(entry.config, TrainConfig, preset, overrides, family, _data_fields(dataset))
    return entry, pcfg, tcfg


def _data_fields(dataset: str | Path) -> dict:
    """``obs_shapes`` (every key the dataset has) and ``action_dim``, before the config is built:
    a config for camera keys is only valid with their shapes."""
    from rosmind.dataset import ReplayBuffer

    try:
        buf = ReplayBuffer.open(dataset, "r")
        shapes = {k: tuple(int(n) for n in buf.array(k).shape[1:]) for k in buf.keys()}
    except Exception:  # a missing or damaged dataset is reported by SequenceDataset, with its reason
        return {}
    out: dict = {"obs_shapes": {k: v for k, v in shapes.items() if k != "action"}}
    if len(shapes.get("action", ())) == 1:
        out["action_dim"] = shapes["action"][0]
    return out


def train(family: str, dataset: str | Path, out: str | Path, preset: str | None = None,
          overrides: list[str] | tuple[str, ...] = (), resume: bool = False,
          command: str | None = None) -> TrainResult:
    """Train ``family`` on the zarr ``dataset`` into the run folder ``out``; see module doc."""
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

    from rosmind.policies.ema import EMAModel

    out = Path(out)
    rank, world = _dist_info()
    distributed = world > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("gloo")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    if not resume and (out / "run.json").exists():
        raise UserError(f"{out}: a run already exists there; pass --resume to continue it or choose another --out")
    entry, pcfg, tcfg = _resolve_configs(family, str(dataset), out, preset, list(overrides), resume)
    if tcfg.torch_threads > 0:  # on a shared CPU, 1 thread avoids OpenMP spin-wait collapse
        torch.set_num_threads(tcfg.torch_threads)
    if tcfg.batch_size % world:
        raise UserError(f"train.batch_size={tcfg.batch_size} must be divisible by the {world} DDP ranks")

    def make_ds(split: str) -> SequenceDataset:
        return SequenceDataset(dataset, pcfg.obs_keys, pcfg.horizon, pcfg.n_obs_steps, pcfg.n_action_steps,
                               val_ratio=tcfg.val_ratio, split_seed=tcfg.split_seed, split=split,
                               future_keys=future_keys)

    future_keys = tuple(dict.fromkeys((*getattr(pcfg, "fast_keys", ()), *getattr(pcfg, "aux_keys", ()))))

    train_ds = make_ds("train")
    shapes = train_ds.shapes()
    fills = {}
    if any(f.name == "obs_shapes" for f in dataclasses.fields(pcfg)):
        fills["obs_shapes"] = {k: shapes[k] for k in (*pcfg.obs_keys, *future_keys)}
    if any(f.name == "action_dim" for f in dataclasses.fields(pcfg)):
        fills["action_dim"] = shapes["action"][0]
    try:
        pcfg = dataclasses.replace(pcfg, **fills)
    except SpecError as e:
        raise UserError(f"{dataset}: {e}") from None
    val_ds = make_ds("val") if tcfg.val_every and tcfg.val_ratio > 0 else None

    torch.manual_seed(tcfg.seed)  # identical initial weights on every rank
    policy = entry.factory(pcfg)
    if hasattr(policy, "fit_normalizer"):
        policy.fit_normalizer(train_ds.stats(quantile=getattr(pcfg, "obs_quantile", 0.0)))
    ema = EMAModel(policy, entry.factory(pcfg), power=tcfg.ema_power, max_decay=tcfg.ema_max_decay)
    opt = torch.optim.AdamW(policy.parameters(), lr=tcfg.lr, betas=tcfg.adam_betas,
                            weight_decay=tcfg.weight_decay)
    ckpt_root = out / "checkpoints"
    step, epoch = 0, 0
    if tcfg.init_from and not resume:
        _init_from(policy, ema, family, entry, pcfg, Path(tcfg.init_from))
    if resume:
        latest = ckpt_root / "latest"
        if not latest.exists():
            raise UserError(f"--resume: no checkpoint at {latest}")
        from rosmind.checkpoint import load_checkpoint

        ema.averaged.load_state_dict(load_checkpoint(latest).state_dict())
        meta = _load_train_state(latest, policy, opt)
        step, epoch = int(meta["step"]), int(meta["epoch"])
        ema.load_state(meta["ema"])
    torch.manual_seed(tcfg.seed + 1000 * rank + step)  # noise/augmentation differ per rank

    policy.train()
    model: nn.Module = _LossModule(policy)
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)
    per_rank = tcfg.batch_size // world
    if distributed:
        sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=tcfg.seed)
    else:
        sampler = RandomSampler(train_ds, generator=torch.Generator().manual_seed(tcfg.seed + epoch))
    # Full batches only, unless the dataset is smaller than one batch (tiny smoke runs).
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, num_workers=tcfg.num_workers,
                        drop_last=len(sampler) >= per_rank, persistent_workers=tcfg.num_workers > 0)

    is_main = rank == 0
    writer = bar = None
    command = command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    dataset_info = {"path": str(dataset), "hash": train_ds.buffer.content_hash()}
    from rosmind.sim.collect import TASK_ATTR

    ran = train_ds.buffer.root.attrs.get(TASK_ATTR)  # what the episodes ran
    if ran:
        dataset_info["task"] = ran["task"]
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text(json.dumps({
            "family": family, "preset": preset, "overrides": list(overrides), "command": command,
            "dataset": dataset_info, "policy_config": config_to_json(pcfg),
            "train_config": config_to_json(tcfg), "world_size": world}, indent=1))
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        writer = SummaryWriter(str(out / "tb"))
        bar = tqdm(total=tcfg.steps, initial=step, disable=not tcfg.progress, desc=f"train {family}",
                   dynamic_ncols=True)

    def write_checkpoint(folder: Path, final: bool) -> None:
        training = {"command": command, "dataset": dataset_info, "step": step, "preset": preset,
                    "train_config": config_to_json(tcfg), "world_size": world}
        save_checkpoint(ema.averaged, folder, training=training)
        if not final:
            _save_train_state(folder, policy, opt, step, epoch, ema.state())
            update_latest(ckpt_root, folder.name, tcfg.keep_checkpoints)

    losses: list[float] = []
    while step < tcfg.steps:
        if distributed:
            sampler.set_epoch(epoch)
        elif epoch:
            sampler.generator.manual_seed(tcfg.seed + epoch)
        for batch in loader:
            lr = lr_at(step, tcfg)
            for g in opt.param_groups:
                g["lr"] = lr
            out_loss = model(batch)
            loss, logs = out_loss if isinstance(out_loss, tuple) else (out_loss, {})
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss is {loss.item()} at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(policy.parameters(), tcfg.grad_clip)
            opt.step()
            ema.step(policy)
            step += 1
            losses.append(loss.item())
            if is_main:
                bar.update(1)
                if step % tcfg.log_every == 0 or step == tcfg.steps:
                    bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr:.2e}")
                    writer.add_scalar("train/loss", losses[-1], step)
                    writer.add_scalar("train/lr", lr, step)
                    for k, v in logs.items():
                        writer.add_scalar(f"train/{k}", float(v), step)
                if val_ds is not None and step % tcfg.val_every == 0 and len(val_ds):
                    writer.add_scalar("val/loss", _val_loss(ema.averaged, val_ds, tcfg), step)
                if step % tcfg.checkpoint_every == 0 or step == tcfg.steps:
                    write_checkpoint(ckpt_root / f"step_{step:06d}", final=False)
            if distributed and (step % tcfg.checkpoint_every == 0 or step == tcfg.steps):
                dist.barrier()
            if step >= tcfg.steps:
                break
        epoch += 1
    final = out / "checkpoint"
    if is_main:
        write_checkpoint(final, final=True)
        bar.close()
        writer.close()
    if distributed:
        dist.barrier()
    return TrainResult(out, final, step, losses, policy, ema.averaged)


@torch.no_grad()
def _val_loss(policy: nn.Module, ds: SequenceDataset, cfg: TrainConfig) -> float:
    from torch.utils.data import DataLoader

    state = torch.random.get_rng_state()
    torch.manual_seed(cfg.seed)  # same noise every evaluation: comparable numbers
    total, n = 0.0, 0
    for i, batch in enumerate(DataLoader(ds, batch_size=cfg.batch_size, shuffle=False)):
        if i >= cfg.val_batches:
            break
        out = policy.compute_loss(batch)
        total += float(out[0] if isinstance(out, tuple) else out)
        n += 1
    torch.random.set_rng_state(state)
    return total / max(n, 1)
