"""DDPM/DDIM schedulers (written in policies/diffusion/schedulers.py) against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from rosmind.policies.diffusion.schedulers import DDIMScheduler, DDPMScheduler, make_betas

pytestmark = pytest.mark.unit


def test_squaredcos_cap_v2_alphas_cumprod_follow_the_cosine_formula():
    T, s = 100, 0.008
    sched = DDPMScheduler(T, "squaredcos_cap_v2")

    def f(t):  # Nichol & Dhariwal eq. 17
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    betas = make_betas(T)
    assert betas.shape == (T,) and (betas > 0).all() and (betas <= 0.999).all()
    assert betas[-1] == pytest.approx(0.999)  # the cap: abar(1) = 0 would make beta 1
    for i in range(T - 1):  # all but the capped last step
        assert float(sched.alphas_cumprod[i]) == pytest.approx(f(i + 1) / f(0), rel=1e-9)
    assert torch.all(sched.alphas_cumprod[1:] < sched.alphas_cumprod[:-1])


def test_add_noise_has_the_q_xt_given_x0_mean_and_std():
    sched = DDPMScheduler(100)
    x0 = torch.randn(5, 16, 8, dtype=torch.float64)
    eps = torch.randn(5, 16, 8, dtype=torch.float64)
    t = torch.tensor([0, 10, 50, 90, 99])
    ab = sched.alphas_cumprod[t].reshape(-1, 1, 1)
    torch.testing.assert_close(sched.add_noise(x0, torch.zeros_like(eps), t), ab.sqrt() * x0)
    torch.testing.assert_close(sched.add_noise(torch.zeros_like(x0), eps, t), (1 - ab).sqrt() * eps)
    # empirical moments at one t
    x0 = torch.full((200_000,), 0.7, dtype=torch.float64)
    xt = sched.add_noise(x0, torch.randn_like(x0), torch.full((200_000,), 30))
    a = float(sched.alphas_cumprod[30])
    assert float(xt.mean()) == pytest.approx(math.sqrt(a) * 0.7, abs=5e-3)
    assert float(xt.var()) == pytest.approx(1 - a, rel=2e-2)


@pytest.mark.parametrize("steps", [100, 10, 1])
def test_ddim_eta0_reconstructs_x0_from_a_perfect_eps_predictor(steps):
    sched = DDIMScheduler(100)
    sched.set_timesteps(steps)
    x0 = torch.rand(3, 16, 8, dtype=torch.float64) * 1.8 - 0.9
    eps = torch.randn(3, 16, 8, dtype=torch.float64)
    t0 = int(sched.timesteps[0])
    x = sched.add_noise(x0, eps, torch.full((3,), t0))
    for t in sched.timesteps:
        x = sched.step(eps, int(t), x)  # the true noise at every step
    torch.testing.assert_close(x, x0, rtol=0, atol=1e-10)


def test_timesteps_are_evenly_spaced_and_descending():
    sched = DDIMScheduler(100)
    sched.set_timesteps(10)
    assert sched.timesteps.tolist() == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    with pytest.raises(ValueError):
        sched.set_timesteps(0)


def _hand_scheduler() -> DDPMScheduler:
    sched = DDPMScheduler(4, "linear", clip_sample=False)
    sched.betas = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    sched.alphas_cumprod = torch.tensor([0.9, 0.72, 0.504, 0.3024], dtype=torch.float64)
    sched.set_timesteps(4)
    return sched


def test_ddpm_posterior_mean_and_variance_on_hand_computed_values():
    sched = _hand_scheduler()
    # t = 2: abar_t = 0.504, abar_{t-1} = 0.72, beta_t = 0.3
    #   c0  = sqrt(0.72) * 0.3 / 0.496           = 0.51322...
    #   ct  = sqrt(0.7) * 0.28 / 0.496            = 0.47230...
    #   var = 0.3 * 0.28 / 0.496                  = 0.16935...
    x0, xt = torch.tensor([1.0], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)
    mean, var = sched.posterior(x0, 2, xt)
    assert float(mean) == pytest.approx(0.8485281374 * 0.3 / 0.496, rel=1e-9)
    assert var == pytest.approx(0.3 * 0.28 / 0.496, rel=1e-12)
    mean, _ = sched.posterior(torch.zeros(1, dtype=torch.float64), 2, torch.ones(1, dtype=torch.float64))
    assert float(mean) == pytest.approx(0.8366600265 * 0.28 / 0.496, rel=1e-9)
    # t = 0: abar_prev = 1, so the posterior collapses onto x0 with zero variance
    mean, var = sched.posterior(x0, 0, xt)
    assert float(mean) == pytest.approx(1.0) and var == pytest.approx(1e-20)


def test_ddpm_step_uses_eps_to_recover_x0_and_adds_posterior_noise():
    sched = _hand_scheduler()
    x0 = torch.tensor([0.3], dtype=torch.float64)
    eps = torch.tensor([0.5], dtype=torch.float64)
    xt = sched.add_noise(x0, eps, torch.tensor([2]))
    torch.testing.assert_close(sched.pred_x0(eps, 2, xt), x0)
    mean, var = sched.posterior(x0, 2, xt)
    g = torch.Generator().manual_seed(3)
    z = torch.randn((1,), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(sched.step(eps, 2, xt, generator=g), mean + math.sqrt(var) * z)
    torch.testing.assert_close(sched.step(eps, 0, sched.add_noise(x0, eps, torch.tensor([0]))), x0)


def test_sample_prediction_and_clipping():
    sched = DDPMScheduler(100, prediction_type="sample", clip_sample=True)
    out = torch.tensor([2.0, -0.5])
    torch.testing.assert_close(sched.pred_x0(out, 50, torch.zeros(2)), torch.tensor([1.0, -0.5]))
    with pytest.raises(ValueError, match="prediction_type"):
        DDPMScheduler(100, prediction_type="v")
    with pytest.raises(ValueError, match="beta_schedule"):
        make_betas(10, "sigmoid")
