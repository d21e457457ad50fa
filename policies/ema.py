"""Exponential moving average of a model's weights (diffusion_policy's ``EMAModel`` schedule).

The decay warms up with the optimisation step ``n`` (counted after ``update_after_step``)::

    decay(n) = clamp(1 - (1 + n / inv_gamma) ** -power, min_decay, max_decay),  decay(0) = 0

so early averages follow the model closely and late ones average over ~``1/(1-decay)``
steps. Buffers (normalizer stats) are copied, not averaged. The averaged weights live in a
second instance of the same model (``averaged``), which is what inference and export use.
"""

from __future__ import annotations

import torch
from torch import nn


class EMAModel:
    def __init__(self, model: nn.Module, averaged: nn.Module, power: float = 0.75, inv_gamma: float = 1.0,
                 min_decay: float = 0.0, max_decay: float = 0.9999, update_after_step: int = 0):
        self.averaged = averaged
        self.averaged.load_state_dict(model.state_dict())
        self.averaged.eval().requires_grad_(False)
        self.power, self.inv_gamma = power, inv_gamma
        self.min_decay, self.max_decay = min_decay, max_decay
        self.update_after_step = update_after_step
        self.optimization_step = 0

    def decay(self, optimization_step: int) -> float:
        n = max(0, optimization_step - self.update_after_step - 1)
        if n <= 0:
            return 0.0
        value = 1 - (1 + n / self.inv_gamma) ** -self.power
        return max(self.min_decay, min(value, self.max_decay))

    @torch.no_grad()
    def step(self, model: nn.Module) -> None:
        d = self.decay(self.optimization_step)
        for p_avg, p in zip(self.averaged.parameters(), model.parameters(), strict=True):
            if p.requires_grad:
                p_avg.mul_(d).add_(p.detach(), alpha=1 - d)
            else:
                p_avg.copy_(p.detach())
        for b_avg, b in zip(self.averaged.buffers(), model.buffers(), strict=True):
            b_avg.copy_(b)
        self.optimization_step += 1

    def state(self) -> dict:
        """JSON-ready counters (the averaged weights are saved as the checkpoint's weights)."""
        return {"optimization_step": self.optimization_step}

    def load_state(self, state: dict) -> None:
        self.optimization_step = int(state["optimization_step"])
