"""Coarse-to-fine sampling of one chunk, eager or as one frozen TorchScript graph.

``ChunkSampler(cond [B, Dc], u [B, T, Da]) -> normalized chunk [B, horizon, Da]`` runs the
scales in order: one transformer pass per scale over that scale's tokens with the KV cache of
the earlier ones, a code per (position, action dimension), the tokenizer's ``f_hat`` updated,
and after the last scale the decoder. ``T = sum(scales)``.

With ``sampling="expected"`` a scale adds no chosen code: it adds the probability-weighted mean
of all code embeddings (softmax of its logits at ``temperature``), so the chunk moves
continuously with the observation instead of jumping where the most likely code changes; it is
deterministic and, like greedy, keeps one mode. (The dimension-autoregressive head still
conditions each dimension on the most likely codes of the lower ones.)

Randomness comes in as ``u``, uniform draws from the policy's own generator, one per code:
top-k picks the code whose cumulative top-k probability first exceeds ``u`` (inverse-CDF
sampling, the same distribution as ``torch.multinomial`` over the top-k softmax); greedy
ignores ``u``. With the draws an input, the whole chunk (four passes, the dimension-
autoregressive head's per-dimension steps, the tokenizer) is a pure tensor function, so
``FrozenSampler`` traces it once per batch size into a single graph: at these sizes the
eager version costs Python dispatch of a few hundred small operators, not arithmetic.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from rosmind.policies.diffusion.unet import inference_copy

from .transformer import KVCache


def choose_codes(logits: torch.Tensor, u: torch.Tensor, greedy: bool, top_k: int, temperature: float) -> torch.Tensor:
    """``logits [..., V]``, ``u [...]`` uniform in [0, 1) -> codes ``[...]`` (long)."""
    if greedy or top_k == 1:
        return logits.argmax(-1)
    vals, idx = torch.topk(logits / temperature, top_k, dim=-1)
    cdf = F.softmax(vals, dim=-1).cumsum(-1)
    j = (u.unsqueeze(-1) >= cdf).sum(-1, keepdim=True).clamp(max=top_k - 1)
    return idx.gather(-1, j).squeeze(-1)


def word_inputs(inp: torch.Tensor, b: int, action_dim: int) -> torch.Tensor:
    """Tokenizer-side transformer input ``[B*Da, C, s] -> [B, s, Da*C]`` (one token per latent
    index, carrying every action dimension's ``C`` channels)."""
    return inp.reshape(b, action_dim, inp.shape[1], -1).permute(0, 3, 1, 2).reshape(b, inp.shape[-1], -1)


class ChunkSampler(nn.Module):
    """One chunk, coarse to fine (see the module docstring). ``forward(cond, u)``; ``run(cond,
    u, record=True)`` also returns the per-scale logits ``[B, s_k, Da, V]`` and codes
    ``[B, s_k, Da]`` (eager only)."""

    def __init__(self, transformer, tokenizer, action_dim: int, sampling: str, top_k: int, temperature: float):
        super().__init__()
        self.tf, self.tok = transformer, tokenizer
        self.da, self.top_k, self.temperature = action_dim, top_k, temperature
        self.greedy, self.expected = sampling != "top_k", sampling == "expected"
        self.offsets = [sum(tokenizer.scales[:k]) for k in range(len(tokenizer.scales) + 1)]

    def forward(self, cond: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.run(cond, u)[0]

    def run(self, cond: torch.Tensor, u: torch.Tensor, record: bool = False):
        tf, tok, da = self.tf, self.tok, self.da
        b = cond.shape[0]
        c = tf.embed_condition(cond)
        mods = tf.modulations(c)
        cache = KVCache(len(tf.blocks))
        f_hat = c.new_zeros(b * da, tok.latent_dim, tok.length)
        all_logits, all_codes = [], []
        for k in range(len(tok.scales)):
            inp = None if k == 0 else word_inputs(tok.next_input(f_hat, k), b, da)
            uk = u[:, self.offsets[k]:self.offsets[k + 1]]  # [B, s_k, Da]

            def pick(logits, j, uk=uk):
                return choose_codes(logits, uk if j is None else uk[..., j], self.greedy, self.top_k,
                                    self.temperature)

            logits, codes = tf.pick_codes(tf.scale_hidden(c, mods, k, inp, cache), pick)  # codes [B, s_k, Da]
            if self.expected:
                z = F.softmax(logits / self.temperature, dim=-1) @ tok.codebook.weight  # [B, s_k, Da, C]
                f_hat = tok.add_latent(f_hat, z.permute(0, 2, 3, 1).reshape(b * da, tok.latent_dim, -1), k)
            else:
                f_hat = tok.add_scale(f_hat, codes.permute(0, 2, 1).reshape(b * da, -1), k)
            if record:
                all_logits.append(logits)
                all_codes.append(codes)
        return tok.decode(f_hat, da), all_logits, all_codes


class FrozenSampler:
    """``ChunkSampler`` over frozen copies of the weights, traced and frozen per batch size on
    first use. Built for one sampling setting; the policy drops it when weights or sampling
    change."""

    def __init__(self, transformer, tokenizer, action_dim: int, sampling: str, top_k: int, temperature: float):
        # Copied outside inference mode (policies are called inside it): tracing needs normal tensors.
        with torch.no_grad(), torch.inference_mode(False):
            self.net = ChunkSampler(copy.deepcopy(transformer), inference_copy(tokenizer), action_dim,
                                    sampling, top_k, temperature).eval()
        self.graphs: dict[int, torch.jit.ScriptModule] = {}

    def __call__(self, cond: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        b = cond.shape[0]
        if b not in self.graphs:
            # torch.jit is deprecated (not removed) in torch 2.13; tests/test_carp.py checks the
            # graph against eager sampling. The tracer warns about the shape checks it folds into
            # constants: a graph is built per batch size, so they are constants.
            with warnings.catch_warnings(), torch.no_grad(), torch.inference_mode(False):
                warnings.simplefilter("ignore")
                args = (torch.zeros_like(cond), torch.zeros_like(u))
                self.graphs[b] = torch.jit.freeze(torch.jit.trace(self.net, args, check_trace=False))
        return self.graphs[b](cond, u)
