"""Unitree Go2 low-level control through unitree-sdk2 (Python, CycloneDDS): ``rt/lowstate`` in,
``rt/lowcmd`` out, the vendor's DDS topics and IDL types.

    go2 = UnitreeGo2(load_spec("go2"), interface="eth0")
    go2.connect()      # DDS on the robot's interface; waits for rt/lowstate (checksum-checked)
    go2.enable()       # targets := the measured joints, then 500 Hz lowcmd (PD in the motors)
    go2.write(q)       # new joint targets (spec order), bounded near the measured joints
    obs = go2.read()   # joint_pos/vel/effort, imu_* (the newest lowstate, never a stale one)
    go2.disable()      # damping (kp 0, kd ``damping_kd``): the legs give way slowly
    go2.disconnect()

- Joint order: the SDK's motor index i = 3 * leg + {hip, thigh, calf} with legs FR, FL, RR, RL:
  the spec's order (``rosmind/robots/go2.yaml``), motors 12-19 unused.
- Every lowcmd carries the CRC-32 the motor board checks (``lowcmd_crc``: polynomial 0x04C11DB7,
  initial 0xFFFFFFFF, over the packed C struct as little-endian 32-bit words, the crc field
  excluded). The PyPI wheel ``unitree-sdk2`` 1.0.1 ships without its CRC shared library and its
  package ``__init__`` imports a subpackage the wheel lacks, so this module computes the CRC
  itself and imports the SDK's modules without that ``__init__`` (``sdk_modules()``).
- A conservative default power limit: a target is held within ``max_error_rad`` of the measured
  joint (so the motor torque stays near ``kp * max_error_rad``), in the spec's limits, with the
  spec's PD gains (legged_gym's kp 20, kd 0.5 that the walking policy was trained with).
- Sport mode must be off (the Unitree app, or the SDK's MotionSwitcherClient) before low-level
  commands reach the motors; this driver does not switch modes.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import threading
import time
import types

import numpy as np

from rosmind.errors import HardwareError, SpecError
from rosmind.hardware.drivers import DRIVERS
from rosmind.robot import HardwareRobot, checked_positions
from rosmind.spec import RobotSpec

HEAD = (0xFE, 0xEF)
LOWLEVEL = 0xFF
POS_STOP, VEL_STOP = 2.146e9, 16000.0  # "no position / velocity target" (damping mode)
MOTOR_MODE_FOC = 0x01
NUM_MOTORS = 20
# The C layout of unitree_go LowCmd_ / LowState_ (natural alignment, little-endian).
LOWCMD_FORMAT = "<4B2I2IH2x" + "B3x5f3I" * NUM_MOTORS + "B3B" + "40B12B2BBx" + "II"
LOWSTATE_FORMAT = ("<4B2I2IH2x" + "4f3f3f3fB3x" + "B3x7fB3xI2I" * NUM_MOTORS + "4BiH2B2B15H" + "4h4hI"
                   + "40BBxxxf" + "BBxxff4HII")


def crc32_words(data: bytes) -> int:
    """Unitree's CRC-32 over ``data`` taken as little-endian uint32 words, MSB first."""
    crc = 0xFFFFFFFF
    for (word,) in struct.iter_unpack("<I", data):
        for bit in range(31, -1, -1):
            top = crc & 0x80000000
            crc = (crc << 1) & 0xFFFFFFFF
            if top ^ (((word >> bit) & 1) << 31):
                crc ^= 0x04C11DB7
    return crc


def _pack_lowcmd(c) -> bytes:
    v = [*c.head, c.level_flag, c.frame_reserve, *c.sn, *c.version, c.bandwidth]
    for m in c.motor_cmd:
        v += [m.mode, m.q, m.dq, m.tau, m.kp, m.kd, *m.reserve]
    v += [c.bms_cmd.off, *c.bms_cmd.reserve, *c.wireless_remote, *c.led, *c.fan, c.gpio, c.reserve, c.crc]
    return struct.pack(LOWCMD_FORMAT, *v)


def _pack_lowstate(s) -> bytes:
    i = s.imu_state
    v = [*s.head, s.level_flag, s.frame_reserve, *s.sn, *s.version, s.bandwidth,
         *i.quaternion, *i.gyroscope, *i.accelerometer, *i.rpy, i.temperature]
    for m in s.motor_state:
        v += [m.mode, m.q, m.dq, m.ddq, m.tau_est, m.q_raw, m.dq_raw, m.ddq_raw, m.temperature, m.lost, *m.reserve]
    b = s.bms_state
    v += [b.version_high, b.version_low, b.status, b.soc, b.current, b.cycle, *b.bq_ntc, *b.mcu_ntc, *b.cell_vol,
          *s.foot_force, *s.foot_force_est, s.tick, *s.wireless_remote, s.bit_flag, s.adc_reel,
          s.temperature_ntc1, s.temperature_ntc2, s.power_v, s.power_a, *s.fan_frequency, s.reserve, s.crc]
    return struct.pack(LOWSTATE_FORMAT, *v)


def lowcmd_crc(cmd) -> int:
    return crc32_words(_pack_lowcmd(cmd)[:-4])


def lowstate_crc(state) -> int:
    return crc32_words(_pack_lowstate(state)[:-4])


def sdk_modules() -> types.SimpleNamespace:
    """The SDK's channel and IDL modules, imported without the package ``__init__`` (broken in
    the PyPI wheel: it imports ``b2``, which the wheel does not contain)."""
    if "unitree_sdk2py" not in sys.modules:
        spec = importlib.util.find_spec("unitree_sdk2py")
        if spec is None:
            raise HardwareError("unitree-sdk2 is not installed (make installs it, with cyclonedds built "
                                "against Debian's cyclonedds-dev)")
        pkg = types.ModuleType("unitree_sdk2py")
        pkg.__path__, pkg.__spec__ = list(spec.submodule_search_locations), spec
        sys.modules["unitree_sdk2py"] = pkg
    from unitree_sdk2py.core.channel import (
        ChannelFactoryInitialize,
        ChannelPublisher,
        ChannelSubscriber,
    )
    from unitree_sdk2py.idl.default import (
        unitree_go_msg_dds__LowCmd_,
        unitree_go_msg_dds__LowState_,
    )
    from unitree_sdk2py.idl.unitree_go.msg.dds_ import LowCmd_, LowState_

    return types.SimpleNamespace(init=ChannelFactoryInitialize, Publisher=ChannelPublisher,
                                 Subscriber=ChannelSubscriber, LowCmd=LowCmd_, LowState=LowState_,
                                 new_lowcmd=unitree_go_msg_dds__LowCmd_, new_lowstate=unitree_go_msg_dds__LowState_)


def init_lowcmd(sdk):
    """A lowcmd in the low-level mode with every motor in damping-free "stop" (no targets)."""
    cmd = sdk.new_lowcmd()
    cmd.head, cmd.level_flag, cmd.gpio = list(HEAD), LOWLEVEL, 0
    for m in cmd.motor_cmd:
        m.mode, m.q, m.dq, m.kp, m.kd, m.tau = MOTOR_MODE_FOC, POS_STOP, VEL_STOP, 0.0, 0.0, 0.0
    return cmd


_DDS: tuple[int, str] | None = None  # (domain, interface) this process's SDK channels use


class UnitreeGo2(HardwareRobot):
    # Spec sensors this driver cannot offer, and why (the sim/real parity test reads this).
    unavailable = {"odom": "the Go2's low-level state (rt/lowstate) has no odometry; sport mode's "
                           "estimate is not available in low-level mode"}

    def __init__(self, spec: RobotSpec, interface: str = "eth0", domain: int = 0, rate_hz: float = 500.0,
                 max_error_rad: float = 0.3, damping_kd: float = 2.0, stale_s: float = 0.1,
                 connect_timeout_s: float = 3.0):
        if spec.dof != 12:
            raise SpecError(f"unitree_go2 driver: robot {spec.name!r} has {spec.dof} joints, the Go2 has 12")
        gains = spec.extra.get("pd_gains", {"kp": 20.0, "kv": 0.5})
        self.spec, self.interface, self.domain = spec, interface, int(domain)
        self.kp, self.kd = float(gains["kp"]), float(gains["kv"])
        self.rate_hz, self.max_error, self.damping_kd = rate_hz, max_error_rad, damping_kd
        self.stale_s, self.connect_timeout_s = stale_s, connect_timeout_s
        self.lower, self.upper = np.array(spec.limits("lower")), np.array(spec.limits("upper"))
        self._lock = threading.Lock()
        self._state = None
        self._state_at = 0.0
        self.bad_crc = 0
        self.mode = "off"  # off | hold (PD to target) | damp
        self.target: np.ndarray | None = None
        self._stop = threading.Event()
        self._sender: threading.Thread | None = None
        self.sdk = None

    @property
    def device(self) -> str:
        return f"Go2 low-level DDS (domain {self.domain}, {self.interface})"

    def _on_state(self, msg) -> None:
        if msg.crc != lowstate_crc(msg):
            self.bad_crc += 1
            return
        with self._lock:
            self._state, self._state_at = msg, time.monotonic()

    def connect(self) -> None:
        global _DDS
        self.sdk = sdk = sdk_modules()
        # The SDK's channel factory is per process and ignores a second init: one robot network.
        if _DDS is not None and _DDS != (self.domain, self.interface):
            raise HardwareError(f"{self.device}: this process already joined DDS domain {_DDS[0]} on "
                                f"{_DDS[1]}; the SDK allows one per process")
        _DDS = (self.domain, self.interface)
        try:
            sdk.init(self.domain, self.interface)
        except Exception as e:  # the SDK raises a bare Exception on a bad interface or domain
            raise HardwareError(f"{self.device}: DDS init failed ({e}); check the interface name (ip link)") from None
        self.sub = sdk.Subscriber("rt/lowstate", sdk.LowState)
        self.sub.Init(self._on_state, 10)
        self.pub = sdk.Publisher("rt/lowcmd", sdk.LowCmd)
        self.pub.Init()
        end = time.monotonic() + self.connect_timeout_s
        while time.monotonic() < end and self._state is None:
            time.sleep(0.01)
        if self._state is None:
            raise HardwareError(f"{self.device}: no rt/lowstate within {self.connect_timeout_s:.0f} s"
                                + (f" ({self.bad_crc} with a bad checksum)" if self.bad_crc else "")
                                + ": check the Ethernet cable, the interface and that the robot is on")
        self._stop.clear()
        self._sender = threading.Thread(target=self._send_loop, name="go2_lowcmd", daemon=True)
        self._sender.start()

    def _latest(self):
        with self._lock:
            state, at = self._state, self._state_at
        age = time.monotonic() - at
        if state is None or age > self.stale_s:
            raise HardwareError(f"{self.device}: no rt/lowstate for {age:.2f} s (cable, power, or the robot's "
                                "low-level service)")
        return state

    def _measured(self, state) -> np.ndarray:
        return np.array([state.motor_state[i].q for i in range(12)], dtype=np.float64)

    def _send_loop(self) -> None:
        cmd = init_lowcmd(self.sdk)
        period = 1.0 / self.rate_hz
        next_t = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                mode, target = self.mode, None if self.target is None else self.target.copy()
            for i in range(12):
                m = cmd.motor_cmd[i]
                if mode == "hold" and target is not None:
                    m.q, m.dq, m.kp, m.kd, m.tau = float(target[i]), 0.0, self.kp, self.kd, 0.0
                elif mode == "damp":
                    m.q, m.dq, m.kp, m.kd, m.tau = POS_STOP, 0.0, 0.0, self.damping_kd, 0.0
                else:
                    m.q, m.dq, m.kp, m.kd, m.tau = POS_STOP, VEL_STOP, 0.0, 0.0, 0.0
            if mode != "off":
                cmd.crc = lowcmd_crc(cmd)
                self.pub.Write(cmd)
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))
            if time.monotonic() - next_t > 0.1:
                next_t = time.monotonic()

    def enable(self) -> None:
        q = self._measured(self._latest())
        with self._lock:
            self.target, self.mode = np.clip(q, self.lower, self.upper), "hold"

    def disable(self) -> None:
        with self._lock:
            self.mode = "damp"

    def disconnect(self) -> None:
        if self._sender is None:
            return
        self.disable()
        time.sleep(5.0 / self.rate_hz)  # a few damping commands out before the stream stops
        self._stop.set()
        self._sender.join(timeout=1.0)
        self._sender = None
        for ch in (getattr(self, "sub", None), getattr(self, "pub", None)):
            try:
                ch.Close()
            except Exception:  # already closed, or never opened
                pass

    def read(self) -> dict[str, np.ndarray]:
        s = self._latest()
        m = s.motor_state
        w, x, y, z = s.imu_state.quaternion
        return {"stamp": np.array(time.time()),
                "joint_pos": self._measured(s),
                "joint_vel": np.array([m[i].dq for i in range(12)], dtype=np.float64),
                "joint_effort": np.array([m[i].tau_est for i in range(12)], dtype=np.float64),
                "imu_orientation": np.array([x, y, z, w], dtype=np.float64),
                "imu_angular_velocity": np.asarray(s.imu_state.gyroscope, dtype=np.float64),
                "imu_linear_acceleration": np.asarray(s.imu_state.accelerometer, dtype=np.float64)}

    def write(self, positions) -> np.ndarray:
        q = checked_positions(self.spec, positions, f"{self.spec.name}.write")
        if self.mode != "hold":
            raise HardwareError(f"{self.spec.name}: write while {self.mode!r} (enable() first): nothing sent")
        measured = self._measured(self._latest())
        q = np.clip(np.clip(q, measured - self.max_error, measured + self.max_error), self.lower, self.upper)
        with self._lock:
            self.target = q
        return q.copy()


DRIVERS.register("unitree_go2")(UnitreeGo2)
