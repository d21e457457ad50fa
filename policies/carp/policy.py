"""CARP: Visuomotor Policy Learning via Coarse-to-Fine Autoregressive Prediction (Gong et al.).

Training (``compute_loss``, two stages in the one training loop; the stage follows the
``train_step`` buffer, saved with the weights so resume keeps it):

1. steps ``< tokenizer_steps``: the multi-scale tokenizer reconstructs normalized action
   chunks (MSE + VQ codebook/commitment loss); unused codes are restarted from the batch's
   residuals every ``CODE_RESTART_EVERY`` steps.
2. then: the tokenizer is frozen (``requires_grad`` off); the transformer learns, with cross-entropy and teacher
   forcing, every scale's codes of the chunk given the observation.

Inference (``infer``, ``sampling.py``): the observation embedding starts the sequence; for
each scale one forward pass over that scale's tokens with the KV cache, codes chosen (greedy,
top-k from the policy's own generator, or their expected embedding), ``f_hat`` accumulated;
after the last scale the tokenizer's decoder gives the chunk. ``len(scales)`` transformer
passes per chunk, whatever its length; after ``freeze_for_inference`` the whole chunk is one
frozen TorchScript graph.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rosmind.errors import SpecError, UserError
from rosmind.policies.augment import add_state_noise
from rosmind.policies.diffusion.encoders import ObsEncoder, encode_observations, relative_obs_dim
from rosmind.policies.normalizer import Normalizer

from .config import CarpConfig
from .sampling import ChunkSampler, FrozenSampler, word_inputs
from .tokenizer import MultiScaleTokenizer
from .transformer import ScaleTransformer

CODE_RESTART_EVERY = 50
PREFIX_NOISE_NEAR = 3  # a slipped prefix code is the 2nd or 3rd nearest (what top-3 sampling reaches)
log = logging.getLogger(__name__)


class CarpPolicy(nn.Module):
    """``infer({key: [To, *shape]}) -> {"action": [n_action_steps, action_dim]}`` (float32,
    absolute joint targets); ``infer_batch({key: [B, To, *shape]}) -> {"action": [B, Ta, Da]}``.
    """

    family = "carp"

    def __init__(self, config: CarpConfig | None = None):
        super().__init__()
        cfg = config or CarpConfig()
        self.config = cfg
        low_dim = {k: cfg.obs_shapes[k] for k in cfg.obs_keys}
        self.normalizer = Normalizer({**low_dim, "action": (cfg.action_dim,)},
                                     min_range={k: cfg.obs_min_range for k in low_dim})
        self.obs_encoder = ObsEncoder(cfg.obs_keys, cfg.obs_shapes, extra_per_step=relative_obs_dim(cfg))
        self.tokenizer = MultiScaleTokenizer(cfg.horizon, cfg.downsample, cfg.scales, cfg.latent_dim,
                                             cfg.codebook_size, cfg.tokenizer_hidden, cfg.commitment_weight)
        self.transformer = ScaleTransformer(self.obs_encoder.out_per_step * cfg.n_obs_steps, cfg.scales,
                                            cfg.action_dim, cfg.latent_dim, cfg.codebook_size, cfg.d_model,
                                            cfg.n_layers, cfg.n_heads, cfg.dropout, cfg.dim_autoregressive)
        self.register_buffer("delta_scale", self._delta_scale(cfg))
        self.register_buffer("train_step", torch.zeros((), dtype=torch.long))
        self.register_buffer("code_usage", torch.zeros(cfg.codebook_size, dtype=torch.bool), persistent=False)
        self._generator = torch.Generator().manual_seed(cfg.seed)
        self._train_generator = torch.Generator().manual_seed(cfg.seed + 1)  # prefix/obs noise draws
        self._freeze = False  # freeze_for_inference() was called (and nothing changed since)
        self._frozen: FrozenSampler | None = None  # the graphs, for the current sampling setting
        self.eval()

    def freeze_for_inference(self) -> None:
        """Sample through one TorchScript-traced, frozen graph per chunk from now on
        (``sampling.FrozenSampler``) instead of a few hundred eagerly dispatched small
        operators; same draws, same codes. It holds the weights as they are now: ``train(True)``
        or ``load_state_dict()`` drops it (call this again afterwards); ``set_sampling`` rebuilds
        it. Deployment paths (``load_checkpoint``) call this; training never does."""
        self._freeze, self._frozen = True, None

    def train(self, mode: bool = True):
        if mode:
            self._freeze, self._frozen = False, None
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        self._freeze, self._frozen = False, None
        return super().load_state_dict(*args, **kwargs)

    @staticmethod
    def _delta_scale(cfg: CarpConfig) -> torch.Tensor:
        """Per-dimension scale of relative chunks: a fraction of (velocity limit x chunk time)."""
        if not cfg.relative_actions:
            return torch.ones(cfg.action_dim)
        from rosmind.spec import load_spec

        spec = load_spec(cfg.robot)
        if spec.dof != cfg.action_dim:
            raise SpecError(f"CarpConfig.action_dim: robot {cfg.robot!r} has {spec.dof} joints, got {cfg.action_dim}")
        vel = torch.tensor(spec.limits("velocity"), dtype=torch.float32)
        return vel * spec.control_period * cfg.horizon * cfg.delta_limit_fraction

    def to_chunk_space(self, actions: torch.Tensor, joint_pos: torch.Tensor | None) -> torch.Tensor:
        """Absolute targets ``[B, H, Da]`` -> what the tokenizer models (``joint_pos [B, Da]``
        is the newest observed joint position; needed with ``relative_actions``)."""
        if not self.config.relative_actions:
            return self.normalizer.normalize("action", actions)
        return (actions - joint_pos[:, None]) / self.delta_scale

    def from_chunk_space(self, x: torch.Tensor, joint_pos: torch.Tensor | None) -> torch.Tensor:
        if not self.config.relative_actions:
            return self.normalizer.unnormalize("action", x)
        return x * self.delta_scale + joint_pos[:, None]

    def _newest_joint_pos(self, obs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if not self.config.relative_actions:
            return None
        q = obs["joint_pos"][:, self.config.n_obs_steps - 1]
        return q.reshape(q.shape[0], -1).float()

    def reset(self) -> None:
        """A new episode starts. No per-episode state; top-k draws go on (``reseed`` restarts them)."""

    def reseed(self, seed: int | None = None) -> None:
        """Restart top-k sampling at ``seed`` (default ``config.seed``)."""
        self._generator.manual_seed(self.config.seed if seed is None else int(seed))

    def set_sampling(self, sampling: str, top_k: int | None = None, temperature: float | None = None) -> None:
        """Switch between ``"greedy"``, ``"top_k"`` and ``"expected"`` decoding without retraining."""
        import dataclasses

        kw = {"sampling": sampling}
        if top_k is not None:
            kw["top_k"] = top_k
        if temperature is not None:
            kw["temperature"] = temperature
        try:
            self.config = dataclasses.replace(self.config, **kw)
        except SpecError as e:
            raise UserError(str(e)) from None
        self._frozen = None  # rebuilt for the new setting on the next chunk

    def fit_normalizer(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        self.normalizer.fit(stats)

    def normalization_stats(self) -> dict:
        return self.normalizer.stats()

    @property
    def stage(self) -> int:
        """1 while the tokenizer trains, 2 once the transformer does."""
        return 1 if int(self.train_step) < self.config.tokenizer_steps else 2

    def _encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return encode_observations(self.obs_encoder, self.normalizer, self.config, obs, False)

    def _codes_per_token(self, codes: torch.Tensor, b: int) -> torch.Tensor:
        """``[B*Da, s] -> [B, s, Da]``."""
        return codes.reshape(b, self.config.action_dim, -1).permute(0, 2, 1)

    def _word_inputs(self, inp: torch.Tensor, b: int) -> torch.Tensor:
        return word_inputs(inp, b, self.config.action_dim)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``batch``: obs keys ``[B, To, *shape]``, ``action [B, horizon, Da]`` -> (loss, logs).

        Stage 1 logs ``recon_mse`` (normalized units) and ``codes_used``; stage 2 ``token_acc``.
        """
        stage = self.stage
        if self.training and stage == 2:
            batch = add_state_noise(batch, self.config.state_noise, self._train_generator)
        x0 = self.to_chunk_space(batch["action"].float(), self._newest_joint_pos(batch))
        if self.training:
            self.train_step += 1
        if stage == 1:
            return self._tokenizer_loss(x0)
        b = x0.shape[0]
        # Frozen: no gradient, and an EMA copy takes these weights as they are (it averages only
        # parameters that require grad), so the exported tokenizer is the one the codes came from.
        self.tokenizer.requires_grad_(False)
        with torch.no_grad():
            if self.training and self.config.prefix_noise > 0:
                codes, targets = self.tokenizer.perturbed_codes(self.tokenizer.encode(x0), self.config.prefix_noise,
                                                                PREFIX_NOISE_NEAR, self._train_generator)
            else:
                codes = targets = self.tokenizer.tokenize(x0)
            inputs = [self._word_inputs(t, b) for t in self.tokenizer.teacher_inputs(codes)]
        target = torch.cat([self._codes_per_token(q, b) for q in targets], dim=1)
        cond = self._encode(batch)
        if self.training and self.config.obs_noise > 0:
            cond = cond + self.config.obs_noise * torch.randn(cond.shape, generator=self._train_generator).to(cond)
        logits = self.transformer(cond, inputs, target)
        loss = F.cross_entropy(logits.reshape(-1, self.config.codebook_size), target.reshape(-1))
        acc = (logits.argmax(-1) == target).float().mean().item()
        return loss, {"token_ce": loss.item(), "token_acc": acc}

    def _tokenizer_loss(self, x0: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        f = self.tokenizer.encode(x0)
        f_hat, vq_loss, codes = self.tokenizer.quantize(f)
        recon = self.tokenizer.decode(f_hat, x0.shape[-1])
        mse = F.mse_loss(recon, x0)
        if self.training:
            with torch.no_grad():
                for q in codes:
                    self.code_usage[q.flatten()] = True
                step = int(self.train_step)
                if step == 1 or step % CODE_RESTART_EVERY == 0:
                    used = self.code_usage if step > 1 else torch.zeros_like(self.code_usage)
                    self.tokenizer.reinit_codes(f.detach(), used)
                    self.code_usage.zero_()
        logs = {"recon_mse": mse.item(), "vq_loss": vq_loss.item(),
                "codes_used": float(torch.unique(torch.cat([q.flatten() for q in codes])).numel())}
        return mse + vq_loss, logs

    @torch.no_grad()
    def reconstruct(self, actions: torch.Tensor, joint_pos: torch.Tensor | None = None) -> torch.Tensor:
        """Tokenize and decode action chunks ``[B, horizon, Da]`` (action units) -> same shape.
        ``joint_pos [B, Da]``: the newest observed joint positions (with ``relative_actions``)."""
        recon, _, _ = self.tokenizer(self.to_chunk_space(actions.float(), joint_pos))
        return self.from_chunk_space(recon, joint_pos)

    def _sampler_setting(self) -> tuple[str, int, float]:
        cfg = self.config
        return cfg.sampling, cfg.top_k, cfg.temperature

    @torch.no_grad()
    def generate(self, cond: torch.Tensor, return_logits: bool = False):
        """Coarse-to-fine sampling: ``cond [B, Dc]`` -> normalized chunk ``[B, horizon, Da]``
        (and, with ``return_logits``, the per-scale logits ``[B, s_k, Da, V]`` and codes).
        Top-k draws come from the policy's generator (``reseed``)."""
        cfg = self.config
        u = torch.rand(cond.shape[0], sum(cfg.scales), cfg.action_dim, generator=self._generator)
        if self._freeze and not return_logits:
            try:
                if self._frozen is None:
                    self._frozen = FrozenSampler(self.transformer, self.tokenizer, cfg.action_dim,
                                                 *self._sampler_setting())
                return self._frozen(cond, u)
            except (AttributeError, RuntimeError) as e:  # a torch without TorchScript: stay eager
                log.warning("carp policy: TorchScript freezing unavailable (%s); sampling eagerly", e)
                self._freeze, self._frozen = False, None
        sampler = ChunkSampler(self.transformer, self.tokenizer, cfg.action_dim, *self._sampler_setting())
        x, logits, codes = sampler.run(cond, u, record=return_logits)
        return (x, logits, codes) if return_logits else x

    def _obs_tensors(self, obs: dict[str, np.ndarray], batched: bool) -> dict[str, torch.Tensor]:
        cfg = self.config
        out = {}
        for k in cfg.obs_keys:
            if k not in obs:
                raise UserError(f"carp policy: observation lacks key {k!r}; got {sorted(obs)}")
            a = np.asarray(obs[k])
            if not batched:
                a = a[None]
            shape = cfg.obs_shapes[k]
            if a.ndim < 2 or a.shape[1] < 1 or math.prod(a.shape[2:]) != math.prod(shape):
                want = "[B, To, " if batched else "[To, "
                raise UserError(f"carp policy: observation {k!r} has shape {list(np.shape(obs[k]))}, "
                                f"expected {want}{', '.join(map(str, shape))}]")
            if not np.all(np.isfinite(a)):
                raise UserError(f"carp policy: observation {k!r} contains NaN or inf")
            to = cfg.n_obs_steps
            a = a[:, -to:]
            if a.shape[1] < to:  # start of an episode: repeat the oldest step
                a = np.concatenate([np.repeat(a[:, :1], to - a.shape[1], axis=1), a], axis=1)
            out[k] = torch.from_numpy(np.ascontiguousarray(a)).float().reshape(a.shape[0], to, *shape)
        return out

    def infer_batch(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{key: [B, To, *shape]}`` -> ``{"action": [B, n_action_steps, action_dim]}``."""
        cfg = self.config
        with torch.inference_mode():
            t = self._obs_tensors(obs, batched=True)
            actions = self.from_chunk_space(self.generate(self._encode(t)), self._newest_joint_pos(t))
        start = cfg.n_obs_steps - 1
        return {"action": actions[:, start:start + cfg.n_action_steps].numpy().astype(np.float32)}

    def infer(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{key: [To, *shape]}`` (oldest first) -> ``{"action": [n_action_steps, action_dim]}``."""
        cfg = self.config
        with torch.inference_mode():
            t = self._obs_tensors(obs, batched=False)
            actions = self.from_chunk_space(self.generate(self._encode(t)), self._newest_joint_pos(t))[0]
        start = cfg.n_obs_steps - 1
        return {"action": actions[start:start + cfg.n_action_steps].numpy().astype(np.float32)}
