"""Servo-arm calibration (``rosmind calibrate``): where each joint's zero is, in ticks, and
the tick range it can reach, measured on the arm itself with its torque off.

    cal = calibrate(arm, prompt=input)     # arm: a connected ServoArm; prompt waits for the operator
    cal.save("so100.json")

1. "Put the arm in its zero pose" (the spec's 0 rad in every joint: the pose drawn in the
   robot's hardware page) -> each joint's zero = its present position.
2. "Move every joint through its whole range" -> the positions are sampled (every 20 ms)
   until the operator confirms; min / max per joint, shrunk by ``margin_ticks`` so the goal
   never presses an end stop.

Directions come from the spec (``extra.bus.directions``, +-1 per joint: how the servos are
mounted) or ``invert``. A joint that did not move (range below ``min_range_ticks``) or whose
zero lies outside its range is an error naming the joint: nothing is saved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import numpy as np

from rosmind.errors import HardwareError, SpecError

from .servo_bus import JointCalibration, ServoArm, ServoCalibration


def calibrate(arm: ServoArm, prompt: Callable[[str], object], invert: Iterable[str] = (),
              margin_ticks: int = 20, min_range_ticks: int = 200, sample_s: float = 0.02) -> ServoCalibration:
    spec = arm.spec
    invert = set(invert)
    unknown = sorted(invert - set(spec.joint_names))
    if unknown:
        raise SpecError(f"calibrate: unknown joint(s) {unknown}; {spec.name} joints: {list(spec.joint_names)}")
    directions = spec.extra.get("bus", {}).get("directions") or [1] * spec.dof
    arm.disable()  # the operator moves it by hand
    prompt(f"Put the {spec.name} in its zero pose (every joint at 0 rad), then press Enter")
    zero = arm._positions()
    lo, hi = zero.copy(), zero.copy()
    done = threading.Event()
    error: list[Exception] = []

    def sample():
        while not done.wait(sample_s):
            try:
                q = arm._positions()
            except HardwareError as e:
                error.append(e)
                return
            np.minimum(lo, q, out=lo)
            np.maximum(hi, q, out=hi)

    worker = threading.Thread(target=sample, daemon=True)
    worker.start()
    try:
        prompt("Move every joint slowly through its whole range, then press Enter")
    finally:
        done.set()
        worker.join()
    if error:
        raise error[0]
    joints = {}
    for i, (name, old) in enumerate(arm.cal.joints.items()):
        span = hi[i] - lo[i]
        if span < min_range_ticks:
            raise SpecError(f"calibrate: joint {name} (servo {old.id}) moved only {span:.0f} ticks; move it through "
                            "its whole range while sampling")
        sign = -int(directions[i]) if name in invert else int(directions[i])
        jmin, jmax = int(lo[i]) + margin_ticks, int(hi[i]) - margin_ticks
        if not jmin <= zero[i] <= jmax:
            raise SpecError(f"calibrate: joint {name}: the zero pose ({zero[i]:.0f} ticks) is not inside the range "
                            f"it moved through ({jmin}-{jmax})")
        joints[name] = JointCalibration(id=old.id, model=old.model, zero=int(zero[i]), direction=sign,
                                        min=jmin, max=jmax)
    cal = ServoCalibration(spec.name, arm.cal.protocol, joints)
    cal.check(spec, "calibrate")
    return cal
