"""CARP models multimodal action distributions (Gong et al. 2025, sec. 4): trained on demos
that go either way from the same observation (50/50), top-k sampling reproduces both modes
while greedy decoding collapses onto one per observation.

A tiny CARP is trained here (~300 steps, both stages) on a synthetic bimodal dataset: from a
random 2-D start ``q`` the 1-D action chunk ramps up or down from ``q[0]``, chosen by a coin
flip that the observation does not reveal. (One action dimension: CARP samples the codes of
all dimensions at one scale in parallel, so the test isolates the coarse-to-fine mode choice
from cross-dimension coupling.) The sim counterpart is ``reach_either`` (sim/tasks_bimodal.py).
"""

import numpy as np
import pytest
import torch

from rosmind.policies.carp import CarpPolicy
from tests.test_carp import small_config

pytestmark = pytest.mark.unit

H = 16


def bimodal(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    q = rng.uniform(-0.3, 0.3, (n, 1, 2))
    sign = np.where(rng.integers(0, 2, n) == 0, 1.0, -1.0)[:, None, None]
    a = q[:, :, :1] + sign * 0.6 * np.linspace(0, 1, H)[None, :, None]
    return torch.tensor(q, dtype=torch.float32), torch.tensor(a, dtype=torch.float32)


@pytest.fixture(scope="module")
def trained() -> CarpPolicy:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    policy = CarpPolicy(small_config(tokenizer_steps=100, n_action_steps=H, action_dim=1, top_k=8))
    q, a = bimodal(4096, rng)
    policy.fit_normalizer({"joint_pos": {"min": q.amin((0, 1)).numpy(), "max": q.amax((0, 1)).numpy()},
                           "action": {"min": a.amin((0, 1)).numpy(), "max": a.amax((0, 1)).numpy()}})
    policy.train()
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / 300)  # decay: calibrated coin
    for _ in range(300):
        idx = torch.randint(0, len(q), (256,))
        loss, _ = policy.compute_loss({"joint_pos": q[idx], "action": a[idx]})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return policy.eval()


def _modes(policy: CarpPolicy, n_obs: int = 8, repeats: int = 50) -> np.ndarray:
    """Fraction of chunks going ``+d`` per observation (``[n_obs]``)."""
    q, _ = bimodal(n_obs, np.random.default_rng(123))
    obs = {"joint_pos": np.repeat(q.numpy()[:, None], repeats, axis=1).reshape(-1, 1, 2)}
    policy.reseed()
    act = policy.infer_batch(obs)["action"]
    plus = (act[:, -1, 0] - act[:, 0, 0]) > 0
    return plus.reshape(n_obs, repeats).mean(1)


def test_top_k_reproduces_both_modes(trained):
    trained.set_sampling("top_k", top_k=8)
    frac = _modes(trained)
    assert 0.3 <= frac.mean() <= 0.7, frac
    assert np.all((frac > 0) & (frac < 1)), f"some observation saw one mode only: {frac}"


def test_greedy_collapses_to_one_mode(trained):
    trained.set_sampling("greedy")
    frac = _modes(trained)
    assert np.all((frac == 0) | (frac == 1)), frac
