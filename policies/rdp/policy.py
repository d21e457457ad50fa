"""RDP: Reactive Diffusion Policy (Xue et al., RSS 2025), slow latent planning, fast decoding.

Training (``compute_loss``, two stages in the one training loop; the stage follows the
``train_step`` buffer, saved with the weights, so resume keeps it):

1. steps ``< tokenizer_steps``: the asymmetric tokenizer (``tokenizer.py``) reconstructs each
   normalized, pose-relative action chunk from its latent and the chunk's per-step force
   stream (the dataset's ``future/<fast key>`` windows), L1 + a tiny KL;
2. then the tokenizer is frozen and an inner ``DiffusionPolicy`` (the Diffusion Policy family's
   own UNet, schedulers, observation encoders and normalizer) learns the latents (the
   encoder's mean) given the observation.

Inference: ``infer(obs)`` is the ordinary contract (a chunk, decoded with the newest force held
for every row) plus the plan: ``latent`` ``[chunk/4, d]`` and ``anchor`` (the pose the chunk is
relative to). ``SlowFastExecutor`` (``policies/executors.py``) runs the plan one tick at a time
through ``decoder_start`` / ``decoder_step`` with the force of that tick: the fast loop.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rosmind.errors import UserError
from rosmind.policies.diffusion.policy import DiffusionPolicy
from rosmind.policies.normalizer import Normalizer, quantile_clip, quantile_limits

from .config import RDPConfig
from .tokenizer import AsymmetricTokenizer, time_shift


def is_tactile(key: str) -> bool:
    return key.startswith("tactile/")


def _pca(key: str, part: str) -> str:
    return f"pca_{part}__{key.replace('/', '__')}"


def future_key(key: str) -> str:
    """The dataset item holding ``key`` over the whole window (``SequenceDataset(future_keys=...)``)."""
    return f"future/{key}"


class DecoderState:
    """One chunk's fast-decoder state: the GRU's hidden state after ``rows`` rows."""

    def __init__(self, h: torch.Tensor, feats: torch.Tensor, anchor: np.ndarray, held: np.ndarray):
        self.h, self.feats, self.anchor, self.held = h, feats, anchor, held
        self.rows = 0

    def copy(self) -> DecoderState:
        out = DecoderState(self.h.clone(), self.feats, self.anchor, self.held)
        out.rows = self.rows
        return out

    @property
    def length(self) -> int:
        return self.feats.shape[1]


class RDPPolicy(nn.Module):
    """``infer({key: [To, *shape]}) -> {"action": [n_action_steps, Da], "latent", "anchor"}``."""

    family = "rdp"
    fast = True  # the executor runs it slow-fast (policies/executors.py:make_executor)

    def __init__(self, config: RDPConfig | None = None):
        super().__init__()
        cfg = config or RDPConfig()
        self.config = cfg
        self.latent_dp = DiffusionPolicy(cfg.latent_config())
        fast_dim = sum(self._fast_width(k) for k in cfg.fast_keys)
        self.tokenizer = AsymmetricTokenizer(cfg.action_dim, fast_dim, cfg.chunk, cfg.latent_dim,
                                             tuple(cfg.encoder_channels), cfg.decoder_hidden, cfg.fast_embed,
                                             cfg.latent_feature)
        # Relative chunks normalized per row (as Diffusion Policy's relative_actions); fast keys per element.
        self.normalizer = Normalizer({"action": (cfg.chunk, cfg.action_dim),
                                      **{k: (self._fast_width(k),) for k in cfg.fast_keys}},
                                     clip=quantile_clip(cfg.fast_keys, cfg.obs_quantile))
        for k in cfg.fast_keys:
            if is_tactile(k):  # the pad's PCA (fitted on the dataset)
                d = int(np.prod(cfg.obs_shapes[k]))
                self.register_buffer(_pca(k, "mean"), torch.zeros(d))
                self.register_buffer(_pca(k, "components"), torch.zeros(cfg.tactile_pca_dim, d))
        self.register_buffer("train_step", torch.zeros((), dtype=torch.long))
        self.eval()

    # -- the training loop's hooks ---------------------------------------------------------

    def fit_normalizer(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        cfg = self.config
        if "action_relative" not in stats:
            raise KeyError("RDP needs 'action_relative' stats (SequenceDataset.stats() with joint_pos)")
        rel = {k: np.asarray(v)[cfg.n_obs_steps - 1:] for k, v in stats["action_relative"].items()}
        fast = {}
        limits = quantile_limits(stats, [k for k in cfg.fast_keys if not is_tactile(k)], cfg.obs_quantile)
        for k in cfg.fast_keys:
            if not is_tactile(k):
                fast[k] = {"min": np.asarray(limits[k]["min"]).reshape(-1), "max": np.asarray(limits[k]["max"]).reshape(-1)}
                continue
            if "pca_components" not in stats[k]:
                raise KeyError(f"RDP: tactile key {k!r} needs its PCA in the stats (SequenceDataset.stats())")
            n = cfg.tactile_pca_dim
            comp = np.zeros((n, int(np.prod(cfg.obs_shapes[k]))))
            got = np.asarray(stats[k]["pca_components"])[:n]
            comp[:len(got)] = got
            getattr(self, _pca(k, "mean")).copy_(torch.as_tensor(np.asarray(stats[k]["pca_mean"]), dtype=torch.float32))
            getattr(self, _pca(k, "components")).copy_(torch.as_tensor(comp, dtype=torch.float32))
            lo, hi = np.zeros(n), np.zeros(n)
            lo[:len(got)], hi[:len(got)] = np.asarray(stats[k]["pca_min"])[:n], np.asarray(stats[k]["pca_max"])[:n]
            fast[k] = {"min": lo, "max": hi}
        self.normalizer.fit({"action": rel, **fast})
        ones = np.ones((cfg.latent_dim,))
        # Latents are bounded by the encoder's tanh: the inner policy's action range is [-1, 1].
        self.latent_dp.fit_normalizer({**{k: stats[k] for k in cfg.obs_keys if k in stats},
                                       "action": {"min": -ones, "max": ones}})

    def normalization_stats(self) -> dict:
        return {**self.latent_dp.normalization_stats(), **self.normalizer.stats()}

    @property
    def stage(self) -> int:
        return 1 if int(self.train_step) < self.config.tokenizer_steps else 2

    def _fast_stream(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        parts = []
        for k in cfg.fast_keys:
            fk = future_key(k)
            if fk not in batch:
                raise UserError(f"RDP training needs the dataset's per-step {k!r} over each window ({fk!r}); "
                                "train it through rosmind train (SequenceDataset future_keys)")
            x = batch[fk][:, cfg.n_obs_steps - 1:].float()
            parts.append(self._reduce(k, x.flatten(2)))
        return torch.cat(parts, dim=-1)

    def _fast_width(self, key: str) -> int:
        cfg = self.config
        return cfg.tactile_pca_dim if is_tactile(key) else int(np.prod(cfg.obs_shapes[key]))

    def _reduce(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Flattened raw values ``[..., D]`` of a fast key -> its normalized decoder input (a
        tactile pad through its PCA first)."""
        if is_tactile(key):
            x = (x - getattr(self, _pca(key, "mean"))) @ getattr(self, _pca(key, "components")).T
        return self.normalizer.normalize(key, x)

    def _chunk(self, batch: dict[str, torch.Tensor], delta: torch.Tensor | None = None) -> torch.Tensor:
        """The window's chunk relative to its newest joint_pos, normalized ``[B, T, Da]``;
        ``delta [B]``: shifted by that many ticks first (``time_shift``)."""
        to = self.config.n_obs_steps
        anchor = batch["joint_pos"][:, to - 1].float()[:, None]
        rel = batch["action"][:, to - 1:].float() - anchor
        return self.normalizer.normalize("action", rel if delta is None else time_shift(rel, delta))

    def tokenizer_loss(self, batch: dict[str, torch.Tensor], x: torch.Tensor | None = None):
        """Stage 1's objective on a batch (``x``: its ``_chunk``, if already made)."""
        cfg = self.config
        x = self._chunk(batch) if x is None else x
        fast, target, s = self._fast_stream(batch), None, cfg.latent_time_shift
        if s:
            delta = torch.randint(-s, s + 1, (x.shape[0],))
            target, fast = self._chunk(batch, delta), time_shift(fast, delta)
        return self.tokenizer.loss(x, fast, cfg.kl_weight, cfg.latent_noise, target)

    def compute_loss(self, batch: dict[str, torch.Tensor]):
        x = self._chunk(batch)
        stage = self.stage
        if self.training:
            self.train_step += 1
        if stage == 1:
            loss, logs = self.tokenizer_loss(batch, x)
            return loss, {**logs, "stage": 1.0}
        # Frozen: no gradient, and an EMA copy takes these weights as they are.
        self.tokenizer.requires_grad_(False)
        with torch.no_grad():
            z = self.tokenizer.encode(x)[0]
        inner = {k: batch[k] for k in self.config.obs_keys}
        inner["action"] = z
        return self.latent_dp.compute_loss(inner), {"stage": 2.0}

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.stage == 2:
            self.tokenizer.requires_grad_(False)
        return self

    def freeze_for_inference(self) -> None:
        self.latent_dp.freeze_for_inference()

    # -- inference -------------------------------------------------------------------------

    def reset(self) -> None:
        """A new episode: the policy keeps no per-episode state (the executor holds the plans)."""

    def reseed(self, seed: int | None = None) -> None:
        self.latent_dp.reseed(seed)

    def set_sampler(self, sampler: str, num_inference_steps: int) -> None:
        self.latent_dp.set_sampler(sampler, num_inference_steps)

    def _fast_vector(self, fast: dict[str, np.ndarray]) -> torch.Tensor:
        """Newest raw fast values ``{key: [*shape]}`` -> normalized ``[1, F]`` (zero force with
        ``fast_input='zero'``)."""
        cfg = self.config
        parts = []
        for k in cfg.fast_keys:
            v = np.asarray(fast[k], dtype=np.float32).reshape(1, -1)
            if cfg.fast_input == "zero":
                v = np.zeros_like(v)
            parts.append(self._reduce(k, torch.from_numpy(v)))
        return torch.cat(parts, dim=-1)

    @torch.inference_mode()
    def plan(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The slow step: ``{key: [To, *shape]}`` -> ``{"latent": [chunk/4, d], "anchor": [Da]}``."""
        o = self.latent_dp._obs_tensors(obs, batched=False)
        z = self.latent_dp.sample(self.latent_dp._encode(o, augment=False))[0]
        anchor = o["joint_pos"][0, -1].reshape(-1).numpy().astype(np.float64)
        return {"latent": z.numpy(), "anchor": anchor}

    @torch.inference_mode()
    def decoder_start(self, plan: dict[str, np.ndarray], fast: dict[str, np.ndarray]) -> DecoderState:
        """A fresh fast-decoder state for ``plan``; ``fast`` is the force at the plan's tick (what
        ``fast_input='held'`` keeps feeding)."""
        h, feats = self.tokenizer.start(torch.as_tensor(plan["latent"], dtype=torch.float32)[None])
        return DecoderState(h, feats, np.asarray(plan["anchor"], dtype=np.float64), self._fast_vector(fast))

    @torch.inference_mode()
    def decoder_step(self, state: DecoderState, fast: dict[str, np.ndarray]) -> np.ndarray:
        """Row ``state.rows`` of the chunk from the force of its tick -> absolute joint targets [Da]."""
        if state.rows >= state.length:
            raise IndexError(f"RDP decoder: the chunk has {state.length} rows, all decoded")
        f = state.held if self.config.fast_input == "held" else self._fast_vector(fast)
        y, state.h = self.tokenizer.step(state.feats[:, state.rows], f, state.h)
        row = self.normalizer.unnormalize_index("action", y[0], state.rows)
        state.rows += 1
        return row.numpy().astype(np.float64) + state.anchor

    def infer(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The contract: ``{key: [To, *shape]}`` -> ``{"action": [n_action_steps, Da]}`` decoded
        with the newest fast values held, plus the plan (``latent``, ``anchor``)."""
        for k in self.config.fast_keys:
            if k not in obs:
                raise UserError(f"RDP policy: observation lacks fast key {k!r}; got {sorted(obs)}")
        plan = self.plan(obs)
        newest = {k: np.asarray(obs[k])[-1] for k in self.config.fast_keys}
        state = self.decoder_start(plan, newest)
        rows = [self.decoder_step(state, newest) for _ in range(self.config.n_action_steps)]
        return {"action": np.stack(rows).astype(np.float32), **plan}

