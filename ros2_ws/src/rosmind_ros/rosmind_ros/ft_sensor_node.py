"""ft_sensor_node: a wrist force/torque sensor on ``wrench`` (geometry_msgs/WrenchStamped), the
topic the sim's robot_node publishes, for real robots whose driver has no F/T of its own (a
ros2_control arm, a servo arm) — e.g. ATI's Net F/T over UDP (``rosmind.hardware.sensors.netft``).

Publishes the newest sample at ``rate_hz``, stamped with the wall clock when it arrived;
``wrench/tare`` (std_srvs/Trigger) zeroes the current load; ``/diagnostics`` gives the sample
rate, lost packets and the sensor's status. A sensor that goes silent, or reports a fault, is
never published stale: ``wrench`` stops (a policy that reads it then pauses on its staleness
check) and ``/diagnostics`` says ERROR naming the device, until it streams again.

    python -m rosmind_ros.ft_sensor_node --ros-args -p address:=192.168.1.1 -p frame_id:=ft_sensor
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import WrenchStamped
from rclpy.node import Node
from std_srvs.srv import Trigger

from rosmind.errors import HardwareError, SpecError
from rosmind.hardware.sensors.netft import RDT_PORT, NetFT
from rosmind_ros import conversions as cv
from rosmind_ros.params import declare_from_dataclass, run_node


@dataclass
class FTSensorNodeConfig:
    address: str = ""  # the Net F/T box
    port: int = RDT_PORT
    counts_per_force: float = 1e6  # netftapi2.xml cfgcpf
    counts_per_torque: float = 1e6  # netftapi2.xml cfgcpt
    frame_id: str = "ft_sensor"
    rate_hz: float = 100.0
    stale_s: float = 0.1
    tare_on_start: bool = False
    diagnostics_period_s: float = 1.0

    def __post_init__(self):
        if not self.address:
            raise SpecError("ft_sensor_node: address is required (the Net F/T box's IP address)")
        if not (self.rate_hz > 0 and self.stale_s > 0 and self.diagnostics_period_s > 0):
            raise SpecError("ft_sensor_node: rate_hz, stale_s and diagnostics_period_s must be > 0")


class FTSensorNode(Node):
    def __init__(self):
        super().__init__("ft_sensor_node")
        self.cfg = cfg = declare_from_dataclass(self, FTSensorNodeConfig)
        self.sensor = NetFT(cfg.address, cfg.port, cfg.counts_per_force, cfg.counts_per_torque, cfg.stale_s)
        self.sensor.start()
        self.pub = self.create_publisher(WrenchStamped, "wrench", 10)
        self.diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "wrench/tare", self._on_tare)
        self.fault = ""
        self.published = 0
        self._window = (time.monotonic(), 0, 0)
        self._logged = 0.0
        if cfg.tare_on_start:
            self.sensor.tare()
        self.create_timer(1.0 / cfg.rate_hz, self._tick)
        self.create_timer(cfg.diagnostics_period_s, self._diagnostics)
        self.get_logger().info(f"{self.sensor.device} -> wrench ({cfg.frame_id}) at {cfg.rate_hz:g} Hz")

    def _on_tare(self, _req, resp):
        try:
            self.sensor.tare()
            resp.success, resp.message = True, "software bias set: the current load reads zero"
        except HardwareError as e:
            resp.success, resp.message = False, str(e)
        return resp

    def _tick(self) -> None:
        try:
            wrench, age = self.sensor.latest()
        except HardwareError as e:
            if not self.fault or time.monotonic() - self._logged > 1.0:
                self._logged = time.monotonic()
                self.get_logger().error(f"{e}; wrench not published")
            self.fault = str(e)
            return
        if self.fault:
            self.get_logger().info(f"{self.sensor.device} streams again")
            self.fault = ""
        self.pub.publish(cv.wrench_stamped(wrench, time.time() - age, self.cfg.frame_id))
        self.published += 1

    def _diagnostics(self) -> None:
        start, received, published = self._window
        now = time.monotonic()
        dt = max(now - start, 1e-9)
        s = self.sensor
        self._window = (now, s.received, self.published)
        values = {"sample_rate_hz": f"{(s.received - received) / dt:.1f}",
                  "publish_rate_hz": f"{(self.published - published) / dt:.1f}", "lost_packets": s.lost,
                  "status": f"0x{s.status:08x}", "device": s.device}
        msg = DiagnosticArray()
        msg.header.stamp = cv.stamp(time.time())
        msg.status = [cv.diagnostic_status(f"{self.get_name()}: force/torque", "ERROR" if self.fault else "OK",
                                           self.fault or "streaming", values, s.device)]
        self.diag.publish(msg)

    def destroy_node(self):
        self.sensor.stop()
        return super().destroy_node()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_node(FTSensorNode, argv))


if __name__ == "__main__":
    main()
