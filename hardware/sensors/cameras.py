"""Real cameras behind one small interface, for camera_node (the sim's camera topics from real
devices):

    cam = make_camera("realsense", serial="", width=640, height=480, fps=30)
    cam.start()
    frame = cam.read(timeout_s=1.0)   # Frame: rgb [H,W,3] uint8, depth [H,W] float32 m (aligned to
                                      # the colour camera) or None, stamp (s), intrinsics (dict)
    cam.stop()

- ``realsense``: Intel RealSense through ``pyrealsense2``: the colour and depth sensors opened at
  the asked profile, frames paired by a ``syncer`` and depth aligned to colour (``rs.align``), so
  both images share one CameraInfo (what the sim publishes). ``device=`` takes any device object,
  e.g. an ``rs.software_device`` (how the tests run it on synthetic frames).
- ``uvc``: any UVC webcam (or a video file) through OpenCV's ``VideoCapture``; no depth.
  Intrinsics from ``fx, fy, cx, cy`` (a calibration) or a 60-degree horizontal field of view.

Errors (no device, wrong serial, no such profile, a camera that stops delivering) are
``HardwareError`` naming the device and what to check.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from rosmind.errors import HardwareError, UnknownNameError


@dataclass
class Frame:
    rgb: np.ndarray
    depth: np.ndarray | None
    stamp: float  # wall-clock seconds at capture (as well as the device tells)
    intrinsics: dict  # width height fx fy cx cy


class RealSenseCamera:
    def __init__(self, serial: str = "", width: int = 640, height: int = 480, fps: int = 30, depth: bool = True,
                 device=None):
        import pyrealsense2 as rs

        self.rs = rs
        self.serial, self.width, self.height, self.fps, self.use_depth = serial, width, height, fps, depth
        self.device = device
        self.sensors: list = []
        self.sync = None
        self.align = None
        self._offset: float | None = None  # wall clock - device clock (s)

    @property
    def name(self) -> str:
        return f"RealSense {self.serial or '(first found)'}"

    def _find(self):
        rs = self.rs
        devices = list(rs.context().query_devices())
        serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
        if not devices:
            raise HardwareError("no RealSense camera found: check the USB 3 cable and port, and the udev rules")
        if not self.serial:
            return devices[0]
        if self.serial not in serials:
            raise HardwareError(f"no RealSense with serial {self.serial}; connected: {serials}")
        return devices[serials.index(self.serial)]

    def _profile(self, sensor, stream, fmt):
        for p in sensor.get_stream_profiles():
            v = p.as_video_stream_profile()
            if (p.stream_type() == stream and p.format() == fmt and v.width() == self.width
                    and v.height() == self.height and p.fps() == self.fps):
                return p
        have = sorted({f"{p.stream_type()} {p.format()} {p.as_video_stream_profile().width()}x"
                       f"{p.as_video_stream_profile().height()}@{p.fps()}" for p in sensor.get_stream_profiles()})
        raise HardwareError(f"{self.name}: no {stream} {fmt} {self.width}x{self.height}@{self.fps} profile; "
                            f"it offers {have[:8]}")

    def start(self) -> None:
        rs = self.rs
        dev = self.device if self.device is not None else self._find()
        streams = [(rs.stream.color, rs.format.rgb8)] + ([(rs.stream.depth, rs.format.z16)] if self.use_depth else [])
        self.sync = rs.syncer()
        for stream, fmt in streams:
            sensor = next((s for s in dev.query_sensors()
                           if any(p.stream_type() == stream for p in s.get_stream_profiles())), None)
            if sensor is None:
                raise HardwareError(f"{self.name}: has no {stream} sensor")
            sensor.open(self._profile(sensor, stream, fmt))
            sensor.start(self.sync)
            self.sensors.append(sensor)
        self.align = rs.align(rs.stream.color) if self.use_depth else None

    def read(self, timeout_s: float = 1.0) -> Frame:
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            ok, frames = self.sync.try_wait_for_frames(max(1, int(left * 1000))) if left > 0 else (False, None)
            if not ok:
                raise HardwareError(f"{self.name}: no frames for {timeout_s:.1f} s (USB bandwidth, cable, power)")
            color = frames.get_color_frame()
            depth = frames.get_depth_frame() if self.use_depth else None
            if color and (depth or not self.use_depth):
                break  # a set with both (the syncer also hands out singles while pairing)
        if depth:
            depth = self.align.process(frames).get_depth_frame()
            d = np.asanyarray(depth.get_data()).astype(np.float32) * depth.get_units()
        else:
            d = None
        i = color.get_profile().as_video_stream_profile().get_intrinsics()
        device_s = color.get_timestamp() / 1000.0
        now = time.time()
        if self._offset is None or now - (device_s + self._offset) < 0:  # first frame, or a clock jump
            self._offset = now - device_s
        return Frame(np.asanyarray(color.get_data()).copy(), d, device_s + self._offset,
                     {"width": i.width, "height": i.height, "fx": i.fx, "fy": i.fy, "cx": i.ppx, "cy": i.ppy})

    def stop(self) -> None:
        for s in self.sensors:
            try:
                s.stop()
                s.close()
            except RuntimeError:
                pass
        self.sensors = []


class UVCCamera:
    def __init__(self, device: str = "0", width: int = 640, height: int = 480, fps: int = 30,
                 fx: float = 0.0, fy: float = 0.0, cx: float = 0.0, cy: float = 0.0):
        self.source = int(device) if str(device).isdigit() else device
        self.width, self.height, self.fps = width, height, fps
        self.k = (fx, fy, cx, cy)
        self.cap = None
        self._next: float | None = None  # when the next frame of a video file is due (monotonic s)

    @property
    def name(self) -> str:
        return f"UVC camera {self.source}"

    def start(self) -> None:
        import cv2

        self.cap = cv2.VideoCapture(self.source)
        if not self.cap.isOpened():
            raise HardwareError(f"{self.name}: cannot open (check /dev/video*, permissions: the video group)")
        self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        self.cap.set(cv2.CAP_PROP_FPS, self.fps)

    def read(self, timeout_s: float = 1.0) -> Frame:
        import cv2

        if isinstance(self.source, str):  # a video file: paced at fps, as a camera paces itself
            now = time.monotonic()
            self._next = max(now if self._next is None else self._next, now - 1.0 / self.fps)
            time.sleep(max(0.0, self._next - now))
            self._next += 1.0 / self.fps
        ok, bgr = self.cap.read()
        if not ok or bgr is None:
            raise HardwareError(f"{self.name}: no frame (unplugged, or the end of a video file)")
        h, w = bgr.shape[:2]
        fx, fy, cx, cy = self.k
        if not fx:  # no calibration: a 60-degree horizontal field of view, centred
            fx = fy = w / 2 / math.tan(math.radians(30))
            cx, cy = w / 2, h / 2
        return Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None, time.time(),
                     {"width": w, "height": h, "fx": fx, "fy": fy or fx, "cx": cx, "cy": cy})

    def stop(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


CAMERAS = {"realsense": RealSenseCamera, "uvc": UVCCamera}


def make_camera(driver: str, **options):
    if driver not in CAMERAS:
        raise UnknownNameError(f"unknown camera driver {driver!r}; valid: {', '.join(CAMERAS)}")
    from rosmind.hardware.drivers import checked_options

    return CAMERAS[driver](**checked_options(CAMERAS[driver], options, f"camera driver {driver!r}"))
