"""A wrist force/torque sensor as a real one reports: tared, low-pass filtered, noisy.

    ft = ForceTorqueSensor(FTSensorConfig(cutoff_hz=30, force_noise=0.2), physics_dt=1 / 240)
    ft.reset(rng, tare)           # new episode; tare: the raw wrench with the robot at rest
    ft.update(raw)                # every physics substep: the joint's reaction wrench [6]
    ft.sample()                   # at the end of each control period: filtered - tare + noise
    ft.read()                     # that sample [6] (as often as asked: same value, same noise)

The raw sample is what PyBullet's joint force/torque sensor gives at the sensor joint
(``panda_hand_joint``), in that joint's frame: the reaction of everything beyond it (hand,
fingers, tool), gravity included. Like an ATI/Robotiq sensor zeroed in free space at start-up,
the raw reading with the robot at rest in its start pose is the tare (the sim settles one
control period before the episode to take it): what stays is contact and inertial wrench. A
first-order low-pass at ``cutoff_hz`` (the sensor's anti-aliasing filter) runs at the physics
rate; each control period's sample adds Gaussian noise from the episode's generator, drawn
once per period, so how often the sample is read changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rosmind.errors import SpecError


@dataclass
class FTSensorConfig:
    cutoff_hz: float = 30.0  # first-order low-pass; 0 = unfiltered
    force_noise: float = 0.2  # N, standard deviation per sample
    torque_noise: float = 0.01  # N m

    def __post_init__(self):
        for name in ("cutoff_hz", "force_noise", "torque_noise"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise SpecError(f"FTSensorConfig.{name}: must be a finite number >= 0, got {v!r}")


class ForceTorqueSensor:
    def __init__(self, config: FTSensorConfig, physics_dt: float):
        self.config = config
        c = config.cutoff_hz
        self.alpha = 1.0 if c <= 0 else physics_dt / (physics_dt + 1.0 / (2 * math.pi * c))
        self.noise = np.array([config.force_noise] * 3 + [config.torque_noise] * 3)
        self.reset(np.random.default_rng(0), np.zeros(6))

    def reset(self, rng: np.random.Generator, tare) -> None:
        self.rng = rng
        self.tare = np.asarray(tare, dtype=np.float64).copy()
        self.filtered = np.zeros(6)
        self.value = np.zeros(6)

    def update(self, raw) -> None:
        raw = np.asarray(raw, dtype=np.float64)
        self.filtered += self.alpha * ((raw - self.tare) - self.filtered)

    def sample(self) -> None:
        self.value = self.filtered + self.noise * self.rng.standard_normal(6)

    def read(self) -> np.ndarray:
        return self.value.copy()
