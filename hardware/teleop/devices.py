"""The ``Device`` interface every teleop device implements, and the ``DEVICES`` registry entries.

A device is built from its config dataclass (``DEVICES.get(name).config``), then::

    dev = make_device("keyboard", {"key_hold_s": 0.5})
    dev.open()                    # acquire the terminal / joystick / HID handle / server port
    cmd = dev.poll()              # -> TeleopCommand, non-blocking, once per control tick
    dev.connected                 # False once the hardware went away (or before it appeared)
    dev.close()                   # release; idempotent

``poll()`` never raises for a device that vanished: it returns a command with the deadman
released and ``connected`` turns False, so the caller holds the robot and reports the event.
Devices that show feedback (the web page) also implement ``send_frame(jpeg: bytes)`` and
``send_status(dict)``; callers check with ``hasattr``.

Registry entries are imported lazily (``rosmind.registry.DEVICES`` lists this module), so the
pygame/hidapi/websockets imports happen only when that device is built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import fields
from typing import Any

from rosmind.errors import SpecError
from rosmind.registry import DEVICES
from rosmind.teleop import TeleopCommand


class Device(ABC):
    """A teleop input device; see the module doc for the contract."""

    name: str = "device"
    joint_commands: bool = False  # True: poll() fills TeleopCommand.joints (a leader arm)

    def __init__(self) -> None:
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def poll(self) -> TeleopCommand: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()


def make_device(name: str, options: dict[str, Any] | None = None) -> Device:
    """Build the registered device ``name`` from ``options`` (its config's fields).

    Unknown names raise ``UnknownNameError``, unknown options or bad values ``SpecError``."""
    entry = DEVICES.get(name)
    options = dict(options or {})
    known = {f.name for f in fields(entry.config)} if entry.config else set()
    unknown = sorted(set(options) - known)
    if unknown:
        raise SpecError(f"teleop device {name!r}: unknown option(s) {unknown}; "
                        f"known: {sorted(known)}")
    try:
        cfg = entry.config(**options) if entry.config else None
    except TypeError as e:
        raise SpecError(f"teleop device {name!r}: bad options {options}: {e}") from None
    return entry.factory(cfg) if cfg is not None else entry.factory()


def _register() -> None:
    """Each device module registers itself; importing them here fills ``DEVICES``."""
    from rosmind.hardware.teleop import gamepad, keyboard, leader_arm, spacemouse, web  # noqa: F401


_register()
