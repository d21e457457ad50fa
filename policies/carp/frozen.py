"""Coarse-to-fine sampling as a few TorchScript graphs (deployment inference).

Eager sampling of one chunk dispatches a few hundred small operators from Python: four
transformer passes, the tokenizer's per-scale update and its decoder. Here every piece
between two sampling decisions is one frozen, traced graph with plain tensors in and out::

    first(cond)                          -> logits_0 (or hidden), mods, K/V of scale 0
    scale_k(codes_{k-1}, f_hat, mods, K, V) -> logits_k (or hidden), f_hat, K/V of scales <= k
    last(codes_{K-1}, f_hat)             -> chunk [B, horizon, Da] (normalized)

so a chunk costs ``len(scales) + 1`` graph calls plus the code choices in between, which stay
eager (top-k draws from the policy's own generator; the dimension-autoregressive head
samples its dimensions one after another). The KV cache travels as explicit tensors. The
tokenizer's convolutions run as matrix products (``inference_copy``).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from rosmind.policies.diffusion.unet import inference_copy

from .transformer import KVCache


class _Graph(nn.Module):
    """Shared plumbing: the transformer and tokenizer copies, and the cache packing."""

    def __init__(self, transformer, tokenizer, action_dim: int, k: int):
        super().__init__()
        self.tf, self.tok = transformer, tokenizer
        self.k, self.da = k, action_dim
        self.n_layers = len(transformer.blocks)
        self.latent_dim = tokenizer.latent_dim

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.tf.dim_autoregressive else self.tf._parallel_logits(h)

    def _flat(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, s, Da] -> [B*Da, s]``."""
        return codes.permute(0, 2, 1).reshape(-1, codes.shape[1])

    def _words(self, inp: torch.Tensor, b: int) -> torch.Tensor:
        """``[B*Da, C, s] -> [B, s, Da*C]``."""
        return inp.reshape(b, self.da, self.latent_dim, -1).permute(0, 3, 1, 2).reshape(b, inp.shape[-1], -1)


class FirstScale(_Graph):
    def forward(self, cond: torch.Tensor):
        c = self.tf.embed_condition(cond)
        mods = self.tf.modulations(c)
        cache = KVCache(self.n_layers)
        h = self.tf.scale_hidden(c, mods, 0, None, cache)
        return (self._head(h), mods, *cache.k, *cache.v)


class NextScale(_Graph):
    def forward(self, codes: torch.Tensor, f_hat: torch.Tensor, mods: torch.Tensor, *kv: torch.Tensor):
        b = codes.shape[0]
        f_hat = self.tok.add_scale(f_hat, self._flat(codes), self.k - 1)
        cache = KVCache(self.n_layers)
        cache.k, cache.v = list(kv[:self.n_layers]), list(kv[self.n_layers:])
        inp = self._words(self.tok.next_input(f_hat, self.k), b)
        h = self.tf.scale_hidden(None, mods, self.k, inp, cache)
        return (self._head(h), f_hat, *cache.k, *cache.v)


class LastDecode(_Graph):
    def forward(self, codes: torch.Tensor, f_hat: torch.Tensor) -> torch.Tensor:
        f_hat = self.tok.add_scale(f_hat, self._flat(codes), self.k - 1)
        return self.tok.decode(f_hat, self.da)


class FrozenSampler:
    """``sample(cond [B, Dc], pick) -> normalized chunk [B, horizon, Da]`` through traced
    graphs built for batch size ``B`` on first use (``pick`` as in ``ScaleTransformer.step``)."""

    def __init__(self, transformer, tokenizer, action_dim: int):
        import copy

        self.tf = copy.deepcopy(transformer).eval()
        self.tok = inference_copy(tokenizer)
        self.da = action_dim
        self.graphs: dict[int, list] = {}

    def _build(self, b: int) -> list:
        tok, tf, da = self.tok, self.tf, self.da
        scales = tok.scales
        trace = lambda m, args: torch.jit.freeze(torch.jit.trace(m.eval(), args, check_trace=False))  # noqa: E731
        cond = torch.zeros(b, tf.cond[0].in_features)
        first = FirstScale(tf, tok, da, 0)
        graphs = [trace(first, (cond,))]
        out = first(cond)
        f_hat = torch.zeros(b * da, tok.latent_dim, tok.length)
        mods, kv = out[1], out[2:]
        for k in range(1, len(scales)):
            codes = torch.zeros(b, scales[k - 1], da, dtype=torch.long)
            step = NextScale(tf, tok, da, k)
            graphs.append(trace(step, (codes, f_hat, mods, *kv)))
            out = step(codes, f_hat, mods, *kv)
            f_hat, kv = out[1], out[2:]
        codes = torch.zeros(b, scales[-1], da, dtype=torch.long)
        graphs.append(trace(LastDecode(tf, tok, da, len(scales)), (codes, f_hat)))
        return graphs

    def sample(self, cond: torch.Tensor, pick) -> torch.Tensor:
        b = cond.shape[0]
        if b not in self.graphs:
            # torch.jit is deprecated (not removed) in torch 2.13; tests/test_carp.py checks the
            # graphs against eager sampling. The tracer warns about shape checks it folds into
            # constants: the graphs are per batch size, so those are constants.
            with warnings.catch_warnings(), torch.no_grad(), torch.inference_mode(False):
                warnings.simplefilter("ignore")
                self.graphs[b] = self._build(b)
        graphs, tf = self.graphs[b], self.tf
        head, mods, *kv = graphs[0](cond)
        codes = self._choose(tf, head, pick)
        f_hat = cond.new_zeros(b * self.da, self.tok.latent_dim, self.tok.length)
        for g in graphs[1:-1]:
            head, f_hat, *kv = g(codes, f_hat, mods, *kv)
            codes = self._choose(tf, head, pick)
        return graphs[-1](codes, f_hat)

    @staticmethod
    def _choose(tf, head: torch.Tensor, pick) -> torch.Tensor:
        if tf.dim_autoregressive:
            return tf.dim_head.sample(head, pick)[1]
        return pick(head)
