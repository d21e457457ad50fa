"""3Dconnexion SpaceMouse over hidapi (the ``hidapi`` package, module ``hid``).

HID reports (little-endian int16 per axis, roughly +-350 at full deflection)::

    older devices (SpaceNavigator, SpaceMouse Pro/Compact):  id 1: x y z   id 2: rx ry rz
    newer devices (SpaceMouse Wireless/Compact 2): id 1, 13 bytes: x y z rx ry rz
    buttons: id 3, a little-endian bit mask (bit 0 left, bit 1 right)

Device axes: x right, y toward the user, z down (pressing the cap is +z); rx/ry/rz the matching
rotations. Default mapping to the base frame for an operator facing the robot's +x:
``vx = -y, vy = -x, vz = -z, wx = -ry, wy = -rx, wz = -rz`` (fields ``axes``/``signs``).
Right button held = deadman, left button press = gripper toggle. ``parse_report(bytes)`` is the
event layer (tests feed raw report bytes); a read error (unplugged) turns ``connected`` False.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from rosmind.errors import SpecError
from rosmind.hardware.teleop.devices import Device
from rosmind.registry import DEVICES
from rosmind.teleop import TeleopCommand

VENDOR_IDS = (0x046D, 0x256F)  # Logitech (older 3Dconnexion), 3Dconnexion


@dataclass
class SpaceMouseConfig:
    vendor_id: int = 0  # 0 = the first device of a 3Dconnexion vendor id
    product_id: int = 0
    path: str = ""  # hidraw path; overrides the ids
    full_scale: float = 350.0  # raw count that reads as 1.0
    # twist component <- device axis (0..5 = x y z rx ry rz) and sign
    axes: tuple[int, ...] = (1, 0, 2, 4, 3, 5)
    signs: tuple[float, ...] = (-1.0, -1.0, -1.0, -1.0, -1.0, -1.0)
    deadman_button: int = 1
    gripper_button: int = 0

    def __post_init__(self):
        if not self.full_scale > 0:
            raise SpecError(f"SpaceMouseConfig.full_scale: must be > 0, got {self.full_scale!r}")
        if sorted(self.axes) != list(range(6)) or len(self.signs) != 6:
            raise SpecError("SpaceMouseConfig.axes: a permutation of 0..5 and 6 signs, got "
                            f"{list(self.axes)} / {list(self.signs)}")


def parse_report(report: bytes) -> dict:
    """One raw HID report -> ``{"translation": [3]}``, ``{"rotation": [3]}``, both, or
    ``{"buttons": mask}``; ``{}`` for other report ids or short reports."""
    if not report:
        return {}
    rid, body = report[0], bytes(report[1:])
    if rid == 1 and len(body) >= 12:
        v = struct.unpack("<6h", body[:12])
        return {"translation": list(v[:3]), "rotation": list(v[3:])}
    if rid in (1, 2) and len(body) >= 6:
        v = struct.unpack("<3h", body[:6])
        return {"translation" if rid == 1 else "rotation": list(v)}
    if rid == 3 and len(body) >= 1:
        return {"buttons": int.from_bytes(body, "little")}
    return {}


@DEVICES.register("spacemouse", config=SpaceMouseConfig)
class SpaceMouseDevice(Device):
    name = "spacemouse"

    def __init__(self, cfg: SpaceMouseConfig | None = None):
        super().__init__()
        self.cfg = cfg or SpaceMouseConfig()
        self._hid = None
        self._raw = np.zeros(6)
        self._mask = 0
        self._buttons: list[str] = []

    def open(self) -> None:
        try:
            import hid
        except ImportError as e:
            raise SpecError(f"spacemouse: the hidapi package is not importable ({e})") from None
        dev = hid.device()
        try:
            if self.cfg.path:
                dev.open_path(self.cfg.path.encode())
            elif self.cfg.vendor_id:
                dev.open(self.cfg.vendor_id, self.cfg.product_id)
            else:
                found = [d for d in hid.enumerate() if d["vendor_id"] in VENDOR_IDS]
                if not found:
                    raise OSError("no 3Dconnexion HID device found")
                dev.open_path(found[0]["path"])
        except OSError as e:
            raise SpecError(f"spacemouse: cannot open the device ({e}); check it is plugged in "
                            "and that /dev/hidraw* is readable (udev rule)") from None
        dev.set_nonblocking(True)
        self._hid = dev
        self._connected = True

    def close(self) -> None:
        if self._hid is not None:
            self._hid.close()
        self._hid = None
        self._connected = False

    def feed(self, report: bytes) -> None:
        """Apply one raw HID report."""
        r = parse_report(report)
        if "translation" in r:
            self._raw[:3] = r["translation"]
        if "rotation" in r:
            self._raw[3:] = r["rotation"]
        if "buttons" in r:
            pressed = r["buttons"] & ~self._mask
            if pressed >> self.cfg.gripper_button & 1:
                self._buttons.append("gripper_toggle")
            self._mask = r["buttons"]

    def command(self) -> TeleopCommand:
        dev = self._raw / self.cfg.full_scale
        twist = np.array([dev[a] * s for a, s in zip(self.cfg.axes, self.cfg.signs, strict=True)])
        buttons, self._buttons = tuple(self._buttons), []
        return TeleopCommand(twist=twist, deadman=bool(self._mask >> self.cfg.deadman_button & 1),
                             buttons=buttons)

    def poll(self) -> TeleopCommand:
        if self._hid is not None and self._connected:
            try:
                for _ in range(64):  # drain what arrived since the last tick
                    data = self._hid.read(64)
                    if not data:
                        break
                    self.feed(bytes(data))
            except (OSError, ValueError):
                self._connected = False
                self._raw[:] = 0.0
                self._mask = 0
        return self.command()
