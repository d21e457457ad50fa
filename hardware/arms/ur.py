"""Universal Robots arms through ``ur-rtde`` (RTDE, port 30004): state from
``RTDEReceiveInterface``, motion by ``servoJ`` from ``RTDEControlInterface`` with its watchdog.

    ur = URArm(load_spec("ur5e"), host="192.168.1.10")
    ur.connect()       # RTDE state stream (joints, TCP wrench, robot and safety modes)
    ur.enable()        # uploads ur_rtde's control script; the watchdog stops the arm if rosmind
                       # stops commanding for longer than 1 / watchdog_hz
    ur.write(q)        # one servoJ target (lookahead 0.1 s, gain 300: UR's recommended range)
    ur.disable()       # servoStop (decelerates), stopScript
    ur.disconnect()

``read()`` refuses (``HardwareError``) a robot that is not running (robot mode 7) or whose safety
mode is not normal (a protective or emergency stop), naming the mode, so nothing is commanded
into a stopped arm. Tested against ``rosmind.hardware.emulators.ur_rtde`` (the RTDE state
side); the control side (script upload over port 30003 and ur_rtde's register protocol) has no
emulator here and is untested (docs/hardware/ur.md).
"""

from __future__ import annotations

import time

import numpy as np

from rosmind.errors import HardwareError, SpecError
from rosmind.hardware.drivers import DRIVERS
from rosmind.robot import HardwareRobot, checked_positions
from rosmind.spec import RobotSpec

STATE = ["timestamp", "actual_q", "actual_qd", "actual_current", "actual_TCP_force", "robot_mode", "safety_mode"]
ROBOT_MODES = {-1: "no controller", 0: "disconnected", 1: "confirm safety", 2: "booting", 3: "power off",
               4: "power on", 5: "idle", 6: "backdrive", 7: "running", 8: "updating firmware"}
SAFETY_MODES = {1: "normal", 2: "reduced", 3: "protective stop", 4: "recovery", 5: "safeguard stop",
                6: "system emergency stop", 7: "robot emergency stop", 8: "violation", 9: "fault",
                10: "validate joint id", 11: "undefined", 12: "automatic mode safeguard stop",
                13: "system three position enabling stop"}


class URArm(HardwareRobot):
    def __init__(self, spec: RobotSpec, host: str = "", frequency_hz: float = 125.0, watchdog_hz: float = 10.0,
                 lookahead_s: float = 0.1, gain: float = 300.0, stale_s: float = 0.1):
        if spec.dof != 6:
            raise SpecError(f"ur_rtde driver: robot {spec.name!r} has {spec.dof} joints, a UR arm has 6")
        if not host:
            raise SpecError(f"robot {spec.name!r}: the UR driver needs host (the controller's IP address)")
        self.spec, self.host = spec, host
        self.frequency, self.watchdog_hz, self.lookahead, self.gain = frequency_hz, watchdog_hz, lookahead_s, gain
        self.stale_s = stale_s
        self.rx = self.ctrl = None
        self._last = (None, 0.0)  # (controller timestamp, monotonic time it last changed)

    @property
    def device(self) -> str:
        return f"UR controller {self.host}"

    def connect(self) -> None:
        import rtde_receive

        try:
            self.rx = rtde_receive.RTDEReceiveInterface(self.host, self.frequency, STATE)
        except RuntimeError as e:
            raise HardwareError(f"{self.device}: RTDE (port 30004) refused or silent ({e}); check the address, "
                                "that the robot is on and that remote control is allowed") from None
        end = time.monotonic() + 2.0
        while time.monotonic() < end and not self.rx.isConnected():
            time.sleep(0.01)
        if not self.rx.isConnected():
            raise HardwareError(f"{self.device}: RTDE connected but no state arrived")

    def read(self) -> dict[str, np.ndarray]:
        if self.rx is None or not self.rx.isConnected():
            raise HardwareError(f"{self.device}: RTDE connection lost (network, or the controller rebooted)")
        stamp = self.rx.getTimestamp()
        now = time.monotonic()
        if stamp != self._last[0]:
            self._last = (stamp, now)
        elif now - self._last[1] > self.stale_s:
            raise HardwareError(f"{self.device}: no new RTDE state for {now - self._last[1]:.2f} s")
        mode, safety = self.rx.getRobotMode(), self.rx.getSafetyMode()
        if mode != 7 or safety != 1:
            raise HardwareError(f"{self.device}: robot mode {mode} ({ROBOT_MODES.get(mode, '?')}), safety mode "
                                f"{safety} ({SAFETY_MODES.get(safety, '?')}): release it on the teach pendant")
        return {"stamp": np.array(time.time()), "joint_pos": np.array(self.rx.getActualQ()),
                "joint_vel": np.array(self.rx.getActualQd()), "joint_effort": np.array(self.rx.getActualCurrent()),
                "wrench": np.array(self.rx.getActualTCPForce())}

    def enable(self) -> None:
        import rtde_control

        try:
            self.ctrl = rtde_control.RTDEControlInterface(self.host, self.frequency)
        except RuntimeError as e:
            raise HardwareError(f"{self.device}: the control interface did not start ({e}): is the robot in "
                                "remote control mode, and port 30003 reachable?") from None
        self.ctrl.setWatchdog(self.watchdog_hz)

    def write(self, positions) -> np.ndarray:
        q = checked_positions(self.spec, positions, f"{self.spec.name}.write")
        if self.ctrl is None:
            raise HardwareError(f"{self.spec.name}: write before enable(): nothing sent")
        q = np.clip(q, self.spec.limits("lower"), self.spec.limits("upper"))
        vmax = float(np.min(self.spec.limits("velocity")))
        amax = float(np.min(self.spec.limits("acceleration")))
        self.ctrl.kickWatchdog()
        if not self.ctrl.servoJ(q.tolist(), vmax, amax, 1.0 / self.frequency, self.lookahead, self.gain):
            raise HardwareError(f"{self.device}: servoJ refused (the control script stopped: protective stop?)")
        return q

    def disable(self) -> None:
        if self.ctrl is not None:
            try:
                self.ctrl.servoStop()
                self.ctrl.stopScript()
            finally:
                self.ctrl = None

    def disconnect(self) -> None:
        self.disable()
        if self.rx is not None:
            self.rx.disconnect()
            self.rx = None


DRIVERS.register("ur_rtde")(URArm)
