"""Servo-bus arms (SO-100/SO-101 on Feetech STS, Koch on Dynamixel protocol 2.0) behind the
``Robot`` interface, through the vendors' own SDKs (``feetech-servo-sdk``, ``dynamixel-sdk``).

    arm = ServoArm(load_spec("so100"), load_calibration("so100.json", spec), port="/dev/ttyACM0")
    arm.connect()          # open the port, ping every servo, check its model number
    arm.enable()           # goal := present position, then torque on (no jump)
    obs = arm.read()       # one sync read: joint_pos [D] rad, joint_vel [D] rad/s
    arm.write(q)           # one sync write of the goal positions (clipped to the calibrated range)
    arm.disable()          # torque off
    arm.disconnect()

Ticks <-> radians through the calibration (``ServoCalibration``: per joint the servo id, model,
the tick reading at the zero pose, the direction and the reachable tick range), written by
``rosmind calibrate``. Every bus call retries once; a servo that still does not answer, a bad
checksum twice or an SDK exception becomes a ``HardwareError`` that names the port, the servo
id, its joint and what to check. The driver never writes a goal it could not compute from a
finite command.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rosmind.errors import HardwareError, SpecError
from rosmind.hardware.drivers import DRIVERS
from rosmind.robot import HardwareRobot, checked_positions
from rosmind.spec import RobotSpec

from .servo_tables import PROTOCOLS, SERVO_MODELS, ServoModel

RETRIES = 1  # extra attempts per bus transaction (a lost packet costs the SDK's ~34 ms timeout)


@dataclass
class JointCalibration:
    id: int
    model: str
    zero: int  # ticks at 0 rad
    direction: int = 1  # +1: ticks grow with the joint angle
    min: int = 0  # reachable tick range (the goal is clipped to it)
    max: int = 4095


@dataclass
class ServoCalibration:
    robot: str
    protocol: str
    joints: dict[str, JointCalibration]  # spec joint order

    def check(self, spec: RobotSpec, where: str) -> None:
        if self.robot != spec.name:
            raise SpecError(f"{where}: calibration is for robot {self.robot!r}, not {spec.name!r}")
        if list(self.joints) != list(spec.joint_names):
            raise SpecError(f"{where}: calibration joints {list(self.joints)} differ from {spec.name}'s "
                            f"{list(spec.joint_names)}")
        if self.protocol not in PROTOCOLS:
            raise SpecError(f"{where}: unknown servo protocol {self.protocol!r}; valid: {', '.join(PROTOCOLS)}")
        for name, j in self.joints.items():
            model = SERVO_MODELS.get(j.model)
            if model is None or model.protocol != self.protocol:
                raise SpecError(f"{where}: joint {name}: servo model {j.model!r} does not speak {self.protocol}")
            if j.direction not in (1, -1) or not 0 <= j.min < j.max < model.resolution * 64:
                raise SpecError(f"{where}: joint {name}: direction must be +-1 and min < max, got "
                                f"{j.direction}, [{j.min}, {j.max}]")
        ids = [j.id for j in self.joints.values()]
        if len(set(ids)) != len(ids):
            raise SpecError(f"{where}: servo ids repeat: {ids}")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"robot": self.robot, "protocol": self.protocol,
                                          "joints": {k: asdict(v) for k, v in self.joints.items()}}, indent=1))


def default_calibration(spec: RobotSpec) -> ServoCalibration:
    """The spec's bus layout (``extra.bus``) with zero at mid-range: what ``rosmind calibrate`` refines."""
    bus = spec.extra.get("bus")
    if not bus:
        raise SpecError(f"robot {spec.name!r} has no servo bus (extra.bus in its spec)")
    joints = {}
    for name, sid, model in zip(spec.joint_names, bus["ids"], bus["models"], strict=True):
        res = SERVO_MODELS[model].resolution
        joints[name] = JointCalibration(id=int(sid), model=model, zero=res // 2, min=0, max=res - 1)
    return ServoCalibration(spec.name, bus["protocol"], joints)


def load_calibration(path: str | Path, spec: RobotSpec) -> ServoCalibration:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
        cal = ServoCalibration(data["robot"], data["protocol"],
                               {k: JointCalibration(**v) for k, v in data["joints"].items()})
    except FileNotFoundError:
        raise SpecError(f"{p}: no calibration file; run `rosmind calibrate --robot {spec.name} --port PORT "
                        f"--out {p}`") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise SpecError(f"{p}: not a servo calibration file ({type(e).__name__}: {e})") from None
    cal.check(spec, str(p))
    return cal


class SdkBus:
    """One serial port through the vendor SDK: ping, sync read, sync write, single writes."""

    def __init__(self, port: str, protocol: str, baudrate: int = 1_000_000):
        if protocol not in PROTOCOLS:
            raise SpecError(f"unknown servo protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
        self.port_name, self.protocol, self.baudrate = port, protocol, baudrate
        if protocol == "feetech":
            import scservo_sdk as sdk

            self.sdk, self.ok = sdk, sdk.COMM_SUCCESS
            self.packets = sdk.PacketHandler(0)  # 0: STS registers are little-endian
        else:
            import dynamixel_sdk as sdk

            self.sdk, self.ok = sdk, sdk.COMM_SUCCESS
            self.packets = sdk.PacketHandler(2.0)
        self.port = None

    def open(self) -> None:
        port = self.sdk.PortHandler(self.port_name)
        try:
            opened = port.openPort() and port.setBaudRate(self.baudrate)
        except Exception as e:  # serial.SerialException, OSError
            raise HardwareError(f"{self.port_name}: cannot open the servo bus ({e}); check the USB cable, the "
                                "port name and that you may use it (dialout group)") from None
        if not opened:
            raise HardwareError(f"{self.port_name}: cannot open the servo bus at {self.baudrate} baud")
        self.port = port

    def close(self) -> None:
        if self.port is not None:
            try:
                self.port.closePort()
            finally:
                self.port = None

    def _why(self, result: int, error: int) -> str:
        if result != self.ok:
            return self.packets.getTxRxResult(result).strip() or f"result {result}"
        return self.packets.getRxPacketError(error).strip() or f"status error 0x{error:02x}"

    def _flush(self) -> None:
        """Drop unread input: a reply that came after the SDK's timeout must not be taken as
        the answer to the next request (both SDKs' clearPort flushes output only)."""
        try:
            self.port.ser.reset_input_buffer()
        except Exception:  # a vanished port: the transaction that follows reports it
            pass

    def _transact(self, fn, what: str):
        """Run an SDK call returning ``(..., result, error)``; retry once; raise with ``what``."""
        last = ""
        for _ in range(1 + RETRIES):
            self._flush()
            try:
                out = fn()
            except Exception as e:  # the SDKs index missing data on error replies, etc.
                last = f"SDK {type(e).__name__}: {e}"
                continue
            result, error = out[-2], out[-1]
            if result == self.ok and not error:
                return out
            last = self._why(result, error)
        raise HardwareError(f"{self.port_name}: {what}: {last}")

    def ping(self, sid: int) -> int:
        model, _, _ = self._transact(lambda: self.packets.ping(self.port, sid), f"servo {sid} does not answer a ping")
        return int(model)

    def write(self, sid: int, model: ServoModel, reg: str, value: int) -> None:
        addr, size = model.reg(reg)
        fn = {1: self.packets.write1ByteTxRx, 2: self.packets.write2ByteTxRx, 4: self.packets.write4ByteTxRx}[size]
        self._transact(lambda: (None, *fn(self.port, sid, addr, int(value) & ((1 << 8 * size) - 1))),
                       f"servo {sid}: writing {reg}")

    def read(self, sid: int, model: ServoModel, reg: str) -> int:
        addr, size = model.reg(reg)
        fn = {1: self.packets.read1ByteTxRx, 2: self.packets.read2ByteTxRx, 4: self.packets.read4ByteTxRx}[size]
        value, _, _ = self._transact(lambda: fn(self.port, sid, addr), f"servo {sid}: reading {reg}")
        return int(value)

    def sync_read(self, ids: list[int], model: ServoModel, reg: str) -> list[int]:
        """One sync read of ``reg`` from every servo in ``ids`` (raw unsigned values)."""
        addr, size = model.reg(reg)
        group = self.sdk.GroupSyncRead(self.port, self.packets, addr, size)
        for sid in ids:
            group.addParam(sid)
        last = ""
        for _ in range(1 + RETRIES):
            self._flush()
            try:
                result = group.txRxPacket()
            except Exception as e:
                result, last = None, f"SDK {type(e).__name__}: {e}"
            if result == self.ok:
                missing = [sid for sid in ids if not group.isAvailable(sid, addr, size)]
                if not missing:
                    return [int(group.getData(sid, addr, size)) for sid in ids]
                last = f"no data from servo(s) {missing}"
            elif result is not None:
                last = self._why(result, 0)
        # Which servo is it? Ask each one (a sync read fails as a whole).
        silent = []
        for sid in ids:
            try:
                self.read(sid, model, reg)
            except HardwareError:
                silent.append(sid)
        raise HardwareError(f"{self.port_name}: sync read of {reg} failed ({last}); servo(s) {silent or '?'} "
                            "do not answer: check their power and the daisy-chain cable")

    def sync_write(self, values: dict[int, int], model: ServoModel, reg: str) -> None:
        addr, size = model.reg(reg)
        group = self.sdk.GroupSyncWrite(self.port, self.packets, addr, size)
        for sid, v in values.items():
            group.addParam(sid, list((int(v) & ((1 << 8 * size) - 1)).to_bytes(size, "little")))
        try:
            result = group.txPacket()
        except Exception as e:
            raise HardwareError(f"{self.port_name}: sync write of {reg}: SDK {type(e).__name__}: {e}") from None
        if result != self.ok:
            raise HardwareError(f"{self.port_name}: sync write of {reg}: {self._why(result, 0)}")


def signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


class ServoArm(HardwareRobot):
    """A servo-bus arm: one servo per spec joint, one port."""

    def __init__(self, spec: RobotSpec, calibration: ServoCalibration, port: str, baudrate: int | None = None):
        calibration.check(spec, f"{spec.name} calibration")
        self.spec, self.cal = spec, calibration
        bus = spec.extra.get("bus", {})
        self.bus = SdkBus(port, calibration.protocol, int(baudrate or bus.get("baudrate", 1_000_000)))
        self.joints = list(calibration.joints.values())
        self.ids = [j.id for j in self.joints]
        models = {j.model for j in self.joints}
        # One sync read / write needs one register address: mixed models must share the table.
        tables = {tuple(sorted(SERVO_MODELS[m].registers.items())) for m in models}
        if len(tables) != 1:
            raise SpecError(f"{spec.name}: servo models {sorted(models)} have different control tables")
        self.table = SERVO_MODELS[self.joints[0].model]
        self.zero = np.array([j.zero for j in self.joints], dtype=np.float64)
        self.sign = np.array([j.direction for j in self.joints], dtype=np.float64)
        self.lo = np.array([j.min for j in self.joints], dtype=np.float64)
        self.hi = np.array([j.max for j in self.joints], dtype=np.float64)
        self.rad_per_tick = np.array([2 * math.pi / SERVO_MODELS[j.model].resolution for j in self.joints])
        self.connected = self.enabled = False

    @property
    def device(self) -> str:
        return f"{self.cal.protocol} bus {self.bus.port_name}"

    # ticks <-> radians
    def to_rad(self, ticks) -> np.ndarray:
        return (np.asarray(ticks, dtype=np.float64) - self.zero) * self.sign * self.rad_per_tick

    def to_ticks(self, rad) -> np.ndarray:
        return np.asarray(rad, dtype=np.float64) / self.rad_per_tick * self.sign + self.zero

    def connect(self) -> None:
        self.bus.open()
        try:
            for name, j in self.cal.joints.items():
                try:
                    model = self.bus.ping(j.id)
                except HardwareError as e:
                    raise HardwareError(f"{e} (joint {name}); check its power, its id and the cable") from None
                want = SERVO_MODELS[j.model].model_number
                if model != want:
                    found = next((m.name for m in SERVO_MODELS.values() if m.model_number == model), "unknown")
                    raise HardwareError(f"{self.bus.port_name}: servo {j.id} (joint {name}) is model number {model} "
                                        f"({found}), the calibration expects {j.model} ({want})")
        except HardwareError:
            self.bus.close()
            raise
        self.connected = True

    def _positions(self) -> np.ndarray:
        raw = self.bus.sync_read(self.ids, self.table, "present_position")
        bits = 8 * self.table.reg("present_position")[1]
        return np.array([signed(v, bits) if self.cal.protocol == "dynamixel" else v for v in raw], dtype=np.float64)

    def _velocities(self) -> np.ndarray:
        if self.cal.protocol == "feetech":  # sign-magnitude, bit 15, ticks/s
            raw = self.bus.sync_read(self.ids, self.table, "present_speed")
            return np.array([-(v & 0x7FFF) if v & 0x8000 else v for v in raw], dtype=np.float64)
        raw = self.bus.sync_read(self.ids, self.table, "present_velocity")  # 0.229 rev/min per unit
        return np.array([signed(v, 32) * 0.229 / 60.0 * 4096 for v in raw], dtype=np.float64)

    def enable(self) -> None:
        """Goal := where each servo is now, then torque on: enabling never moves the arm."""
        present = self._positions()
        self.bus.sync_write(dict(zip(self.ids, present.astype(int), strict=True)), self.table, "goal_position")
        self.bus.sync_write(dict.fromkeys(self.ids, 1), self.table, "torque_enable")
        self.enabled = True

    def disable(self) -> None:
        """Torque off on every servo that answers (a safe stop on a servo arm: it goes limp)."""
        self.enabled = False
        self.bus.sync_write(dict.fromkeys(self.ids, 0), self.table, "torque_enable")

    def disconnect(self) -> None:
        if not self.connected:
            return
        try:
            self.disable()
        finally:
            self.bus.close()
            self.connected = False

    def read(self) -> dict[str, np.ndarray]:
        pos = self.to_rad(self._positions())
        vel = self._velocities() * self.sign * self.rad_per_tick
        return {"stamp": np.array(time.time()), "joint_pos": pos, "joint_vel": vel}

    def write(self, positions) -> np.ndarray:
        """Goal positions (rad, spec order) -> the calibrated tick range -> one sync write. Returns
        the positions sent (rad). Raises ``SpecError`` (nothing sent) on a wrong shape or NaN."""
        q = checked_positions(self.spec, positions, f"{self.spec.name}.write")
        if not self.enabled:
            raise HardwareError(f"{self.spec.name}: write before enable(): torque is off, nothing sent")
        ticks = np.clip(np.round(self.to_ticks(q)), self.lo, self.hi)
        self.bus.sync_write(dict(zip(self.ids, ticks.astype(int), strict=True)), self.table, "goal_position")
        return self.to_rad(ticks)


@DRIVERS.register("servo_arm")
def servo_arm(spec: RobotSpec, port: str = "", calibration: str = "", baudrate: int | None = None) -> ServoArm:
    """The driver registry's factory: ``port`` is required; ``calibration`` a file from
    ``rosmind calibrate`` ("" = the spec's mid-range zero, for emulators and first power-up)."""
    if not port:
        raise SpecError(f"robot {spec.name!r}: the servo-bus driver needs port (e.g. /dev/ttyACM0)")
    cal = load_calibration(calibration, spec) if calibration else default_calibration(spec)
    return ServoArm(spec, cal, port, baudrate)

