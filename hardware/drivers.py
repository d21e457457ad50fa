"""The driver registry: robot name -> the driver that reaches it (imported on first use).

    robot = make_hardware("so100", port="/dev/ttyACM0", calibration="so100.json")

A new robot is a spec YAML (``rosmind/robots/<name>.yaml``) naming its driver in
``extra.driver`` plus, for a new kind of device, a factory ``(spec, **options) -> HardwareRobot``
registered here.
"""

from __future__ import annotations

from typing import Any

from rosmind.errors import SpecError
from rosmind.registry import Registry
from rosmind.robot import HardwareRobot
from rosmind.spec import load_spec

# name -> the module that registers it (imported on the first lookup of that name)
DRIVERS = Registry("hardware driver", {"servo_arm": "rosmind.hardware.arms.servo_bus",
                                       "unitree_go2": "rosmind.hardware.quadrupeds.unitree",
                                       "ur_rtde": "rosmind.hardware.arms.ur",
                                       "franka": "rosmind.hardware.arms.franka"})


def make_hardware(robot: str, driver: str = "", **options: Any) -> HardwareRobot:
    """The driver for ``robot`` (its spec's ``extra.driver`` unless ``driver`` names one)."""
    spec = load_spec(robot)
    name = driver or spec.extra.get("driver", "")
    if not name:
        raise SpecError(f"robot {spec.name!r} has no hardware driver (extra.driver in its spec); "
                        f"drivers: {', '.join(DRIVERS.names())}")
    factory = DRIVERS.get(name).factory
    return factory(spec, **checked_options(factory, options, f"driver {name!r} for robot {spec.name!r}", spec))


def checked_options(factory, options: dict[str, Any], where: str, *args: Any) -> dict[str, Any]:
    """``options`` if ``factory(*args, **options)`` accepts them, else SpecError listing the valid
    ones (checked against the signature, so a TypeError raised inside a driver is not mistaken
    for a bad option)."""
    import inspect

    sig = inspect.signature(factory)
    try:
        sig.bind(*args, **options)
    except TypeError as e:
        valid = [p for p in sig.parameters if p not in ("self", "spec")]
        raise SpecError(f"{where}: bad options {sorted(options)} ({e}); valid: {valid}") from None
    return options
