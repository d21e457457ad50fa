"""Multi-scale action tokenizer (CARP stage 1, Gong et al. 2025, sec. 3.2).

Every action dimension is a separate 1-D signal: a chunk ``x [B, H, Da]`` (normalized) is
encoded by one shared conv encoder into ``f [B*Da, C, L]`` (``L = H / downsample``), then
quantized residually over the scales ``s_1 < ... < s_K = L`` (VAR, Tian et al. 2024)::

    f_hat = 0
    for k:  r_k   = area_resize(f - f_hat, s_k)            [B*Da, C, s_k]
            q_k   = argmin_j |r_k - e_j|                   codes [B*Da, s_k], shared codebook e
            f_hat = f_hat + phi_k(linear_resize(e[q_k], L))

and decoded back to ``[B, H, Da]``. Gradients pass the quantizer straight through; the
loss adds a codebook term and a ``commitment_weight`` commitment term per scale.

The transformer (stage 2) predicts ``q_k`` from ``f_hat`` accumulated over scales ``< k``:
``next_input`` gives that input, ``teacher_inputs`` all of them at once (teacher forcing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def resize(x: torch.Tensor, length: int, down: bool) -> torch.Tensor:
    """``[N, C, l] -> [N, C, length]``: area average when shrinking, linear when growing."""
    if x.shape[-1] == length:
        return x
    if down:
        return F.interpolate(x, size=length, mode="area")
    return F.interpolate(x, size=length, mode="linear", align_corners=False)


class Phi(nn.Module):
    """VAR's per-scale refinement of an upsampled code map: ``x*(1-a) + conv(x)*a``."""

    def __init__(self, dim: int, mix: float = 0.5):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)
        self.mix = mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 - self.mix) + self.conv(x) * self.mix


class MultiScaleTokenizer(nn.Module):
    """``forward(x [B, H, Da]) -> (recon [B, H, Da], vq_loss, codes: list of [B*Da, s_k])``."""

    def __init__(self, horizon: int, downsample: int, scales: tuple[int, ...], latent_dim: int,
                 codebook_size: int, hidden: int, commitment_weight: float = 0.25):
        super().__init__()
        self.horizon, self.scales = horizon, tuple(scales)
        self.length = horizon // downsample
        self.latent_dim, self.codebook_size = latent_dim, codebook_size
        self.commitment_weight = commitment_weight
        n_down = {1: 0, 2: 1, 4: 2, 8: 3}[downsample]
        enc: list[nn.Module] = [nn.Conv1d(1, hidden, 3, padding=1), nn.GELU()]
        for _ in range(n_down):
            enc += [nn.Conv1d(hidden, hidden, 4, stride=2, padding=1), nn.GELU()]
        enc += [nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(), nn.Conv1d(hidden, latent_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv1d(latent_dim, hidden, 3, padding=1), nn.GELU()]
        for _ in range(n_down):
            dec += [nn.ConvTranspose1d(hidden, hidden, 4, stride=2, padding=1), nn.GELU()]
        dec += [nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(), nn.Conv1d(hidden, 1, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.codebook = nn.Embedding(codebook_size, latent_dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        self.phis = nn.ModuleList(Phi(latent_dim) for _ in self.scales)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, Da] -> f [B*Da, C, L]``."""
        b, h, da = x.shape
        return self.encoder(x.permute(0, 2, 1).reshape(b * da, 1, h))

    def decode(self, f_hat: torch.Tensor, action_dim: int) -> torch.Tensor:
        """``f_hat [B*Da, C, L] -> [B, H, Da]``."""
        y = self.decoder(f_hat)[:, 0]
        return y.reshape(-1, action_dim, self.horizon).permute(0, 2, 1)

    def distances(self, r: torch.Tensor) -> torch.Tensor:
        """Squared distances ``[N*s, V]`` from every vector of ``r [N, C, s]`` to every code."""
        flat = r.permute(0, 2, 1).reshape(-1, self.latent_dim)
        e = self.codebook.weight
        return flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]

    def lookup(self, r: torch.Tensor) -> torch.Tensor:
        """Nearest codes of ``r [N, C, s]`` -> ``[N, s]`` (long)."""
        return self.distances(r).argmin(1).reshape(r.shape[0], r.shape[2])

    def add_scale(self, f_hat: torch.Tensor, codes: torch.Tensor, k: int) -> torch.Tensor:
        """``f_hat [N, C, L]`` plus scale ``k``'s contribution from ``codes [N, s_k]``."""
        return self.add_latent(f_hat, self.codebook(codes).permute(0, 2, 1), k)

    def add_latent(self, f_hat: torch.Tensor, z: torch.Tensor, k: int) -> torch.Tensor:
        """``f_hat [N, C, L]`` plus scale ``k``'s contribution from latents ``z [N, C, s_k]``
        (code embeddings, or a mixture of them)."""
        return f_hat + self.phis[k](resize(z, self.length, down=False))

    def next_input(self, f_hat: torch.Tensor, k: int) -> torch.Tensor:
        """The transformer's input for scale ``k >= 1``: ``f_hat`` (scales < k) at length ``s_k``."""
        return resize(f_hat, self.scales[k], down=True)

    def quantize(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``f [N, C, L]`` -> (straight-through ``f_hat``, vq loss, codes per scale)."""
        f_hat = torch.zeros_like(f)
        loss = f.new_zeros(())
        codes = []
        for k, s in enumerate(self.scales):
            q = self.lookup(resize(f - f_hat, s, down=True).detach())
            codes.append(q)
            f_hat = self.add_scale(f_hat, q, k)
            loss = loss + F.mse_loss(f_hat, f.detach()) + self.commitment_weight * F.mse_loss(f, f_hat.detach())
        f_ste = f + (f_hat - f).detach()
        return f_ste, loss / len(self.scales), codes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        f_hat, loss, codes = self.quantize(self.encode(x))
        return self.decode(f_hat, x.shape[-1]), loss, codes

    @torch.no_grad()
    def perturbed_codes(self, f: torch.Tensor, prob: float, near: int,
                        generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Residual quantization of ``f [N, C, L]`` in which each code of the scales before the
        last is, with probability ``prob``, replaced by one of its ``near - 1`` next-nearest
        codes (uniformly), the slip a sampled prefix makes when the residual lies between codes.
        Returns (codes used, per scale) and (targets: at every scale the nearest code of what the
        *used* prefix left over, so later scales learn to take back an earlier slip)."""
        f_hat = torch.zeros_like(f)
        used, targets = [], []
        last = len(self.scales) - 1
        for k, s in enumerate(self.scales):
            d = self.distances(resize(f - f_hat, s, down=True))
            order = d.topk(min(near, self.codebook_size), dim=1, largest=False).indices  # [M, near]
            q = order[:, 0]
            targets.append(q.reshape(f.shape[0], s))
            if k < last and prob > 0 and order.shape[1] > 1:
                slip = torch.rand(q.shape, generator=generator).to(q.device) < prob
                pick = torch.randint(1, order.shape[1], q.shape, generator=generator).to(q.device)
                q = torch.where(slip, order.gather(1, pick[:, None])[:, 0], q)
            q = q.reshape(f.shape[0], s)
            used.append(q)
            f_hat = self.add_scale(f_hat, q, k)
        return used, targets

    @torch.no_grad()
    def tokenize(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x [B, H, Da]`` -> codes per scale ``[B*Da, s_k]``."""
        return self.quantize(self.encode(x))[2]

    def codes_to_fhat(self, codes: list[torch.Tensor]) -> torch.Tensor:
        f_hat = self.codebook.weight.new_zeros(codes[0].shape[0], self.latent_dim, self.length)
        for k, q in enumerate(codes):
            f_hat = self.add_scale(f_hat, q, k)
        return f_hat

    def teacher_inputs(self, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """Inputs of scales ``1..K-1`` (teacher forcing): ``[N, C, s_k]`` each."""
        f_hat = self.codebook.weight.new_zeros(codes[0].shape[0], self.latent_dim, self.length)
        out = []
        for k in range(len(self.scales) - 1):
            f_hat = self.add_scale(f_hat, codes[k], k)
            out.append(self.next_input(f_hat, k + 1))
        return out

    @torch.no_grad()
    def residual_pool(self, f: torch.Tensor) -> torch.Tensor:
        """Every scale's residual vectors ``r_k`` of ``f [N, C, L]``, stacked ``[M, C]``."""
        f_hat = torch.zeros_like(f)
        pool = []
        for k, s in enumerate(self.scales):
            r = resize(f - f_hat, s, down=True)
            pool.append(r.permute(0, 2, 1).reshape(-1, self.latent_dim))
            f_hat = self.add_scale(f_hat, self.lookup(r), k)
        return torch.cat(pool)

    @torch.no_grad()
    def reinit_codes(self, f: torch.Tensor, used: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Replace codes not in ``used`` (bool ``[V]``) by random residual vectors of ``f``
        (dead-code restart, the usual remedy for VQ codebook collapse). Returns how many."""
        dead = (~used).nonzero().flatten()
        if len(dead) == 0:
            return 0
        pool = self.residual_pool(f)
        pick = torch.randint(0, pool.shape[0], (len(dead),), generator=generator).to(pool.device)
        self.codebook.weight[dead] = pool[pick]
        return len(dead)
