"""hardware_node: robot_node's hardware backend. Hosts one real robot (a ``HardwareRobot`` from
``rosmind.hardware.drivers``) on the topics the sim's robot_node offers, in real time only:
``joint_states`` each control tick, stamped with the wall clock; consumes ``joint_trajectory``
and ``forward_position_controller/commands`` (safety_node's outputs, nothing else drives the
robot); ``/diagnostics``. No ``/clock``, no ``reset``: the world is not ours to reset.

A lifecycle node (``rclpy.lifecycle``), as ros2_control's hardware components are:

    configure  -> connect (open the port / socket, check every device answers and is the model
                  the calibration expects)
    activate   -> enable (goal := where the robot is, then torque on: it never jumps) and
                  start applying commands
    deactivate -> safe stop (the driver's ``disable``), commands ignored
    cleanup    -> disconnect;  shutdown (Ctrl-C) -> safe stop and disconnect

``autostart`` (default true) runs configure + activate at start; with it false a lifecycle
manager (or ``<node>/change_state``) drives the transitions.

A device error while active (a servo that stops answering, a bad checksum twice) does not
kill the node: no command is sent while it lasts, ``/diagnostics`` says ERROR with the
driver's message (which names the device and what to check), the log says it once a
second, and the loop keeps trying. When the device answers again the node drops the old
command (it holds where the robot is) until a new one arrives.

    python -m rosmind_ros.hardware_node --ros-args -p robot:=so100 -p port:=/dev/ttyACM0 \\
        -p calibration:=so100.json
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import WrenchStamped
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from rosmind.bridge import CommandMailbox
from rosmind.errors import HardwareError, SpecError, UserError
from rosmind.hardware.drivers import make_hardware
from rosmind.stats import latency_summary
from rosmind_ros import conversions as cv
from rosmind_ros.params import declare_from_dataclass, run_node


@dataclass
class HardwareNodeConfig:
    robot: str = "so100"
    driver: str = ""  # "" = the spec's extra.driver
    port: str = ""  # serial port / device path (servo buses)
    interface: str = ""  # network interface (Unitree: the robot's Ethernet, e.g. eth0)
    host: str = ""  # controller address (UR: RTDE, Franka: FCI)
    domain: int = -1  # DDS domain of the robot's own middleware (Unitree: 0); -1 = the driver's default
    calibration: str = ""  # driver calibration file ("" = the driver's default)
    autostart: bool = True  # configure + activate at start
    diagnostics_period_s: float = 1.0

    def __post_init__(self):
        if not self.diagnostics_period_s > 0:
            raise SpecError(f"HardwareNodeConfig.diagnostics_period_s: must be > 0, got {self.diagnostics_period_s}")


class HardwareNode(LifecycleNode):
    def __init__(self):
        super().__init__("robot_node")
        self.cfg = cfg = declare_from_dataclass(self, HardwareNodeConfig)
        options = {k: v for k, v in (("port", cfg.port), ("calibration", cfg.calibration),
                                     ("interface", cfg.interface), ("host", cfg.host)) if v}
        if cfg.domain >= 0:
            options["domain"] = cfg.domain
        self.robot = make_hardware(cfg.robot, cfg.driver, **options)  # no device contact yet
        self.spec = self.robot.spec
        self.exit_code: int | None = None
        self.mailbox = CommandMailbox(self.spec.dof)
        self.js = self.create_publisher(JointState, "joint_states", 10)
        wrenches = self.spec.sensors_of("wrench")  # arms with a wrist F/T (UR's TCP force, Franka's estimate)
        self.wrench = self.create_publisher(WrenchStamped, "wrench", 10) if wrenches else None
        self.wrench_frame = wrenches[0].frame_id if wrenches else ""
        imus = self.spec.sensors_of("imu")  # quadrupeds: the IMU, as the sim publishes it
        self.imu = self.create_publisher(Imu, "imu", 10) if imus else None
        self.imu_frame = imus[0].frame_id if imus else ""
        self.diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, 10)
        self.create_subscription(Float64MultiArray, "forward_position_controller/commands", self._on_commands, 10)
        self.state = "unconfigured"
        self.fault = ""
        self.counts = {"ticks": 0, "late_ticks": 0, "faults": 0, "commands_sent": 0, "rejected_commands": 0}
        self._lateness: deque[float] = deque(maxlen=2000)
        self._logged: dict[str, float] = {}
        self._window = (time.monotonic(), 0)
        self._active = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the loop thread and lifecycle callbacks both touch the device
        self._thread = threading.Thread(target=self._loop, name="hardware_loop", daemon=True)
        self._thread.start()
        if cfg.autostart:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise HardwareError(f"robot_node: configure failed: {self.fault}")
            if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                raise HardwareError(f"robot_node: activate failed: {self.fault}")

    # -- lifecycle -------------------------------------------------------------------------

    def _transition(self, name: str, fn, new_state: str) -> TransitionCallbackReturn:
        try:
            with self._lock:
                fn()
        except UserError as e:
            self.fault = str(e)
            self.get_logger().error(f"{name}: {e}")
            self._publish_diagnostics(force=True)
            return TransitionCallbackReturn.FAILURE
        self.state, self.fault = new_state, ""
        self.get_logger().info(f"{name}: {self.spec.name} on {self.robot.device}: {new_state}")
        self._publish_diagnostics(force=True)
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        return self._transition("configure", self.robot.connect, "inactive")

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        def enable():
            self.mailbox.clear()  # a command from before activation must not move the robot
            self.robot.enable()

        out = self._transition("activate", enable, "active")
        if out == TransitionCallbackReturn.SUCCESS:
            self._active.set()
            return super().on_activate(state)
        return out

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active.clear()
        out = self._transition("deactivate", self.robot.disable, "inactive")
        return super().on_deactivate(state) if out == TransitionCallbackReturn.SUCCESS else out

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        return self._transition("cleanup", self.robot.disconnect, "unconfigured")

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._safe_stop()
        return TransitionCallbackReturn.SUCCESS

    def _safe_stop(self) -> None:
        self._active.clear()
        try:
            with self._lock:
                self.robot.disconnect()  # the driver's safe stop, then release
        except UserError as e:
            self.get_logger().error(f"safe stop: {e}")
        self.state = "finalized"

    # -- commands --------------------------------------------------------------------------

    def _reject(self, why: str) -> None:
        self.counts["rejected_commands"] += 1
        self._log_throttled("reject", f"rejected command: {why}")

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            pos, times = cv.checked_trajectory(msg, self.spec.joint_names, self.spec.name)
        except ValueError as e:
            return self._reject(str(e))
        self.mailbox.put_trajectory(cv.to_sec(msg.header.stamp), times, pos)

    def _on_commands(self, msg: Float64MultiArray) -> None:
        try:
            self.mailbox.put_position(cv.checked_positions(msg, self.spec.joint_names))
        except ValueError as e:
            self._reject(str(e))

    # -- the control loop ------------------------------------------------------------------

    def _log_throttled(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._logged.get(key, -1e9) >= 1.0:
            self._logged[key] = now
            self.get_logger().error(text)

    def _tick(self) -> None:
        t = time.time()
        try:
            with self._lock:
                if not self._active.is_set():
                    return
                obs = self.robot.read()
                q = self.mailbox.setpoint_at(t)
                if q is not None and not self.fault:
                    self.robot.write(q)
                    self.counts["commands_sent"] += 1
        except UserError as e:
            if not self.fault:
                self.counts["faults"] += 1
            self.fault = str(e)
            self._log_throttled("fault", f"{self.spec.name}: {e}; no command is sent until it answers again")
            return
        if self.fault:  # it answers again: hold where it is until a new command arrives
            self.get_logger().warn(f"{self.spec.name}: device answers again after: {self.fault}; holding")
            self.mailbox.clear()
            self.fault = ""
        self.js.publish(cv.joint_state(self.spec.joint_names, obs["joint_pos"], obs.get("joint_vel"),
                                       obs.get("joint_effort"), t))
        if self.wrench is not None and "wrench" in obs:
            self.wrench.publish(cv.wrench_stamped(obs["wrench"], t, self.wrench_frame))
        if self.imu is not None and "imu_orientation" in obs:
            self.imu.publish(cv.imu(obs["imu_orientation"], obs["imu_angular_velocity"],
                                    obs["imu_linear_acceleration"], t, self.imu_frame))
        self.counts["ticks"] += 1

    def _loop(self) -> None:
        period = self.spec.control_period
        next_t = time.monotonic()
        while not self._stop.is_set():
            self._tick()
            self._publish_diagnostics()
            next_t += period
            late = time.monotonic() - next_t
            if late > 0:  # a slow bus: count it, and do not try to catch up in a burst
                if self._active.is_set():
                    self.counts["late_ticks"] += 1
                next_t = time.monotonic()
            else:
                self._stop.wait(-late)
            if self._active.is_set():
                self._lateness.append(max(late, 0.0))

    def _publish_diagnostics(self, force: bool = False) -> None:
        start, ticks = self._window
        now = time.monotonic()
        if not force and now - start < self.cfg.diagnostics_period_s:
            return
        rate = (self.counts["ticks"] - ticks) / max(now - start, 1e-9)
        self._window = (now, self.counts["ticks"])
        level = "ERROR" if self.fault else ("OK" if self.state == "active" else "WARN")
        message = self.fault or f"{self.state}, {rate:.1f} ticks/s"
        values = {"state": self.state, "device": self.robot.device, "tick_rate_hz": f"{rate:.1f}",
                  **self.counts}
        if self._lateness:
            lat = latency_summary(list(self._lateness))
            values.update({"tick_late_p50_ms": f"{lat['p50']:.2f}", "tick_late_p99_ms": f"{lat['p99']:.2f}"})
        msg = DiagnosticArray()
        msg.header.stamp = cv.stamp(time.time())
        msg.status = [cv.diagnostic_status(f"{self.get_name()}: hardware", level, message, values, self.spec.name)]
        self.diag.publish(msg)

    def destroy_node(self):
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if self.state != "finalized":
            self._safe_stop()
        return super().destroy_node()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_node(HardwareNode, argv))


if __name__ == "__main__":
    main()
