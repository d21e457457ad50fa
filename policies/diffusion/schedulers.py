"""Noise schedulers for Diffusion Policy, written here: DDPM (training noise + ancestral
sampling) and DDIM (deterministic, eta = 0).

Notation (Ho et al. 2020): ``beta_t`` per-step variance, ``alpha_t = 1 - beta_t``,
``abar_t = prod_{s<=t} alpha_s``. Timesteps are 0-based, ``t in [0, T)``.

* forward process  ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)``  -> ``add_noise``
* DDPM posterior   ``q(x_{t'} | x_t, x_0)`` with ``t' < t`` the previous sampled timestep,
  ``beta = 1 - abar_t / abar_{t'}``::

      mean = sqrt(abar_t') beta / (1 - abar_t) * x_0 + sqrt(1 - beta) (1 - abar_t') / (1 - abar_t) * x_t
      var  = beta (1 - abar_t') / (1 - abar_t)          ("fixed_small", eq. 7)

* DDIM (Song et al. 2021, eq. 12 with sigma = 0)::

      x_{t'} = sqrt(abar_t') x0_hat + sqrt(1 - abar_t') eps_hat

All coefficients are computed in float64 and cast to the sample's dtype.
"""

from __future__ import annotations

import math

import numpy as np
import torch

BETA_SCHEDULES = ("squaredcos_cap_v2", "linear")
PREDICTION_TYPES = ("epsilon", "sample")


def cosine_alpha_bar(t: float, s: float = 0.008) -> float:
    """Nichol & Dhariwal 2021, eq. 17 without the normalisation: ``cos((t + s)/(1 + s) * pi/2)^2``."""
    return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2


def make_betas(num_train_timesteps: int, schedule: str = "squaredcos_cap_v2",
               beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """``[T]`` float64 betas. ``squaredcos_cap_v2``: ``beta_i = min(1 - abar(i+1/T)/abar(i/T), 0.999)``."""
    n = num_train_timesteps
    if schedule == "squaredcos_cap_v2":
        return np.array([min(1 - cosine_alpha_bar((i + 1) / n) / cosine_alpha_bar(i / n), 0.999)
                         for i in range(n)], dtype=np.float64)
    if schedule == "linear":
        return np.linspace(beta_start, beta_end, n, dtype=np.float64)
    raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {schedule!r}")


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


class DDPMScheduler:
    """Training noise and ancestral sampling. ``set_timesteps(k)`` samples with ``k`` evenly
    spaced steps (``k == T`` is the original DDPM)."""

    def __init__(self, num_train_timesteps: int = 100, beta_schedule: str = "squaredcos_cap_v2",
                 prediction_type: str = "epsilon", clip_sample: bool = True):
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        self.num_train_timesteps = num_train_timesteps
        self.prediction_type = prediction_type
        self.clip_sample = clip_sample
        self.betas = torch.from_numpy(make_betas(num_train_timesteps, beta_schedule))
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        self.set_timesteps(num_train_timesteps)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Descending timesteps ``[(k-1)*r, ..., r, 0]`` with ``r = T // k``."""
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, {self.num_train_timesteps}], "
                             f"got {num_inference_steps}")
        self.step_ratio = self.num_train_timesteps // num_inference_steps
        self.timesteps = torch.arange(num_inference_steps - 1, -1, -1, dtype=torch.long) * self.step_ratio

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Sample ``q(x_t | x_0)``; ``t`` is ``[B]`` long."""
        ab = self.alphas_cumprod[t.cpu()].to(x0.device)
        return _bcast(ab.sqrt(), x0) * x0 + _bcast((1 - ab).sqrt(), x0) * noise

    def _abar_prev(self, t: int) -> float:
        prev = t - self.step_ratio
        return float(self.alphas_cumprod[prev]) if prev >= 0 else 1.0

    def pred_x0(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor) -> torch.Tensor:
        ab = float(self.alphas_cumprod[t])
        if self.prediction_type == "epsilon":
            x0 = (x_t - math.sqrt(1 - ab) * model_output) / math.sqrt(ab)
        else:
            x0 = model_output
        return x0.clamp(-1, 1) if self.clip_sample else x0

    def posterior(self, x0: torch.Tensor, t: int, x_t: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Mean and variance of ``q(x_{t'} | x_t, x_0)`` for the previous sampled step ``t'``."""
        ab, ab_prev = float(self.alphas_cumprod[t]), self._abar_prev(t)
        beta = 1 - ab / ab_prev
        c0 = math.sqrt(ab_prev) * beta / (1 - ab)
        ct = math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
        var = max(beta * (1 - ab_prev) / (1 - ab), 1e-20)
        return c0 * x0 + ct * x_t, var

    def step(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """One ancestral step ``x_t -> x_{t'}``; no noise is added at ``t == 0``."""
        t = int(t)
        mean, var = self.posterior(self.pred_x0(model_output, t, x_t), t, x_t)
        if t == 0:
            return mean
        noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
        return mean + math.sqrt(var) * noise


class DDIMScheduler(DDPMScheduler):
    """Deterministic DDIM sampling (eta = 0) with ``num_inference_steps`` steps over the same
    training schedule; ``abar`` before step 0 is 1 (diffusers' ``set_alpha_to_one``)."""

    def step(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        t = int(t)
        ab, ab_prev = float(self.alphas_cumprod[t]), self._abar_prev(t)
        x0 = self.pred_x0(model_output, t, x_t)
        if self.prediction_type == "epsilon":
            eps = model_output
        else:
            eps = (x_t - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        return math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps


SCHEDULERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler}
