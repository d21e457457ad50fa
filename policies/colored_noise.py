"""Temporally correlated exploration for rsl-rl's PPO: ``ColoredGaussianDistribution`` is
rsl-rl's ``GaussianDistribution`` (the same mean, std, log-probability, entropy and KL, so PPO's
update is untouched) whose rollout samples draw their noise from a first-order autoregressive
process per env instead of afresh each step::

    eps_t = rho * eps_{t-1} + sqrt(1 - rho^2) * white_t,    action_t = mean_t + std * eps_t

Each step's noise is still a standard normal, so an action's marginal is the policy's Gaussian;
with ``rho`` near 1 a perturbation persists for about 1 / (1 - rho) steps. A residual whose unit
moves a joint target for one tick only (``policies/resip``) is filtered by the arm and the base's
re-planning: white noise a tick averages away before it changes an episode's outcome, and the
advantages barely see it. Correlated noise is the remedy "Pink Noise Is All You Need"
(Eberhard et al., ICLR 2023) argues for in continuous control. The samples drawn while PPO
recomputes log-probabilities (gradients on) are plain, and unused.

Selected by ``RLConfig.noise_correlation`` > 0 (``policies/rl.py``); 0 keeps rsl-rl's own class.
"""

from __future__ import annotations

import math

import torch
from rsl_rl.modules.distribution import GaussianDistribution


class ColoredGaussianDistribution(GaussianDistribution):
    def __init__(self, output_dim: int, init_std: float = 1.0, correlation: float = 0.0, **kwargs) -> None:
        super().__init__(output_dim, init_std, **kwargs)
        if not 0.0 <= correlation < 1.0:
            raise ValueError(f"ColoredGaussianDistribution.correlation: in [0, 1), got {correlation}")
        self.correlation = float(correlation)
        self._eps: torch.Tensor | None = None  # the process's state, one row per env

    def sample(self) -> torch.Tensor:
        dist = self._distribution
        if torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
            return dist.sample()  # PPO's update: only the log-probabilities count
        white = torch.randn_like(dist.mean)
        if self._eps is None or self._eps.shape != white.shape:
            self._eps = white
        else:
            rho = self.correlation
            self._eps = rho * self._eps + math.sqrt(1.0 - rho * rho) * white
        return dist.mean + dist.stddev * self._eps
