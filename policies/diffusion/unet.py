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

    def forward(self, x: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        """``film`` is ``self.film(mish([step_emb, global_cond]))`` ``[B, 2 * Cout]``
        (``ConditionalUnet1D.films`` computes it for every block at once)."""
        h = self.block1(x)
        scale, bias = film.unsqueeze(-1).chunk(2, dim=1)
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
        return self.denoise(x, self.films(t, global_cond))

    def film_blocks(self) -> list[FiLMResBlock]:
        """The residual blocks in the order ``denoise`` runs them."""
        out = []
        for r1, r2, _ in self.down:
            out += [r1, r2]
        out += list(self.mid)
        for r1, r2, _ in self.up:
            out += [r1, r2]
        return out

    def films(self, t: torch.Tensor, global_cond: torch.Tensor) -> list[torch.Tensor]:
        """Every block's FiLM scale and bias ``[B, 2 * C]`` for steps ``t [B]``.

        They depend on the step and the observation only, not on the sample being denoised:
        a sampler computes them for all its steps in one batch before the loop.
        """
        if not torch.jit.is_tracing() and t.ndim == 0:
            t = t.expand(global_cond.shape[0])
        # Every block's FiLM head starts with Mish(cond); one shared activation.
        cond = F.mish(torch.cat([self.step_encoder(t), global_cond], dim=-1))
        return [blk.film(cond) for blk in self.film_blocks()]

    def denoise(self, x: torch.Tensor, films: list[torch.Tensor]) -> torch.Tensor:
        """``x [B, T, Da]`` and ``films()``'s output -> ``[B, T, Da]``."""
        if not torch.jit.is_tracing() and x.shape[1] % self.min_len_multiple:
            raise ValueError(f"horizon {x.shape[1]} must be divisible by {self.min_len_multiple}")
        film = iter(films)
        h = x.transpose(1, 2)
        skips = []
        for r1, r2, down in self.down:
            h = r2(r1(h, next(film)), next(film))
            skips.append(h)
            h = down(h)
        for r in self.mid:
            h = r(h, next(film))
        for r1, r2, up in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = up(r2(r1(h, next(film)), next(film)))
        return self.final(h).transpose(1, 2)


class DenoiseModule(nn.Module):
    """``unet.denoise(x, films)`` with positional tensor inputs ``(x, *films)``: what the
    policy traces and freezes for sampling."""

    def __init__(self, unet: ConditionalUnet1D):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, *films: torch.Tensor) -> torch.Tensor:
        return self.unet.denoise(x, list(films))


class GemmConv1d(nn.Module):
    """Inference-only ``nn.Conv1d`` as one matrix product over the unfolded windows.

    At batch 1 and a horizon of 16, PyTorch's CPU ``conv1d`` takes its slow im2col path
    (oneDNN only engages on larger inputs), which dominated a denoising step; an ``addmm``
    over ``unfold``-ed windows computes the same sums for less (DDIM-10 on one thread: 25 ms
    instead of 34; on two threads about even). Same weights, same result up to float
    rounding; built by ``inference_copy``, never trained.
    """

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        if conv.groups != 1 or conv.dilation[0] != 1 or conv.padding_mode != "zeros" or conv.bias is None:
            raise ValueError(f"GemmConv1d: unsupported {conv}")
        self.k, self.stride, self.pad = conv.kernel_size[0], conv.stride[0], int(conv.padding[0])
        self.c_in, self.c_out = conv.in_channels, conv.out_channels
        # [Cin * k, Cout], row index c * k + j, the order unfold lays the windows out in.
        self.register_buffer("w", conv.weight.detach().reshape(self.c_out, -1).t().contiguous())
        self.register_buffer("b", conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, Cin, T] -> [B, Cout, T']``."""
        b = x.shape[0]
        if self.k == 1 and self.stride == 1:
            cols = x.transpose(1, 2).reshape(-1, self.c_in)
        else:
            win = F.pad(x, (self.pad, self.pad)).unfold(2, self.k, self.stride)  # [B, Cin, T', k]
            cols = win.permute(0, 2, 1, 3).reshape(-1, self.c_in * self.k)
        return torch.addmm(self.b, cols, self.w).reshape(b, -1, self.c_out).transpose(1, 2)


class GemmConvTranspose1d(nn.Module):
    """Inference-only ``nn.ConvTranspose1d``: one matrix product, then ``fold`` adds the
    overlapping kernel taps into place (the transpose of unfold), then the padding is cut."""

    def __init__(self, conv: nn.ConvTranspose1d):
        super().__init__()
        if (conv.groups != 1 or conv.dilation[0] != 1 or conv.output_padding[0] != 0
                or conv.bias is None):
            raise ValueError(f"GemmConvTranspose1d: unsupported {conv}")
        self.k, self.stride, self.pad = conv.kernel_size[0], conv.stride[0], int(conv.padding[0])
        self.c_in, self.c_out = conv.in_channels, conv.out_channels
        # weight [Cin, Cout, k] -> [Cin, Cout * k]
        self.register_buffer("w", conv.weight.detach().reshape(self.c_in, -1).contiguous())
        self.register_buffer("b", conv.bias.detach().clone().reshape(1, -1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, Cin, T] -> [B, Cout, (T - 1) * stride + k - 2 * pad]``."""
        b, _, t = x.shape
        taps = torch.matmul(x.transpose(1, 2), self.w).transpose(1, 2)  # [B, Cout * k, T]
        full = (t - 1) * self.stride + self.k
        y = F.fold(taps, (1, full), (1, self.k), stride=(1, self.stride)).reshape(b, self.c_out, full)
        return y[:, :, self.pad:full - self.pad] + self.b


def inference_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` in eval mode with every 1-D (transposed) convolution
    replaced by its matrix-product form: for tracing and freezing, not for training."""
    import copy

    out = copy.deepcopy(module).eval()

    def swap(m: nn.Module) -> None:
        for name, child in m.named_children():
            if type(child) is nn.Conv1d:
                setattr(m, name, GemmConv1d(child))
            elif type(child) is nn.ConvTranspose1d:
                setattr(m, name, GemmConvTranspose1d(child))
            else:
                swap(child)

    swap(out)
    return out
