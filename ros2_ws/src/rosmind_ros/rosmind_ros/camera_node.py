"""camera_node: a real camera on the topics the sim's robot_node gives its cameras
(``rosmind.schema.camera_topics``): ``camera/<name>/image_raw`` (rgb8), ``.../depth/image_raw``
(32FC1 metres, aligned to colour), and a CameraInfo beside each, one stamp per frame, so a
policy trained in sim reads a real camera unchanged.

Drivers (``rosmind.hardware.sensors.cameras``): ``realsense`` (pyrealsense2), ``uvc`` (OpenCV).

``tactile_grid:=[rows, cols]`` makes it a camera-based tactile sensor (DIGIT, GelSight): the
first frame is the untouched reference, and each frame's marker offsets and normal proxy
(``rosmind.hardware.sensors.tactile``) go out on ``tactile/<name>`` as a 32FC3 image, the
layout of the sim's taxel pad, instead of the camera topics.
A camera that stops delivering is never republished stale: nothing goes out, ``/diagnostics``
says ERROR naming it, and the node keeps trying (a policy then pauses on its own staleness
check, as the camera issue specifies).

    python -m rosmind_ros.camera_node --ros-args -p name:=wrist -p driver:=realsense \\
        -p "options:='{serial: \"123456789\", width: 640, height: 480, fps: 30}'" -p frame_id:=wrist_camera_optical
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from rosmind.errors import HardwareError, SpecError
from rosmind.hardware.sensors.cameras import make_camera
from rosmind.hardware.sensors.tactile import MarkerTracker
from rosmind.schema import camera_topics
from rosmind_ros import conversions as cv
from rosmind_ros.params import declare_from_dataclass, run_node


@dataclass
class CameraNodeConfig:
    name: str = ""  # the camera's name in the robot spec (topic camera/<name>/...)
    driver: str = "realsense"
    options: dict = field(default_factory=dict)  # the driver's options
    frame_id: str = ""
    tactile_grid: list[int] = field(default_factory=list)  # [rows, cols] of gel markers: tactile mode
    diagnostics_period_s: float = 1.0

    def __post_init__(self):
        if not self.name:
            raise SpecError("camera_node: name is required (the camera's name in the robot spec)")
        if self.tactile_grid and (len(self.tactile_grid) != 2 or min(self.tactile_grid) < 1):
            raise SpecError(f"camera_node.tactile_grid: [rows, cols] of markers, got {self.tactile_grid}")


class CameraNode(Node):
    def __init__(self):
        super().__init__("camera_node")
        self.cfg = cfg = declare_from_dataclass(self, CameraNodeConfig)
        self.cam = make_camera(cfg.driver, **cfg.options)
        self.cam.start()
        self.topics = camera_topics(cfg.name)
        self.frame_id = cfg.frame_id or f"{cfg.name}_optical"
        self.tracker = MarkerTracker(*cfg.tactile_grid) if cfg.tactile_grid else None
        if self.tracker is not None:
            self.pubs = {"tactile": self.create_publisher(Image, f"tactile/{cfg.name}", 5)}
        else:
            self.pubs = {k: self.create_publisher(Image if k in ("rgb", "depth") else CameraInfo, t, 5)
                         for k, t in self.topics.items()}
        self.diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.fault = ""
        self.frames = 0
        self._window = (time.monotonic(), 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="camera", daemon=True)
        self._thread.start()
        self.create_timer(cfg.diagnostics_period_s, self._diagnostics)
        self.get_logger().info(f"{self.cam.name} -> camera/{cfg.name}/* ({self.frame_id})")

    def _loop(self) -> None:
        logged = 0.0
        while not self._stop.is_set():
            try:
                f = self.cam.read(timeout_s=1.0)
            except HardwareError as e:
                self.fault = str(e)
                if time.monotonic() - logged > 1.0:
                    logged = time.monotonic()
                    self.get_logger().error(f"{e}; nothing published")
                self._stop.wait(0.2)
                continue
            self.fault = ""
            if self.tracker is not None:
                self._tactile(f)
                continue
            k = f.intrinsics
            info = cv.camera_info(k["width"], k["height"], k["fx"], k["fy"], k["cx"], k["cy"], f.stamp, self.frame_id)
            self.pubs["rgb"].publish(cv.image(f.rgb, "rgb8", f.stamp, self.frame_id))
            self.pubs["info"].publish(info)
            if f.depth is not None:
                self.pubs["depth"].publish(cv.image(f.depth, "32FC1", f.stamp, self.frame_id))
                self.pubs["depth_info"].publish(info)
            self.frames += 1

    def _tactile(self, f) -> None:
        try:
            if self.tracker.ref is None:
                self.tracker.reference(f.rgb)
            out = self.tracker(f.rgb)
        except HardwareError as e:
            self.fault = str(e)
            return
        self.pubs["tactile"].publish(cv.image(out, "32FC3", f.stamp, self.frame_id))
        self.frames += 1

    def _diagnostics(self) -> None:
        start, frames = self._window
        now = time.monotonic()
        self._window = (now, self.frames)
        msg = DiagnosticArray()
        msg.header.stamp = cv.stamp(time.time())
        values = {"fps": f"{(self.frames - frames) / max(now - start, 1e-9):.1f}", "frames": self.frames}
        msg.status = [cv.diagnostic_status(f"{self.get_name()}: camera {self.cfg.name}", "ERROR" if self.fault else "OK",
                                           self.fault or "streaming", values, self.cam.name)]
        self.diag.publish(msg)

    def destroy_node(self):
        self._stop.set()
        self._thread.join(timeout=3.0)
        self.cam.stop()
        return super().destroy_node()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_node(CameraNode, argv))


if __name__ == "__main__":
    main()
