"""Quadruped fall guard: the IMU says the trunk tilted past a limit -> a damped crouch, latched.

Pure Python (no ROS): safety_node feeds it IMU orientations and asks it for setpoints.

    guard = FallGuard(spec, FallGuardConfig(max_tilt_deg=50))
    guard.update_imu(q_xyzw)            # True when this sample trips it
    guard.setpoint(current)             # [D]: one control period further toward the crouch
    guard.reset()                       # safety/reset: commands may flow again

Once tripped, the guard owns the robot until a reset: every control period the setpoint moves
from where it is toward the spec's crouch pose (``extra.crouch_pose``) at no more than
``crouch_speed`` rad/s per joint, so a fallen robot folds its legs slowly instead of kicking;
policy commands are refused meanwhile (safety_node latches the e-stop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rosmind.errors import SpecError
from rosmind.spec import RobotSpec


@dataclass
class FallGuardConfig:
    max_tilt_deg: float = 50.0  # angle between the trunk's z axis and the world's
    crouch_speed: float = 1.0  # rad/s per joint

    def __post_init__(self):
        if not 0 < self.max_tilt_deg < 180:
            raise SpecError(f"FallGuardConfig.max_tilt_deg: in (0, 180), got {self.max_tilt_deg}")
        if not (math.isfinite(self.crouch_speed) and self.crouch_speed > 0):
            raise SpecError(f"FallGuardConfig.crouch_speed: must be > 0, got {self.crouch_speed}")


def tilt_deg(q_xyzw) -> float:
    """Angle (deg) between the body z axis of quaternion ``x y z w`` and the world's z axis."""
    x, y, z, w = (float(v) for v in q_xyzw)
    n = x * x + y * y + z * z + w * w
    if not (math.isfinite(n) and n > 1e-9):
        return float("nan")
    cos = 1.0 - 2.0 * (x * x + y * y) / n  # R[2, 2]
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


class FallGuard:
    def __init__(self, spec: RobotSpec, config: FallGuardConfig | None = None):
        self.spec = spec
        self.config = config or FallGuardConfig()
        crouch = spec.extra.get("crouch_pose")
        if crouch is None or len(crouch) != spec.dof:
            raise SpecError(f"{spec.source}: extra.crouch_pose: a quadruped spec needs {spec.dof} joint "
                            f"positions to fold into after a fall, got {crouch!r}")
        self.lower, self.upper = np.array(spec.limits("lower")), np.array(spec.limits("upper"))
        self.crouch = np.clip(np.asarray(crouch, dtype=np.float64), self.lower, self.upper)
        self.fallen = False
        self.last_tilt = 0.0
        self.trips = 0

    def update_imu(self, q_xyzw) -> bool:
        """Feed one IMU orientation; True when it trips the guard (a NaN orientation trips it too)."""
        self.last_tilt = tilt_deg(q_xyzw)
        over = not math.isfinite(self.last_tilt) or self.last_tilt > self.config.max_tilt_deg
        if over and not self.fallen:
            self.fallen = True
            self.trips += 1
            return True
        return False

    def setpoint(self, current: np.ndarray) -> np.ndarray:
        """One control period from ``current`` [D] toward the crouch, speed-limited."""
        step = self.config.crouch_speed * self.spec.control_period
        cur = np.asarray(current, dtype=np.float64)
        # From a measured position, which may read a hair past a limit: never command one past it.
        return np.clip(cur + np.clip(self.crouch - cur, -step, step), self.lower, self.upper)

    def reset(self) -> None:
        self.fallen = False
