"""Servo control tables (register name -> address, size), from the vendors' manuals: what the
servo-bus driver (``servo_bus.py``) reads and writes and what the bus emulator
(``rosmind.hardware.emulators.servo_bus``) holds.

Positions are ticks, ``resolution`` per revolution; both protocols here are little-endian.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOLS = ("feetech", "dynamixel")


@dataclass(frozen=True)
class ServoModel:
    """A servo's control table: register name -> (address, size in bytes)."""

    name: str
    protocol: str
    model_number: int
    table_size: int
    registers: dict[str, tuple[int, int]]
    resolution: int = 4096  # ticks per revolution
    max_speed: float = 4096.0  # ticks/s the emulated servo moves at with torque on

    def reg(self, name: str) -> tuple[int, int]:
        return self.registers[name]


# Feetech STS3215 (SO-100 / SO-101), the memory table of Feetech's STS manual.
STS3215 = ServoModel("sts3215", "feetech", 777, 256, {
    "model_number": (3, 2), "id": (5, 1), "baud_rate": (6, 1), "min_position": (9, 2), "max_position": (11, 2),
    "homing_offset": (31, 2), "operating_mode": (33, 1), "torque_enable": (40, 1), "acceleration": (41, 1),
    "goal_position": (42, 2), "goal_time": (44, 2), "goal_speed": (46, 2), "lock": (55, 1),
    "present_position": (56, 2), "present_speed": (58, 2), "present_load": (60, 2), "present_voltage": (62, 1),
    "present_temperature": (63, 1), "moving": (66, 1), "present_current": (69, 2)})
# Dynamixel X series (protocol 2.0), the control table of ROBOTIS's e-Manual.
_X_SERIES = {
    "model_number": (0, 2), "firmware_version": (6, 1), "id": (7, 1), "baud_rate": (8, 1), "operating_mode": (11, 1),
    "homing_offset": (20, 4), "max_position": (48, 4), "min_position": (52, 4), "torque_enable": (64, 1),
    "hardware_error_status": (70, 1), "goal_current": (102, 2), "profile_velocity": (112, 4),
    "goal_position": (116, 4), "moving": (122, 1), "present_current": (126, 2), "present_velocity": (128, 4),
    "present_position": (132, 4), "present_temperature": (146, 1)}
XL330_M288 = ServoModel("xl330-m288", "dynamixel", 1200, 160, _X_SERIES)
XL430_W250 = ServoModel("xl430-w250", "dynamixel", 1060, 160, _X_SERIES)
SERVO_MODELS = {m.name: m for m in (STS3215, XL330_M288, XL430_W250)}
