"""CARP: Visuomotor Policy Learning via Coarse-to-Fine Autoregressive Prediction (Gong et al.).

Training (``compute_loss``, two stages in the one training loop; the stage follows the
``train_step`` buffer, saved with the weights so resume keeps it):

1. steps ``< tokenizer_steps``: the multi-scale tokenizer reconstructs normalized action
   chunks (MSE + VQ codebook/commitment loss); unused codes are restarted from the batch's
   residuals every ``CODE_RESTART_EVERY`` steps.
2. then: the tokenizer is frozen (``requires_grad`` off); the transformer learns, with cross-entropy and teacher
   forcing, every scale's codes of the chunk given the observation.

Inference (``infer``): the observation embedding starts the sequence; for each scale one
forward pass over that scale's tokens with the KV cache, codes sampled (greedy or top-k from
the policy's own generator), ``f_hat`` accumulated; after the last scale the tokenizer's
decoder gives the chunk. ``len(scales)`` transformer passes per chunk, whatever its length.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rosmind.errors import SpecError, UserError
from rosmind.policies.diffusion.encoders import ObsEncoder, encode_observations, relative_obs_dim
from rosmind.policies.normalizer import Normalizer

from .config import CarpConfig
from .frozen import FrozenSampler
from .tokenizer import MultiScaleTokenizer
from .transformer import KVCache, ScaleTransformer

CODE_RESTART_EVERY = 50
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
        self.normalizer = Normalizer({**low_dim, "action": (cfg.action_dim,)})
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
        self._frozen: FrozenSampler | None = None  # set by freeze_for_inference(); not in the state dict
        self.eval()

    def freeze_for_inference(self) -> None:
        """Sample through TorchScript-traced, frozen graphs from now on (``frozen.py``): one per
        scale plus the decoder, instead of a few hundred eagerly dispatched small operators.
        The graphs hold the weights as they are now; ``train(True)`` or ``load_state_dict()``
        drops them. Deployment paths (``load_checkpoint``) call this; training never does."""
        self._frozen = FrozenSampler(self.transformer, self.tokenizer, self.config.action_dim)

    def train(self, mode: bool = True):
        if mode:
            self._frozen = None
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        self._frozen = None
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
        """Switch between ``"greedy"`` and ``"top_k"`` sampling without retraining."""
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
        """Tokenizer input ``[B*Da, C, s] -> [B, s, Da*C]`` (one token per latent index)."""
        cfg = self.config
        return inp.reshape(b, cfg.action_dim, cfg.latent_dim, -1).permute(0, 3, 1, 2).reshape(b, inp.shape[-1], -1)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``batch``: obs keys ``[B, To, *shape]``, ``action [B, horizon, Da]`` -> (loss, logs).

        Stage 1 logs ``recon_mse`` (normalized units) and ``codes_used``; stage 2 ``token_acc``.
        """
        x0 = self.to_chunk_space(batch["action"].float(), self._newest_joint_pos(batch))
        stage = self.stage
        if self.training:
            self.train_step += 1
        if stage == 1:
            return self._tokenizer_loss(x0)
        b = x0.shape[0]
        # Frozen: no gradient, and an EMA copy takes these weights as they are (it averages only
        # parameters that require grad), so the exported tokenizer is the one the codes came from.
        self.tokenizer.requires_grad_(False)
        with torch.no_grad():
            codes = self.tokenizer.tokenize(x0)
            inputs = [self._word_inputs(t, b) for t in self.tokenizer.teacher_inputs(codes)]
        target = torch.cat([self._codes_per_token(q, b) for q in codes], dim=1)
        logits = self.transformer(self._encode(batch), inputs, target)
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

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        """``[..., V]`` logits -> ``[...]`` codes (greedy, or top-k from the policy's generator)."""
        cfg = self.config
        if cfg.sampling == "greedy" or cfg.top_k == 1:
            return logits.argmax(-1)
        vals, idx = torch.topk(logits / cfg.temperature, cfg.top_k, dim=-1)
        probs = torch.softmax(vals, dim=-1)
        pick = torch.multinomial(probs.reshape(-1, cfg.top_k), 1, generator=self._generator)
        return idx.reshape(-1, cfg.top_k).gather(1, pick).reshape(logits.shape[:-1])

    @torch.no_grad()
    def generate(self, cond: torch.Tensor, return_logits: bool = False):
        """Coarse-to-fine sampling: ``cond [B, Dc]`` -> normalized chunk ``[B, horizon, Da]``
        (and, with ``return_logits``, the per-scale logits ``[B, s_k, Da, V]`` and codes)."""
        if self._frozen is not None and not return_logits:
            try:
                return self._frozen.sample(cond, self._sample)
            except (AttributeError, RuntimeError) as e:  # a torch without TorchScript: stay eager
                log.warning("carp policy: TorchScript freezing unavailable (%s); sampling eagerly", e)
                self._frozen = None
        b = cond.shape[0]
        tok, tf = self.tokenizer, self.transformer
        c = tf.embed_condition(cond)
        mods = tf.modulations(c)
        cache = KVCache(len(tf.blocks))
        f_hat = c.new_zeros(b * self.config.action_dim, tok.latent_dim, tok.length)
        all_logits, all_codes = [], []
        for k in range(len(tok.scales)):
            inp = None if k == 0 else self._word_inputs(tok.next_input(f_hat, k), b)
            logits, codes = tf.step(c, mods, k, inp, cache, self._sample)  # codes [B, s_k, Da]
            f_hat = tok.add_scale(f_hat, codes.permute(0, 2, 1).reshape(b * self.config.action_dim, -1), k)
            all_logits.append(logits)
            all_codes.append(codes)
        x = tok.decode(f_hat, self.config.action_dim)
        return (x, all_logits, all_codes) if return_logits else x

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
