"""RDP's asymmetric action tokenizer (stage 1): the encoder sees only the action chunk; the
decoder sees the latent and, step by step, the force (or tactile) stream.

    enc = tok.encode(x)                     # x [B, T, Da] normalized chunk -> (mean, logvar) [B, T/4, d]
    y = tok.decode(z, fast)                 # z [B, T/4, d], fast [B, T, F] -> [B, T, Da]
    h, feats = tok.start(z)                 # one chunk, step by step at run time:
    y_i, h = tok.step(feats[:, i], fast_i, h)

Encoder: two Conv1d (kernel 5, stride 2) over time (x4 temporal compression) and a 1x1
conv to the latent's mean and log-variance; the mean is bounded by ``tanh`` so latents live in
[-1, 1] (what the latent diffusion's sample clipping assumes). Decoder: the latent sequence,
upsampled to T steps (nearest, then a Conv1d), is the per-step global condition; the flattened
latent also sets the GRU's initial state; each step's force is embedded by a small MLP; a GRU
(hidden ``decoder_hidden``) runs causally over [latent feature, force embedding] and a linear
head gives the step's action. Being causal, the decoder can run one control tick at a time
with the newest force (``step``): the fast loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DOWNSAMPLE = 4  # two stride-2 convolutions


class AsymmetricTokenizer(nn.Module):
    def __init__(self, action_dim: int, fast_dim: int, chunk: int, latent_dim: int = 4,
                 channels: tuple[int, int] = (32, 64), decoder_hidden: int = 32, fast_embed: int = 16,
                 latent_feature: int = 32):
        super().__init__()
        if chunk % DOWNSAMPLE:
            raise ValueError(f"chunk length {chunk} must be divisible by {DOWNSAMPLE}")
        c1, c2 = channels
        self.chunk, self.latent_len, self.latent_dim = chunk, chunk // DOWNSAMPLE, latent_dim
        self.encoder = nn.Sequential(
            nn.Conv1d(action_dim, c1, 5, stride=2, padding=2), nn.Mish(),
            nn.Conv1d(c1, c2, 5, stride=2, padding=2), nn.Mish(),
            nn.Conv1d(c2, 2 * latent_dim, 1))
        with torch.no_grad():  # start nearly deterministic: the tiny KL only slowly widens it
            self.encoder[-1].bias[latent_dim:].fill_(-8.0)
        self.up = nn.Conv1d(latent_dim, latent_feature, 3, padding=1)
        self.init_h = nn.Linear(self.latent_len * latent_dim, decoder_hidden)
        self.fast = nn.Sequential(nn.Linear(fast_dim, fast_embed), nn.Mish(), nn.Linear(fast_embed, fast_embed))
        self.gru = nn.GRU(latent_feature + fast_embed, decoder_hidden, batch_first=True)
        self.head = nn.Linear(decoder_hidden, action_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, Da]`` -> ``(mean, logvar)``, each ``[B, T/4, d]``; mean in (-1, 1)."""
        h = self.encoder(x.transpose(1, 2)).transpose(1, 2)
        mean, logvar = h.chunk(2, dim=-1)
        return torch.tanh(mean), logvar.clamp(-12.0, 4.0)

    def start(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z [B, T/4, d]`` -> (GRU state ``[1, B, H]``, per-step latent features ``[B, T, C]``)."""
        up = z.repeat_interleave(DOWNSAMPLE, dim=1)
        feats = F.mish(self.up(up.transpose(1, 2))).transpose(1, 2)
        h0 = torch.tanh(self.init_h(z.flatten(1)))[None]
        return h0, feats

    def step(self, feat: torch.Tensor, fast: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``feat [B, C]``, ``fast [B, F]``, state ``[1, B, H]`` -> (action ``[B, Da]``, state)."""
        out, h = self.gru(torch.cat([feat, self.fast(fast)], dim=-1)[:, None], h)
        return self.head(out[:, 0]), h

    def decode(self, z: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        """Whole chunk at once (training): ``z [B, T/4, d]``, ``fast [B, T, F]`` -> ``[B, T, Da]``."""
        h0, feats = self.start(z)
        out, _ = self.gru(torch.cat([feats, self.fast(fast)], dim=-1), h0)
        return self.head(out)

    def loss(self, x: torch.Tensor, fast: torch.Tensor, kl_weight: float, latent_noise: float = 0.0,
             target: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """Stage-1 objective: L1 reconstruction plus ``kl_weight`` times the KL to N(0, I).
        ``latent_noise``: extra Gaussian noise on the sampled latent (std, latent units), so the
        decoder cannot read fine timing from the latent and must take it from the force stream.
        ``target``: what the decoder must give from ``x``'s latent and ``fast`` (default ``x``;
        a time-shifted ``x``, with ``fast`` shifted alike, for ``latent_time_shift``)."""
        mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) + latent_noise * torch.randn_like(mean)
        recon = F.l1_loss(self.decode(z, fast), x if target is None else target)
        kl = 0.5 * torch.mean(mean ** 2 + logvar.exp() - 1.0 - logvar)
        return recon + kl_weight * kl, {"recon_l1": recon.item(), "kl": kl.item()}


def time_shift(t: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``t [B, T, D]``, ``delta [B]`` (ints) -> row ``i`` of sample ``b`` is row ``i + delta[b]``
    of ``t``, clamped to the first and last rows (standing still before and after)."""
    idx = (torch.arange(t.shape[1], device=t.device)[None] + delta[:, None]).clamp(0, t.shape[1] - 1)
    return torch.gather(t, 1, idx[..., None].expand(-1, -1, t.shape[2]))
