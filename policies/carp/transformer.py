"""Coarse-to-fine autoregressive transformer over the tokenizer's scales (CARP stage 2).

Sequence layout (VAR's next-scale prediction): ``T = sum(scales)`` positions, scale ``k``
occupying ``scales[k]`` consecutive positions. Position ``(k, i)`` carries all ``Da``
codes of the action dimensions at latent index ``i`` of scale ``k``; the head predicts
``[Da, V]`` logits there. Inputs::

    scale 0:   start token = the observation embedding (+ position)
    scale k>0: Linear(f_hat(<k) resized to s_k, flattened over Da x C) + position + level

Attention is block-causal over scales: a token of scale ``k`` sees every token of scales
``<= k`` (including the rest of its own scale). Every block is conditioned on the
observation embedding by adaptive LayerNorm (shift, scale, gate from the condition).

Inference runs one forward pass per scale; keys and values of earlier scales come from a
KV cache, so a pass costs only the new scale's tokens.

Heads: ``parallel`` predicts the ``Da`` codes of a position independently (one linear
layer). ``dim_autoregressive`` (``DimHead``) predicts them in dimension order, each given
the codes already chosen for the lower dimensions at that position (a small residual MLP
after the transformer, as RQ-Transformer's depth stage): still one transformer pass per
scale, but the joints of one chunk are sampled coherently, which matters when demos differ
in a correlated way across joints (null-space redundancy, two targets).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KVCache:
    """Per-layer keys/values ``[B, heads, T_so_far, head_dim]`` of the scales already run."""

    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None, layer: int) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class AdaLNBlock(nn.Module):
    """Pre-norm transformer block whose LayerNorms are modulated by the condition ``c``."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False)
        self.attn = Attention(d, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * d, d))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x, mod, mask, cache, layer):
        """``mod [B, 6*d]``: this block's slice of ``ScaleTransformer.modulations``."""
        s1, g1, a1, s2, g2, a2 = mod[:, None].chunk(6, dim=-1)
        x = x + (1 + a1) * self.attn(self.norm1(x) * (1 + g1) + s1, mask, cache, layer)
        return x + (1 + a2) * self.mlp(self.norm2(x) * (1 + g2) + s2)


class DimHead(nn.Module):
    """Codes of the ``Da`` dimensions at each position, dimension ``j`` given codes ``< j``."""

    def __init__(self, d: int, action_dim: int, codebook_size: int):
        super().__init__()
        self.code_emb = nn.Parameter(torch.randn(action_dim, codebook_size, d) * 0.02)
        self.mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.weight = nn.Parameter(torch.randn(action_dim, d, codebook_size) * d ** -0.5)
        self.bias = nn.Parameter(torch.zeros(action_dim, codebook_size))

    def teacher(self, h: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """``h [B, T, d]``, ``codes [B, T, Da]`` -> logits ``[B, T, Da, V]`` (teacher forcing)."""
        da = codes.shape[-1]
        e = self.code_emb[torch.arange(da, device=codes.device), codes]  # [B, T, Da, d]
        state = h[:, :, None] + e.cumsum(dim=2) - e  # exclusive prefix: codes of dims < j
        z = state + self.mlp(state)
        return torch.einsum("btjd,jdv->btjv", z, self.weight) + self.bias

    def sample(self, h: torch.Tensor, pick) -> tuple[torch.Tensor, torch.Tensor]:
        """``h [B, t, d]`` -> (logits ``[B, t, Da, V]``, codes ``[B, t, Da]``); dimension ``j``'s
        codes are ``pick(logits_j [B, t, V], j)``."""
        state, logits, codes = h, [], []
        for j in range(self.weight.shape[0]):
            z = state + self.mlp(state)
            lj = z @ self.weight[j] + self.bias[j]
            cj = pick(lj, j)
            state = state + self.code_emb[j][cj]
            logits.append(lj)
            codes.append(cj)
        return torch.stack(logits, dim=2), torch.stack(codes, dim=2)


class ScaleTransformer(nn.Module):
    """``forward(cond [B, Dc], inputs: list of [B, s_k, Da*C] for k >= 1, codes [B, T, Da])
    -> logits [B, T, Da, V]`` (``codes`` are only read by the dimension-autoregressive head)."""

    def __init__(self, cond_dim: int, scales: tuple[int, ...], action_dim: int, latent_dim: int,
                 codebook_size: int, d_model: int, n_layers: int, n_heads: int, dropout: float,
                 dim_autoregressive: bool = False):
        super().__init__()
        self.scales = tuple(scales)
        self.action_dim, self.codebook_size = action_dim, codebook_size
        self.cond = nn.Sequential(nn.Linear(cond_dim, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        self.word = nn.Linear(action_dim * latent_dim, d_model)
        total = sum(self.scales)
        self.pos = nn.Parameter(torch.randn(1, total, d_model) * 0.02)
        self.level = nn.Embedding(len(self.scales), d_model)
        nn.init.normal_(self.level.weight, std=0.02)
        self.blocks = nn.ModuleList(AdaLNBlock(d_model, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model, elementwise_affine=False)
        self.head_ada = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 2 * d_model))
        self.dim_autoregressive = dim_autoregressive
        if dim_autoregressive:
            self.dim_head = DimHead(d_model, action_dim, codebook_size)
        else:
            self.head = nn.Linear(d_model, action_dim * codebook_size)
        levels = torch.cat([torch.full((s,), k) for k, s in enumerate(self.scales)])
        self.register_buffer("levels", levels, persistent=False)
        # True where attention is allowed: query level >= key level (block-causal over scales).
        self.register_buffer("mask", levels[:, None] >= levels[None, :], persistent=False)
        self.offsets = [sum(self.scales[:k]) for k in range(len(self.scales) + 1)]

    def embed_condition(self, cond: torch.Tensor) -> torch.Tensor:
        return self.cond(cond)

    def modulations(self, c: torch.Tensor) -> torch.Tensor:
        """Every block's AdaLN shift/scale/gate and the head's, from the condition embedding
        ``c [B, d]``, packed ``[B, (6 * n_layers + 2) * d]``. They depend on the observation
        only, so sampling computes them once per chunk, not once per scale."""
        return torch.cat([blk.ada(c) for blk in self.blocks] + [self.head_ada(c)], dim=-1)

    def _tokens(self, c: torch.Tensor, k: int, inp: torch.Tensor | None) -> torch.Tensor:
        """Input embeddings of scale ``k`` (``inp [B, s_k, Da*C]`` for ``k >= 1``)."""
        lo, hi = self.offsets[k], self.offsets[k + 1]
        x = c[:, None] if k == 0 else self.word(inp)
        return x + self.pos[:, lo:hi] + self.level(self.levels[lo:hi])[None]

    def _hidden(self, x: torch.Tensor, mods: torch.Tensor, mask, cache: KVCache | None) -> torch.Tensor:
        d = x.shape[-1]
        for i, blk in enumerate(self.blocks):
            x = blk(x, mods[:, 6 * d * i:6 * d * (i + 1)], mask, cache, i)
        shift, scale = mods[:, None, 6 * d * len(self.blocks):].chunk(2, dim=-1)
        return self.norm(x) * (1 + scale) + shift

    def _parallel_logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h).reshape(h.shape[0], h.shape[1], self.action_dim, self.codebook_size)

    def forward(self, cond: torch.Tensor, inputs: list[torch.Tensor], codes: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced pass over all scales at once (training, and the cache's reference)."""
        c = self.embed_condition(cond)
        x = torch.cat([self._tokens(c, k, inputs[k - 1] if k else None) for k in range(len(self.scales))], dim=1)
        h = self._hidden(x, self.modulations(c), self.mask, None)
        if not self.dim_autoregressive:
            return self._parallel_logits(h)
        if codes is None:
            raise ValueError("the dimension-autoregressive head needs the target codes [B, T, Da]")
        return self.dim_head.teacher(h, codes)

    def scale_hidden(self, c: torch.Tensor, mods: torch.Tensor, k: int, inp: torch.Tensor | None,
                     cache: KVCache) -> torch.Tensor:
        """Hidden states ``[B, s_k, d]`` of scale ``k`` given the KV cache of scales ``< k``
        (``c = embed_condition(cond)``, ``mods = modulations(c)``); extends the cache."""
        return self._hidden(self._tokens(c, k, inp), mods, None, cache)

    def pick_codes(self, h: torch.Tensor, pick) -> tuple[torch.Tensor, torch.Tensor]:
        """``h [B, s, d]`` -> (logits ``[B, s, Da, V]``, codes ``[B, s, Da]``), codes chosen by
        ``pick(logits, j)``: ``j`` the action dimension for the dimension-autoregressive head
        (logits ``[B, s, V]``), ``None`` for all at once (logits ``[B, s, Da, V]``)."""
        if self.dim_autoregressive:
            return self.dim_head.sample(h, pick)
        logits = self._parallel_logits(h)
        return logits, pick(logits, None)
