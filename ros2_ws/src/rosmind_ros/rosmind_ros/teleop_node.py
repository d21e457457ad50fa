"""teleop_node: a teleop device -> joint commands through safety_node (core: ``rosmind.teleop``).

Every control period (steady clock, ``rate_hz`` or the robot's control rate): poll the device
(``rosmind.hardware.teleop``, registry ``DEVICES``), step ``TeleopController`` with the latest
``joint_states``, publish the joint command [D, spec order] on ``safety/commands``
(Float64MultiArray; ``output:=trajectory``: a one-point JointTrajectory on
``safety/joint_trajectory``). ``output:=cmd_vel`` (quadrupeds): the device's x, y and yaw axes
scaled by ``VelocityTeleopConfig`` as a geometry_msgs/Twist on ``cmd_vel`` for the walking
policy; on deadman release one zero Twist, then nothing (the policy stands still). Deadman released, device gone, or no ``joint_states`` yet: nothing
is published, so safety_node holds, then stops at the measured pose (its watchdog).

Publishes ``teleop/events`` (std_msgs/String, JSON ``{"event", "device", "t"}``; events
``device_connected``, ``device_lost``, ``deadman_pressed``, ``deadman_released``) for the
recorder, and ``/diagnostics`` once a second. Devices with a screen (the web page) get the
``wrench`` readout and JPEG frames of ``camera/<camera>/image_raw``. Parameters: the fields of
``TeleopNodeConfig`` and ``TeleopConfig``; ``device_options`` is the device config as a YAML
mapping, e.g. ``-p "device_options:='{host: 0.0.0.0, token: ..., port: 8765}'"``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist, WrenchStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from rosmind.errors import SpecError
from rosmind.hardware.teleop.devices import make_device
from rosmind.schema import camera_topics
from rosmind.spec import load_spec
from rosmind.teleop import TeleopConfig, TeleopController, VelocityTeleopConfig, velocity_command
from rosmind_ros import conversions as cv
from rosmind_ros.params import declare_from_dataclass, run_node

EVENTS_QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass
class TeleopNodeConfig:
    robot: str = "panda"
    device: str = "web"  # a DEVICES registry name
    device_options: dict = field(default_factory=dict)  # the device's config fields
    output: Literal["commands", "trajectory", "cmd_vel"] = "commands"
    rate_hz: float = 0.0  # 0 = the robot's control rate
    camera: str = ""  # camera streamed to a device with a screen; "" = the spec's first camera
    camera_fps: float = 10.0
    jpeg_quality: int = 75

    def __post_init__(self):
        if self.rate_hz < 0 or self.camera_fps <= 0:
            raise SpecError("TeleopNodeConfig: rate_hz must be >= 0 and camera_fps > 0")
        if not 10 <= self.jpeg_quality <= 100:
            raise SpecError(f"TeleopNodeConfig.jpeg_quality: 10..100, got {self.jpeg_quality}")


class TeleopNode(Node):
    def __init__(self):
        super().__init__("teleop_node")
        self.cfg = cfg = declare_from_dataclass(self, TeleopNodeConfig)
        core_cfg = declare_from_dataclass(self, TeleopConfig)
        vel_cfg = declare_from_dataclass(self, VelocityTeleopConfig)
        self.spec = spec = load_spec(cfg.robot)
        log = self.get_logger()
        self.device = make_device(cfg.device, cfg.device_options)
        self.core = _VelocityCore(vel_cfg) if cfg.output == "cmd_vel" else TeleopController(
            spec, core_cfg, log=log.info, joint_mode=self.device.joint_commands)
        self.device.open()
        self.q_measured: np.ndarray | None = None
        self.wrench = np.zeros(6)
        self.connected = False
        self.deadman = False
        self.counts = {"commands": 0, "device_lost": 0}
        self._last_frame = self._last_status = self._last_diag = 0.0
        if cfg.output == "cmd_vel":
            self.pub = self.create_publisher(Twist, "cmd_vel", 10)
        elif cfg.output == "commands":
            self.pub = self.create_publisher(Float64MultiArray, "safety/commands", 10)
        else:
            self.pub = self.create_publisher(JointTrajectory, "safety/joint_trajectory", 10)
        # Events are rare and matter (the recorder marks episodes by them): latched, so a
        # subscriber that joins late still gets the recent ones.
        self.pub_events = self.create_publisher(String, "teleop/events", EVENTS_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, 10)
        self.create_subscription(WrenchStamped, "wrench", self._on_wrench, 10)
        if hasattr(self.device, "send_frame"):
            cams = [s.name for s in spec.sensors_of("rgb", "rgbd")]
            cam = cfg.camera or (cams[0] if cams else "")
            if cam:
                self.create_subscription(Image, camera_topics(cam)["rgb"], self._on_image, 2)
        period = 1.0 / (cfg.rate_hz or spec.control_rate_hz)
        self.create_timer(period, self._on_tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        where = f" at {self.device.url}" if hasattr(self.device, "url") else ""
        log.info(f"teleop {spec.name!r} with device {cfg.device!r}{where} -> "
                 f"{self.pub.topic_name} at {1 / period:g} Hz")

    def _event(self, event: str, **extra) -> None:
        self.get_logger().info(f"teleop event: {event} {extra or ''}")
        self.pub_events.publish(String(data=json.dumps(
            {"event": event, "device": self.cfg.device, "t": time.time(), **extra})))

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            self.q_measured = cv.joint_state_to_numpy(msg, self.spec.joint_names)["joint_pos"]
        except (KeyError, ValueError) as e:
            self.get_logger().error(f"joint_states ignored: {e}", throttle_duration_sec=5.0)

    def _on_wrench(self, msg: WrenchStamped) -> None:
        self.wrench = cv.wrench_to_numpy(msg)

    def _on_image(self, msg: Image) -> None:
        now = time.monotonic()
        if now - self._last_frame < 1.0 / self.cfg.camera_fps or not self.device.connected:
            return
        self._last_frame = now
        try:
            img = cv.image_to_numpy(msg)
        except ValueError as e:
            self.get_logger().error(f"camera frame ignored: {e}", throttle_duration_sec=5.0)
            return
        if msg.encoding == "rgb8":
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)  # imencode wants BGR
        ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
        if ok:
            self.device.send_frame(jpeg.tobytes())

    def _poll(self):
        """The device's command, or None when it is gone (never raises)."""
        try:
            cmd = self.device.poll()
            connected = self.device.connected
        except Exception as e:  # noqa: BLE001 - a driver failure is a lost device, not a crash
            self.get_logger().error(f"device {self.cfg.device!r} failed: {type(e).__name__}: {e}",
                                    throttle_duration_sec=5.0)
            cmd, connected = None, False
        if connected != self.connected:
            self.connected = connected
            if connected:
                self._event("device_connected")
            else:
                self.counts["device_lost"] += 1
                self.get_logger().warning(f"device {self.cfg.device!r} disappeared: robot holds "
                                          "(no commands sent)")
                self._event("device_lost")
        return cmd if connected else None

    def _on_tick(self) -> None:
        cmd = self._poll()
        q = self.core.step(cmd, self.q_measured)
        if self.core.engaged != self.deadman:
            self.deadman = self.core.engaged
            self._event("deadman_pressed" if self.deadman else "deadman_released")
        if q is not None:
            self.counts["commands"] += 1
            if self.cfg.output == "cmd_vel":
                self.pub.publish(cv.twist(*q))
            elif self.cfg.output == "commands":
                self.pub.publish(cv.float_array(q))
            else:
                t = self.get_clock().now().nanoseconds * 1e-9
                self.pub.publish(cv.joint_trajectory(self.spec.joint_names, q[None], t,
                                                     self.spec.control_period))
        now = time.monotonic()
        if hasattr(self.device, "send_status") and now - self._last_status >= 0.1:
            self._last_status = now
            self.device.send_status({"wrench": np.round(self.wrench, 3).tolist(),
                                     "gripper": self.core.gripper, "engaged": self.core.engaged})
        if now - self._last_diag >= 1.0:
            self._last_diag = now
            self._diagnostics()

    def _diagnostics(self) -> None:
        level = "OK" if self.connected else "WARN"
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [cv.diagnostic_status(
            f"teleop_node: {self.cfg.device}", level,
            ("engaged" if self.core.engaged else "idle") if self.connected else "device not connected",
            {"connected": self.connected, "engaged": self.core.engaged, **self.counts},
            self.spec.name)]
        self.pub_diag.publish(msg)

    def destroy_node(self):
        self.device.close()
        self.core.close()
        return super().destroy_node()


class _VelocityCore:
    """TeleopController's interface for ``output:=cmd_vel``: no kinematics, a velocity command."""

    gripper = 0.0

    def __init__(self, cfg: VelocityTeleopConfig):
        self.cfg = cfg
        self.engaged = False

    def step(self, cmd, _q_measured) -> np.ndarray | None:
        v = velocity_command(cmd, self.cfg)
        was, self.engaged = self.engaged, v is not None
        return np.zeros(3) if (was and v is None) else v

    def close(self) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_node(TeleopNode, argv))


if __name__ == "__main__":
    main()
