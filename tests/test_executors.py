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


class RelativePolicy:
    """A relative-action Panda policy: every chunk moves each joint +0.01 per row from the
    newest joint_pos reading (what ``relative_actions`` chunks are added to)."""

    def __init__(self, anchor="command"):
        from rosmind.policy import PolicyConfig

        self.config = PolicyConfig(robot="panda", horizon=4, n_action_steps=2, action_anchor=anchor)
        self.config.relative_actions = True

    def reset(self):
        pass

    def infer(self, obs):
        q = obs["joint_pos"][-1]
        return {"action": q + 0.01 * np.arange(1, 5)[:, None] * np.ones(8)}


def test_command_anchor_keeps_reading_noise_out_of_the_commands():
    rng = np.random.default_rng(0)
    truth = np.full(8, 0.02)
    ex = ChunkExecutor(RelativePolicy("command"))
    ex.reset()
    sent = []
    for tick in range(8):
        noisy = truth + rng.normal(0, 0.005, 8)  # the robot holds still; its encoders jitter
        sent.append(ex.step({"joint_pos": noisy[None]}, tick))
    sent = np.array(sent)
    # Chunk 0 starts from its reading; each later chunk from the previous command: the arm's
    # commands climb 0.01 a tick without the reading's jitter, the gripper stays on the reading.
    np.testing.assert_allclose(np.diff(sent[:, :7], axis=0), 0.01, atol=1e-12)
    assert np.abs(np.diff(sent[:, 7]) - 0.01).max() > 1e-3
    plain = ChunkExecutor(RelativePolicy("measured"))
    plain.reset()
    rows = np.array([plain.step({"joint_pos": (truth + rng.normal(0, 0.005, 8))[None]}, t) for t in range(8)])
    assert np.abs(np.diff(rows[:, :7], axis=0) - 0.01).max() > 1e-3  # measured anchor: jitter passes on


def test_command_anchor_needs_relative_actions():
    pol = RelativePolicy("command")
    pol.config.relative_actions = False
    with pytest.raises(SpecError, match="needs relative_actions"):
        ChunkExecutor(pol)
    with pytest.raises(SpecError, match="action_anchor"):
        from rosmind.policy import PolicyConfig

        PolicyConfig(action_anchor="bogus")
