"""The fault injector's core (rosmind.faults) on a fake clock: each kind does its harm only
while active, at about its rate, and loses nothing it does not mean to."""

from __future__ import annotations

import numpy as np
import pytest

from rosmind.errors import SpecError
from rosmind.faults import FaultConfig, FaultInjector, corrupt_positions


def _run(cfg: FaultConfig, n: int = 2000, active: bool = True, corrupt=None) -> tuple[FaultInjector, list]:
    f = FaultInjector(cfg, corrupt)
    f.set_active(active)
    out = []
    for i in range(n):
        f.push(i, float(i))
        out += f.due(float(i))
    f.set_active(False)  # the fault ends: anything held back goes out
    out += f.due(1e9)
    return f, out


def test_inactive_passes_everything_at_once_in_order():
    for kind in ("drop", "delay", "reorder", "duplicate", "freeze"):
        f, out = _run(FaultConfig(kind=kind, delay_s=5.0), n=50, active=False)
        assert out == list(range(50)) and f.counts["injected"] == 0


def test_drop_rate_and_no_other_change():
    f, out = _run(FaultConfig(kind="drop", rate=0.2, seed=1))
    assert 0.17 < 1 - len(out) / 2000 < 0.23
    assert out == sorted(out) and f.counts["injected"] == 2000 - len(out)


def test_delay_holds_each_message_for_its_delay():
    f = FaultInjector(FaultConfig(kind="delay", delay_s=0.25))
    f.set_active(True)
    f.push("a", 10.0)
    assert f.due(10.24) == [] and f.next_due() == pytest.approx(10.25)
    assert f.due(10.25) == ["a"]


def test_reorder_swaps_neighbours_and_loses_nothing():
    f, out = _run(FaultConfig(kind="reorder", rate=0.1, seed=2))
    assert sorted(out) == list(range(2000)) and out != list(range(2000))
    swapped = sum(1 for a, b in zip(out, out[1:], strict=False) if b < a)
    assert swapped <= f.counts["injected"] <= swapped + 1 and 150 < swapped < 230  # the last may have no successor
    # switched off while holding one: it is sent, not lost
    g = FaultInjector(FaultConfig(kind="reorder", rate=1.0))
    g.set_active(True)
    g.push("held", 0.0)
    g.set_active(False)
    assert g.due(0.0) == ["held"]


def test_duplicate_and_freeze():
    _, out = _run(FaultConfig(kind="duplicate", rate=0.1, seed=3))
    assert 2150 < len(out) < 2250 and sorted(set(out)) == list(range(2000))
    f, out = _run(FaultConfig(kind="freeze"), n=10)
    assert out == [0] * 10 and f.counts["injected"] == 9


def test_value_faults_change_one_joint():
    upper = np.array([1.0, 2.0, 3.0])
    pts = np.zeros((4, 3))
    rng = np.random.default_rng(0)
    nan = corrupt_positions(pts, "nan", upper, rng)
    assert np.isnan(nan).sum() == 1 and np.all(pts == 0)
    assert np.isinf(corrupt_positions(pts, "inf", upper, rng)).sum() == 1
    oob = corrupt_positions(pts, "out_of_limits", upper, rng)
    j = int(np.flatnonzero(oob[0])[0])
    assert np.all(oob[:, j] == upper[j] + 0.5) and np.count_nonzero(oob) == 4
    jump = corrupt_positions(pts, "jump", upper, rng)
    assert np.count_nonzero(jump) == 4 and np.all(jump[jump != 0] == 0.5)
    f, out = _run(FaultConfig(kind="nan", rate=0.5, seed=4), n=200,
                  corrupt=lambda m, kind, rng: ("bad", m))
    assert sum(isinstance(m, tuple) for m in out) == f.counts["injected"] and 70 < f.counts["injected"] < 130


@pytest.mark.parametrize("kw, what", [({"kind": "melt"}, "unknown fault 'melt'"), ({"rate": 1.5}, "rate"),
                                      ({"delay_s": float("nan")}, "delay_s"), ({"jitter_s": -1.0}, "jitter_s")])
def test_bad_config_is_named(kw, what):
    with pytest.raises(SpecError, match=what):
        FaultConfig(**kw)
    with pytest.raises(SpecError, match="not a value fault"):
        corrupt_positions(np.zeros(3), "drop", np.ones(3), np.random.default_rng(0))
