"""Franka through pylibfranka, as far as the SDK goes without a robot: the connection error when
no FCI answers, and the 1 kHz setpoints the control loop feeds libfranka (smooth, in limits)."""

from __future__ import annotations

import numpy as np
import pytest

from rosmind.errors import HardwareError
from rosmind.hardware.drivers import make_hardware
from rosmind.spec import load_spec

pytestmark = pytest.mark.unit


def test_no_fci_is_a_clear_error():
    arm = make_hardware("panda", driver="franka", host="127.0.0.46")
    with pytest.raises(HardwareError, match=r"Franka FCI 127.0.0.46: NetworkException.*FCI.*Desk"):
        arm.connect()
    with pytest.raises(HardwareError, match="not connected"):
        arm.read()
    with pytest.raises(HardwareError, match="write before enable"):
        arm.write(np.zeros(8))


def test_one_khz_setpoints_are_smooth_and_in_limits():
    spec = load_spec("panda")
    arm = make_hardware("panda", driver="franka", host="127.0.0.47")
    arm.limiter.reset(np.zeros(7))
    target = np.array([0.5, 0.3, -0.4, -1.0, 0.2, 1.0, 0.5])
    qs = np.array([arm.next_setpoint(target) for _ in range(4000)])
    v = np.diff(qs, axis=0) / 1e-3
    a = np.diff(v, axis=0) / 1e-3
    vmax = 0.5 * np.array(spec.limits("velocity"))[:7]
    amax = 0.5 * np.array(spec.limits("acceleration"))[:7]
    assert np.all(np.abs(v) <= vmax + 1e-6) and np.all(np.abs(a) <= amax + 1e-3)
    lo, hi = np.array(spec.limits("lower"))[:7], np.array(spec.limits("upper"))[:7]
    np.testing.assert_allclose(qs[-1], np.clip(target, lo, hi), atol=1e-6)  # arrives
