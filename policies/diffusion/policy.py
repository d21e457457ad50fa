"""Diffusion Policy (Chi et al. 2023): DDPM training, DDIM sampling, action chunks.

Training (``compute_loss``): normalize actions to [-1, 1], pick ``t ~ U[0, T)`` and Gaussian
noise, noise the whole ``horizon``-step action window, and regress the noise (or the clean
sample) from ``(noisy window, t, obs features)`` with the FiLM UNet.

Inference (``infer``): start from N(0, I) over ``[horizon, Da]`` drawn from the policy's own
``torch.Generator``, denoise with ``num_inference_steps`` DDIM (or DDPM) steps, unnormalize,
and return the ``n_action_steps`` rows starting at the newest observation (index
``n_obs_steps - 1``): row 0 is the command for the newest observation's tick. A chunk executor
runs them and asks again (receding horizon).
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rosmind.dataset import is_image_key
from rosmind.errors import UserError
from rosmind.policies.augment import add_state_noise
from rosmind.policies.normalizer import Normalizer, quantile_clip, quantile_limits

from .config import RELATIVE_OBS_SCALE, DiffusionConfig
from .encoders import (
    ObsEncoder,
    encode_observations,
    relative_obs_dim,
    relative_positions,
    relative_positions_dim,
)
from .schedulers import SCHEDULERS, DDPMScheduler
from .unet import ConditionalUnet1D, DenoiseModule, inference_copy

log = logging.getLogger(__name__)


class DiffusionPolicy(nn.Module):
    """``infer({key: [To, *shape]}) -> {"action": [n_action_steps, action_dim]}`` (float32,
    absolute joint targets); ``infer_batch({key: [B, To, *shape]}) -> {"action": [B, Ta, Da]}``.
    """

    family = "diffusion"

    def __init__(self, config: DiffusionConfig | None = None):
        super().__init__()
        cfg = config or DiffusionConfig()
        self.config = cfg
        low_dim = {k: cfg.obs_shapes[k] for k in cfg.obs_keys if not is_image_key(k)}
        # Relative chunks are normalized per row: the motion 15 ticks ahead spans far more than
        # the next tick's, and one range for all rows would waste the near rows' precision.
        act_shape = (cfg.horizon, cfg.action_dim) if cfg.relative_actions else (cfg.action_dim,)
        self.normalizer = Normalizer({**low_dim, "action": act_shape}, clip=quantile_clip(low_dim, cfg.obs_quantile))
        self.obs_encoder = ObsEncoder(cfg.obs_keys, cfg.obs_shapes, cfg.image_feature_dim, cfg.image_channels,
                                      cfg.image_crop_ratio, extra_per_step=relative_obs_dim(cfg))
        self.unet = ConditionalUnet1D(cfg.action_dim, self.obs_encoder.out_per_step * cfg.n_obs_steps,
                                      cfg.down_dims, cfg.step_embed_dim, cfg.kernel_size, cfg.n_groups)
        # Training only (``aux_pose_weight``): the newest step's features -> the hand-relative
        # object and goal positions. ``predict_positions`` reads it for diagnostics.
        self.aux_head = (nn.Sequential(nn.Linear(self.obs_encoder.out_per_step, 256), nn.ReLU(),
                                       nn.Linear(256, relative_positions_dim(cfg.obs_shapes)))
                         if cfg.aux_pose_weight > 0 else None)
        sched = dict(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                     prediction_type=cfg.prediction_type, clip_sample=cfg.clip_sample)
        self.noise_scheduler = DDPMScheduler(**sched)
        self.sampler = SCHEDULERS[cfg.sampler](**sched)
        self.sampler.set_timesteps(cfg.num_inference_steps)
        self._generator = torch.Generator().manual_seed(cfg.seed)
        # Frozen TorchScript copies of the UNet for sampling, one per batch size; empty until
        # ``freeze_for_inference()`` (a plain dict, so they never enter the state dict).
        self._frozen: dict[int, torch.jit.ScriptModule] | None = None
        self.eval()

    def reset(self) -> None:
        """A new episode starts. The policy keeps no per-episode state; the noise stream goes on,
        so every episode draws fresh noise (``reseed`` restarts it)."""

    def reseed(self, seed: int | None = None) -> None:
        """Restart the sampling noise at ``seed`` (default ``config.seed``): the same
        observations then give the same chunks."""
        self._generator.manual_seed(self.config.seed if seed is None else int(seed))

    def set_sampler(self, sampler: str, num_inference_steps: int) -> None:
        """Switch the sampler (``"ddim"``/``"ddpm"``) and step count without retraining."""
        cfg = self.config
        self.sampler = SCHEDULERS[sampler](cfg.num_train_timesteps, cfg.beta_schedule,
                                           cfg.prediction_type, cfg.clip_sample)
        self.sampler.set_timesteps(num_inference_steps)

    def freeze_for_inference(self) -> None:
        """Sample through a TorchScript-traced, frozen copy of the UNet from now on.

        At these sizes a denoising step costs per-op Python dispatch more than arithmetic;
        the frozen graph halves a step on CPU. The copy holds the weights as they are now:
        ``train(True)`` or ``load_state_dict()`` drops it (call this again afterwards). Deployment
        paths (``load_checkpoint``) call it; training and EMA evaluation never do.
        """
        self._frozen = {}

    def train(self, mode: bool = True):
        if mode:
            self._frozen = None
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        self._frozen = None
        return super().load_state_dict(*args, **kwargs)

    def _denoiser(self, x: torch.Tensor, films: list[torch.Tensor]) -> torch.Tensor:
        if self._frozen is None:
            return self.unet.denoise(x, films)
        b = x.shape[0]
        if b not in self._frozen:
            try:
                # torch.jit is deprecated (not removed) in torch 2.13; the traced graph is
                # checked against eager in tests/test_diffusion.py. If a later torch drops
                # it, sampling stays eager.
                with warnings.catch_warnings(), torch.no_grad(), torch.inference_mode(False):
                    warnings.simplefilter("ignore")
                    args = (torch.zeros_like(x), *(torch.zeros_like(f) for f in films))
                    net = DenoiseModule(inference_copy(self.unet)).eval()  # convolutions as matrix products
                    self._frozen[b] = torch.jit.freeze(torch.jit.trace(net, args, check_trace=False))
            except (AttributeError, RuntimeError) as e:
                log.warning("diffusion policy: TorchScript freezing unavailable (%s); sampling eagerly", e)
                self._frozen = None
                return self.unet.denoise(x, films)
        return self._frozen[b](x, *films)

    def fit_normalizer(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        """``stats[key] = {"min", "max"}`` per element, for every low-dim obs key and ``action``
        (with ``relative_actions``: ``action_relative`` ``[horizon, Da]`` from the dataset)."""
        if self.config.relative_actions:
            if "action_relative" not in stats:
                raise KeyError("relative_actions needs 'action_relative' stats (SequenceDataset.stats())")
            stats = {**stats, "action": stats["action_relative"]}
        obs = [k for k in self.normalizer.keys if k != "action"]
        self.normalizer.fit(quantile_limits(stats, obs, self.config.obs_quantile))

    def _anchor(self, obs: dict[str, torch.Tensor]) -> torch.Tensor | float:
        """What a chunk is relative to: the newest joint_pos ``[B, 1, Da]`` (or 0 if absolute)."""
        if not self.config.relative_actions:
            return 0.0
        q = obs["joint_pos"][:, self.config.n_obs_steps - 1]
        return q.reshape(q.shape[0], 1, -1).float()

    def normalization_stats(self) -> dict:
        return self.normalizer.stats()

    def _encode(self, obs: dict[str, torch.Tensor], augment: bool) -> torch.Tensor:
        """``{key: [B, >=To, *shape]}`` -> global condition ``[B, To * features]``."""
        return encode_observations(self.obs_encoder, self.normalizer, self.config, obs, augment)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``batch``: obs keys ``[B, To, *shape]``, ``action [B, horizon, Da]`` -> scalar MSE."""
        if self.training:
            batch = add_state_noise(batch, self.config.state_noise)
        cond = self._encode(batch, augment=self.training)
        x0 = self.normalizer.normalize("action", batch["action"].float() - self._anchor(batch))
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        pred = self.unet(self.noise_scheduler.add_noise(x0, noise, t), t, cond)
        target = noise if self.config.prediction_type == "epsilon" else x0
        loss = F.mse_loss(pred, target)
        if self.aux_head is None:
            return loss
        aux = F.mse_loss(self._aux_prediction(cond), self._aux_target(batch))
        return loss + self.config.aux_pose_weight * aux, {"diffusion_loss": loss.detach(), "aux_pose_loss": aux.detach()}

    def _aux_prediction(self, cond: torch.Tensor) -> torch.Tensor:
        """The global condition ``[B, To * F]`` -> the aux head's ``[B, 6N + 3]`` from the newest step."""
        return self.aux_head(cond[:, -self.obs_encoder.out_per_step:])

    def _aux_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``future/<key>`` windows -> the newest observation's hand-relative positions ``[B, 6N + 3]``."""
        i = self.config.n_obs_steps - 1
        ee, obj, goal = (batch[f"future/{k}"][:, i:i + 1].float() for k in ("ee_pose", "object_poses", "goal_pose"))
        return relative_positions(ee, obj.reshape(*obj.shape[:2], -1, 7), goal, RELATIVE_OBS_SCALE)[:, 0]

    @torch.inference_mode()
    def predict_positions(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Where the aux head sees the objects and goal, ``{key: [B, To, *shape]}`` -> ``[B, 6N + 3]``
        in metres (object - ee, goal - ee, goal - object; ``relative_positions``' layout)."""
        if self.aux_head is None:
            raise UserError("diffusion policy: predict_positions needs a checkpoint trained with aux_pose_weight > 0")
        cond = self._encode(self._obs_tensors(obs, batched=True), augment=False)
        return (self._aux_prediction(cond) * RELATIVE_OBS_SCALE).numpy()

    @torch.inference_mode()
    def sample(self, cond: torch.Tensor) -> torch.Tensor:
        """Denoise ``[B, horizon, Da]`` from N(0, I) given ``cond [B, Dg]``; normalized units."""
        cfg = self.config
        b, steps = cond.shape[0], self.sampler.timesteps
        x = torch.randn((b, cfg.horizon, cfg.action_dim), generator=self._generator)
        # FiLM scales and biases of every step at once (rows step-major), outside the loop.
        films = self.unet.films(steps.repeat_interleave(b), cond.repeat(len(steps), 1))
        for i, t in enumerate(steps):
            eps = self._denoiser(x, [f[i * b:(i + 1) * b] for f in films])
            x = self.sampler.step(eps, int(t), x, generator=self._generator)
        return x

    def sample_chunks(self, cond: torch.Tensor) -> torch.Tensor:
        """``sample`` with ``config.n_samples`` draws per row of ``cond``: the medoid of each row's
        draws, measured over the rows a chunk executes. ``[B, horizon, Da]``, normalized units."""
        cfg, k = self.config, self.config.n_samples
        if k == 1:
            return self.sample(cond)
        b = cond.shape[0]
        x = self.sample(cond.repeat_interleave(k, dim=0)).reshape(b, k, cfg.horizon, cfg.action_dim)
        start = cfg.n_obs_steps - 1
        rows = x[:, :, start:start + cfg.n_action_steps].reshape(b, k, -1)
        best = torch.cdist(rows, rows).sum(dim=-1).argmin(dim=1)
        return x[torch.arange(b), best]

    def _obs_tensors(self, obs: dict[str, np.ndarray], batched: bool) -> dict[str, torch.Tensor]:
        cfg = self.config
        out = {}
        for k in cfg.obs_keys:
            if k not in obs:
                raise UserError(f"diffusion policy: observation lacks key {k!r}; got {sorted(obs)}")
            a = np.asarray(obs[k])
            if not batched:
                a = a[None]
            shape = cfg.obs_shapes[k]
            per_step = math.prod(shape)
            if a.ndim < 2 or a.shape[1] < 1 or math.prod(a.shape[2:]) != per_step:
                want = "[B, To, " if batched else "[To, "
                raise UserError(f"diffusion policy: observation {k!r} has shape {list(np.shape(obs[k]))}, "
                                f"expected {want}{', '.join(map(str, shape))}]")
            if not is_image_key(k) and not np.all(np.isfinite(a)):
                raise UserError(f"diffusion policy: observation {k!r} contains NaN or inf")
            to = cfg.n_obs_steps
            a = a[:, -to:]
            if a.shape[1] < to:  # too few steps yet (start of episode): repeat the oldest
                a = np.concatenate([np.repeat(a[:, :1], to - a.shape[1], axis=1), a], axis=1)
            t = torch.from_numpy(np.ascontiguousarray(a))
            out[k] = t if is_image_key(k) else t.float().reshape(a.shape[0], to, *shape)
        return out

    def infer_batch(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{key: [B, To, *shape]}`` -> ``{"action": [B, n_action_steps, action_dim]}``."""
        cfg = self.config
        with torch.inference_mode():
            o = self._obs_tensors(obs, batched=True)
            actions = self.normalizer.unnormalize("action", self.sample_chunks(self._encode(o, augment=False)))
            actions = actions + self._anchor(o)
        start = cfg.n_obs_steps - 1
        return {"action": actions[:, start:start + cfg.n_action_steps].numpy().astype(np.float32)}

    def infer(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{key: [To, *shape]}`` (oldest first) -> ``{"action": [n_action_steps, action_dim]}``."""
        cfg = self.config
        with torch.inference_mode():
            o = self._obs_tensors(obs, batched=False)
            actions = self.normalizer.unnormalize("action", self.sample_chunks(self._encode(o, augment=False)))
            actions = (actions + self._anchor(o))[0]
        start = cfg.n_obs_steps - 1
        return {"action": actions[start:start + cfg.n_action_steps].numpy().astype(np.float32)}
