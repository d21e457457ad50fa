"""Real-camera drivers: RealSense through pyrealsense2 on an ``rs.software_device`` fed with
synthetic frames (the SDK's own software device: syncer, depth units, extrinsics, alignment),
and UVC through OpenCV's VideoCapture on a video file."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rosmind.errors import HardwareError, UnknownNameError
from rosmind.hardware.sensors.cameras import make_camera

pytestmark = pytest.mark.unit
W, H, F = 64, 48, 60.0


def _software_realsense(tx: float):
    """A D400-like software device: depth (Z16, mm) and colour (RGB8) streams, same intrinsics,
    the depth camera ``tx`` metres along x from the colour camera. Returns (device, feed)."""
    import pyrealsense2 as rs

    def intr():
        i = rs.intrinsics()
        i.width, i.height, i.fx, i.fy, i.ppx, i.ppy = W, H, F, F, W / 2, H / 2
        i.model, i.coeffs = rs.distortion.none, [0.0] * 5
        return i

    dev = rs.software_device()
    profiles = {}
    for name, stream, fmt, bpp, uid in (("Depth", rs.stream.depth, rs.format.z16, 2, 0),
                                        ("Color", rs.stream.color, rs.format.rgb8, 3, 1)):
        sensor = dev.add_sensor(name)
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = stream, 0, uid, W, H, 30, bpp, fmt
        vs.intrinsics = intr()
        profiles[name] = (sensor, sensor.add_video_stream(vs), bpp)
        if name == "Depth":
            sensor.add_read_only_option(rs.option.depth_units, 0.001)
    ext = rs.extrinsics()
    ext.rotation, ext.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [tx, 0.0, 0.0]
    profiles["Depth"][1].register_extrinsics_to(profiles["Color"][1], ext)
    dev.create_matcher(rs.matchers.dlr_c)

    def feed(k: int, depth_mm: np.ndarray, rgb: np.ndarray) -> None:
        for name, pixels in (("Depth", depth_mm), ("Color", rgb)):
            sensor, profile, bpp = profiles[name]
            f = rs.software_video_frame()
            f.pixels, f.bpp, f.stride, f.timestamp = pixels, bpp, W * bpp, 1000.0 + 33.3 * k
            f.domain, f.frame_number, f.profile = rs.timestamp_domain.hardware_clock, k, profile.as_video_stream_profile()
            if name == "Depth":
                f.depth_units = 0.001
            sensor.on_video_frame(f)

    return dev, feed


def test_realsense_pairs_aligns_and_scales_depth():
    dev, feed = _software_realsense(tx=0.025)
    cam = make_camera("realsense", width=W, height=H, fps=30, device=dev)
    cam.start()
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = np.arange(W, dtype=np.uint8)[None, :]
    depth = np.full((H, W), 500, np.uint16)  # a wall at 0.5 m
    stop = threading.Event()

    def stream():
        k = 0
        while not stop.wait(0.02):
            feed(k, depth, rgb)
            k += 1

    th = threading.Thread(target=stream, daemon=True)
    th.start()
    try:
        frame = cam.read(timeout_s=5.0)
    finally:
        stop.set()
        th.join()
        cam.stop()
    np.testing.assert_array_equal(frame.rgb, rgb)
    assert frame.intrinsics == {"width": W, "height": H, "fx": F, "fy": F, "cx": W / 2, "cy": H / 2}
    valid = frame.depth > 0
    np.testing.assert_allclose(frame.depth[valid], 0.5, atol=1e-3)  # metres, from mm and depth units
    # Aligned to the colour camera 2.5 cm away: the wall shifts by fx * tx / z = 3 px, leaving a
    # 3-column band the depth camera did not see.
    empty = np.flatnonzero(~valid.any(axis=0))
    assert len(empty) in (2, 3, 4) and (empty.max() == W - 1 or empty.min() == 0), empty


def test_realsense_refuses_a_profile_the_device_lacks():
    dev, _ = _software_realsense(tx=0.0)
    cam = make_camera("realsense", width=640, height=480, fps=30, device=dev)
    with pytest.raises(HardwareError, match=r"no stream.color format.rgb8 640x480@30 profile; it offers"):
        cam.start()


def test_uvc_reads_frames_then_reports_the_end(tmp_path):
    import cv2
    path = str(tmp_path / "cam.avi")
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (W, H))
    for _ in range(3):
        bgr = np.zeros((H, W, 3), np.uint8)
        bgr[..., 2] = 200  # red in BGR
        out.write(bgr)
    out.release()
    cam = make_camera("uvc", device=path, width=W, height=H, fps=30)
    cam.start()
    frames = [cam.read() for _ in range(3)]
    assert frames[0].rgb.shape == (H, W, 3) and abs(int(frames[0].rgb[..., 0].mean()) - 200) < 10  # RGB order
    assert frames[0].intrinsics["cx"] == W / 2 and frames[0].depth is None
    with pytest.raises(HardwareError, match="no frame"):
        cam.read()
    cam.stop()
    with pytest.raises(HardwareError, match="cannot open"):
        make_camera("uvc", device=str(tmp_path / "none.avi")).start()
    with pytest.raises(UnknownNameError, match="valid: realsense, uvc"):
        make_camera("kinect")


@pytest.mark.ros
def test_camera_node_publishes_the_sim_topics_and_reports_a_dead_camera(ros_env, tmp_path):
    import subprocess
    import sys

    import cv2
    from diagnostic_msgs.msg import DiagnosticArray
    from procs import Probe, stop_process, stopped_cleanly
    from sensor_msgs.msg import CameraInfo, Image

    from rosmind.ros_args import ros_literal
    path = str(tmp_path / "cam.avi")
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (W, H))
    for _ in range(90):  # 3 s at 30 fps
        out.write(np.full((H, W, 3), 90, np.uint8))
    out.release()
    proc = subprocess.Popen([sys.executable, "-m", "rosmind_ros.camera_node", "--ros-args", "-p", "name:=scene", "-p",
                             "driver:=uvc", "-p", f"options:={ros_literal(f'{{device: {path}, width: {W}, height: {H}}}')}", "-p",
                             "diagnostics_period_s:=0.2"], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    probe = Probe("cam_probe")
    images = probe.collect(Image, "camera/scene/image_raw")
    infos = probe.collect(CameraInfo, "camera/scene/camera_info")
    diags = probe.collect(DiagnosticArray, "/diagnostics", lambda m: m.status)
    try:
        # The file runs out after 3 s: then the camera is "dead" and must say so.
        probe.wait(lambda: diags and int.from_bytes(diags[-1].level) == 2 and images, 60, "ERROR after the frames")
        assert images and infos, "no camera messages"
        assert images[0].encoding == "rgb8" and (images[0].width, images[0].height) == (W, H)
        assert images[0].header.stamp == infos[0].header.stamp and images[0].header.frame_id == "scene_optical"
        assert "no frame" in diags[-1].message and proc.poll() is None
    finally:
        probe.close()
        code = stop_process(proc)
        _, err = proc.communicate()
    assert stopped_cleanly(code, err), err[-2000:]
