"""1-D temporal conditional UNet with FiLM residual blocks (Chi et al. 2023, Sec. III-B).

The action trajectory ``[B, T, Da]`` is convolved along time. Every residual block is
conditioned by FiLM (per-channel scale and bias) on ``cond = [step_embedding, global_cond]``,
where ``global_cond`` is the flattened observation features of the last ``n_obs_steps``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SinusoidalStepEmbedding(nn.Module):
    """Diffusion step ``[B]`` -> ``[B, dim]`` (``sin`` half then ``cos`` half, periods up to 1e4)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"step embedding dim must be even, got {dim}")
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32)
                          * (-math.log(10000.0) / (half - 1)))
        arg = t.float()[:, None] * freqs[None]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish, length-preserving."""

    def __init__(self, c_in: int, c_out: int, kernel: int, n_groups: int):
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2),
                         nn.GroupNorm(n_groups, c_out), nn.Mish())


class FiLMResBlock(nn.Module):
    """``x [B, Cin, T], cond [B, Dc] -> [B, Cout, T]``: conv, FiLM(scale, bias), conv, + skip."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, n_groups: int):
        super().__init__()
        self.block1 = Conv1dBlock(c_in, c_out, kernel, n_groups)
        self.block2 = Conv1dBlock(c_out, c_out, kernel, n_groups)
        self.film = nn.Linear(cond_dim, 2 * c_out)  # input is mish(cond), computed once per forward
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.c_out = c_out

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``cond`` is the already activated ``mish([step_emb, global_cond])``."""
        h = self.block1(x)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.block2(scale * h + bias)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """``eps_theta(x [B, T, Da], t [B], global_cond [B, Dg]) -> [B, T, Da]``.

    ``T`` must be divisible by ``2 ** (len(down_dims) - 1)`` (one halving per level but the last).
    """

    def __init__(self, input_dim: int, global_cond_dim: int, down_dims: tuple[int, ...] = (64, 128),
                 step_embed_dim: int = 128, kernel_size: int = 5, n_groups: int = 8):
        super().__init__()
        self.step_encoder = nn.Sequential(
            SinusoidalStepEmbedding(step_embed_dim), nn.Linear(step_embed_dim, 4 * step_embed_dim),
            nn.Mish(), nn.Linear(4 * step_embed_dim, step_embed_dim))
        cond_dim = step_embed_dim + global_cond_dim
        dims = [input_dim, *down_dims]
        pairs = list(zip(dims[:-1], dims[1:], strict=True))

        def res(a: int, b: int) -> FiLMResBlock:
            return FiLMResBlock(a, b, cond_dim, kernel_size, n_groups)

        self.down = nn.ModuleList()
        for i, (a, b) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.down.append(nn.ModuleList([
                res(a, b), res(b, b), nn.Identity() if last else nn.Conv1d(b, b, 3, stride=2, padding=1)]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([res(mid, mid), res(mid, mid)])
        self.up = nn.ModuleList()
        for a, b in reversed(pairs[1:]):  # every down level but the last halved T: undo each
            self.up.append(nn.ModuleList([res(2 * b, a), res(a, a), nn.ConvTranspose1d(a, a, 4, 2, 1)]))
        self.final = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
                                   nn.Conv1d(down_dims[0], input_dim, 1))
        self.min_len_multiple = 2 ** (len(down_dims) - 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, global_cond: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and x.shape[1] % self.min_len_multiple:
            raise ValueError(f"horizon {x.shape[1]} must be divisible by {self.min_len_multiple}")
        if t.ndim == 0 and not torch.jit.is_tracing():
            t = t.expand(x.shape[0])
        # Every block's FiLM head starts with Mish(cond); one shared activation saves ~14 ops.
        cond = F.mish(torch.cat([self.step_encoder(t), global_cond], dim=-1))
        h = x.transpose(1, 2)
        skips = []
        for r1, r2, down in self.down:
            h = r2(r1(h, cond), cond)
            skips.append(h)
            h = down(h)
        for r in self.mid:
            h = r(h, cond)
        for r1, r2, up in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = up(r2(r1(h, cond), cond))
        return self.final(h).transpose(1, 2)
