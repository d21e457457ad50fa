"""CARP on the bimodal sim task (issue: multimodality): the shipped ``carp_reach_either``
checkpoint, trained on paired demonstrations (every scene reached once left, once right), run
in PyBullet. With top-k sampling the arm goes both ways from one and the same start; greedy
decoding always goes the same way. The side is where the grasp target heads in the first 15
ticks (0.75 s), whether or not it then reaches the sphere."""

from pathlib import Path

import numpy as np
import pytest

from rosmind.checkpoint import load_checkpoint
from rosmind.sim.robots import make_sim
from rosmind.sim.rollout import run_episode

pytestmark = pytest.mark.sim

CKPT = Path(__file__).resolve().parents[1] / "checkpoints" / "carp_reach_either"
SEEDS = (200000, 200001, 200002)  # unseen scenes (demonstrations used seeds 0-149)


def _sides(policy, seed: int, draws: int, sim) -> list[str]:
    out = []
    for r in range(draws):
        policy.reseed(r)
        ys: list[float] = []
        run_episode(sim, policy, seed, on_tick=lambda t, o, a, ys=ys: ys.append(float(o["ee_pose"][1])))
        out.append("left" if ys[min(15, len(ys) - 1)] > ys[0] else "right")
    return out


@pytest.fixture(scope="module")
def policy_and_sim():
    policy = load_checkpoint(CKPT)
    sim = make_sim("panda", "reach_either")
    sim.connect()
    yield policy, sim
    sim.disconnect()


def test_top_k_goes_both_ways_from_one_start(policy_and_sim):
    policy, sim = policy_and_sim
    policy.set_sampling("top_k", top_k=3)
    sides = {s: _sides(policy, s, 12, sim) for s in SEEDS}
    for s, got in sides.items():
        assert {"left", "right"} <= set(got), f"seed {s}: one mode only: {got}"
    left = np.mean([x == "left" for got in sides.values() for x in got])
    assert 0.3 <= left <= 0.7, f"left in {left:.2f} of rollouts: {sides}"


def test_greedy_collapses_to_one_way(policy_and_sim):
    policy, sim = policy_and_sim
    policy.set_sampling("greedy")
    for s in SEEDS:
        # Reseeded before every rollout, as top-k above: a decoder that drew codes would go
        # both ways here too (each side 30-70 %: all 8 alike by chance < 1 % per seed).
        got = _sides(policy, s, 8, sim)
        assert len(set(got)) == 1, f"seed {s}: greedy went {got}"
