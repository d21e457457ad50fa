import numpy as np
import pytest

from rosmind.errors import SpecError
from rosmind.policies.executors import ChunkExecutor, ChunkExecutorConfig

pytestmark = pytest.mark.unit


class CountingPolicy:
    """Chunk row i for obs tick k is [k + i, k]: the action names its tick and its plan."""

    class config:
        n_action_steps = 4

    def __init__(self, horizon=8):
        self.horizon = horizon
        self.calls = []
        self.resets = 0

    def reset(self):
        self.resets += 1

    def infer(self, obs):
        k = int(obs["tick"][-1])
        self.calls.append(k)
        return {"action": np.array([[k + i, k] for i in range(self.horizon)], dtype=float)}


def _obs(t):
    return {"tick": np.array([t])}


def test_receding_horizon_replans_every_n_action_steps():
    pol = CountingPolicy()
    ex = ChunkExecutor(pol)
    acts = [ex.step(_obs(t), t) for t in range(12)]
    assert pol.calls == [0, 4, 8]
    for t, a in enumerate(acts):
        assert a[0] == t  # every tick gets its own row
        assert a[1] == (t // 4) * 4  # from the plan of the last replanning tick


def test_latency_compensation_drops_passed_rows():
    pol = CountingPolicy()
    ex = ChunkExecutor(pol)
    assert ex.wants_inference(0)
    ex.request()
    assert not ex.wants_inference(1)  # in flight
    assert ex.action(2) is None  # nothing planned yet: the caller holds
    ex.add_chunk(pol.infer(_obs(0))["action"], obs_tick=0, now_tick=3)
    assert ex.dropped_rows == 3
    a = ex.action(3)
    assert a[0] == 3  # row 3 of the chunk, rows 0..2 passed while inferring
    np.testing.assert_array_equal(ex.planned(3)[:, 0], np.arange(3, 8))


def test_prefetch_asks_early():
    ex = ChunkExecutor(CountingPolicy(), ChunkExecutorConfig(prefetch=2))
    ex.step(_obs(0), 0)
    assert not ex.wants_inference(1)
    assert ex.wants_inference(2)


def test_temporal_ensemble_weights_oldest_most():
    m = 0.5
    pol = CountingPolicy()
    ex = ChunkExecutor(pol, ChunkExecutorConfig(temporal_ensemble=m))
    ex.step(_obs(0), 0)
    a1 = ex.step(_obs(1), 1)
    assert pol.calls == [0, 1]
    w = np.exp(-m * np.arange(2))
    # Tick 1 is covered by plan 0 (value k=0) and plan 1 (k=1).
    assert a1[1] == pytest.approx((w[0] * 0 + w[1] * 1) / w.sum())
    assert a1[0] == 1


def test_reset_clears_plan_and_resets_policy():
    pol = CountingPolicy()
    ex = ChunkExecutor(pol)
    ex.step(_obs(0), 0)
    ex.reset()
    ex.reset()
    assert pol.resets == 2 and ex.action(1) is None and ex.wants_inference(1)


def test_non_finite_chunk_is_refused():
    ex = ChunkExecutor(CountingPolicy())
    ex.request()
    with pytest.raises(ValueError, match="non-finite"):
        ex.add_chunk(np.array([[np.nan, 0.0]]), 0)
    assert ex.wants_inference(0)  # not stuck "in flight"


def test_config_validation():
    with pytest.raises(SpecError, match="n_action_steps"):
        ChunkExecutorConfig(n_action_steps=0)
